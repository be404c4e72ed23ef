// The sanitiser in real Chromium, without the frame's CSP (defence in depth: the sanitiser alone
// must stop every remote load). src/sanitize.ts is bundled with Vite for the page; the CSS
// fetch corpus (image-set(), escaped url(), @import, @font-face, …) is rendered twice, in
// frames that carry no CSP: as it came (the control: Chromium must fetch from it, else this
// check could not see a fetch) and sanitised (nothing may leave the frame). Every request is
// intercepted (page.route), so nothing reaches the network; no server needed.
import path from 'node:path';
import { build } from 'vite';
import { HERE, launch, step, waitFor } from './lib.mjs';
import { CSS_FETCH_CORPUS, XSS_CORPUS } from '../test/xss-corpus.js';

const PAGE = 'http://sanitizer.test/';
// Fetches Chromium makes from the raw corpus (it has no image(), element(), src(), cross-fade()).
const CONTROL_MUST_FETCH = ['imageset-attr', 'imageset-style', 'imageset-caps', 'webkit-imageset', 'escaped-url', 'escaped-url6', 'escaped-url-char', 'escaped-url-caps', 'escaped-imageset', 'import-string', 'import-caps', 'import-escaped', 'font.woff2', 'custom-prop'];

async function bundleSanitizer() {
  const out = await build({
    configFile: false,
    logLevel: 'silent',
    build: {
      write: false,
      minify: false,
      lib: { entry: path.join(HERE, '../src/sanitize.ts'), name: 'BulwarkSanitize', formats: ['iife'], fileName: 'sanitize' },
    },
  });
  return (Array.isArray(out) ? out[0] : out).output[0].code;
}

async function main() {
  const code = await bundleSanitizer();
  const { context } = await launch();
  try {
    const page = await context.newPage();
    const fetched = [];
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url === PAGE) return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>sanitizer</title><body></body>' });
      fetched.push(url);
      return route.fulfill({ status: 404, body: '' });
    });
    await page.goto(PAGE);
    await page.addScriptTag({ content: code });

    step(`CSS fetch corpus (${CSS_FETCH_CORPUS.length} vectors) in frames without a CSP: raw (control) and sanitised`);
    // raw.evil.test for the control, clean.evil.test for the sanitised copy.
    const variants = (host) => CSS_FETCH_CORPUS.map((v) => v.replaceAll('evil.test', host));
    const counts = await page.evaluate(async ({ raw, clean, all }) => {
      const frame = (html) =>
        new Promise((resolve) => {
          const f = document.createElement('iframe');
          // No allow-scripts, as in the reader, but no CSP either.
          f.setAttribute('sandbox', 'allow-same-origin');
          f.style.cssText = 'width:400px;height:300px';
          f.onload = () => resolve();
          f.srcdoc = `<!doctype html><html><head></head><body>${html}</body></html>`;
          document.body.appendChild(f);
        });
      let blocked = 0;
      const cleaned = clean.map((v) => {
        const s = window.BulwarkSanitize.sanitizeHtml(v, { allowRemote: false });
        blocked += s.blockedRemote;
        return s.html;
      });
      // The whole XSS corpus too, sanitised, with consent withheld.
      const rest = all.map((v) => window.BulwarkSanitize.sanitizeHtml(v.replaceAll('evil.test', 'clean.evil.test'), { allowRemote: false }).html);
      await Promise.all([...raw.map(frame), ...cleaned.map(frame), frame(rest.join('\n'))]);
      return { blocked };
    }, { raw: variants('raw.evil.test'), clean: variants('clean.evil.test'), all: XSS_CORPUS });
    await waitFor('Chromium to fetch from every raw control vector', () => CONTROL_MUST_FETCH.every((p) => fetched.some((u) => u.includes('raw.evil.test') && u.includes(`/css/${p}`))), 15000);
    const rawCount = fetched.filter((u) => u.includes('raw.evil.test')).length;
    const leaked = fetched.filter((u) => !u.includes('raw.evil.test'));
    console.log(`  control (raw): ${rawCount} requests; sanitised: ${leaked.length}; the sanitiser counted ${counts.blocked} blocked`);
    if (leaked.length) throw new Error(`the sanitised corpus fetched: ${leaked.join(', ')}`);
    console.log('sanitizer e2e: PASS');
  } catch (e) {
    console.error(`sanitizer e2e: FAIL: ${e.stack ?? e}`);
    process.exitCode = 1;
  } finally {
    await context.close().catch(() => {});
  }
}

await main();

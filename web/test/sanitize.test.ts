import { describe, expect, it } from 'vitest';
import { choosesOwnColours, frameDocument, sanitizeHtml, textToHtml } from '../src/sanitize';
import { CSS_FETCH_CORPUS, XSS_CORPUS } from './xss-corpus';

/** Every URL-bearing value in the sanitised output. */
function urlsIn(doc: Document): string[] {
  const out: string[] = [];
  for (const el of Array.from(doc.querySelectorAll('*'))) {
    for (const a of Array.from(el.attributes)) {
      // A link's href is not loaded until the user clicks it (then in a new, unrelated tab).
      if (a.name === 'href' && el.tagName === 'A') continue;
      if (['href', 'src', 'srcset', 'action', 'formaction', 'background', 'poster', 'data', 'ping', 'xlink:href'].includes(a.name)) {
        out.push(a.value);
      }
      if (a.name === 'style') out.push(...Array.from(a.value.matchAll(/url\(([^)]*)\)/g), (m) => m[1]));
    }
    if (el.tagName === 'STYLE') out.push(...Array.from((el.textContent ?? '').matchAll(/url\(([^)]*)\)|@import/g), (m) => m[1] ?? '@import'));
  }
  return out;
}

/** All CSS in the output (style attributes and <style>), read as the browser would: comments
 * gone, escapes decoded, lower case. */
function cssIn(doc: Document): string {
  const parts: string[] = [];
  for (const el of Array.from(doc.querySelectorAll('*'))) {
    const style = el.getAttribute('style');
    if (style) parts.push(style);
    if (el.tagName === 'STYLE') parts.push(el.textContent ?? '');
  }
  return parts
    .join('\n')
    .replace(/\/\*[\s\S]*?(\*\/|$)/g, ' ')
    .replace(/\\([0-9a-f]{1,6})[ \t\n\r\f]?|\\(.)/gi, (_m, hex: string | undefined, ch: string | undefined) => (hex ? String.fromCodePoint(parseInt(hex, 16) || 0xfffd) : (ch ?? '')))
    .toLowerCase();
}

const FETCHING_CSS = /(?:^|[^a-z0-9_-])(image-set|-webkit-image-set|cross-fade|-webkit-cross-fade|image|element|-moz-element|src|attr)\s*\(|@import|@font-face/;

function parse(html: string): Document {
  return new DOMParser().parseFromString(`<body>${html}</body>`, 'text/html');
}

describe('sanitizer against the XSS corpus', () => {
  for (const [i, hostile] of XSS_CORPUS.entries()) {
    it(`neutralises vector #${i}: ${hostile.slice(0, 50)}`, () => {
      const { html } = sanitizeHtml(hostile, { allowRemote: false });
      const doc = parse(html);
      expect(doc.querySelectorAll('script,iframe,object,embed,form,input,button,meta,link,base,svg,math,video,audio,template').length).toBe(0);
      for (const el of Array.from(doc.querySelectorAll('*'))) {
        for (const a of Array.from(el.attributes)) {
          expect(a.name.startsWith('on'), `handler ${a.name} survived`).toBe(false);
          expect(/^\s*(javascript|vbscript|data:text)/i.test(a.value), `${a.name}=${a.value}`).toBe(false);
        }
      }
      for (const url of urlsIn(doc)) {
        expect(/^\s*['"]?(https?:)?\/\//i.test(url) && !url.includes('ok.example'), `remote load before consent: ${url}`).toBe(false);
        expect(/javascript:/i.test(url)).toBe(false);
      }
      expect(html).not.toMatch(/expression\s*\(|-moz-binding|behavior\s*:/i);
      const css = cssIn(doc);
      expect(css, 'a CSS function or at-rule that fetches').not.toMatch(FETCHING_CSS);
      expect(css, 'a remote URL in CSS before consent').not.toMatch(/(https?:)?\/\/[a-z0-9]/);
    });
  }

  it('strips every CSS fetcher also after consent (only url() follows the consent)', () => {
    for (const hostile of CSS_FETCH_CORPUS) {
      const { html } = sanitizeHtml(hostile, { allowRemote: true });
      expect(cssIn(parse(html)), hostile).not.toMatch(FETCHING_CSS);
    }
  });

  it('rewrites url() however it is spelt: case, escapes, comments, quotes', () => {
    const spellings = [
      'URL(https://img.example/a.png)',
      '\\75 rl(https://img.example/a.png)',
      '\\75\\72\\6c(https://img.example/a.png)',
      'u\\rl("https://img.example/a.png")',
      'url( /* c */ \'https://img.example/a.png\' )',
      'url(\\68ttps://img.example/a.png)',
    ];
    for (const u of spellings) {
      const before = sanitizeHtml(`<div style="background-image:${u.replaceAll('"', '&quot;')}">x</div><style>p{background:${u}}</style>`);
      expect(before.blockedRemote, u).toBe(2);
      expect(cssIn(parse(before.html)), u).not.toContain('img.example');
      const after = sanitizeHtml(`<style>p{background:${u}}</style>`, { allowRemote: true });
      expect(after.html, u).toContain("url('https://img.example/a.png')");
    }
  });

  it('drops <base> without ever parsing one (Chromium logs a base-uri CSP violation for the parse)', () => {
    const { html } = sanitizeHtml('<BASE href="https://evil.test/"><base\thref=x/><p title="a <base> b">x</p></base>');
    expect(parse(html).querySelectorAll('base, x-base').length).toBe(0);
    expect(parse(html).querySelector('p')?.getAttribute('title')).toBe('a <x-base> b');
  });

  it('leaves ordinary CSS, strings and custom properties alone', () => {
    const css = `p{color:#333;font:12px/1.4 "Segoe UI",sans-serif;content:"\\201C url( image-set(";--x:1}@media (max-width:600px){p{margin:0}}`;
    const { html, blockedRemote } = sanitizeHtml(`<style>${css}</style><p>x</p>`);
    expect(blockedRemote).toBe(0);
    expect(parse(html).querySelector('style')?.textContent).toBe(css);
  });

  it('blocks remote images until consent and counts them', () => {
    const mail = `<p>Hi</p><img src="https://img.example/a.png"><div style="background:url(https://img.example/b.png)">x</div>`;
    const before = sanitizeHtml(mail, { allowRemote: false });
    expect(before.blockedRemote).toBe(2);
    expect(before.html).not.toContain(' src="https://img.example/a.png"');
    const after = sanitizeHtml(mail, { allowRemote: true });
    expect(after.blockedRemote).toBe(0);
    expect(after.html).toContain('src="https://img.example/a.png"');
    expect(after.html).toContain("url('https://img.example/b.png')");
  });

  it('keeps consent from re-enabling scripts or javascript: links', () => {
    for (const hostile of XSS_CORPUS) {
      const { html } = sanitizeHtml(hostile, { allowRemote: true });
      expect(html).not.toMatch(/<script|\son\w+=|javascript:/i);
    }
  });

  it('links open in a new tab, show their real target and flag deceptive text', () => {
    const { html, suspiciousLinks } = sanitizeHtml(
      `<a href="https://evil.test/login">https://bank.example.com/login</a> <a href="https://docs.example.org/x">read the docs</a>`,
    );
    const links = parse(html).querySelectorAll('a');
    expect(links[0].getAttribute('title')).toContain('https://evil.test/login');
    expect(links[0].getAttribute('data-suspicious')).toBe('true');
    expect(links[0].getAttribute('rel')).toContain('noopener');
    expect(links[1].getAttribute('title')).toBe('https://docs.example.org/x');
    expect(links[1].hasAttribute('data-suspicious')).toBe(false);
    expect(suspiciousLinks).toBe(1);
  });

  it('resolves cid: images from the map and drops unknown ones', () => {
    const { html } = sanitizeHtml(`<img src="cid:logo@x"><img src="cid:missing">`, { allowRemote: false, cidMap: { 'logo@x': 'blob:http://localhost/1' } });
    const imgs = parse(html).querySelectorAll('img');
    expect(imgs[0].getAttribute('src')).toBe('blob:http://localhost/1');
    expect(imgs[1].hasAttribute('src')).toBe(false);
  });

  it('keeps ordinary mail formatting', () => {
    const { html } = sanitizeHtml(`<table><tr><td style="color:#333;padding:4px"><b>Bold</b> <i>it</i></td></tr></table><style>p{margin:0}</style>`);
    expect(html).toContain('<b>Bold</b>');
    expect(html).toContain('padding:4px');
    expect(html).toContain('p{margin:0}');
  });

  it('frame document forbids scripts by CSP and allows remote images only after consent', () => {
    const locked = frameDocument('<p>x</p>', { allowRemote: false, dark: false });
    expect(locked).toContain("script-src 'none'");
    expect(locked).toContain("default-src 'none'; img-src data: blob:;");
    expect(frameDocument('', { allowRemote: true, dark: true })).toContain('img-src data: blob: https:');
  });

  it('plain text is escaped and linkified', () => {
    const html = textToHtml('<script>alert(1)</script>\nsee https://example.org/a?b=1&c=2');
    expect(html).not.toContain('<script>');
    expect(html).toContain('<a href="https://example.org/a?b=1&amp;c=2">');
  });
});

describe('dark theme and mail that chooses its own colours (issue 17 defect 6)', () => {
  it('tells styled mail from plain mail', () => {
    expect(choosesOwnColours('<h1 style="color:#003366">Title</h1>')).toBe(true);
    expect(choosesOwnColours('<span style="font-weight:bold; background-color: #ffff99">x</span>')).toBe(true);
    expect(choosesOwnColours('<table bgcolor="#f0f0f0"><tr><td>x</td></tr></table>')).toBe(true);
    expect(choosesOwnColours('<font color="navy">x</font>')).toBe(true);
    expect(choosesOwnColours('<p>Colour me: no colours here, the background story.</p>')).toBe(false);
    expect(choosesOwnColours('<p style="font-size:14px">x</p>')).toBe(false);
  });
  it('keeps a styled mail on a light sheet and plain mail dark', () => {
    expect(frameDocument('<h1 style="color:#003366">T</h1>', { allowRemote: false, dark: true })).toContain('background:#ffffff');
    expect(frameDocument('<p>plain</p>', { allowRemote: false, dark: true })).toContain('background:#1e1f22');
    expect(frameDocument('<h1 style="color:#003366">T</h1>', { allowRemote: false, dark: false })).toContain('background:#ffffff');
  });
});

// The message list stays fast with 50,000 messages: the dev server (crates/web/examples)
// seeds an INBOX of 50,000; we sign in, time the first screen, jump to the end and back, and
// check that the DOM holds only the rows in view (virtualised).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { launch, shot, step } from './lib.mjs';
import { ROOT } from './server.mjs';

const COUNT = 50_000;
/** Generous bounds for a 2-core CI machine with a debug server. */
const FIRST_SCREEN_MS = 8000;
const JUMP_MS = 5000;

const bin = process.env.BULWARK_DEV_SERVER || [process.env.CARGO_TARGET_DIR, path.join(ROOT, 'target')].filter(Boolean).map((t) => path.join(t, 'debug/examples/dev_server')).find((p) => fs.existsSync(p));
if (!bin) {
  console.error('dev_server example not built: cargo build -p bulwark-web --example dev_server');
  process.exit(1);
}
const proc = spawn(bin, [String(COUNT)], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
let context;
try {
  const base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`dev server did not start: ${out}`)), 180_000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening: http (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}`);
      }
    });
    proc.once('exit', (c) => reject(new Error(`dev server exited ${c}`)));
  });
  ({ context } = await launch());
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.fill('#login-user', 'alice@example.test');
  await page.fill('#login-pass', 'correct horse');
  step(`sign in and show the first rows of an INBOX of ${COUNT.toLocaleString()}`);
  let t0 = Date.now();
  await page.click('button[type=submit]');
  await page.waitForSelector('.row[data-id]');
  const firstScreen = Date.now() - t0;
  const title = await page.textContent('#list-title');
  if (!title.includes('50,000')) throw new Error(`list title ${title} does not show 50,000`);
  step('jump to the bottom');
  t0 = Date.now();
  await page.$eval('.scroller', (s) => (s.scrollTop = s.scrollHeight));
  await page.waitForSelector(`.row[data-index="${COUNT - 1}"][data-id]`, { timeout: 20000 });
  const jump = Date.now() - t0;
  const oldest = await page.textContent(`.row[data-index="${COUNT - 1}"] .subject`);
  if (oldest !== 'Seeded message number 0') throw new Error(`last row is ${oldest}`);
  const domRows = await page.$$eval('.row', (r) => r.length);
  await shot(page, '20-50k-bottom');
  step('scroll through the middle: 20 jumps');
  t0 = Date.now();
  for (let i = 1; i <= 20; i++) {
    const pos = Math.floor((COUNT * i) / 21);
    await page.$eval('.scroller', (s, p) => (s.scrollTop = p * 72), pos);
    await page.waitForSelector(`.row[data-index="${pos}"][data-id]`, { timeout: 20000 });
  }
  const middle = (Date.now() - t0) / 20;
  console.log(`  first screen ${firstScreen} ms, jump to the end ${jump} ms, mean random jump ${middle.toFixed(0)} ms, rows in the DOM ${domRows}`);
  if (firstScreen > FIRST_SCREEN_MS || jump > JUMP_MS || middle > JUMP_MS) throw new Error('the list is too slow');
  if (domRows > 60) throw new Error(`not virtualised: ${domRows} rows in the DOM`);
  console.log('50k list e2e: PASS');
} catch (e) {
  console.error(`50k list e2e: FAIL: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  try {
    process.kill(-proc.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
}

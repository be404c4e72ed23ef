// End to end, in real Chromium against a real `bulwark serve` (issue 18): Settings → Your data.
// - Upload mail: an .eml chosen in the file input lands in INBOX and shows in the list;
//   uploading the same file again says 0 imported; an mbox without extension goes into a
//   folder picked from the select; an empty file is refused with the server's words shown.
// - Download my data (keyboard: Enter on the button): a .tar is saved, with `manifest.json`
//   under one top directory naming the account, listing the uploaded messages.
// - Phone width: the section stays inside the screen.
import fs from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, launch, shot, step, waitFor } from './lib.mjs';
import { BulwarkServer } from './server.mjs';

const ALICE = 'alice@example.test';
const ALICE_PW = 'alice correct horse';
const EML = [
  'From: Old Provider <news@old-provider.example>',
  `To: ${ALICE}`,
  'Subject: Uploaded through the web',
  'Message-ID: <web-upload-1@old-provider.example>',
  'Date: Mon, 02 Jun 2025 10:00:00 +0000',
  '',
  'This message came in as an .eml file.',
  '',
].join('\r\n');
const MBOX = [0, 1, 2].map((i) => [
  `From news@old-provider.example Mon Jun  2 10:0${i}:00 2025`,
  'From: Old Provider <news@old-provider.example>',
  `Subject: From the mbox ${i}`,
  `Message-ID: <mbox-${i}@old-provider.example>`,
  i === 0 ? 'Status: RO' : 'Status: O',
  '',
  `Body ${i}`,
  '',
].join('\n')).join('\n');

/** Entry names of a tar (ustar and GNU long names). */
function tarEntries(buf) {
  const names = [];
  let off = 0;
  let longName = null;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a, n) => h.subarray(a, a + n).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(h[156]);
    const body = buf.subarray(off + 512, off + 512 + size);
    if (type === 'L') {
      longName = body.toString('utf8').replace(/\0.*$/s, '');
    } else {
      const prefix = field(345, 155);
      const name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
      names.push({ name, type, body });
      longName = null;
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

async function openSettings(page) {
  await page.click('#open-settings');
  await page.waitForSelector('#data-upload-file');
}

async function upload(page, file, folder) {
  await page.setInputFiles('#data-upload-file', file);
  if (folder !== undefined) await page.selectOption('#data-upload-folder', folder);
  await page.click('#data-upload-submit');
  return waitFor('the upload answer', async () => {
    const t = await page.textContent('#data-upload-status');
    return /^(Imported|Not imported)/.test(t ?? '') ? t : null;
  }, 30000);
}

const server = new BulwarkServer('webdata-e2e');
let context;
let userDataDir;
try {
  server.addDomain();
  server.addAccount(ALICE, ALICE_PW);
  await server.start();
  const base = server.httpBase;
  ({ context, userDataDir } = await launch());
  const page = context.pages()[0] ?? (await context.newPage());

  step('sign in, open Settings → Your data');
  await page.goto(`${base}/`);
  await page.fill('#login-user', ALICE);
  await page.fill('#login-pass', ALICE_PW);
  await page.click('button[type=submit]');
  await page.waitForSelector('.mb[data-role=inbox]', { timeout: 20000 });
  await openSettings(page);
  await shot(page, 'webdata-01-settings');

  step('upload an .eml into INBOX: the summary says 1 imported, the list shows it');
  const eml = { name: 'hello.eml', mimeType: 'message/rfc822', buffer: Buffer.from(EML) };
  let status = await upload(page, eml);
  if (!status.startsWith('Imported 1 message.')) throw new Error(`upload summary: ${status}`);
  await shot(page, 'webdata-02-uploaded');
  await page.click('.mb[data-role=inbox]');
  await page.waitForSelector('.row[data-id]:has(.subject:text-is("Uploaded through the web"))', { timeout: 15000 });

  step('the same file again: 0 imported, 1 already here');
  await openSettings(page);
  status = await upload(page, eml);
  if (!status.startsWith('Imported 0 messages, 1 already here')) throw new Error(`re-upload summary: ${status}`);

  step('an mbox (no extension: recognised by its From line) into a folder picked in the select');
  const folders = await page.$$eval('#data-upload-folder option', (os) => os.map((o) => o.value));
  const target = folders.find((f) => /archive/i.test(f)) ?? folders[1] ?? '';
  status = await upload(page, { name: 'Inbox', mimeType: 'application/octet-stream', buffer: Buffer.from(MBOX) }, target);
  if (!status.startsWith('Imported 3 messages')) throw new Error(`mbox summary (${target}): ${status}`);

  step('an empty file: refused with the server\'s words, nothing imported');
  await page.setInputFiles('#data-upload-file', { name: 'notes.eml', mimeType: 'message/rfc822', buffer: Buffer.from('   \n') });
  await page.click('#data-upload-submit');
  status = await waitFor('the refusal', async () => {
    const t = await page.textContent('#data-upload-status');
    return t?.startsWith('Not imported') ? t : null;
  });
  if (!/empty/.test(status)) throw new Error(`refusal text: ${status}`);

  step('Download my data by keyboard: a .tar with manifest.json is saved');
  await page.focus('#data-download');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30000 }), page.keyboard.press('Enter')]);
  const name = download.suggestedFilename();
  if (!/^bulwark-alice@example\.test-\d{4}-\d\d-\d\d\.tar$/.test(name)) throw new Error(`download name ${name}`);
  const saved = path.join(ARTIFACTS, name);
  await download.saveAs(saved);
  const entries = tarEntries(fs.readFileSync(saved));
  const top = name.replace(/\.tar$/, '');
  const manifest = entries.find((e) => e.name === `${top}/manifest.json`);
  if (!manifest) throw new Error(`no ${top}/manifest.json in the tar: ${entries.map((e) => e.name).slice(0, 5).join(', ')}`);
  const m = JSON.parse(manifest.body.toString('utf8'));
  if (m.format !== 'bulwark-archive' || m.account !== ALICE || m.messages.length !== 4) {
    throw new Error(`manifest: format ${m.format}, account ${m.account}, ${m.messages.length} messages`);
  }
  const emls = entries.filter((e) => e.name.startsWith(`${top}/messages/`) && e.name.endsWith('.eml'));
  if (emls.length !== 4 || !emls.some((e) => e.body.toString().includes('This message came in as an .eml file.'))) {
    throw new Error(`${emls.length} messages in the tar`);
  }
  await waitFor('the saved notice', async () => /^Saved /.test((await page.textContent('#data-download-status')) ?? ''));
  console.log(`  saved ${name}: ${entries.length} entries, manifest lists ${m.messages.length} messages`);

  step('phone width: Your data stays inside the screen');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator('#data-download').scrollIntoViewIfNeeded();
  const overflow = await page.evaluate(() => {
    const bad = [];
    for (const sel of ['#data-upload-file', '#data-upload-folder', '#data-upload-submit', '#data-download', '#data-upload-status']) {
      const r = document.querySelector(sel)?.getBoundingClientRect();
      if (!r) bad.push(`${sel} missing`);
      else if (r.left < 0 || r.right > window.innerWidth + 0.5) bad.push(`${sel} [${Math.round(r.left)}, ${Math.round(r.right)}] outside 0..${window.innerWidth}`);
    }
    return bad;
  });
  await shot(page, 'webdata-03-phone');
  if (overflow.length) throw new Error(`at 390 px: ${overflow.join('; ')}`);
  step('webdata passed');
} catch (e) {
  console.error(e);
  console.error(server.logTail());
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  await server.stop();
  server.cleanup();
}

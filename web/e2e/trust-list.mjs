// End to end, in real Chromium against a real `bulwark serve` (no 2FA, so JMAP checks use
// HTTP Basic with the main password):
// - issue 13 item 15: mail that claims one of our own domains but came in on the MX without
//   authentication carries a warning (role=alert) in the reader; ordinary mail does not;
// - issue 17 defect 2: display names typed in compose (and taken over by a reply) reach the
//   raw To/Cc/From headers;
// - issue 17 defect 5: the message list stays inside its column with a long folder name and in
//   a search, at desktop and 390 px; × restores the folder; Enter on an empty search does nothing;
// - issue 17 defect 7: search results show each result's folder and highlight the matches.
import { launch, shot, step, waitFor } from './lib.mjs';
import { BulwarkServer, deliverSmtp, jmapBasic } from './server.mjs';

const ALICE = 'alice@example.test';
const ALICE_PW = 'alice correct horse';
const BOB = 'bob@example.test';
const BOB_PW = 'bob battery staple';
const CAROL = 'carol@example.test';
const CAROL_PW = 'carol tiger lily';
const LONG_FOLDER = 'Correspondence with the regional planning committee about the 2026 harbour extension';
const WARNING = '.msg .spoof-warning[role=alert]';

const rowWith = (subject) => `.row[data-id]:has(.subject:text-is("${subject}"))`;

async function signIn(page, base) {
  await page.goto(`${base}/`);
  await page.waitForSelector('#login-user');
  await page.fill('#login-user', ALICE);
  await page.fill('#login-pass', ALICE_PW);
  await page.click('button[type=submit]');
  await page.waitForSelector('.mb[data-role=inbox]', { timeout: 20000 });
}

async function openMailbox(page, selector) {
  await page.click(selector);
  await page.waitForSelector('.scroller:not([aria-busy]) .row[data-id]', { timeout: 15000 });
}

/** The raw message (RFC 5322 text) of the newest mail in `user`'s account with this subject. */
async function rawMessage(base, user, password, subject) {
  const r = await jmapBasic(base, user, password, [
    ['Email/query', { filter: { subject }, sort: [{ property: 'receivedAt', isAscending: false }] }, 'q'],
    ['Email/get', { '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' }, properties: ['subject', 'blobId'] }, 'g'],
  ]);
  const mail = (r.find((x) => x[2] === 'g')?.[1]?.list ?? []).find((m) => m.subject === subject);
  if (!mail) return null;
  const auth = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
  const session = await (await fetch(`${base}/.well-known/jmap`, { headers: { Authorization: auth } })).json();
  const accountId = session.primaryAccounts['urn:ietf:params:jmap:mail'];
  const url = new URL(session.downloadUrl.replace('{accountId}', accountId).replace('{blobId}', mail.blobId).replace('{name}', 'm.eml').replace('{type}', 'message/rfc822'), base);
  const res = await fetch(`${base}${url.pathname}${url.search}`, { headers: { Authorization: auth } });
  if (!res.ok) throw new Error(`download of ${subject}: HTTP ${res.status}`);
  return res.text();
}

/** A header field of a raw message, unfolded. */
function header(raw, name) {
  const head = raw.split(/\r?\n\r?\n/)[0].replace(/\r?\n[ \t]+/g, ' ');
  const line = head.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line ? line.slice(name.length + 1).trim() : null;
}

/** Every element of `selector` that sticks out of `.list` (left/right), as text. */
async function outsideList(page, selectors) {
  return page.evaluate((selectors) => {
    const list = document.querySelector('.list');
    if (!list || list.getBoundingClientRect().width === 0) return ['.list is not shown'];
    const box = list.getBoundingClientRect();
    const bad = [];
    for (const sel of selectors) {
      for (const el of document.querySelectorAll(sel)) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;
        if (r.left < box.left - 0.5 || r.right > box.right + 0.5) bad.push(`${sel} [${Math.round(r.left)}, ${Math.round(r.right)}] outside the list [${Math.round(box.left)}, ${Math.round(box.right)}]`);
      }
      // Text cut inside its own box ("07:5"): a date must show whole.
      if (sel.includes('.date')) {
        for (const el of document.querySelectorAll(sel)) if (el.scrollWidth > el.clientWidth + 1) bad.push(`${sel} "${el.textContent}" is cut (${el.scrollWidth} > ${el.clientWidth})`);
      }
    }
    return bad;
  }, selectors);
}

const LIST_PARTS = ['.list-toolbar', '.list-toolbar > *', '.row[data-id]', '.row[data-id] .date', '.row[data-id] .from', '.row[data-id] .line2'];

async function checkListFits(page, what) {
  const bad = await outsideList(page, LIST_PARTS);
  if (bad.length) throw new Error(`${what}: the message list overflows its column:\n  ${bad.slice(0, 8).join('\n  ')}`);
}

async function main() {
  const server = new BulwarkServer('trust-list');
  let context;
  try {
    step('admin CLI: domain and accounts; bulwark serve');
    server.addDomain();
    server.addAccount(ALICE, ALICE_PW);
    server.addAccount(BOB, BOB_PW);
    server.addAccount(CAROL, CAROL_PW);
    await server.start();
    const base = server.httpBase;

    step('SMTP on the MX: one mail claiming alice@example.test (unauthenticated), one from outside, one from bob');
    deliverSmtp(server.smtpPort, { from: 'Alice (IT desk) <alice@example.test>', to: ALICE, subject: 'Password expiry notice', text: 'Your password expires today: sign in at the link.' });
    deliverSmtp(server.smtpPort, { from: 'Newsletter <news@outside.test>', to: ALICE, subject: 'Harbour news', text: 'Quarterly harbour news from outside.' });
    deliverSmtp(server.smtpPort, { from: 'Bob Example <bob@example.test>', to: ALICE, subject: 'Quarterly report', text: 'The quarterly numbers are up.' });
    deliverSmtp(server.smtpPort, { from: 'Prize Desk <desk@prizes.test>', to: ALICE, subject: 'You have won', text: 'Claim your prize today.' });
    const r = await jmapBasic(base, ALICE, ALICE_PW, [
      ['Mailbox/set', { create: { f: { name: LONG_FOLDER, parentId: null } } }, 'm'],
      ['Identity/get', { ids: null }, 'i'],
    ]);
    const folderId = r.find((x) => x[2] === 'm')?.[1]?.created?.f?.id;
    if (!folderId) throw new Error(`long folder not created: ${JSON.stringify(r[0])}`);
    const identity = r.find((x) => x[2] === 'i')?.[1]?.list?.[0];
    if (identity) {
      await jmapBasic(base, ALICE, ALICE_PW, [['Identity/set', { update: { [identity.id]: { name: 'Alice Liddell' } } }, 's']]);
    }

    ({ context } = await launch());
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await signIn(page, base);

    // Each part runs even if an earlier one failed (so a run shows every defect); all must pass.
    const failures = [];
    const part = async (name, fn) => {
      step(name);
      try {
        await fn();
      } catch (e) {
        failures.push(`${name}: ${e.message}`);
        console.error(`  FAILED: ${e.message}`);
        await shot(page, `trust-failure-${failures.length}`).catch(() => {});
        await page.keyboard.press('Escape').catch(() => {});
        await page.setViewportSize({ width: 1366, height: 860 });
      }
    };
    await part('issue 13 item 15: the unauthenticated local-domain mail carries a warning (role=alert)', async () => {
      await page.waitForSelector(rowWith('Password expiry notice'), { timeout: 20000 });
      await page.click(rowWith('Password expiry notice'));
      await page.waitForSelector('#reader-subject:text-is("Password expiry notice")');
      const warning = await page.waitForSelector(WARNING, { timeout: 10000 }).catch(() => null);
      if (!warning) throw new Error('no warning on a mail that claims alice@example.test but came in unauthenticated on the MX');
      const text = await warning.textContent();
      if (!text.includes('This message claims to be from alice@example.test but was not sent by a signed-in user of this server')) throw new Error(`warning text: ${text}`);
      if (await page.$(`${WARNING} button`)) throw new Error('the warning can be dismissed');
      await shot(page, 'trust-01-unauthenticated-warning');
      // It stays when the message is collapsed and opened again, and after a reload.
      await page.reload();
      await page.waitForSelector(rowWith('Password expiry notice'), { timeout: 20000 });
      await page.click(rowWith('Password expiry notice'));
      await page.waitForSelector(WARNING, { timeout: 10000 });
      for (const subject of ['Harbour news', 'Quarterly report']) {
        await page.click(rowWith(subject));
        await page.waitForSelector(`#reader-subject:text-is("${subject}")`);
        await page.waitForSelector('.msg:not(.collapsed) iframe.mailframe');
        if (subject === 'Harbour news' && (await page.$(WARNING))) throw new Error('a warning on ordinary mail from outside');
      }
      console.log('  warning on the forged local sender, none on mail from outside');
    });
    await part('issue 17 defect 2: names typed in compose reach the raw To/Cc/From', async () => {
      await page.keyboard.press('c');
      await page.waitForSelector('#compose-to');
      await page.fill('#compose-to', 'Bob Example <bob@example.test>, "Lovelace, Carol" <carol@example.test>');
      await page.fill('#compose-subject', 'Names kept');
      await page.fill('#compose-body', 'Hello both.');
      await page.click('#compose-send');
      await page.waitForSelector('.composer', { state: 'detached', timeout: 15000 });
      const sent = await waitFor('the mail in bob\'s account', () => rawMessage(base, BOB, BOB_PW, 'Names kept'), 30000, 500);
      const to = header(sent, 'To');
      const from = header(sent, 'From');
      if (!/"?Bob Example"?\s*<bob@example\.test>/.test(to ?? '') || !/"Lovelace, Carol"\s*<carol@example\.test>/.test(to ?? '')) throw new Error(`To lost the names: ${to}`);
      if (!/"?Alice Liddell"?\s*<alice@example\.test>/.test(from ?? '')) throw new Error(`From lost the name: ${from}`);
      console.log(`  To: ${to}\n  From: ${from}`);
      if (!(await rawMessage(base, CAROL, CAROL_PW, 'Names kept'))) throw new Error('carol (quoted name with a comma) did not get the mail');
    });
    await part('issue 17 defect 2: a reply keeps the name of the person answered', async () => {
      await page.click('.mb[data-role=inbox]');
      await page.click(rowWith('Quarterly report'));
      await page.waitForSelector('#reader-subject:text-is("Quarterly report")');
      await page.keyboard.press('r');
      await page.waitForSelector('#compose-body');
      const replyTo = await page.inputValue('#compose-to');
      if (!replyTo.includes('Bob Example')) throw new Error(`reply To field: ${replyTo}`);
      await page.keyboard.press('Control+Enter');
      await page.waitForSelector('.composer', { state: 'detached', timeout: 15000 });
      const reply = await waitFor('the reply in bob\'s account', () => rawMessage(base, BOB, BOB_PW, 'Re: Quarterly report'), 30000, 500);
      if (!/"?Bob Example"?\s*<bob@example\.test>/.test(header(reply, 'To') ?? '')) throw new Error(`reply To lost the name: ${header(reply, 'To')}`);
      if (!/"?Alice Liddell"?\s*<alice@example\.test>/.test(header(reply, 'From') ?? '')) throw new Error(`reply From lost the name: ${header(reply, 'From')}`);
      console.log(`  reply To: ${header(reply, 'To')}`);
    });
    await part('issue 17 defect 5: the list fits its column (long folder name, search) at desktop and 390 px', async () => {
      // A mail in the long-named folder.
      const q = await jmapBasic(base, ALICE, ALICE_PW, [['Email/query', { filter: { subject: 'Harbour news' } }, 'q']]);
      const harbour = q[0][1].ids[0];
      await jmapBasic(base, ALICE, ALICE_PW, [['Email/set', { update: { [harbour]: { [`mailboxIds/${folderId}`]: true } } }, 'u']]);
      const FOLDER = `.mb:has(.name:text-is("${LONG_FOLDER}"))`;
      for (const [width, height] of [[1366, 860], [390, 820]]) {
        await page.setViewportSize({ width, height });
        if (width < 700) {
          await page.click('.menu-btn');
        }
        await openMailbox(page, FOLDER);
        if (width < 1100) await page.keyboard.press('Escape');
        await checkListFits(page, `folder with a long name at ${width} px`);
        await shot(page, `trust-02-long-folder-${width}`);
        await page.fill('#search', 'quarterly');
        await page.press('#search', 'Enter');
        await page.waitForSelector('#list-title:has-text("Search: quarterly")');
        await page.waitForSelector('.scroller:not([aria-busy]) .row[data-id]', { timeout: 15000 });
        await checkListFits(page, `search at ${width} px`);
        await shot(page, `trust-03-search-${width}`);
        await page.click('.mb[data-role=inbox]').catch(async () => {
          await page.click('.menu-btn');
          await page.click('.mb[data-role=inbox]');
        });
        await page.waitForSelector('.scroller:not([aria-busy]) .row[data-id]', { timeout: 15000 });
      }
      await page.setViewportSize({ width: 1366, height: 860 });
    });
    await part('issue 17 defect 5: × (clearing the search) restores the folder; Enter on an empty search does nothing (1366 and 390 px)', async () => {
      for (const [width, height, folder] of [[1366, 860, '.mb[data-role=inbox]'], [390, 820, `.mb:has(.name:text-is("${LONG_FOLDER}"))`]]) {
        await page.setViewportSize({ width, height });
        if (width < 700) await page.click('.menu-btn');
        await openMailbox(page, folder);
        const folderTitle = await page.textContent('#list-title');
        const folderCount = (await page.$$('.row[data-id]')).length;
        await page.fill('#search', 'report');
        await page.press('#search', 'Enter');
        await page.waitForSelector('#list-title:has-text("Search: report")');
        await page.waitForSelector('.scroller:not([aria-busy]) .row[data-id]');
        await page.click('button.search-clear[aria-label="Clear search"]');
        await waitFor(`the folder back after × at ${width} px`, async () => (await page.inputValue('#search')) === '' && (await page.textContent('#list-title')) === folderTitle && (await page.$$('.scroller:not([aria-busy]) .row[data-id]')).length === folderCount, 10000)
          .catch(async () => { throw new Error(`after × at ${width} px the field holds "${await page.inputValue('#search')}" and the list shows "${await page.textContent('#list-title')}" (expected "${folderTitle}")`); });
        if (await page.isVisible('button.search-clear')) throw new Error('the × stays after clearing');
        // The browser's own clearing of a search field (its `search` event) does the same.
        await page.fill('#search', 'report');
        await page.press('#search', 'Enter');
        await page.waitForSelector('#list-title:has-text("Search: report")');
        await page.$eval('#search', (el) => {
          el.value = '';
          el.dispatchEvent(new Event('search', { bubbles: true }));
        });
        await waitFor(`the folder back after the search event at ${width} px`, async () => (await page.textContent('#list-title')) === folderTitle, 10000);
        await page.focus('#search');
        await page.press('#search', 'Enter');
        await new Promise((r) => setTimeout(r, 500)); // nothing is supposed to happen: give it a chance to
        const afterEnter = await page.textContent('#list-title');
        if (afterEnter !== folderTitle) throw new Error(`Enter on an empty search at ${width} px changed the list to "${afterEnter}" (was "${folderTitle}")`);
        await checkListFits(page, `after × at ${width} px`);
        console.log(`  ${width} px: × → "${folderTitle}"; empty Enter kept it`);
      }
      await page.setViewportSize({ width: 1366, height: 860 });
      await openMailbox(page, '.mb[data-role=inbox]');
    });
    await part('issue 17 defect 7: search results show their folder and highlight the matches', async () => {
      await page.fill('#search', 'quarterly');
      await page.press('#search', 'Enter');
      await page.waitForSelector('#list-title:has-text("Search: quarterly")');
      await page.waitForSelector('.scroller:not([aria-busy]) .row[data-id]');
      const results = await page.$$eval('.row[data-id]', (rows) => rows.map((r) => ({
        subject: r.querySelector('.subject')?.textContent,
        folder: r.querySelector('.folder')?.textContent ?? null,
        marks: Array.from(r.querySelectorAll('mark')).map((m) => m.textContent),
      })));
      console.log(`  results: ${JSON.stringify(results)}`);
      const report = results.find((x) => x.subject === 'Quarterly report');
      const sentReply = results.find((x) => x.subject === 'Re: Quarterly report');
      const inFolder = results.find((x) => x.subject === 'Harbour news');
      if (!report || report.folder !== 'Inbox') throw new Error(`"Quarterly report" does not show its folder Inbox: ${JSON.stringify(report)}`);
      if (!sentReply || sentReply.folder !== 'Sent') throw new Error(`"Re: Quarterly report" does not show its folder Sent: ${JSON.stringify(sentReply)}`);
      if (!inFolder || !inFolder.folder?.includes(LONG_FOLDER)) throw new Error(`"Harbour news" does not show its folders: ${JSON.stringify(inFolder)}`);
      if (!report.marks.some((m) => m.toLowerCase() === 'quarterly')) throw new Error(`the match is not highlighted: ${JSON.stringify(report)}`);
      await shot(page, 'trust-04-search-folders-highlight');
      // Highlighting is text, not HTML: a subject with markup stays text.
      const markup = await page.$$eval('.row[data-id] .subject', (s) => s.some((x) => x.querySelector(':not(mark)')));
      if (markup) throw new Error('a subject rendered markup other than <mark>');
    });
    await part('issue 16: Report spam moves to Junk with $junk; in Junk, Not spam (the ! key) moves back with $notjunk', async () => {
      const state = async () => {
        const r = await jmapBasic(base, ALICE, ALICE_PW, [
          ['Mailbox/get', { properties: ['role'] }, 'm'],
          ['Email/query', { filter: { subject: 'You have won' } }, 'q'],
          ['Email/get', { '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' }, properties: ['mailboxIds', 'keywords'] }, 'g'],
        ]);
        const roles = Object.fromEntries(r.find((x) => x[2] === 'm')[1].list.map((m) => [m.id, m.role]));
        const e = r.find((x) => x[2] === 'g')[1].list[0];
        return { in: Object.keys(e.mailboxIds).map((id) => roles[id]), keywords: e.keywords };
      };
      await openMailbox(page, '.mb[data-role=inbox]');
      await page.click(rowWith('You have won'));
      await page.waitForSelector('#reader-subject:text-is("You have won")');
      if (await page.$('button.not-spam')) throw new Error('Not spam offered outside Junk');
      await shot(page, 'trust-05-report-spam-button');
      await page.click('button.report-spam');
      await page.waitForSelector(rowWith('You have won'), { state: 'detached', timeout: 10000 });
      const reported = await waitFor('the mail in Junk with $junk', async () => {
        const s = await state();
        return s.in.join() === 'junk' && s.keywords.$junk && !s.keywords.$notjunk ? s : null;
      }, 10000).catch(async () => { throw new Error(`after Report spam: ${JSON.stringify(await state())}`); });
      console.log(`  reported: ${JSON.stringify(reported)}`);
      await openMailbox(page, '.mb[data-role=junk]');
      await page.click(rowWith('You have won'));
      await page.waitForSelector('#reader-subject:text-is("You have won")');
      await page.waitForSelector('button.not-spam');
      if (await page.$('button.report-spam')) throw new Error('Report spam offered in Junk');
      await page.keyboard.press('!');
      const rescued = await waitFor('the mail in Inbox with $notjunk', async () => {
        const s = await state();
        return s.in.join() === 'inbox' && s.keywords.$notjunk && !s.keywords.$junk ? s : null;
      }, 10000).catch(async () => { throw new Error(`after Not spam: ${JSON.stringify(await state())}`); });
      console.log(`  rescued: ${JSON.stringify(rescued)}`);
    });
    if (pageErrors.length) failures.push(`page errors: ${pageErrors.join(' | ')}`);
    if (failures.length) throw new Error(`${failures.length} part(s) failed:\n  - ${failures.join('\n  - ')}`);
    console.log('trust/list e2e: PASS');
  } catch (e) {
    console.error(`trust/list e2e: FAIL: ${e.stack ?? e}`);
    console.error(`server log tail:\n${server.logTail()}`);
    const last = context?.pages().at(-1);
    if (last) await shot(last, 'trust-failure').catch(() => {});
    process.exitCode = 1;
  } finally {
    await context?.close().catch(() => {});
    await server.stop();
    if (!process.exitCode) server.cleanup();
  }
}

await main();

// A real `bulwark serve` for the end-to-end tests: temp data dir and config, admin CLI,
// start/stop in its own process group, listener addresses read from "listening: NAME ADDR".
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HERE } from './lib.mjs';

export const ROOT = path.resolve(HERE, '../..');
export const DOMAIN = 'example.test';
const START_TIMEOUT_MS = 60_000;

export function bulwarkBin() {
  const candidates = [
    process.env.BULWARK_BIN,
    process.env.CARGO_TARGET_DIR && path.join(process.env.CARGO_TARGET_DIR, 'debug/bulwark'),
    path.join(ROOT, 'target/debug/bulwark'),
  ].filter(Boolean);
  const bin = candidates.find((p) => fs.existsSync(p));
  if (!bin) throw new Error(`bulwark binary not found (tried ${candidates.join(', ')}); run \`cargo build -p bulwark\` or set BULWARK_BIN`);
  return bin;
}

export class BulwarkServer {
  constructor(name = 'web-e2e') {
    this.bin = bulwarkBin();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `bulwark-${name}-`));
    this.dataDir = path.join(this.dir, 'data');
    this.config = path.join(this.dir, 'bulwark.toml');
    this.logPath = path.join(this.dir, 'server.log');
    this.addrs = {};
    this.proc = null;
    this.writeConfig({ smtp: '127.0.0.1:0', http: '127.0.0.1:0' });
  }

  writeConfig(listen) {
    const lines = Object.entries(listen).map(([k, v]) => `${k} = "${v}"`).join('\n');
    fs.writeFileSync(
      this.config,
      `hostname = "mail.example.test"\ndata_dir = "${this.dataDir}"\n\n[listen]\n${lines}\n\n[auth]\nallow_plaintext_on_loopback = true\n\n[auth_checks]\nenabled = false\n\n[log]\nlevel = "info"\n`,
    );
  }

  /** Keeps the ports of the first start, so the web origin (and the browser's storage) survive a restart. */
  pinPorts() {
    const listen = {};
    for (const [k, [host, port]] of Object.entries(this.addrs)) listen[k] = `${host}:${port}`;
    this.writeConfig(listen);
  }

  cli(args, input) {
    const r = spawnSync(this.bin, [...args, '--config', this.config], { input, encoding: 'utf8', timeout: 60_000, cwd: this.dir });
    if (r.status !== 0) throw new Error(`bulwark ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  addDomain(d = DOMAIN) {
    this.cli(['domain', 'add', d]);
  }

  addAccount(address, password) {
    this.cli(['account', 'add', address, '--password-stdin'], `${password}\n`);
  }

  async start() {
    const log = fs.openSync(this.logPath, 'a');
    this.addrs = {};
    this.proc = spawn(this.bin, ['serve', '--config', this.config], {
      cwd: this.dir,
      stdio: ['ignore', 'pipe', log],
      detached: true,
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info', NO_COLOR: '1' },
    });
    let out = '';
    const exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
    this.proc.stdout.on('data', (d) => {
      out += d.toString();
      fs.appendFileSync(this.logPath, `[stdout] ${d}`);
      for (const m of out.matchAll(/listening:\s+(\S+)\s+(\S+):(\d+)/g)) this.addrs[m[1]] = [m[2], Number(m[3])];
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(this.addrs.http && this.addrs.smtp)) {
      if (this.proc.exitCode !== null) throw new Error(`bulwark serve exited (${this.proc.exitCode}) during start:\n${this.logTail()}`);
      if (Date.now() > deadline) throw new Error(`bulwark serve did not announce http and smtp listeners; stdout: ${out}\n${this.logTail()}`);
      await Promise.race([new Promise((r) => setTimeout(r, 100)), exited]);
    }
    return this;
  }

  get httpBase() {
    const [h, p] = this.addrs.http;
    return `http://${h}:${p}`;
  }

  get smtpPort() {
    return this.addrs.smtp[1];
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    try {
      process.kill(-this.proc.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-this.proc.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 20_000);
    await exited;
    clearTimeout(timer);
  }

  logTail(n = 4000) {
    try {
      const s = fs.readFileSync(this.logPath, 'utf8');
      return s.slice(-n);
    } catch {
      return '';
    }
  }

  cleanup() {
    if (!process.env.KEEP_E2E_DIR) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Delivers one message with Python's smtplib to the inbound SMTP listener. */
export function deliverSmtp(port, { from, to, cc, subject, text, html, htmlOnly, messageId, inline, attachment }) {
  const script = `
import base64, json, smtplib, sys
from email.message import EmailMessage
p = json.load(sys.stdin)
m = EmailMessage()
m['From'] = p['from']; m['To'] = p['to']; m['Subject'] = p['subject']
if p.get('cc'): m['Cc'] = p['cc']
if p.get('messageId'): m['Message-ID'] = p['messageId']
if p.get('htmlOnly'): m.set_content(p['html'], subtype='html')
else: m.set_content(p['text'])
if p.get('html') and not p.get('htmlOnly'): m.add_alternative(p['html'], subtype='html')
if p.get('inline'):
    m.get_payload()[1].add_related(base64.b64decode(p['inline']['data']), 'image', 'png', cid='<' + p['inline']['cid'] + '>')
if p.get('attachment'):
    m.add_attachment(p['attachment']['text'].encode(), maintype='text', subtype='plain', filename=p['attachment']['name'])
with smtplib.SMTP('127.0.0.1', p['port'], timeout=30) as s:
    s.send_message(m)
`;
  const r = spawnSync('python3', ['-c', script], { input: JSON.stringify({ port, from, to, cc, subject, text, html, htmlOnly, messageId, inline, attachment }), encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`smtplib delivery failed: ${r.stderr}`);
}

/** One JMAP request with HTTP Basic auth (to look at another account's mailbox). */
export async function jmapBasic(base, user, password, methodCalls) {
  const auth = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
  const s = await fetch(`${base}/.well-known/jmap`, { headers: { Authorization: auth } });
  if (!s.ok) throw new Error(`JMAP session for ${user}: HTTP ${s.status}`);
  const session = await s.json();
  const accountId = session.primaryAccounts['urn:ietf:params:jmap:mail'];
  const calls = methodCalls.map(([n, a, id]) => [n, { accountId, ...a }, id]);
  const apiPath = new URL(session.apiUrl, base).pathname;
  const r = await fetch(`${base}${apiPath}`, {
    method: 'POST',
    headers: { Authorization: auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ using: ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail', 'urn:ietf:params:jmap:submission', 'urn:ietf:params:jmap:vacationresponse'], methodCalls: calls }),
  });
  if (!r.ok) throw new Error(`JMAP api: HTTP ${r.status} ${await r.text()}`);
  return (await r.json()).methodResponses;
}

/** Subjects in an account's INBOX (via JMAP, Basic auth). */
export async function inboxSubjects(base, user, password) {
  const r = await jmapBasic(base, user, password, [
    ['Mailbox/query', { filter: { role: 'inbox' } }, 'm'],
    ['Email/query', { '#filter': undefined, filter: null, sort: [{ property: 'receivedAt', isAscending: false }], limit: 50 }, 'q'],
    ['Email/get', { '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' }, properties: ['subject', 'mailboxIds'] }, 'g'],
  ]);
  const inbox = r.find((x) => x[2] === 'm')?.[1]?.ids?.[0];
  const list = r.find((x) => x[2] === 'g')?.[1]?.list ?? [];
  return list.filter((e) => !inbox || e.mailboxIds?.[inbox]).map((e) => e.subject);
}

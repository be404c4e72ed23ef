// Mail operations built on the JMAP client: send (Email/set + EmailSubmission/set in one
// request), drafts autosave, reply/forward construction, moves by role.
import { JmapError, type Address, type Email, type Invocation, type Jmap, type Mailbox } from './jmap';
import { newMessageId, type OutgoingMessage } from './outbox';
import { htmlToText } from './sanitize';

export interface Identity {
  id: string;
  name: string;
  email: string;
  textSignature?: string;
  replyTo?: Address[] | null;
}

export function byRole(mailboxes: Mailbox[], role: string): Mailbox | undefined {
  return mailboxes.find((m) => m.role === role);
}

/**
 * Splits an address field into its mailboxes (RFC 5322 §3.4): `Bob <bob@x>`, `"Doe, Jane" <j@x>`,
 * `bob@x (Bob)`, bare `bob@x`; commas or semicolons separate them except inside quotes, angle
 * brackets or comments. Each comes back as written (trimmed): `parseMailbox` reads it.
 */
export function splitAddressList(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let angle = false;
  let comment = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      cur += c;
      if (c === '\\' && i + 1 < s.length) cur += s[++i];
      else if (c === '"') quoted = false;
      continue;
    }
    if (c === '"' && !angle) quoted = true;
    else if (c === '(' && !angle) comment++;
    else if (c === ')' && comment > 0) comment--;
    else if (c === '<' && comment === 0) angle = true;
    else if (c === '>' && angle) angle = false;
    else if ((c === ',' || c === ';') && !angle && comment === 0) {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** One mailbox as typed → JMAP EmailAddress {name, email} (RFC 8621 §4.1.2.3). */
export function parseMailbox(s: string): Address {
  const t = s.trim();
  const angle = /^(.*?)<([^<>]*)>\s*(?:\((.*)\))?\s*$/s.exec(t);
  if (angle) {
    const email = angle[2].trim();
    let name = angle[1].trim();
    if (/^".*"$/s.test(name)) name = name.slice(1, -1).replace(/\\(.)/g, '$1');
    name = name.replace(/\s+/g, ' ').trim();
    return name ? { name, email } : { email };
  }
  // addr-spec with a trailing comment as the name: `bob@x (Bob)`
  const commented = /^(\S+)\s*\((.*)\)\s*$/s.exec(t);
  if (commented) {
    const name = commented[2].trim();
    return name ? { name, email: commented[1] } : { email: commented[1] };
  }
  return { email: t };
}

/** The addresses of an address field (names kept). */
export function parseAddresses(s: string): Address[] {
  return splitAddressList(s).map(parseMailbox);
}

/** The bare addresses of an address field. */
export function parseAddressList(s: string): string[] {
  return parseAddresses(s).map((a) => a.email);
}

export function isValidAddress(a: string): boolean {
  return /^[^\s@<>()",;]+@[^\s@<>()",;]+\.[^\s@<>()",;]+$/.test(parseMailbox(a).email);
}

/** An address as a compose field shows it and `parseMailbox` reads it back: the name quoted when it has specials. */
export function formatAddress(a: Address): string {
  const name = (a.name ?? '').trim();
  if (!name) return a.email;
  return /[()<>[\]:;@\\,."]/.test(name) ? `"${name.replace(/(["\\])/g, '\\$1')}" <${a.email}>` : `${name} <${a.email}>`;
}

async function uploadPending(jmap: Jmap, m: OutgoingMessage): Promise<void> {
  for (const a of m.attachments) {
    if (!a.blobId && a.data) {
      const up = await jmap.upload(a.data, a.type);
      a.blobId = up.blobId;
      a.size = up.size;
    }
  }
}

function emailCreate(m: OutgoingMessage, draftsId: string): Record<string, unknown> {
  // Each entry is a mailbox as typed ("Bob <bob@x>" or a bare address): names go out (issue 17).
  const addrs = (list: string[]) => (list.length ? list.map((x) => {
    const a = parseMailbox(x);
    return a.name ? { name: a.name, email: a.email } : { email: a.email };
  }) : undefined);
  const create: Record<string, unknown> = {
    mailboxIds: { [draftsId]: true },
    keywords: { $draft: true, $seen: true },
    from: [{ name: m.from.name || null, email: m.from.email }],
    to: addrs(m.to),
    cc: addrs(m.cc),
    bcc: addrs(m.bcc),
    subject: m.subject,
    messageId: [m.messageId],
    sentAt: new Date().toISOString(),
    bodyValues: { body: { value: m.text } },
    textBody: [{ partId: 'body', type: 'text/plain' }],
  };
  if (m.inReplyTo?.length) create.inReplyTo = m.inReplyTo;
  if (m.references?.length) create.references = m.references;
  const atts = m.attachments.filter((a) => a.blobId);
  if (atts.length) create.attachments = atts.map((a) => ({ blobId: a.blobId, type: a.type || 'application/octet-stream', name: a.name, disposition: 'attachment' }));
  for (const k of Object.keys(create)) if (create[k] === undefined) delete create[k];
  return create;
}

function check(responses: Invocation[], id: string, key: 'created' | 'updated'): Record<string, any> {
  const r = responses.find((x) => x[2] === id);
  if (!r) throw new JmapError('serverFail', `no response to ${id}`);
  if (r[0] === 'error') throw new JmapError(String(r[1].type), r[1].description as string | undefined);
  const notKey = key === 'created' ? 'notCreated' : 'notUpdated';
  const not = r[1][notKey] as Record<string, { type: string; description?: string }> | undefined;
  if (not && Object.keys(not).length) {
    const e = Object.values(not)[0];
    throw new JmapError(e.type, e.description);
  }
  return (r[1][key] ?? {}) as Record<string, any>;
}

export interface SendContext {
  draftsId: string;
  sentId: string | null;
  identityId: string;
}

/**
 * True when a message with this Message-ID already left Drafts (it was submitted and moved
 * to Sent by an earlier attempt whose answer was lost). Unsupported filters count as "no".
 */
export async function alreadySent(jmap: Jmap, m: OutgoingMessage, draftsId: string): Promise<boolean> {
  try {
    const r = await jmap.call('Email/query', { filter: { header: ['Message-ID', `<${m.messageId}>`] }, limit: 5 });
    if (!r.ids?.length) return false;
    const found = await jmap.getEmails(r.ids, ['id', 'mailboxIds', 'keywords', 'messageId']);
    // Compare ourselves: a server may match headers loosely.
    return found.some((e) => e.messageId?.includes(m.messageId) && !e.mailboxIds?.[draftsId] && !e.keywords?.$draft);
  } catch (e) {
    if (e instanceof JmapError) return false;
    throw e;
  }
}

/** What a send left behind: the submission and the email, for undoing it while held. */
export interface Sent {
  submissionId: string;
  emailId: string;
}

/**
 * Creates the message in Drafts and submits it; on success it moves to Sent (RFC 8621 §7.5
 * onSuccessUpdateEmail). With `hold` seconds the server holds it that long (RFC 4865
 * HOLDFOR, the undo window), with a date until then (HOLDUNTIL, schedule send): until then
 * {@link undoSend} takes it back.
 */
export async function sendMessage(jmap: Jmap, m: OutgoingMessage, ctx: SendContext, replacesDraft?: string, hold: number | Date = 0): Promise<Sent> {
  await uploadPending(jmap, m);
  const accountId = jmap.accountId;
  const onSuccess: Record<string, unknown> = { [`mailboxIds/${ctx.draftsId}`]: null, 'keywords/$draft': null };
  if (ctx.sentId) onSuccess[`mailboxIds/${ctx.sentId}`] = true;
  const setArgs: Record<string, unknown> = { accountId, create: { msg: emailCreate(m, ctx.draftsId) } };
  if (replacesDraft) setArgs.destroy = [replacesDraft];
  const submission: Record<string, unknown> = { identityId: ctx.identityId, emailId: '#msg' };
  const parameters =
    hold instanceof Date
      ? { HOLDUNTIL: hold.toISOString().replace(/\.\d{3}Z$/, 'Z') }
      : hold > 0
        ? { HOLDFOR: String(hold) }
        : null;
  if (parameters) {
    submission.envelope = {
      mailFrom: { email: m.from.email, parameters },
      rcptTo: [...m.to, ...m.cc, ...m.bcc].map((a) => ({ email: parseMailbox(a).email, parameters: null })),
    };
  }
  const responses = await jmap.request([
    ['Email/set', setArgs, 'e'],
    ['EmailSubmission/set', { accountId, create: { sub: submission }, onSuccessUpdateEmail: { '#sub': onSuccess } }, 's'],
  ]);
  const email = check(responses, 'e', 'created');
  const sub = check(responses, 's', 'created');
  if (m.original) await markOriginal(jmap, m.original);
  return { submissionId: sub.sub?.id as string, emailId: email.msg?.id as string };
}

/**
 * Undo send: cancels a held submission (RFC 8621 §7.5 undoStatus "canceled") and puts the
 * mail back into Drafts. Throws when it already went out (cannotUnsend).
 */
export async function undoSend(jmap: Jmap, sent: Sent, ctx: SendContext): Promise<void> {
  const responses = await jmap.request([
    ['EmailSubmission/set', { accountId: jmap.accountId, update: { [sent.submissionId]: { undoStatus: 'canceled' } } }, 'u'],
  ]);
  check(responses, 'u', 'updated');
  const back: Record<string, unknown> = { [`mailboxIds/${ctx.draftsId}`]: true, 'keywords/$draft': true };
  if (ctx.sentId) back[`mailboxIds/${ctx.sentId}`] = null;
  await jmap.updateEmails({ [sent.emailId]: back });
}

/**
 * After a reply or forward went out, the original gets $answered or $forwarded (RFC 8621 §4.1.1;
 * IMAP clients see \Answered and $Forwarded). Only after the submission succeeded, so it is a
 * request of its own; if it fails the mail is still sent, so the error is not the sender's.
 */
async function markOriginal(jmap: Jmap, original: NonNullable<OutgoingMessage['original']>): Promise<void> {
  try {
    await jmap.updateEmails({ [original.emailId]: { [`keywords/${original.keyword}`]: true } });
  } catch {
    /* the original may be gone meanwhile; the mail was sent */
  }
}

/** Saves a draft (replacing the previous version: JMAP emails are immutable); returns its id. */
export async function saveDraft(jmap: Jmap, m: OutgoingMessage, draftsId: string, previous?: string): Promise<string> {
  await uploadPending(jmap, m);
  const args: Record<string, unknown> = { accountId: jmap.accountId, create: { d: emailCreate(m, draftsId) } };
  if (previous) args.destroy = [previous];
  const responses = await jmap.request([['Email/set', args, 'd']]);
  return check(responses, 'd', 'created').d.id as string;
}

function prefixed(prefix: string, subject: string | null | undefined): string {
  const s = subject ?? '';
  return new RegExp(`^${prefix}:`, 'i').test(s.trim()) ? s : `${prefix}: ${s}`;
}

function quote(e: Email, text: string): string {
  const who = e.from?.[0] ? formatAddress(e.from[0]) : 'someone';
  const when = new Date(e.sentAt ?? e.receivedAt).toLocaleString();
  return `\n\nOn ${when}, ${who} wrote:\n` + text.split('\n').map((l) => `> ${l}`).join('\n');
}

/**
 * The text of a mail for quoting: its text/plain body, else its HTML body as it reads when shown
 * (htmlToText parses it inert, never in the app's document). JMAP lists an HTML-only mail's
 * text/html part in textBody too (RFC 8621 §4.1.4), so the part's type decides, not the list.
 */
export function bodyText(e: Email): string {
  const value = (p: { partId?: string | null } | undefined) => (p?.partId ? e.bodyValues?.[p.partId]?.value : undefined);
  const text = e.textBody?.find((p) => p.type !== 'text/html');
  if (value(text) != null) return value(text) as string;
  const html = e.htmlBody?.find((p) => p.type === 'text/html') ?? e.textBody?.find((p) => p.type === 'text/html');
  if (value(html) != null) return htmlToText(value(html) as string);
  return e.preview ?? '';
}

export type ReplyKind = 'reply' | 'replyAll' | 'forward';

/** Pre-filled compose fields for a reply, reply-all or forward of `e`. */
export function replyDraft(kind: ReplyKind, e: Email, me: string[], from: { name: string; email: string }): OutgoingMessage {
  const mine = new Set(me.map((x) => x.toLowerCase()));
  const refs = [...(e.references ?? []), ...(e.messageId ?? [])];
  const base: OutgoingMessage = {
    from,
    to: [],
    cc: [],
    bcc: [],
    subject: '',
    text: '',
    attachments: [],
    messageId: newMessageId(from.email),
  };
  if (kind === 'forward') {
    const header = `\n\n---------- Forwarded message ----------\nFrom: ${(e.from ?? []).map(formatAddress).join(', ')}\nDate: ${new Date(e.sentAt ?? e.receivedAt).toLocaleString()}\nSubject: ${e.subject ?? ''}\nTo: ${(e.to ?? []).map(formatAddress).join(', ')}\n\n`;
    return {
      ...base,
      subject: prefixed('Fwd', e.subject),
      text: header + bodyText(e),
      original: { emailId: e.id, keyword: '$forwarded' },
      attachments: (e.attachments ?? []).filter((a) => a.blobId).map((a) => ({ name: a.name ?? 'attachment', type: a.type, size: a.size ?? 0, blobId: a.blobId })),
    };
  }
  const replyTo = e.replyTo?.length ? e.replyTo : (e.from ?? []);
  let to = replyTo.map(formatAddress);
  let cc: string[] = [];
  if (kind === 'replyAll') {
    const all = [...replyTo, ...(e.to ?? []), ...(e.cc ?? [])];
    const seen = new Set<string>();
    const others = all.filter((a) => {
      const k = a.email.toLowerCase();
      if (mine.has(k) || seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    to = others.slice(0, to.length || 1).map(formatAddress);
    cc = others.slice(to.length).map(formatAddress);
  }
  if (to.length === 0) to = replyTo.map(formatAddress);
  return {
    ...base,
    to,
    cc,
    subject: prefixed('Re', e.subject),
    text: quote(e, bodyText(e)),
    inReplyTo: e.messageId ?? undefined,
    references: refs.length ? refs : undefined,
    original: { emailId: e.id, keyword: '$answered' },
  };
}

export async function identities(jmap: Jmap): Promise<Identity[]> {
  const r = await jmap.call('Identity/get', { ids: null });
  return r.list as Identity[];
}

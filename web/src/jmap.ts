// A small JMAP client (RFC 8620 core + RFC 8621 mail) over the authenticated fetch.
import type { Auth } from './auth';

export const CAP_CORE = 'urn:ietf:params:jmap:core';
export const CAP_MAIL = 'urn:ietf:params:jmap:mail';
export const CAP_SUBMISSION = 'urn:ietf:params:jmap:submission';
export const CAP_VACATION = 'urn:ietf:params:jmap:vacationresponse';
export const CAP_QUOTA = 'urn:ietf:params:jmap:quota';
const USING = [CAP_CORE, CAP_MAIL, CAP_SUBMISSION, CAP_VACATION, CAP_QUOTA];

export type Invocation = [string, Record<string, unknown>, string];

export interface Session {
  apiUrl: string;
  downloadUrl: string;
  uploadUrl: string;
  eventSourceUrl: string;
  accountId: string;
  username: string;
  state?: string;
}

export interface Mailbox {
  id: string;
  name: string;
  parentId: string | null;
  role: string | null;
  sortOrder: number;
  totalEmails: number;
  unreadEmails: number;
}

export interface Address {
  name?: string | null;
  email: string;
}

export interface BodyPart {
  partId?: string;
  blobId?: string;
  size?: number;
  name?: string | null;
  type: string;
  cid?: string | null;
  disposition?: string | null;
}

export interface Email {
  id: string;
  threadId: string;
  mailboxIds: Record<string, boolean>;
  keywords: Record<string, boolean>;
  from?: Address[] | null;
  to?: Address[] | null;
  cc?: Address[] | null;
  replyTo?: Address[] | null;
  subject?: string | null;
  receivedAt: string;
  sentAt?: string | null;
  preview?: string;
  hasAttachment?: boolean;
  size?: number;
  messageId?: string[] | null;
  references?: string[] | null;
  inReplyTo?: string[] | null;
  textBody?: BodyPart[];
  htmlBody?: BodyPart[];
  attachments?: BodyPart[];
  bodyValues?: Record<string, { value: string; isTruncated?: boolean }>;
  /** Every Authentication-Results field, topmost first (see trust.ts). */
  'header:Authentication-Results:asText:all'?: string[] | null;
}

export class JmapError extends Error {
  type: string;
  constructor(type: string, description?: string) {
    super(description ? `${type}: ${description}` : type);
    this.name = 'JmapError';
    this.type = type;
  }
}

export const LIST_PROPERTIES = ['id', 'threadId', 'mailboxIds', 'keywords', 'from', 'to', 'subject', 'receivedAt', 'preview', 'hasAttachment', 'size'];
export const FULL_PROPERTIES = [
  ...LIST_PROPERTIES, 'cc', 'replyTo', 'sentAt', 'messageId', 'references', 'inReplyTo', 'textBody', 'htmlBody', 'attachments', 'bodyValues',
  'header:Authentication-Results:asText:all',
];

/** Resolves a URL from the session resource against our own origin (the server may know itself by another name). */
function local(url: string): string {
  try {
    const u = new URL(url, globalThis.location?.origin ?? 'http://localhost');
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

export class Jmap {
  session: Session | null = null;

  constructor(private auth: Auth, private storage?: { getItem(k: string): string | null; setItem(k: string, v: string): void }) {
    const raw = storage?.getItem('bulwark.session');
    if (raw) {
      try {
        this.session = JSON.parse(raw);
      } catch {
        this.session = null;
      }
    }
  }

  get accountId(): string {
    if (!this.session) throw new JmapError('noSession', 'not connected');
    return this.session.accountId;
  }

  /** Fetches the session resource (RFC 8620 §2). */
  async connect(): Promise<Session> {
    const res = await this.auth.fetch('/.well-known/jmap');
    if (!res.ok) throw new JmapError('session', `session resource: HTTP ${res.status}`);
    const s = await res.json();
    const accountId = s.primaryAccounts?.[CAP_MAIL] ?? Object.keys(s.accounts ?? {})[0];
    this.session = {
      apiUrl: local(s.apiUrl),
      downloadUrl: s.downloadUrl,
      uploadUrl: s.uploadUrl,
      eventSourceUrl: s.eventSourceUrl,
      accountId,
      username: s.username,
      state: s.state,
    };
    this.storage?.setItem('bulwark.session', JSON.stringify(this.session));
    return this.session;
  }

  private async ensure(): Promise<Session> {
    return this.session ?? (await this.connect());
  }

  /** Sends method calls; returns the responses in order. Method errors are returned as ['error', {...}, id]. */
  async request(calls: Invocation[]): Promise<Invocation[]> {
    const s = await this.ensure();
    const res = await this.auth.fetch(s.apiUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ using: USING, methodCalls: calls }),
    });
    if (!res.ok) {
      const problem = await res.json().catch(() => ({}));
      throw new JmapError(problem.type ?? `http${res.status}`, problem.detail);
    }
    const body = await res.json();
    return body.methodResponses as Invocation[];
  }

  /** One call, its response arguments; a method error throws. */
  async call<T = any>(name: string, args: Record<string, unknown>): Promise<T> {
    const [r] = await this.request([[name, { accountId: this.session?.accountId ?? (await this.ensure()).accountId, ...args }, '0']]);
    if (r[0] === 'error') throw new JmapError(String(r[1].type), r[1].description as string | undefined);
    return r[1] as T;
  }

  async mailboxes(): Promise<{ list: Mailbox[]; state: string }> {
    const r = await this.call('Mailbox/get', { ids: null });
    return { list: r.list, state: r.state };
  }

  /** Email/query: returns ids (and total) for a filter, sorted newest first. */
  async query(filter: Record<string, unknown> | null, position = 0, limit = 5000): Promise<{ ids: string[]; total: number; queryState: string }> {
    const r = await this.call('Email/query', {
      filter,
      sort: [{ property: 'receivedAt', isAscending: false }],
      position,
      limit,
      calculateTotal: true,
    });
    return { ids: r.ids, total: r.total ?? r.ids.length, queryState: r.queryState };
  }

  async getEmails(ids: string[], properties = LIST_PROPERTIES, fetchBodies = false): Promise<Email[]> {
    if (ids.length === 0) return [];
    const args: Record<string, unknown> = { ids, properties };
    if (fetchBodies) {
      Object.assign(args, { fetchTextBodyValues: true, fetchHTMLBodyValues: true, maxBodyValueBytes: 2_000_000 });
    }
    const r = await this.call('Email/get', args);
    return r.list;
  }

  /** The whole conversation of an email, oldest first, with bodies. */
  async thread(threadId: string): Promise<Email[]> {
    const accountId = this.accountId;
    const responses = await this.request([
      ['Thread/get', { accountId, ids: [threadId] }, 't'],
      [
        'Email/get',
        {
          accountId,
          '#ids': { resultOf: 't', name: 'Thread/get', path: '/list/*/emailIds' },
          properties: FULL_PROPERTIES,
          fetchTextBodyValues: true,
          fetchHTMLBodyValues: true,
          maxBodyValueBytes: 2_000_000,
        },
        'e',
      ],
    ]);
    const emails = responses.find((r) => r[2] === 'e');
    if (!emails || emails[0] === 'error') throw new JmapError(String(emails?.[1]?.type ?? 'serverFail'));
    return (emails[1].list as Email[]).sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
  }

  /** Email/set update patches for many ids at once. */
  async updateEmails(patches: Record<string, Record<string, unknown>>): Promise<void> {
    const r = await this.call('Email/set', { update: patches });
    const failed = Object.entries(r.notUpdated ?? {});
    if (failed.length) throw new JmapError('notUpdated', JSON.stringify(failed[0][1]));
  }

  async destroyEmails(ids: string[]): Promise<void> {
    await this.call('Email/set', { destroy: ids });
  }

  /** Uploads a blob (RFC 8620 §6.1). */
  async upload(data: Blob, type: string): Promise<{ blobId: string; size: number; type: string }> {
    const s = await this.ensure();
    const url = local(s.uploadUrl.replace('{accountId}', encodeURIComponent(s.accountId)));
    const res = await this.auth.fetch(url, { method: 'POST', headers: { 'Content-Type': type || 'application/octet-stream' }, body: data });
    if (!res.ok) throw new JmapError('upload', `HTTP ${res.status}`);
    return res.json();
  }

  downloadUrl(blobId: string, name: string, type: string): string {
    const s = this.session;
    if (!s) throw new JmapError('noSession');
    return local(
      s.downloadUrl
        .replace('{accountId}', encodeURIComponent(s.accountId))
        .replace('{blobId}', encodeURIComponent(blobId))
        .replace('{name}', encodeURIComponent(name || 'attachment'))
        .replace('{type}', encodeURIComponent(type || 'application/octet-stream')),
    );
  }

  /** Downloads a blob with the Bearer header (an <a href> cannot send it). */
  async download(blobId: string, name: string, type: string): Promise<Blob> {
    const res = await this.auth.fetch(this.downloadUrl(blobId, name, type));
    if (!res.ok) throw new JmapError('download', `HTTP ${res.status}`);
    return res.blob();
  }

  eventSourceUrl(): string | null {
    const s = this.session;
    if (!s?.eventSourceUrl) return null;
    return local(s.eventSourceUrl.replace('{types}', '*').replace('{closeafter}', 'no').replace('{ping}', '30'));
  }
}

/** Parses a text/event-stream chunk buffer; returns complete events and the unconsumed rest. */
export function parseSse(buffer: string): { events: { event: string; data: string }[]; rest: string } {
  const events: { event: string; data: string }[] = [];
  const normalised = buffer.replace(/\r\n?/g, '\n');
  const blocks = normalised.split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length) events.push({ event, data: data.join('\n') });
  }
  return { events, rest };
}

/**
 * Push (RFC 8620 §7.3) over fetch streaming, because EventSource cannot send an
 * Authorization header. Reconnects with backoff; calls onChange for each StateChange.
 */
export function subscribePush(jmap: Jmap, auth: Auth, onChange: (changed: Record<string, string>) => void): () => void {
  let stopped = false;
  let controller: AbortController | null = null;
  let delay = 1000;
  const loop = async () => {
    while (!stopped) {
      const url = jmap.eventSourceUrl();
      if (!url) return;
      controller = new AbortController();
      try {
        const res = await auth.fetch(url, { headers: { Accept: 'text/event-stream' }, signal: controller.signal });
        if (!res.ok || !res.body) throw new Error(`push: HTTP ${res.status}`);
        delay = 1000;
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          const parsed = parseSse(buffer);
          buffer = parsed.rest;
          for (const ev of parsed.events) {
            if (ev.event !== 'state') continue;
            try {
              const msg = JSON.parse(ev.data);
              const changed = msg.changed?.[jmap.accountId];
              if (changed) onChange(changed);
            } catch {
              /* ignore malformed event */
            }
          }
        }
      } catch {
        if (stopped) return;
        auth.net.set(false);
      }
      if (stopped) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 30_000);
    }
  };
  void loop();
  return () => {
    stopped = true;
    controller?.abort();
  };
}

// Offline cache of what the user looked at: mailbox list, the first rows of recently opened
// mailboxes, and recently opened conversations (with bodies). Bounded: oldest entries go first.
import { KV, idbAll, idbDelete, idbGet, idbKeys, idbPut } from './idb';
import type { Email, Mailbox } from './jmap';
import type { OutgoingMessage } from './outbox';

/** Rows of a mailbox kept for offline reading. */
export const CACHED_ROWS = 300;
/** Conversations kept for offline reading. */
export const CACHED_THREADS = 200;

interface Stamped<T> {
  at: number;
  value: T;
}

async function get<T>(key: string): Promise<T | undefined> {
  try {
    return (await idbGet<Stamped<T>>(KV, key))?.value;
  } catch {
    return undefined;
  }
}

async function put<T>(key: string, value: T): Promise<void> {
  try {
    await idbPut(KV, { at: Date.now(), value } satisfies Stamped<T>, key);
  } catch {
    /* quota or private mode: caching is best effort */
  }
}

export interface CachedList {
  ids: string[];
  total: number;
  rows: Email[];
}

export const cache = {
  mailboxes: () => get<Mailbox[]>('mailboxes'),
  saveMailboxes: (list: Mailbox[]) => put('mailboxes', list),
  list: (key: string) => get<CachedList>(`list:${key}`),
  saveList: (key: string, l: CachedList) => put(`list:${key}`, { ids: l.ids.slice(0, CACHED_ROWS), total: l.total, rows: l.rows.slice(0, CACHED_ROWS) }),
  thread: (threadId: string) => get<Email[]>(`thread:${threadId}`),
  async saveThread(threadId: string, emails: Email[]) {
    await put(`thread:${threadId}`, emails);
    await prune('thread:', CACHED_THREADS);
  },
  /** Drafts written while offline (keyed by Message-ID), uploaded to Drafts when back. */
  localDrafts: async () => (await get<OutgoingMessage[]>('localDrafts')) ?? [],
  async saveLocalDraft(m: OutgoingMessage) {
    const all = (await cache.localDrafts()).filter((d) => d.messageId !== m.messageId);
    await put('localDrafts', [...all, m]);
  },
  async removeLocalDraft(messageId: string) {
    await put('localDrafts', (await cache.localDrafts()).filter((d) => d.messageId !== messageId));
  },
  identity: () => get<unknown>('identity'),
  saveIdentity: (v: unknown) => put('identity', v),
  async clear() {
    for (const k of await idbKeys(KV).catch(() => [])) await idbDelete(KV, k).catch(() => {});
  },
};

async function prune(prefix: string, keep: number): Promise<void> {
  try {
    const keys = (await idbKeys(KV)).filter((k) => typeof k === 'string' && k.startsWith(prefix)) as string[];
    if (keys.length <= keep) return;
    const all = await idbAll<Stamped<unknown>>(KV);
    const allKeys = await idbKeys(KV);
    const stamped = allKeys
      .map((k, i) => ({ k, at: all[i]?.at ?? 0 }))
      .filter((e) => typeof e.k === 'string' && (e.k as string).startsWith(prefix))
      .sort((a, b) => a.at - b.at);
    for (const e of stamped.slice(0, stamped.length - keep)) await idbDelete(KV, e.k);
  } catch {
    /* best effort */
  }
}

import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { cache, CACHED_ROWS, CACHED_THREADS } from '../src/cache';
import type { Email } from '../src/jmap';

function email(i: number): Email {
  return { id: `E${i}`, threadId: `T${i}`, mailboxIds: { M: true }, keywords: {}, receivedAt: new Date(i * 1000).toISOString(), subject: `s${i}` };
}

describe('offline cache', () => {
  it('keeps the first rows of a mailbox list, bounded', async () => {
    const rows = Array.from({ length: CACHED_ROWS + 50 }, (_, i) => email(i));
    await cache.saveList('mb:M', { ids: rows.map((r) => r.id), total: 50_000, rows });
    const back = await cache.list('mb:M');
    expect(back?.ids.length).toBe(CACHED_ROWS);
    expect(back?.rows[0].subject).toBe('s0');
    expect(back?.total).toBe(50_000);
  });

  it('keeps recently opened conversations and drops the oldest beyond the limit', async () => {
    for (let i = 0; i < CACHED_THREADS + 3; i++) {
      await cache.saveThread(`T${i}`, [email(i)]);
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(await cache.thread('T0')).toBeUndefined();
    expect((await cache.thread(`T${CACHED_THREADS + 2}`))?.[0].id).toBe(`E${CACHED_THREADS + 2}`);
  });

  it('keeps drafts written offline by Message-ID until removed', async () => {
    const m = { from: { name: '', email: 'a@x.test' }, to: [], cc: [], bcc: [], subject: 'v1', text: '', attachments: [], messageId: 'd1@x' };
    await cache.saveLocalDraft(m);
    await cache.saveLocalDraft({ ...m, subject: 'v2' });
    expect((await cache.localDrafts()).map((d) => d.subject)).toEqual(['v2']);
    await cache.removeLocalDraft('d1@x');
    expect(await cache.localDrafts()).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { OfflineError } from '../src/auth';
import { JmapError } from '../src/jmap';
import { Outbox, type OutboxItem, type OutboxStorage, type OutgoingMessage } from '../src/outbox';

function memory(): OutboxStorage & { map: Map<string, OutboxItem> } {
  const map = new Map<string, OutboxItem>();
  return {
    map,
    all: async () => [...map.values()].map((x) => structuredClone(x)),
    put: async (i) => void map.set(i.id, structuredClone(i)),
    delete: async (id) => void map.delete(id),
  };
}

function msg(subject: string): OutgoingMessage {
  return { from: { name: 'A', email: 'a@x.test' }, to: ['b@x.test'], cc: [], bcc: [], subject, text: 'hi', attachments: [], messageId: `${subject}@x.test` };
}

describe('outbox queue', () => {
  it('keeps messages while offline and sends them in order when back', async () => {
    const storage = memory();
    let online = false;
    const sent: string[] = [];
    const box = new Outbox(storage, async (m) => {
      if (!online) throw new OfflineError();
      sent.push(m.subject);
    });
    await box.enqueue(msg('first'));
    await new Promise((r) => setTimeout(r, 2));
    await box.enqueue(msg('second'));
    expect(await box.flush()).toBe(0);
    expect((await box.items()).map((i) => i.message.subject)).toEqual(['first', 'second']);
    expect((await box.items())[0].attempts).toBe(1);
    online = true;
    expect(await box.flush()).toBe(2);
    expect(sent).toEqual(['first', 'second']);
    expect(await box.items()).toEqual([]);
  });

  it('stops at the first network failure so later mail does not overtake', async () => {
    const storage = memory();
    const sent: string[] = [];
    const box = new Outbox(storage, async (m) => {
      if (m.subject === 'first') throw new TypeError('Failed to fetch');
      sent.push(m.subject);
    });
    await box.enqueue(msg('first'));
    await new Promise((r) => setTimeout(r, 2));
    await box.enqueue(msg('second'));
    await box.flush();
    expect(sent).toEqual([]);
    expect((await box.items()).length).toBe(2);
  });

  it('marks a message the server refuses as failed, keeps it, and sends the rest', async () => {
    const storage = memory();
    const sent: string[] = [];
    const box = new Outbox(storage, async (m) => {
      if (m.subject === 'bad') throw new JmapError('invalidProperties', 'to: not an address');
      sent.push(m.subject);
    });
    await box.enqueue(msg('bad'));
    await new Promise((r) => setTimeout(r, 2));
    await box.enqueue(msg('good'));
    await box.flush();
    expect(sent).toEqual(['good']);
    const left = await box.items();
    expect(left.length).toBe(1);
    expect(left[0].failed).toBe(true);
    expect(left[0].lastError).toContain('invalidProperties');
    // A failed message is not retried automatically.
    await box.flush();
    expect(sent).toEqual(['good']);
  });

  it('concurrent flushes send each message once', async () => {
    const storage = memory();
    let calls = 0;
    const box = new Outbox(storage, async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
    });
    await box.enqueue(msg('one'));
    await Promise.all([box.flush(), box.flush(), box.flush()]);
    expect(calls).toBe(1);
  });

  it('persists through IndexedDB (survives a new Outbox instance)', async () => {
    await import('fake-indexeddb/auto');
    const { idbOutbox } = await import('../src/idb-outbox');
    const a = new Outbox(idbOutbox, async () => {
      throw new OfflineError();
    });
    await a.enqueue(msg('persisted'));
    const b = new Outbox(idbOutbox, async () => {});
    expect((await b.items()).map((i) => i.message.subject)).toEqual(['persisted']);
    expect(await b.flush()).toBe(1);
    expect(await b.items()).toEqual([]);
  });
});

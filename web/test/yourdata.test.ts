import { describe, expect, it } from 'vitest';
import { describeImport, mailboxPath, MBOX_TYPE, MESSAGE_TYPE, uploadType } from '../src/yourdata';
import type { Mailbox } from '../src/jmap';

/** A File-like Blob with a name (jsdom's File may lack slice().text()). */
function named(text: string, name: string): Blob & { name: string } {
  return Object.assign(new Blob([text]), { name });
}

describe('Your data', () => {
  it('sends .eml as message/rfc822, .mbox/.mbx as application/mbox, others by their first line', async () => {
    expect(await uploadType(named('Subject: x\r\n\r\nx', 'a.EML'))).toBe(MESSAGE_TYPE);
    expect(await uploadType(named('From x Thu Dec  3 08:11:52 2026\n', 'Inbox.mbox'))).toBe(MBOX_TYPE);
    expect(await uploadType(named('From x Thu Dec  3 08:11:52 2026\n', 'x.mbx'))).toBe(MBOX_TYPE);
    // Thunderbird's local folders have no extension.
    expect(await uploadType(named('\nFrom x Thu Dec  3 08:11:52 2026\n', 'Inbox'))).toBe(MBOX_TYPE);
    expect(await uploadType(named('From: a@b.test\r\n\r\nhi', 'message'))).toBe(MESSAGE_TYPE);
  });

  it('names folders by their full path', () => {
    const mb = (id: string, name: string, parentId: string | null): Mailbox => ({ id, name, parentId, role: null, sortOrder: 0, totalEmails: 0, unreadEmails: 0 });
    const all = [mb('a', 'Work', null), mb('b', 'Clients', 'a'), mb('c', '2026', 'b')];
    expect(mailboxPath(all[2], all)).toBe('Work/Clients/2026');
    expect(mailboxPath(all[0], all)).toBe('Work');
  });

  it('sums up an upload in one sentence', () => {
    expect(describeImport({ imported: 200, skipped: 0, failed: 0, failures: [], foldersCreated: [] })).toBe('Imported 200 messages.');
    expect(describeImport({ imported: 1, skipped: 3, failed: 1, failures: ['x'], foldersCreated: ['Old'] }))
      .toBe('Imported 1 message, 3 already here (skipped), 1 could not be imported. New folder: Old.');
  });
});

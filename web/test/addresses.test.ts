import { describe, expect, it } from 'vitest';
import { formatAddress, isValidAddress, parseAddresses, parseMailbox, replyDraft, sendMessage, splitAddressList } from '../src/mail';
import type { Email, Invocation, Jmap } from '../src/jmap';

describe('address fields keep display names (issue 17 defect 2)', () => {
  it('RFC 5322 name-addr, quoted names with commas, comments, bare addresses', () => {
    expect(parseAddresses('Bob <bob@example.test>, "Lovelace, Carol" <carol@example.test>; dave@example.test, erin@example.test (Erin E.)')).toEqual([
      { name: 'Bob', email: 'bob@example.test' },
      { name: 'Lovelace, Carol', email: 'carol@example.test' },
      { email: 'dave@example.test' },
      { name: 'Erin E.', email: 'erin@example.test' },
    ]);
    expect(parseMailbox('"Say \\"hi\\"" <s@x.test>')).toEqual({ name: 'Say "hi"', email: 's@x.test' });
    expect(parseMailbox('<bare@x.test>')).toEqual({ email: 'bare@x.test' });
    expect(splitAddressList(' , a@x.test,,')).toEqual(['a@x.test']);
  });
  it('formatting and parsing round-trip, quoting names with specials', () => {
    for (const a of [{ name: 'Lovelace, Carol', email: 'c@x.test' }, { name: 'J. "Jo" Smith', email: 'j@x.test' }, { name: 'Bob', email: 'b@x.test' }, { email: 'd@x.test' }]) {
      expect(parseMailbox(formatAddress(a))).toEqual(a);
    }
    expect(formatAddress({ name: 'Lovelace, Carol', email: 'c@x.test' })).toBe('"Lovelace, Carol" <c@x.test>');
  });
  it('validity is judged on the address part', () => {
    expect(isValidAddress('"Lovelace, Carol" <carol@example.test>')).toBe(true);
    expect(isValidAddress('Bob <bob@example>')).toBe(false);
  });
  it('a reply and a reply-all address people by name', () => {
    const e = {
      id: 'E', threadId: 'T', mailboxIds: {}, keywords: {}, receivedAt: '2026-01-01T00:00:00Z', subject: 'x',
      from: [{ name: 'Bob Example', email: 'bob@x.test' }], to: [{ name: 'Alice', email: 'alice@x.test' }, { name: 'Doe, Jane', email: 'jane@x.test' }],
    } as Email;
    expect(replyDraft('reply', e, ['alice@x.test'], { name: 'Alice', email: 'alice@x.test' }).to).toEqual(['Bob Example <bob@x.test>']);
    const all = replyDraft('replyAll', e, ['alice@x.test'], { name: 'Alice', email: 'alice@x.test' });
    expect([...all.to, ...all.cc]).toEqual(['Bob Example <bob@x.test>', '"Doe, Jane" <jane@x.test>']);
  });
  it('Email/set carries {name, email} for From, To, Cc and Bcc', async () => {
    const sent: Invocation[][] = [];
    const jmap = {
      accountId: 'A',
      request: async (calls: Invocation[]) => {
        sent.push(calls);
        return [['Email/set', { created: { msg: { id: 'E9' } } }, 'e'], ['EmailSubmission/set', { created: { sub: { id: 'S' } } }, 's']];
      },
    } as unknown as Jmap;
    await sendMessage(jmap, {
      from: { name: 'Alice Liddell', email: 'alice@x.test' },
      to: ['Bob <bob@x.test>', '"Lovelace, Carol" <carol@x.test>'], cc: ['dave@x.test'], bcc: ['Eve <eve@x.test>'],
      subject: 's', text: 't', attachments: [], messageId: 'm@x.test',
    }, { draftsId: 'D', sentId: 'S', identityId: 'I' });
    const create = (sent[0][0][1].create as Record<string, Record<string, unknown>>).msg;
    expect(create.from).toEqual([{ name: 'Alice Liddell', email: 'alice@x.test' }]);
    expect(create.to).toEqual([{ name: 'Bob', email: 'bob@x.test' }, { name: 'Lovelace, Carol', email: 'carol@x.test' }]);
    expect(create.cc).toEqual([{ email: 'dave@x.test' }]);
    expect(create.bcc).toEqual([{ name: 'Eve', email: 'eve@x.test' }]);
  });
});

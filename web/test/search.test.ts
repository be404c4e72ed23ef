import { describe, expect, it } from 'vitest';
import { parseSearch } from '../src/search';

const MAILBOXES = [
  { id: 'a1', name: 'Archive', role: 'archive', parentId: null, sortOrder: 0, totalEmails: 0, unreadEmails: 0 },
  { id: 'p1', name: 'Projects', role: null, parentId: null, sortOrder: 0, totalEmails: 0, unreadEmails: 0 },
];

describe('search syntax', () => {
  it('plain words are a text filter', () => {
    expect(parseSearch('quarterly report')).toEqual({ text: 'quarterly report' });
  });
  it('operators become RFC 8621 filter conditions joined with AND', () => {
    expect(parseSearch('from:bob subject:"weekly report" has:attachment is:unread in:archive budget', MAILBOXES)).toEqual({
      operator: 'AND',
      conditions: [
        { text: 'budget' },
        { from: 'bob' },
        { subject: 'weekly report' },
        { hasAttachment: true },
        { notKeyword: '$seen' },
        { inMailbox: 'a1' },
      ],
    });
  });
  it('mailbox names, flags and dates', () => {
    expect(parseSearch('in:projects is:flagged after:2026-01-02', MAILBOXES)).toEqual({
      operator: 'AND',
      conditions: [{ inMailbox: 'p1' }, { hasKeyword: '$flagged' }, { after: '2026-01-02T00:00:00Z' }],
    });
  });
  it('a single condition is not wrapped', () => {
    expect(parseSearch('from:alice@example.test')).toEqual({ from: 'alice@example.test' });
  });
});

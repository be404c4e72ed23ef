import { describe, expect, it } from 'vitest';
import { highlightTerms, parseSearch, searchTerms } from '../src/search';

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

describe('search highlighting (issue 17 defect 7)', () => {
  it('the words searched for: free text and from/to/subject/body values, not is:/has:/in:', () => {
    expect(searchTerms('from:bob subject:"weekly report" has:attachment is:unread in:archive budget')).toEqual(['bob', 'weekly report', 'budget']);
  });
  it('marks matches case- and accent-insensitively, as text parts', () => {
    expect(highlightTerms('Quarterly report: Café <b>', ['quarterly', 'cafe'])).toEqual([
      { text: 'Quarterly', match: true },
      { text: ' report: ', match: false },
      { text: 'Café', match: true },
      { text: ' <b>', match: false },
    ]);
    expect(highlightTerms('nothing here', ['zzz'])).toEqual([{ text: 'nothing here', match: false }]);
    expect(highlightTerms('abc', [])).toEqual([{ text: 'abc', match: false }]);
  });
});

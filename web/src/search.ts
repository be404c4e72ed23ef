// Search box syntax → JMAP Email/query filter (RFC 8621 §4.4.1):
//   from:bob  to:alice  subject:"weekly report"  has:attachment  is:unread  is:flagged
//   in:archive (a role or mailbox name)  before:2026-01-31  after:2026-01-01  and free text.
import type { Mailbox } from './jmap';

function tokens(q: string): string[] {
  const out: string[] = [];
  const re = /(\w+:)?"([^"]*)"|(\S+)/g;
  for (let m = re.exec(q); m; m = re.exec(q)) out.push(m[3] ?? `${m[1] ?? ''}${m[2]}`);
  return out;
}

export function parseSearch(q: string, mailboxes: Mailbox[] = []): Record<string, unknown> {
  const conditions: Record<string, unknown>[] = [];
  const text: string[] = [];
  for (const t of tokens(q.trim())) {
    const i = t.indexOf(':');
    const key = i > 0 ? t.slice(0, i).toLowerCase() : '';
    const value = i > 0 ? t.slice(i + 1) : t;
    if (!value) continue;
    switch (key) {
      case 'from':
      case 'to':
      case 'cc':
      case 'subject':
      case 'body':
        conditions.push({ [key]: value });
        break;
      case 'has':
        if (value === 'attachment') conditions.push({ hasAttachment: true });
        break;
      case 'is':
        if (value === 'unread') conditions.push({ notKeyword: '$seen' });
        else if (value === 'read') conditions.push({ hasKeyword: '$seen' });
        else if (value === 'flagged' || value === 'starred') conditions.push({ hasKeyword: '$flagged' });
        break;
      case 'in': {
        const v = value.toLowerCase();
        const mb = mailboxes.find((m) => m.role === v) ?? mailboxes.find((m) => m.name.toLowerCase() === v);
        if (mb) conditions.push({ inMailbox: mb.id });
        break;
      }
      case 'before':
      case 'after': {
        const d = new Date(value);
        if (!Number.isNaN(d.getTime())) conditions.push({ [key]: d.toISOString().replace(/\.\d{3}Z$/, 'Z') });
        break;
      }
      default:
        text.push(t);
    }
  }
  if (text.length) conditions.unshift({ text: text.join(' ') });
  if (conditions.length === 0) return { text: q.trim() };
  return conditions.length === 1 ? conditions[0] : { operator: 'AND', conditions };
}

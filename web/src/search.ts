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

/** The words a search looks for (free text and the values of from: to: cc: subject: body:), for highlighting. */
export function searchTerms(q: string): string[] {
  const out: string[] = [];
  for (const t of tokens(q.trim())) {
    const i = t.indexOf(':');
    const key = i > 0 ? t.slice(0, i).toLowerCase() : '';
    const value = i > 0 && /^[a-z]+$/.test(key) ? t.slice(i + 1) : t;
    if (['has', 'is', 'in', 'before', 'after'].includes(key)) continue;
    if (value.trim()) out.push(value.trim());
  }
  return out;
}

/** Lower case without accents, one entry per code point of `s` (so positions map back). */
function foldChars(s: string): string[] {
  return Array.from(s, (c) => c.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase());
}

/**
 * `text` split into parts, `match` where a term occurs (case- and accent-insensitive). Pure text:
 * the caller puts the parts into text nodes and <mark>s, never into HTML.
 */
export function highlightTerms(text: string, terms: string[]): { text: string; match: boolean }[] {
  const chars = Array.from(text);
  const folded = foldChars(text);
  const wanted = terms.map((t) => foldChars(t).join('')).filter(Boolean);
  if (!wanted.length || !chars.length) return [{ text, match: false }];
  // Folded string and, for each of its code units, the code point of `text` it came from.
  let hay = '';
  const from: number[] = [];
  folded.forEach((f, i) => {
    hay += f;
    for (let k = 0; k < f.length; k++) from.push(i);
  });
  const hit = new Array<boolean>(chars.length).fill(false);
  for (const w of wanted) {
    for (let at = hay.indexOf(w); at >= 0; at = hay.indexOf(w, at + w.length)) {
      for (let k = at; k < at + w.length; k++) hit[from[k]] = true;
    }
  }
  const parts: { text: string; match: boolean }[] = [];
  chars.forEach((c, i) => {
    const last = parts[parts.length - 1];
    if (last && last.match === hit[i]) last.text += c;
    else parts.push({ text: c, match: hit[i] });
  });
  return parts;
}

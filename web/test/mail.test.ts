import { describe, expect, it, vi } from 'vitest';
import { bodyText, replyDraft, sendMessage } from '../src/mail';
import { htmlToText } from '../src/sanitize';
import type { Email, Jmap } from '../src/jmap';

const HTML = `<html><head><title>T</title><style>p{color:red}</style><script>window.__ran=1</script></head>
<body><h1>Report</h1><p>Numbers are <b>up</b>,
   see   <a href="https://example.org/q3">the sheet</a>.</p>
<ul><li>one</li><li>two</li></ul><ol><li>first</li><li>second</li></ol>
<blockquote><p>earlier words</p></blockquote><p>line<br>break</p>
<table><tr><td>a</td><td>b</td></tr></table><img src="https://tracker.example/p.gif" alt="" onerror="window.__ran=2"></body></html>`;

/** An HTML-only mail as JMAP gives it: its text/html part in textBody and htmlBody (RFC 8621 §4.1.4). */
function htmlOnly(html: string): Email {
  return {
    id: 'E1', threadId: 'T', mailboxIds: {}, keywords: {}, receivedAt: '2026-01-01T00:00:00Z',
    from: [{ name: 'Bob', email: 'bob@x.test' }], to: [{ email: 'alice@x.test' }], subject: 'Report', messageId: ['r1@x.test'],
    textBody: [{ partId: '1', type: 'text/html' }], htmlBody: [{ partId: '1', type: 'text/html' }], bodyValues: { '1': { value: html } },
  } as Email;
}

describe('HTML mail as text (quoting)', () => {
  it('renders paragraphs, lists, quotes, links and breaks as the mail reads', () => {
    const t = htmlToText(HTML);
    expect(t).toBe(
      'Report\n\nNumbers are up, see the sheet <https://example.org/q3>.\n\n- one\n- two\n\n1. first\n2. second\n\n> earlier words\n\nline\nbreak\n\na b',
    );
  });

  it('never runs or fetches anything and never uses the app document', () => {
    const create = vi.spyOn(document, 'createElement');
    expect(htmlToText(HTML)).not.toMatch(/<\/?(html|head|body|p|b|a|img|script|style|li)\b|__ran|color:red/);
    expect(create).not.toHaveBeenCalled();
    create.mockRestore();
    expect((window as unknown as { __ran?: number }).__ran).toBeUndefined();
  });

  it('a reply to an HTML-only mail quotes its text, not its source', () => {
    const r = replyDraft('reply', htmlOnly(HTML), ['alice@x.test'], { name: 'Alice', email: 'alice@x.test' });
    expect(r.text).toContain('> Numbers are up, see the sheet <https://example.org/q3>.');
    expect(r.text).toContain('> - one');
    expect(r.text).not.toMatch(/<html|<p>|<body/i);
    const f = replyDraft('forward', htmlOnly(HTML), [], { name: 'Alice', email: 'alice@x.test' });
    expect(f.text).toContain('Numbers are up');
    expect(f.text).not.toMatch(/<html|<p>/i);
  });

  it('a mail with a text/plain part is quoted from it', () => {
    const e = { ...htmlOnly('<p>html</p>'), textBody: [{ partId: '2', type: 'text/plain' }], bodyValues: { '1': { value: '<p>html</p>' }, '2': { value: 'plain' } } } as Email;
    expect(bodyText(e)).toBe('plain');
  });
});

describe('reply and forward mark the original', () => {
  function fakeJmap(submission: 'ok' | 'refused') {
    const updates: Record<string, Record<string, unknown>>[] = [];
    const jmap = {
      accountId: 'A1',
      upload: async () => ({ blobId: 'B', size: 0, type: '' }),
      request: async () => [
        ['Email/set', { created: { msg: { id: 'E9' } } }, 'e'],
        submission === 'ok' ? ['EmailSubmission/set', { created: { sub: { id: 'S1' } } }, 's'] : ['EmailSubmission/set', { notCreated: { sub: { type: 'forbiddenFrom' } } }, 's'],
      ],
      updateEmails: async (p: Record<string, Record<string, unknown>>) => void updates.push(p),
    } as unknown as Jmap;
    return { jmap, updates };
  }
  const me = { name: 'Alice', email: 'alice@x.test' };
  const ctx = { draftsId: 'D', sentId: 'S', identityId: 'I' };

  it('a sent reply sets $answered, a sent forward $forwarded, on the original', async () => {
    const reply = replyDraft('reply', htmlOnly('<p>x</p>'), ['alice@x.test'], me);
    expect(reply.original).toEqual({ emailId: 'E1', keyword: '$answered' });
    const a = fakeJmap('ok');
    await sendMessage(a.jmap, reply, ctx);
    expect(a.updates).toEqual([{ E1: { 'keywords/$answered': true } }]);
    const fwd = { ...replyDraft('forward', htmlOnly('<p>x</p>'), [], me), to: ['carol@x.test'] };
    const f = fakeJmap('ok');
    await sendMessage(f.jmap, fwd, ctx);
    expect(f.updates).toEqual([{ E1: { 'keywords/$forwarded': true } }]);
  });

  it('a refused submission marks nothing', async () => {
    const r = fakeJmap('refused');
    await expect(sendMessage(r.jmap, replyDraft('reply', htmlOnly('<p>x</p>'), [], me), ctx)).rejects.toMatchObject({ type: 'forbiddenFrom' });
    expect(r.updates).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { Auth, AuthError, Connectivity, OfflineError, type KeyValue } from '../src/auth';
import { Jmap, parseSse } from '../src/jmap';
import { replyDraft, sendMessage } from '../src/mail';

function kv(): KeyValue & { data: Record<string, string> } {
  const data: Record<string, string> = {};
  return { data, getItem: (k) => data[k] ?? null, setItem: (k, v) => void (data[k] = v), removeItem: (k) => void delete data[k] };
}

type Handler = (url: string, init: RequestInit) => Response | Promise<Response>;

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

const SESSION = {
  apiUrl: 'http://server.example:8080/jmap/api',
  downloadUrl: 'http://server.example:8080/jmap/download/{accountId}/{blobId}/{name}?accept={type}',
  uploadUrl: 'http://server.example:8080/jmap/upload/{accountId}/',
  eventSourceUrl: 'http://server.example:8080/jmap/eventsource?types={types}&closeafter={closeafter}&ping={ping}',
  primaryAccounts: { 'urn:ietf:params:jmap:mail': 'A1' },
  accounts: { A1: {} },
  username: 'alice@example.test',
  state: 's1',
};

function setup(handler: Handler, tokens?: object) {
  const store = kv();
  if (tokens) store.setItem('bulwark.tokens', JSON.stringify(tokens));
  const calls: { url: string; init: RequestInit }[] = [];
  const fetchFn = (async (url: string, init: RequestInit = {}) => {
    calls.push({ url, init });
    return handler(url, init);
  }) as unknown as typeof fetch;
  const net = new Connectivity();
  const auth = new Auth(store, net, fetchFn);
  return { auth, net, store, calls, jmap: new Jmap(auth, store) };
}

const FRESH = { access: 'acc1', refresh: 'ref1', expiresAt: Date.now() + 3600_000, sessionId: 's', address: 'alice@example.test', displayName: 'Alice' };

describe('auth', () => {
  it('asks for the TOTP code, then stores the tokens', async () => {
    const { auth, store } = setup((_u, init) => {
      const body = JSON.parse(String(init.body));
      if (!body.totp) return json({ error: 'totp_required', description: 'code needed' }, 401);
      return json({ access_token: 'a', refresh_token: 'r', expires_in: 3600, session_id: 's1', account: { address: 'alice@example.test', displayName: 'Alice' } });
    });
    await expect(auth.login('alice@example.test', 'pw')).rejects.toMatchObject({ code: 'totp_required' });
    await auth.login('alice@example.test', 'pw', '123456');
    expect(auth.signedIn).toBe(true);
    expect(JSON.parse(store.data['bulwark.tokens']).refresh).toBe('r');
  });

  it('refreshes on 401 and retries once', async () => {
    const { auth, calls } = setup((url, init) => {
      if (url === '/api/account/refresh') return json({ access_token: 'acc2', refresh_token: 'ref2', expires_in: 3600, session_id: 's' });
      const h = new Headers(init.headers);
      return h.get('Authorization') === 'Bearer acc2' ? json({ ok: 1 }) : json({}, 401);
    }, FRESH);
    const res = await auth.fetch('/x');
    expect(res.status).toBe(200);
    expect(calls.map((c) => c.url)).toEqual(['/x', '/api/account/refresh', '/x']);
    expect(auth.tokens?.refresh).toBe('ref2');
  });

  it('stays signed in when the server is unreachable, and goes offline', async () => {
    const expired = { ...FRESH, expiresAt: Date.now() - 1000 };
    const { auth, net } = setup(() => {
      throw new TypeError('Failed to fetch');
    }, expired);
    await expect(auth.fetch('/x')).rejects.toBeInstanceOf(OfflineError);
    expect(net.online).toBe(false);
    expect(auth.signedIn).toBe(true);
    expect(auth.tokens?.refresh).toBe('ref1');
  });

  it('signs out only when the refresh token is refused', async () => {
    const expired = { ...FRESH, expiresAt: Date.now() - 1000 };
    const { auth } = setup(() => json({ error: 'invalid_grant', description: 'revoked' }, 401), expired);
    let signedOut = false;
    auth.onSignedOut = () => (signedOut = true);
    await expect(auth.fetch('/x')).rejects.toBeInstanceOf(AuthError);
    expect(signedOut).toBe(true);
    expect(auth.signedIn).toBe(false);
  });

  it('treats 502/503/504 from a proxy as offline', async () => {
    const { auth, net } = setup(() => new Response('bad gateway', { status: 502 }), FRESH);
    await expect(auth.fetch('/x')).rejects.toBeInstanceOf(OfflineError);
    expect(net.online).toBe(false);
  });
});

describe('jmap client', () => {
  it('reads the session, uses our origin for its URLs and sends method calls with the capabilities', async () => {
    const { jmap, calls } = setup((url, init) => {
      if (url === '/.well-known/jmap') return json(SESSION);
      const body = JSON.parse(String(init.body));
      expect(body.using).toContain('urn:ietf:params:jmap:mail');
      expect(body.methodCalls[0][1].accountId).toBe('A1');
      return json({ methodResponses: [['Mailbox/get', { list: [{ id: 'm1', name: 'Inbox', role: 'inbox' }], state: '7' }, '0']], sessionState: 's1' });
    }, FRESH);
    const r = await jmap.mailboxes();
    expect(r.list[0].role).toBe('inbox');
    expect(calls[1].url).toBe('/jmap/api');
    expect(new Headers(calls[1].init.headers).get('Authorization')).toBe('Bearer acc1');
    expect(jmap.downloadUrl('B1', 'a b.pdf', 'application/pdf')).toBe('/jmap/download/A1/B1/a%20b.pdf?accept=application%2Fpdf');
    expect(jmap.eventSourceUrl()).toBe('/jmap/eventsource?types=*&closeafter=no&ping=30');
  });

  it('turns a method error into a JmapError', async () => {
    const { jmap } = setup((url) => (url === '/.well-known/jmap' ? json(SESSION) : json({ methodResponses: [['error', { type: 'invalidArguments', description: 'bad filter' }, '0']] })), FRESH);
    await expect(jmap.call('Email/query', { filter: 1 })).rejects.toMatchObject({ type: 'invalidArguments' });
  });

  it('sends with Email/set + EmailSubmission/set, moving to Sent on success', async () => {
    let request: any;
    const { jmap } = setup((url, init) => {
      if (url === '/.well-known/jmap') return json(SESSION);
      request = JSON.parse(String(init.body));
      return json({ methodResponses: [['Email/set', { created: { msg: { id: 'E9' } } }, 'e'], ['EmailSubmission/set', { created: { sub: { id: 'S1' } } }, 's']] });
    }, FRESH);
    await jmap.connect();
    const m = { from: { name: 'Alice', email: 'alice@example.test' }, to: ['bob@example.test'], cc: [], bcc: [], subject: 'Hi', text: 'Hello', attachments: [{ name: 'a.txt', type: 'text/plain', size: 3, blobId: 'B1' }], messageId: 'x@example.test' };
    await sendMessage(jmap, m, { draftsId: 'D', sentId: 'S', identityId: 'I' }, 'OLD');
    const [set, sub] = request.methodCalls;
    expect(set[0]).toBe('Email/set');
    expect(set[1].destroy).toEqual(['OLD']);
    expect(set[1].create.msg.mailboxIds).toEqual({ D: true });
    expect(set[1].create.msg.attachments[0].blobId).toBe('B1');
    expect(sub[1].create.sub).toEqual({ identityId: 'I', emailId: '#msg' });
    expect(sub[1].onSuccessUpdateEmail['#sub']).toEqual({ 'mailboxIds/D': null, 'keywords/$draft': null, 'mailboxIds/S': true });
  });

  it('reports notCreated as an error', async () => {
    const { jmap } = setup((url) => (url === '/.well-known/jmap' ? json(SESSION) : json({ methodResponses: [['Email/set', { notCreated: { msg: { type: 'invalidProperties', description: 'to' } } }, 'e'], ['error', { type: 'invalidResultReference' }, 's']] })), FRESH);
    await jmap.connect();
    const m = { from: { name: '', email: 'a@x.test' }, to: ['b@x.test'], cc: [], bcc: [], subject: '', text: '', attachments: [], messageId: 'm@x' };
    await expect(sendMessage(jmap, m, { draftsId: 'D', sentId: null, identityId: 'I' })).rejects.toMatchObject({ type: 'invalidProperties' });
  });
});

describe('push stream parsing', () => {
  it('parses complete events and keeps the partial rest', () => {
    const { events, rest } = parseSse('event: state\ndata: {"a":1}\n\n: ping\n\nevent: state\r\ndata: {"b"');
    expect(events).toEqual([{ event: 'state', data: '{"a":1}' }]);
    expect(rest).toBe('event: state\ndata: {"b"');
  });
});

describe('reply construction', () => {
  const email = {
    id: 'e1', threadId: 't', mailboxIds: {}, keywords: {}, receivedAt: '2026-01-01T00:00:00Z',
    from: [{ name: 'Bob', email: 'bob@x.test' }], to: [{ email: 'alice@x.test' }, { email: 'carol@x.test' }], cc: [{ email: 'dave@x.test' }],
    subject: 'Plans', messageId: ['m1@x.test'], references: ['m0@x.test'],
    textBody: [{ partId: '1', type: 'text/plain' }], bodyValues: { '1': { value: 'line one\nline two' } },
    attachments: [{ blobId: 'B', name: 'plan.pdf', type: 'application/pdf', size: 10 }],
  };
  const me = { name: 'Alice', email: 'alice@x.test' };
  it('reply goes to the sender with threading headers and a quote', () => {
    const r = replyDraft('reply', email, ['alice@x.test'], me);
    expect(r.to).toEqual(['Bob <bob@x.test>']);
    expect(r.subject).toBe('Re: Plans');
    expect(r.inReplyTo).toEqual(['m1@x.test']);
    expect(r.references).toEqual(['m0@x.test', 'm1@x.test']);
    expect(r.text).toContain('> line two');
  });
  it('reply-all includes everyone but me', () => {
    const r = replyDraft('replyAll', email, ['alice@x.test'], me);
    expect([...r.to, ...r.cc].sort()).toEqual(['Bob <bob@x.test>', 'carol@x.test', 'dave@x.test']);
  });
  it('forward keeps attachments and does not re-prefix', () => {
    const r = replyDraft('forward', { ...email, subject: 'Fwd: Plans' }, [], me);
    expect(r.subject).toBe('Fwd: Plans');
    expect(r.to).toEqual([]);
    expect(r.attachments[0].blobId).toBe('B');
  });
});

describe('outbox resend guard', () => {
  it('recognises a message an earlier attempt already sent, comparing the Message-ID itself', async () => {
    const { alreadySent } = await import('../src/mail');
    const list = [
      { id: 'E1', mailboxIds: { SENT: true }, keywords: {}, messageId: ['other@x'] },
      { id: 'E2', mailboxIds: { D: true }, keywords: { $draft: true }, messageId: ['mine@x'] },
    ];
    const { jmap } = setup((url, init) => {
      if (url === '/.well-known/jmap') return json(SESSION);
      const call = JSON.parse(String(init.body)).methodCalls[0];
      if (call[0] === 'Email/query') return json({ methodResponses: [['Email/query', { ids: list.map((e) => e.id) }, '0']] });
      return json({ methodResponses: [['Email/get', { list }, '0']] });
    }, FRESH);
    await jmap.connect();
    const m = { from: { name: '', email: 'a@x' }, to: ['b@x'], cc: [], bcc: [], subject: '', text: '', attachments: [], messageId: 'mine@x' };
    expect(await alreadySent(jmap, m, 'D')).toBe(false);
    list[1] = { id: 'E2', mailboxIds: { SENT: true }, keywords: {}, messageId: ['mine@x'] } as any;
    expect(await alreadySent(jmap, m, 'D')).toBe(true);
  });
});

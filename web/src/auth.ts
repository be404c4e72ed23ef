// Sign-in state: long-lived signed tokens kept in localStorage, refreshed before they expire.
// A network failure never signs the user out (the server may just be down); only an explicit
// "invalid_grant"/revoked answer does.

export interface Tokens {
  access: string;
  refresh: string;
  /** ms since epoch when the access token expires. */
  expiresAt: number;
  sessionId: string;
  address: string;
  displayName: string;
}

export class OfflineError extends Error {
  constructor(message = 'The server cannot be reached') {
    super(message);
    this.name = 'OfflineError';
  }
}

export class AuthError extends Error {
  code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'AuthError';
    this.code = code;
  }
}

export interface KeyValue {
  getItem(k: string): string | null;
  setItem(k: string, v: string): void;
  removeItem(k: string): void;
}

const KEY = 'bulwark.tokens';
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 120_000;

type Listener = (online: boolean) => void;

/** Connectivity as seen by our own requests (navigator.onLine is not enough: the network may be up and the server down). */
export class Connectivity {
  online = true;
  private listeners: Listener[] = [];
  on(l: Listener) {
    this.listeners.push(l);
  }
  set(online: boolean) {
    if (online === this.online) return;
    this.online = online;
    for (const l of this.listeners) l(online);
  }
}

export function isNetworkError(e: unknown): boolean {
  return e instanceof TypeError || e instanceof OfflineError;
}

export class Auth {
  tokens: Tokens | null;
  onSignedOut: () => void = () => {};
  private refreshing: Promise<void> | null = null;

  constructor(
    private storage: KeyValue,
    public net: Connectivity,
    private fetchFn: typeof fetch = (...a) => fetch(...a),
  ) {
    const raw = storage.getItem(KEY);
    try {
      this.tokens = raw ? (JSON.parse(raw) as Tokens) : null;
    } catch {
      this.tokens = null;
    }
  }

  get signedIn(): boolean {
    return this.tokens !== null;
  }

  private save(t: Tokens | null) {
    this.tokens = t;
    if (t) this.storage.setItem(KEY, JSON.stringify(t));
    else this.storage.removeItem(KEY);
  }

  private async post(path: string, body: unknown, token?: string): Promise<Response> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    let res: Response;
    try {
      res = await this.fetchFn(path, { method: 'POST', headers, body: JSON.stringify(body) });
    } catch (e) {
      this.net.set(false);
      throw new OfflineError();
    }
    if (res.status >= 502 && res.status <= 504) {
      this.net.set(false);
      throw new OfflineError(`The server answered ${res.status}`);
    }
    this.net.set(true);
    return res;
  }

  /** Password (and TOTP code when asked) sign-in. Throws AuthError('totp_required') to ask for the code. */
  async login(username: string, password: string, totp?: string): Promise<void> {
    const res = await this.post('/api/account/login', { username, password, totp: totp || undefined });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new AuthError(body.error ?? 'error', body.description ?? `Sign-in failed (${res.status})`);
    this.save(this.fromResponse(body, body.account?.address ?? username, body.account?.displayName ?? ''));
  }

  private fromResponse(body: any, address: string, displayName: string): Tokens {
    return {
      access: body.access_token,
      refresh: body.refresh_token,
      expiresAt: Date.now() + (body.expires_in ?? 3600) * 1000,
      sessionId: body.session_id ?? '',
      address,
      displayName,
    };
  }

  /** Gets a fresh access token pair. Network errors leave the tokens as they are. */
  async refresh(): Promise<void> {
    if (!this.tokens) throw new AuthError('signed_out', 'Not signed in');
    if (!this.refreshing) {
      const t = this.tokens;
      this.refreshing = (async () => {
        try {
          const res = await this.post('/api/account/refresh', { refresh_token: t.refresh });
          const body = await res.json().catch(() => ({}));
          if (res.status === 401 || res.status === 400) {
            this.save(null);
            this.onSignedOut();
            throw new AuthError(body.error ?? 'invalid_grant', body.description ?? 'Your session ended');
          }
          if (!res.ok) throw new OfflineError(`Token refresh failed (${res.status})`);
          this.save(this.fromResponse(body, t.address, t.displayName));
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  async accessToken(): Promise<string> {
    if (!this.tokens) throw new AuthError('signed_out', 'Not signed in');
    if (this.tokens.expiresAt - Date.now() < REFRESH_MARGIN_MS) {
      try {
        await this.refresh();
      } catch (e) {
        if (!isNetworkError(e)) throw e;
      }
    }
    if (!this.tokens) throw new AuthError('signed_out', 'Not signed in');
    return this.tokens.access;
  }

  /** fetch with the Bearer token; refreshes once on 401; marks connectivity. */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const token = await this.accessToken();
      const headers = new Headers(init.headers);
      headers.set('Authorization', `Bearer ${token}`);
      let res: Response;
      try {
        res = await this.fetchFn(url, { ...init, headers });
      } catch {
        this.net.set(false);
        throw new OfflineError();
      }
      if (res.status >= 502 && res.status <= 504) {
        this.net.set(false);
        throw new OfflineError(`The server answered ${res.status}`);
      }
      this.net.set(true);
      if (res.status === 401 && attempt === 0) {
        await this.refresh();
        continue;
      }
      return res;
    }
    throw new AuthError('unauthorized', 'Not authorised');
  }

  async logout(): Promise<void> {
    try {
      await this.fetch('/api/account/logout', { method: 'POST' });
    } catch {
      /* signed out locally anyway */
    }
    this.save(null);
  }
}

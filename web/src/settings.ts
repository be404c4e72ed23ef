// Settings: identities (display name, reply-to, signature), vacation response, folders, two-factor
// authentication, app passwords, sessions, your data (upload mail, download it all), appearance.
import { clear, copyButton, formatSize, h, toast } from './dom';
import { YourData } from './yourdata';
import type { Identity } from './mail';
import type { MailApp } from './app';

async function api(app: MailApp, method: string, path: string, body?: unknown): Promise<any> {
  const res = await app.auth.fetch(`/api/account/${path}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : undefined,
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.description ?? `HTTP ${res.status}`);
  return json;
}

function section(title: string, id: string, ...children: (HTMLElement | null)[]): HTMLElement {
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

export class Settings {
  constructor(private app: MailApp, private root: HTMLElement) {}

  async render() {
    const sections = {
      identity: h('div'),
      vacation: h('div'),
      totp: h('div'),
      apps: h('div'),
      sessions: h('div'),
      folders: h('div'),
      storage: h('div'),
    };
    clear(
      this.root,
      h('section', null, h('div.row-actions', null, h('button.btn', { onclick: () => this.app.openMailbox(this.app.view.mailboxId ?? '') }, '← Back to mail'), h('h1', { style: 'margin:0;font-size:20px' }, 'Settings'))),
      section('Name and signature', 'set-identity', sections.identity),
      section('Vacation response', 'set-vacation', sections.vacation),
      section('Folders', 'set-folders', sections.folders),
      section('Storage', 'set-storage', sections.storage),
      section('Your data', 'set-data', new YourData(this.app).render()),
      section('Two-factor authentication', 'set-2fa', sections.totp),
      section('App passwords', 'set-apps', h('p.muted', null, 'For mail apps that use IMAP and SMTP (Thunderbird, phones). Each app gets its own password; delete it to cut that app off.'), sections.apps),
      section('Signed-in devices', 'set-sessions', sections.sessions),
      section('Set up a mail app', 'set-apps-setup', this.appSetup()),
      section('Sending', 'set-sending', h('p.muted', null, 'After Send, the message waits this long on the server; Undo in the notice takes it back.'), this.undoSend()),
      section('Appearance', 'set-theme', this.theme()),
    );
    await Promise.all([
      this.identity(sections.identity),
      this.vacation(sections.vacation),
      this.totp(sections.totp),
      this.appPasswords(sections.apps),
      this.sessions(sections.sessions),
      this.folders(sections.folders),
      this.storage(sections.storage),
    ].map((p) => p.catch((e) => toast(`Settings: ${e instanceof Error ? e.message : e}`))));
  }

  /** Thunderbird and Outlook find the server by themselves (autoconfig, Autodiscover);
   * iPhone, iPad and Mac take a configuration profile. */
  private appSetup(): HTMLElement {
    const q = encodeURIComponent(this.app.me);
    return h('div', null,
      h('p.muted', null, 'Thunderbird and Outlook set themselves up from your address alone. On an iPhone, iPad or Mac, download the profile and open it; it asks for the password (an app password if two-factor is on).'),
      h('p', null, h('a.btn', { id: 'mobileconfig-link', href: `/autoconfig/apple.mobileconfig?emailaddress=${q}`, download: 'bulwark.mobileconfig' }, 'Download profile for Apple Mail')));
  }

  /** How much mail the account keeps, of its limit (JMAP Quota, RFC 9425). */
  private async storage(el: HTMLElement) {
    const r = await this.app.jmap.call('Quota/get', { ids: null });
    const q = (r.list as { resourceType: string; used: number; hardLimit: number }[]).find((x) => x.resourceType === 'octets');
    if (!q) {
      clear(el, h('p', { id: 'storage-usage' }, 'No storage limit on this account.'));
      return;
    }
    const pct = Math.min(100, Math.round((q.used * 100) / Math.max(1, q.hardLimit)));
    clear(el,
      h('p', { id: 'storage-usage' }, `${formatSize(q.used)} of ${formatSize(q.hardLimit)} used (${pct}%)`),
      h('progress', { max: String(q.hardLimit), value: String(q.used), 'aria-label': 'Storage used' }),
      pct >= 90 ? h('p.muted', null, 'Almost full: new mail is held back by senders until you delete some (empty Trash too).') : null);
  }

  /** How long a sent message can be taken back (held by the server, RFC 4865 HOLDFOR). */
  private undoSend(): HTMLElement {
    const current = String(undoSendSeconds());
    const sel = h('select', {
      id: 'undo-send-select',
      onchange: () => localStorage.setItem(UNDO_SEND_KEY, sel.value),
    }, ['0', '5', '10', '20', '30'].map((t) => h('option', { value: t, selected: t === current }, t === '0' ? 'Off' : `${t} seconds`))) as HTMLSelectElement;
    return h('label', null, 'Undo send', sel);
  }

  private theme(): HTMLElement {
    const current = localStorage.getItem('bulwark.theme') ?? 'system';
    const sel = h('select', {
      id: 'theme-select',
      onchange: () => {
        localStorage.setItem('bulwark.theme', sel.value);
        window.dispatchEvent(new Event('bulwark-theme'));
      },
    }, ['system', 'light', 'dark'].map((t) => h('option', { value: t, selected: t === current }, t[0].toUpperCase() + t.slice(1)))) as HTMLSelectElement;
    return h('label', null, 'Theme', sel);
  }

  private async identity(el: HTMLElement) {
    const r = await this.app.jmap.call('Identity/get', { ids: null });
    const list = r.list as Identity[];
    clear(
      el,
      list.map((id) => {
        const name = h('input', { type: 'text', value: id.name ?? '', 'aria-label': `Display name for ${id.email}` }) as HTMLInputElement;
        const replyTo = h('input', { type: 'email', value: id.replyTo?.[0]?.email ?? '', 'aria-label': 'Reply-to address' }) as HTMLInputElement;
        const sig = h('textarea', { rows: '4', 'aria-label': 'Signature' }) as HTMLTextAreaElement;
        sig.value = id.textSignature ?? '';
        return h(
          'form.grid',
          {
            onsubmit: async (e: Event) => {
              e.preventDefault();
              const patch = { name: name.value, textSignature: sig.value, replyTo: replyTo.value ? [{ email: replyTo.value }] : null };
              const res = await this.app.jmap.call('Identity/set', { update: { [id.id]: patch } }).catch((err) => ({ notUpdated: { x: { description: String(err) } } }));
              if (res.notUpdated && Object.keys(res.notUpdated).length) toast(`Not saved: ${JSON.stringify(Object.values(res.notUpdated)[0])}`);
              else {
                toast('Saved');
                this.app.identities = (await this.app.jmap.call('Identity/get', { ids: null })).list;
              }
            },
          },
          h('strong', null, id.email),
          h('label', null, 'Display name', name),
          h('label', null, 'Reply-to (optional)', replyTo),
          h('label', null, 'Signature', sig),
          h('div', null, h('button.btn.primary', { type: 'submit' }, 'Save')),
        );
      }),
    );
  }

  private async vacation(el: HTMLElement) {
    const r = await this.app.jmap.call('VacationResponse/get', { ids: null });
    const v = r.list?.[0] ?? { id: 'singleton', isEnabled: false };
    const enabled = h('input', { type: 'checkbox', checked: !!v.isEnabled, id: 'vac-enabled' }) as HTMLInputElement;
    const from = h('input', { type: 'date', value: v.fromDate?.slice(0, 10) ?? '', 'aria-label': 'From date' }) as HTMLInputElement;
    const to = h('input', { type: 'date', value: v.toDate?.slice(0, 10) ?? '', 'aria-label': 'Until date' }) as HTMLInputElement;
    const subject = h('input', { type: 'text', value: v.subject ?? '', 'aria-label': 'Subject' }) as HTMLInputElement;
    const body = h('textarea', { rows: '4', 'aria-label': 'Message' }) as HTMLTextAreaElement;
    body.value = v.textBody ?? '';
    clear(
      el,
      h(
        'form.grid',
        {
          onsubmit: async (e: Event) => {
            e.preventDefault();
            const patch = {
              isEnabled: enabled.checked,
              fromDate: from.value ? new Date(from.value).toISOString() : null,
              toDate: to.value ? new Date(to.value).toISOString() : null,
              subject: subject.value || null,
              textBody: body.value || null,
            };
            try {
              const res = await this.app.jmap.call('VacationResponse/set', { update: { singleton: patch } });
              if (res.notUpdated?.singleton) throw new Error(res.notUpdated.singleton.description ?? res.notUpdated.singleton.type);
              toast(enabled.checked ? 'Vacation response on' : 'Vacation response off');
            } catch (err) {
              toast(`Not saved: ${err instanceof Error ? err.message : err}`);
            }
          },
        },
        h('label.check', null, enabled, 'Send an automatic reply'),
        h('div', { style: 'display:grid;grid-template-columns:1fr 1fr;gap:12px' }, h('label', null, 'From', from), h('label', null, 'Until', to)),
        h('label', null, 'Subject', subject),
        h('label', null, 'Message', body),
        h('div', null, h('button.btn.primary', { type: 'submit' }, 'Save')),
      ),
    );
  }

  private async totp(el: HTMLElement) {
    const status = await api(this.app, 'GET', 'totp');
    if (status.enabled) {
      const pw = h('input', { type: 'password', 'aria-label': 'Your password', autocomplete: 'current-password', placeholder: 'Password to confirm' }) as HTMLInputElement;
      const otp = h('input', { type: 'text', inputmode: 'numeric', 'aria-label': 'Code from the app or a recovery code', autocomplete: 'one-time-code', placeholder: 'Code' }) as HTMLInputElement;
      clear(
        el,
        h('p', { id: 'totp-status' }, `On. ${status.recovery_codes_left} recovery code${status.recovery_codes_left === 1 ? '' : 's'} left.`),
        h('div.row-actions', null, pw, otp, h('button.btn.danger', {
          onclick: async () => {
            try {
              await api(this.app, 'POST', 'totp/disable', { password: pw.value, totp: otp.value });
              toast('Two-factor authentication turned off');
              await this.totp(el);
            } catch (e) {
              toast(`${e instanceof Error ? e.message : e}`);
            }
          },
        }, 'Turn off')),
      );
      return;
    }
    const enrolPw = h('input', { type: 'password', id: 'totp-enrol-password', 'aria-label': 'Your password', autocomplete: 'current-password', placeholder: 'Password to confirm' }) as HTMLInputElement;
    clear(
      el,
      h('p', { id: 'totp-status' }, 'Off. Protect your account with codes from an authenticator app.'),
      enrolPw,
      h('button.btn.primary', {
        id: 'totp-enrol',
        onclick: async () => {
          let e;
          try {
            e = await api(this.app, 'POST', 'totp/enrol', { password: enrolPw.value });
          } catch (err) {
            toast(`${err instanceof Error ? err.message : err}`);
            return;
          }
          const code = h('input', { type: 'text', inputmode: 'numeric', id: 'totp-code', autocomplete: 'one-time-code', 'aria-label': 'Code from the app' }) as HTMLInputElement;
          const msg = h('p.error', { role: 'alert' });
          clear(
            el,
            h('p', null, 'Scan this code with your authenticator app, then enter the 6-digit code it shows.'),
            h('img.qr', { src: e.qrDataUrl, alt: 'QR code for your authenticator app' }),
            h('p', null, 'Or enter this key: ', h('span.secret', { id: 'totp-secret' }, e.secret)),
            h('form.row-actions', {
              onsubmit: async (ev: Event) => {
                ev.preventDefault();
                try {
                  const r = await api(this.app, 'POST', 'totp/confirm', { code: code.value });
                  clear(
                    el,
                    h('p', { id: 'totp-status' }, 'On. Save these recovery codes somewhere safe — each works once if you lose your phone. They are shown only now.'),
                    h('div.codes', { id: 'recovery-codes' }, (r.recoveryCodes as string[]).map((c) => h('span', null, c))),
                    copyButton(() => (r.recoveryCodes as string[]).join('\n'), 'recovery codes', 'copy-recovery-codes'),
                    h('p', null, h('button.btn', { onclick: () => this.totp(el) }, 'Done')),
                  );
                } catch (err) {
                  msg.textContent = err instanceof Error ? err.message : String(err);
                }
              },
            }, code, h('button.btn.primary', { type: 'submit', id: 'totp-confirm' }, 'Confirm')),
            msg,
          );
          code.focus();
        },
      }, 'Set up two-factor authentication'),
    );
  }

  private async appPasswords(el: HTMLElement) {
    const list = (await api(this.app, 'GET', 'app-passwords')) as { id: number; name: string; createdAt: number }[];
    const name = h('input', { type: 'text', placeholder: 'App name, e.g. Thunderbird on laptop', 'aria-label': 'App name', maxlength: '100' }) as HTMLInputElement;
    // Creating or deleting an app password needs the account password (and the code with 2FA on).
    const pw = h('input', { type: 'password', 'aria-label': 'Your password', autocomplete: 'current-password', placeholder: 'Password to confirm' }) as HTMLInputElement;
    const otp = h('input', { type: 'text', inputmode: 'numeric', 'aria-label': 'Code from the app (if two-factor is on)', autocomplete: 'one-time-code', placeholder: 'Code (2FA)' }) as HTMLInputElement;
    const confirmation = () => ({ password: pw.value, totp: otp.value || undefined });
    const shown = h('div', { 'aria-live': 'polite' });
    clear(
      el,
      list.length
        ? h('table', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Created'), h('th')), list.map((p) =>
            h('tr', null, h('td', null, p.name), h('td', null, new Date(p.createdAt * 1000).toLocaleDateString()), h('td', null, h('button.btn.danger', {
              'aria-label': `Delete app password ${p.name}`,
              onclick: async () => {
                try {
                  await api(this.app, 'DELETE', `app-passwords/${p.id}`, confirmation());
                  await this.appPasswords(el);
                } catch (err) {
                  toast(`${err instanceof Error ? err.message : err}`);
                }
              },
            }, 'Delete')))))
        : h('p.muted', null, 'No app passwords yet.'),
      h('form.row-actions', {
        style: 'margin-top:12px',
        onsubmit: async (e: Event) => {
          e.preventDefault();
          try {
            const r = await api(this.app, 'POST', 'app-passwords', { name: name.value, ...confirmation() });
            await this.appPasswords(el);
            el.appendChild(h('p', null, `Password for ${r.name} (shown once): `, h('strong.secret', { id: 'new-app-password' }, r.password), ' ', copyButton(() => r.password as string, 'app password', 'copy-app-password')));
          } catch (err) {
            toast(`${err instanceof Error ? err.message : err}`);
          }
        },
      }, name, pw, otp, h('button.btn.primary', { type: 'submit' }, 'Create')),
      shown,
    );
  }

  /** The user's own folders (no role): rename, or delete when empty (Mailbox/set, RFC 8621 §2.5). */
  private async folders(el: HTMLElement) {
    const own = this.app.mailboxes.filter((m) => !m.role).sort((a, b) => a.name.localeCompare(b.name));
    const change = async (args: Record<string, unknown>, done: string) => {
      try {
        const r = await this.app.jmap.call('Mailbox/set', args);
        const failed = Object.values({ ...(r.notUpdated ?? {}), ...(r.notDestroyed ?? {}) })[0] as { type?: string; description?: string } | undefined;
        if (failed) {
          toast(failed.type === 'mailboxHasEmail' ? 'Move the mail out of the folder first' : `Not changed: ${failed.description ?? failed.type}`);
          return;
        }
        toast(done);
        await this.app.refreshAll();
        await this.folders(el);
      } catch (err) {
        toast(`Not changed: ${err instanceof Error ? err.message : err}`);
      }
    };
    clear(
      el,
      own.length ? null : h('p.muted', null, 'No folders of your own yet. Create one under the mailboxes on the left.'),
      own.map((m) => {
        const name = h('input', { type: 'text', value: m.name, 'aria-label': `New name for ${m.name}`, maxlength: '200' }) as HTMLInputElement;
        return h('form.row-actions', {
          onsubmit: (e: Event) => {
            e.preventDefault();
            const next = name.value.trim();
            if (next && next !== m.name) void change({ update: { [m.id]: { name: next } } }, `Folder renamed to “${next}”`);
          },
        },
        name,
        h('button.btn', { type: 'submit' }, 'Rename'),
        h('button.btn.danger', {
          type: 'button',
          'aria-label': `Delete folder ${m.name}`,
          onclick: () => void change({ destroy: [m.id], onDestroyRemoveEmails: false }, `Folder “${m.name}” deleted`),
        }, 'Delete'));
      }),
    );
  }

  private async sessions(el: HTMLElement) {
    const list = (await api(this.app, 'GET', 'sessions')) as { id: string; createdAt: number; lastSeen: number; userAgent: string; ip: string; current: boolean; via?: string }[];
    clear(
      el,
      h('table', null, h('tr', null, h('th', null, 'Device'), h('th', null, 'Last active'), h('th')), list.map((s) =>
        h('tr', null,
          h('td', null, describeSession(s.userAgent, s.via), h('br'), h('small.muted', null, `${s.ip}${s.current ? ' · this device' : ''}`)),
          h('td', null, new Date(s.lastSeen * 1000).toLocaleString()),
          h('td', null, s.current ? null : h('button.btn.danger', {
            'aria-label': `Sign out ${describeSession(s.userAgent, s.via)} (${s.ip})`,
            'data-session': s.id,
            onclick: async () => {
              await api(this.app, 'DELETE', `sessions/${encodeURIComponent(s.id)}`);
              toast('Device signed out');
              await this.sessions(el);
            },
          }, 'Sign out')),
        ))),
    );
  }
}

/** A device's name: the browser for web sign-ins, the client's own name for JMAP clients that
 * took tokens from /auth/token. */
export function describeSession(ua: string, via?: string): string {
  if (via === 'token') {
    const client = ua.split(/[\s(]/)[0]?.slice(0, 40);
    return `Mail app (JMAP)${client ? ` · ${client}` : ''}`;
  }
  return describeAgent(ua);
}

function describeAgent(ua: string): string {
  if (!ua) return 'Unknown device';
  const browser = /Firefox\/\d+/.exec(ua)?.[0] ?? /Edg\/\d+/.exec(ua)?.[0] ?? /Chrom(e|ium)\/\d+/.exec(ua)?.[0] ?? /Safari\/\d+/.exec(ua)?.[0] ?? 'Browser';
  const os = /Windows|Mac OS X|Android|iPhone|iPad|Linux/.exec(ua)?.[0] ?? '';
  return `${browser.replace('/', ' ')}${os ? ` on ${os}` : ''}`;
}

const UNDO_SEND_KEY = 'bulwark.undoSendSeconds';
/** Default undo window after Send (seconds). */
export const DEFAULT_UNDO_SEND_SECONDS = 10;

/** The undo window the user chose (0: off). */
export function undoSendSeconds(): number {
  const v = Number(localStorage.getItem(UNDO_SEND_KEY) ?? DEFAULT_UNDO_SEND_SECONDS);
  return Number.isFinite(v) && v >= 0 && v <= 60 ? v : DEFAULT_UNDO_SEND_SECONDS;
}

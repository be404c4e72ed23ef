// Reading pane: the conversation of the open message, each mail sanitised into a sandboxed
// frame (no scripts; remote images only after "Show images"), attachments, actions.
import { isNetworkError } from './auth';
import { cache } from './cache';
import { clear, formatSize, h, icon, toast } from './dom';
import type { Email } from './jmap';
import { formatAddress, replyDraft, type ReplyKind, bodyText } from './mail';
import { frameDocument, sanitizeHtml, textToHtml } from './sanitize';
import type { MailApp } from './app';
import { isLocalDomainUnauthenticated, unauthenticatedWarning } from './trust';

/** Tallest a mail frame grows (px); longer mails scroll inside it. */
const MAX_FRAME_HEIGHT = 20000;

/** Attached pictures shown as previews, at most this many and this large. */
const MAX_PREVIEWS = 6;
const MAX_PREVIEW_BYTES = 8 * 1024 * 1024;
const AVATAR_COLORS = ['#2563eb', '#7c3aed', '#db2777', '#059669', '#d97706', '#0891b2', '#4f46e5', '#b45309'];

function avatarColor(s: string): string {
  let n = 0;
  for (const c of s) n = (n * 31 + c.charCodeAt(0)) >>> 0;
  return AVATAR_COLORS[n % AVATAR_COLORS.length];
}

export class Reader {
  thread: Email[] = [];
  private remoteAllowed = new Set<string>();
  /** email id → (Content-ID → object URL of the inline image). */
  private cidUrls = new Map<string, Record<string, string>>();
  private objectUrls: string[] = [];

  constructor(private app: MailApp) {}

  renderEmpty() {
    clear(this.app.readerEl, h('div.empty', null, h('p', null, 'Select a message to read it.'), h('p.muted', null, 'Shortcuts: j/k next/previous · r reply · a reply all · f forward · e archive · # delete · ! spam · / search · c compose')));
  }

  async open(e: Email) {
    const id = e.id;
    const cached = await cache.thread(e.threadId);
    if (cached && this.app.openId === id) this.render(cached, id);
    else this.renderLoading(e);
    try {
      const thread = await this.app.jmap.thread(e.threadId);
      if (this.app.openId !== id) return;
      void cache.saveThread(e.threadId, thread);
      this.render(thread, id);
      this.app.markRead(id);
    } catch (err) {
      if (this.app.openId !== id) return;
      if (!cached) {
        clear(this.app.readerEl, h('div.empty', null, isNetworkError(err) ? 'This message is not saved for offline reading.' : `Could not load: ${err instanceof Error ? err.message : err}`));
      }
    }
  }

  async openDraft(e: Email) {
    try {
      const full = (await this.app.jmap.thread(e.threadId)).find((x) => x.id === e.id);
      if (!full) throw new Error('draft not found');
      const to = (full.to ?? []).map(formatAddress);
      this.app.compose({
        message: {
          from: { name: full.from?.[0]?.name ?? '', email: full.from?.[0]?.email ?? this.app.me },
          to,
          cc: (full.cc ?? []).map(formatAddress),
          bcc: [],
          subject: full.subject ?? '',
          text: bodyText(full),
          attachments: (full.attachments ?? []).map((a) => ({ name: a.name ?? 'attachment', type: a.type, size: a.size ?? 0, blobId: a.blobId })),
          messageId: full.messageId?.[0] ?? '',
          inReplyTo: full.inReplyTo ?? undefined,
          references: full.references ?? undefined,
        },
        draftId: e.id,
      });
    } catch (err) {
      toast(`Could not open the draft: ${err instanceof Error ? err.message : err}`);
    }
  }

  async refresh(force = false) {
    const id = this.app.openId;
    const e = id ? this.app.rows.get(id) : undefined;
    if (!e) return;
    if (force) return this.render(this.thread, e.id);
    try {
      const thread = await this.app.jmap.thread(e.threadId);
      if (this.app.openId === id && (force || thread.length !== this.thread.length)) this.render(thread, e.id);
    } catch {
      /* keep what is shown */
    }
  }

  private renderLoading(e: Email) {
    clear(this.app.readerEl, h('h1', null, e.subject || '(no subject)'), h('p.muted', null, 'Loading…'));
  }

  private render(thread: Email[], openId: string) {
    for (const u of this.objectUrls) URL.revokeObjectURL(u);
    this.objectUrls = [];
    this.cidUrls.clear();
    this.thread = thread;
    const subject = thread[0]?.subject ?? '';
    const latest = thread[thread.length - 1];
    const toolbar = h(
      'div.reader-toolbar',
      { role: 'toolbar', 'aria-label': 'Conversation actions' },
      h('button.btn.icon-only.back', { 'aria-label': 'Back to list', title: 'Back (Esc)', onclick: () => this.app.closeReader() }, icon('back')),
      h('button.btn', { onclick: () => this.reply('reply'), title: 'Reply (r)' }, icon('reply'), 'Reply'),
      h('button.btn', { onclick: () => this.reply('replyAll'), title: 'Reply all (a)' }, icon('replyAll'), 'Reply all'),
      h('button.btn', { onclick: () => this.reply('forward'), title: 'Forward (f)' }, icon('forward'), 'Forward'),
      h('button.btn.icon-only', { 'aria-label': 'Archive', title: 'Archive (e)', onclick: () => this.app.archive([openId]) }, icon('archive')),
      h('button.btn.icon-only', { 'aria-label': 'Delete', title: 'Delete (#)', onclick: () => this.app.remove([openId]) }, icon('trash')),
      this.app.inJunk()
        ? h('button.btn.icon-only.not-spam', { 'aria-label': 'Not spam', title: 'Not spam: move to Inbox (!)', onclick: () => this.app.notSpam([openId]) }, icon('inbox'))
        : h('button.btn.icon-only.report-spam', { 'aria-label': 'Report spam', title: 'Report spam: move to Junk (!)', onclick: () => this.app.reportSpam([openId]) }, icon('junk')),
      h('button.btn.icon-only', { 'aria-label': 'Flag', title: 'Flag (s)', onclick: () => this.app.toggleFlag([openId]) }, icon('star')),
      h('button.btn.icon-only', { 'aria-label': 'Mark unread', title: 'Mark unread (u)', onclick: () => this.app.toggleRead([openId]) }, icon('mail')),
    );
    const cards = thread.map((e) => this.renderMessage(e, e.id === openId || e === latest));
    clear(this.app.readerEl, toolbar, h('h1', { id: 'reader-subject' }, subject || '(no subject)'), cards);
  }

  private renderMessage(e: Email, expanded: boolean): HTMLElement {
    const from = e.from?.[0];
    const name = from?.name || from?.email || 'Unknown';
    const card = h('article.msg', { class: expanded ? '' : 'collapsed', 'data-email-id': e.id, 'aria-label': `Message from ${name}` });
    const header = h(
      'header',
      {
        tabindex: '0',
        'aria-expanded': expanded ? 'true' : 'false',
        onclick: () => toggle(),
        onkeydown: (ev: KeyboardEvent) => {
          if (ev.key === 'Enter' || ev.key === ' ') {
            ev.preventDefault();
            toggle();
          }
        },
      },
      h('span.avatar', { style: `background:${avatarColor(from?.email ?? name)}`, 'aria-hidden': 'true' }, name.slice(0, 1).toUpperCase()),
      h('div.who', null, name, from?.name ? h('span.addr', null, ` <${from.email}>`) : null),
      h('div.when', null, new Date(e.sentAt ?? e.receivedAt).toLocaleString()),
      h('div.meta.meta-full', null, `To: ${(e.to ?? []).map(formatAddress).join(', ') || '—'}`, e.cc?.length ? ` · Cc: ${e.cc.map(formatAddress).join(', ')}` : ''),
      h('div.snippet', null, e.preview ?? ''),
    );
    const body = h('div.body');
    let rendered = false;
    const toggle = () => {
      card.classList.toggle('collapsed');
      header.setAttribute('aria-expanded', card.classList.contains('collapsed') ? 'false' : 'true');
      if (!rendered && !card.classList.contains('collapsed')) {
        rendered = true;
        this.renderBody(e, body);
      }
    };
    // Claims one of our own domains but came in unauthenticated on the MX (issue 13 item 15):
    // warned on the card itself, collapsed or not, with no way to dismiss it.
    const spoofWarning = isLocalDomainUnauthenticated(e)
      ? h('div.spoof-warning', { role: 'alert' }, icon('shield'), h('span', null, unauthenticatedWarning(from?.email ?? name)))
      : null;
    card.append(header);
    if (spoofWarning) card.append(spoofWarning);
    card.append(body);
    if (expanded) {
      rendered = true;
      this.renderBody(e, body);
    }
    return card;
  }

  private renderBody(e: Email, body: HTMLElement) {
    const htmlPart = e.htmlBody?.find((p) => p.type === 'text/html');
    const textPart = e.textBody?.[0];
    const htmlValue = htmlPart?.partId ? e.bodyValues?.[htmlPart.partId]?.value : undefined;
    const textValue = textPart?.partId ? e.bodyValues?.[textPart.partId]?.value : undefined;
    const allow = this.remoteAllowed.has(e.id);
    const inline = (e.attachments ?? []).filter((a) => a.cid && a.blobId && a.type.startsWith('image/'));
    if (htmlValue != null && inline.length && /cid:/i.test(htmlValue) && !this.cidUrls.has(e.id)) {
      // Inline images (RFC 2392 cid: URLs) are fetched with our token and shown as blob: URLs.
      this.cidUrls.set(e.id, {});
      void Promise.all(
        inline.map(async (a) => {
          const blob = await this.app.jmap.download(a.blobId as string, a.name ?? 'image', a.type);
          const url = URL.createObjectURL(blob);
          this.objectUrls.push(url);
          return [String(a.cid).replace(/^<|>$/g, ''), url] as const;
        }),
      )
        .then((entries) => {
          this.cidUrls.set(e.id, Object.fromEntries(entries));
          if (body.isConnected) {
            clear(body);
            this.renderBody(e, body);
          }
        })
        .catch(() => {});
    }
    const { html, blockedRemote, suspiciousLinks } = htmlValue != null
      ? sanitizeHtml(htmlValue, { allowRemote: allow, cidMap: this.cidUrls.get(e.id) })
      : { html: textToHtml(textValue ?? e.preview ?? ''), blockedRemote: 0, suspiciousLinks: 0 };
    const dark = document.documentElement.dataset.theme === 'dark';
    const frame = h('iframe.mailframe', {
      // No allow-scripts: nothing in a mail can run. allow-same-origin only lets *us* size the
      // frame and show link targets; allow-popups lets links open in a new tab.
      sandbox: 'allow-same-origin allow-popups allow-popups-to-escape-sandbox',
      referrerpolicy: 'no-referrer',
      title: `Message body: ${e.subject ?? ''}`,
      srcdoc: frameDocument(html, { allowRemote: allow, dark }),
    }) as HTMLIFrameElement;
    const linkbar = h('div.linkbar', { 'aria-live': 'polite' });
    frame.addEventListener('load', () => {
      const doc = frame.contentDocument;
      if (!doc) return;
      // The root's own box height (not scrollHeight, which never shrinks below the frame), so
      // the frame follows its content both ways: wider pane → shorter mail, phone width → taller.
      const fit = () => {
        const height = Math.ceil(doc.documentElement.getBoundingClientRect().height) + 8;
        frame.style.height = `${Math.min(MAX_FRAME_HEIGHT, height)}px`;
      };
      fit();
      if (typeof ResizeObserver === 'function') {
        const ro = new ResizeObserver(() => fit());
        ro.observe(frame);
        ro.observe(doc.documentElement);
      } else {
        setTimeout(fit, 300);
      }
      // Shortcuts keep working while the focus is inside the mail.
      doc.addEventListener('keydown', (ev) => this.app.handleKey(ev));
      doc.addEventListener('mouseover', (ev) => {
        const a = (ev.target as Element).closest?.('a[href]');
        linkbar.textContent = a ? `${a.hasAttribute('data-suspicious') ? '⚠ Deceptive link — goes to: ' : 'Link goes to: '}${a.getAttribute('href')}` : '';
      });
    });
    const parts: (HTMLElement | null)[] = [];
    if (blockedRemote > 0 && !allow) {
      parts.push(
        h(
          'div.remote-bar',
          { role: 'note' },
          icon('image'),
          h('span', null, `Remote images are blocked to protect your privacy (${blockedRemote}).`),
          h('button.btn', {
            class: 'show-images',
            onclick: () => {
              this.remoteAllowed.add(e.id);
              clear(body);
              this.renderBody(e, body);
            },
          }, 'Show images'),
        ),
      );
    }
    if (suspiciousLinks > 0) parts.push(h('div.remote-bar', { role: 'note' }, `⚠ ${suspiciousLinks > 1 ? `${suspiciousLinks} links in this message lead` : 'A link in this message leads'} somewhere other than its text says. Hover a link to see where it really goes.`));
    parts.push(frame, linkbar);
    const atts = (e.attachments ?? []).filter((a) => a.blobId && a.disposition !== 'inline');
    if (atts.length) {
      parts.push(
        h(
          'div.attachments',
          { 'aria-label': 'Attachments' },
          atts.map((a) =>
            h(
              'button.chip',
              { title: `Download ${a.name ?? 'attachment'}`, onclick: () => this.download(a.blobId as string, a.name ?? 'attachment', a.type) },
              icon('paperclip'),
              a.name ?? 'attachment',
              h('small', null, formatSize(a.size ?? 0)),
            ),
          ),
        ),
      );
    }
    // Previews of attached pictures (images only: an HTML or PDF attachment opened under our
    // origin could run code, those are downloaded instead).
    const pictures = atts.filter((a) => /^image\/(png|jpeg|gif|webp)$/i.test(a.type) && (a.size ?? 0) <= MAX_PREVIEW_BYTES).slice(0, MAX_PREVIEWS);
    if (pictures.length) {
      const strip = h('div.previews', { 'aria-label': 'Picture previews' });
      parts.push(strip);
      for (const a of pictures) {
        void this.app.jmap
          .download(a.blobId as string, a.name ?? 'image', a.type)
          .then((blob) => {
            const url = URL.createObjectURL(blob);
            this.objectUrls.push(url);
            strip.appendChild(h('img.preview', { src: url, alt: a.name ?? 'attached picture', title: a.name ?? '' }));
          })
          .catch(() => {});
      }
    }
    clear(body, parts);
  }

  private async download(blobId: string, name: string, type: string) {
    try {
      const blob = await this.app.jmap.download(blobId, name, type);
      const url = URL.createObjectURL(blob);
      this.objectUrls.push(url);
      const a = h('a', { href: url, download: name }) as HTMLAnchorElement;
      document.body.appendChild(a);
      a.click();
      a.remove();
    } catch (err) {
      toast(`Download failed: ${err instanceof Error ? err.message : err}`);
    }
  }

  async reply(kind: ReplyKind) {
    const id = this.app.openId;
    const e = this.thread.find((x) => x.id === id) ?? this.thread[this.thread.length - 1];
    if (!e) return;
    const identity = this.app.identities[0];
    const from = { name: identity?.name || this.app.auth.tokens?.displayName || '', email: identity?.email ?? this.app.me };
    const me = [this.app.me, ...this.app.identities.map((i) => i.email)];
    this.app.compose({ message: replyDraft(kind, e, me, from) });
  }
}

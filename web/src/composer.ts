// Compose window: identities, recipients, subject, body with signature, attachments (picker and
// drop), draft autosave into Drafts, send (or queue in the outbox when offline).
import { isNetworkError } from './auth';
import { cache } from './cache';
import { clear, formatSize, h, icon, toast } from './dom';
import { byRole, isValidAddress, saveDraft, splitAddressList } from './mail';
import { newMessageId, type OutgoingAttachment, type OutgoingMessage } from './outbox';
import type { MailApp } from './app';

/** Autosave this long after the last keystroke. */
const AUTOSAVE_MS = 2500;

export interface ComposeInit {
  message?: OutgoingMessage;
  draftId?: string;
}

export class Composer {
  private el!: HTMLElement;
  private attachments: OutgoingAttachment[] = [];
  private draftId?: string;
  private dirty = false;
  private saving: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private messageId = '';
  private inReplyTo?: string[];
  private references?: string[];
  private original?: OutgoingMessage['original'];

  constructor(private app: MailApp) {}

  open(init: ComposeInit = {}) {
    document.querySelector('.composer')?.remove();
    const m = init.message;
    this.draftId = init.draftId;
    this.attachments = m?.attachments ? [...m.attachments] : [];
    this.messageId = m?.messageId || newMessageId(this.app.me);
    this.inReplyTo = m?.inReplyTo;
    this.references = m?.references;
    this.original = m?.original;
    const ids = this.app.identities.length ? this.app.identities : [{ id: '', name: this.app.auth.tokens?.displayName ?? '', email: this.app.me, textSignature: '' }];
    const fromSel = h('select', { id: 'compose-from', 'aria-label': 'From' }, ids.map((i) => h('option', { value: i.email }, i.name ? `${i.name} <${i.email}>` : i.email))) as HTMLSelectElement;
    if (m?.from.email) fromSel.value = m.from.email;
    const to = h('input', { type: 'text', id: 'compose-to', 'aria-label': 'To', value: m?.to.join(', ') ?? '', autocomplete: 'off' }) as HTMLInputElement;
    const cc = h('input', { type: 'text', id: 'compose-cc', 'aria-label': 'Cc', value: m?.cc.join(', ') ?? '' }) as HTMLInputElement;
    const bcc = h('input', { type: 'text', id: 'compose-bcc', 'aria-label': 'Bcc', value: m?.bcc.join(', ') ?? '' }) as HTMLInputElement;
    const subject = h('input', { type: 'text', id: 'compose-subject', 'aria-label': 'Subject', value: m?.subject ?? '' }) as HTMLInputElement;
    const sig = ids.find((i) => i.email === fromSel.value)?.textSignature;
    let text = m?.text ?? '';
    if (!init.draftId && sig) text = `\n\n-- \n${sig}${text}`;
    const body = h('textarea', { id: 'compose-body', 'aria-label': 'Message' }) as HTMLTextAreaElement;
    body.value = text;
    const status = h('span.status', { 'aria-live': 'polite' });
    const attList = h('div.attachments');
    const fileInput = h('input', { type: 'file', multiple: true, hidden: true, id: 'compose-file', onchange: () => this.addFiles(fileInput.files, attList) }) as HTMLInputElement;
    const ccRow = h('label.field', { hidden: !(m?.cc.length || m?.bcc.length) }, h('span', null, 'Cc'), cc);
    const bccRow = h('label.field', { hidden: !m?.bcc.length }, h('span', null, 'Bcc'), bcc);
    const collect = (): OutgoingMessage => {
      const identity = ids.find((i) => i.email === fromSel.value) ?? ids[0];
      return {
        from: { name: identity.name || this.app.auth.tokens?.displayName || '', email: identity.email },
        identityId: identity.id || undefined,
        // Mailboxes as typed, names and all ("Bob <bob@x>", "\"Doe, Jane\" <j@x>").
        to: splitAddressList(to.value),
        cc: splitAddressList(cc.value),
        bcc: splitAddressList(bcc.value),
        subject: subject.value,
        text: body.value,
        attachments: this.attachments,
        messageId: this.messageId,
        inReplyTo: this.inReplyTo,
        references: this.references,
        original: this.original,
      };
    };
    const autosave = () => {
      this.dirty = true;
      status.textContent = '';
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.save(collect(), status), AUTOSAVE_MS);
    };
    const send = async (at?: Date) => {
      const msg = collect();
      const rcpts = [...msg.to, ...msg.cc, ...msg.bcc];
      const bad = rcpts.filter((a) => !isValidAddress(a));
      if (!rcpts.length || bad.length) {
        status.textContent = bad.length ? `Not an address: ${bad.join(', ')}` : 'Add at least one recipient';
        to.focus();
        return;
      }
      clearTimeout(this.timer);
      await this.saving;
      sendBtn.disabled = true;
      status.textContent = at ? 'Scheduling…' : 'Sending…';
      try {
        const { result, undo, undoSeconds } = await this.app.send(msg, this.draftId, at);
        void cache.removeLocalDraft(msg.messageId);
        this.close();
        if (result === 'queued') toast('Offline: message saved in the outbox and will be sent when the server is back');
        else if (!undo) toast('Message sent');
        else {
          // The server holds it for the undo window or until the scheduled time (RFC 4865
          // HOLDFOR / HOLDUNTIL); Undo cancels it and opens it again as a draft.
          toast(at ? `Scheduled for ${at.toLocaleString()}` : 'Message sent', {
            label: 'Undo',
            ms: Math.max(undoSeconds, 10) * 1000,
            run: () => {
              undo()
                .then((draftId) => {
                  toast('Sending undone: the message is back in Drafts');
                  new Composer(this.app).open({ message: msg, draftId });
                  this.app.scheduleRefresh();
                })
                .catch((e) => toast(`Too late to undo: ${e instanceof Error ? e.message : e}`));
            },
          });
        }
        this.app.scheduleRefresh();
      } catch (e) {
        status.textContent = `Not sent: ${e instanceof Error ? e.message : e}`;
        sendBtn.disabled = false;
      }
    };
    const sendBtn = h('button.btn.primary', { id: 'compose-send', onclick: () => void send(), title: 'Send (Ctrl+Enter)' }, icon('send'), 'Send') as HTMLButtonElement;
    // Schedule send: a time within the server's 30-day hold (RFC 4865 HOLDUNTIL).
    const sendAt = h('input', { type: 'datetime-local', id: 'compose-send-at', 'aria-label': 'Send at' }) as HTMLInputElement;
    const scheduleRow = h('div.schedule', { hidden: true }, sendAt, h('button.btn', {
      type: 'button',
      id: 'compose-schedule',
      onclick: () => {
        const at = new Date(sendAt.value);
        const ahead = at.getTime() - Date.now();
        if (!sendAt.value || Number.isNaN(ahead) || ahead < 60_000 || ahead > 30 * 24 * 3600_000) {
          status.textContent = 'Pick a time between a minute and 30 days from now';
          return;
        }
        void send(at);
      },
    }, 'Schedule')) as HTMLElement;
    const laterBtn = h('button.btn', {
      type: 'button',
      id: 'compose-later',
      title: 'Send later',
      onclick: () => {
        scheduleRow.hidden = !scheduleRow.hidden;
        if (!scheduleRow.hidden) sendAt.focus();
      },
    }, 'Send later') as HTMLButtonElement;
    this.el = h(
      'div.composer',
      {
        role: 'dialog',
        'aria-label': 'New message',
        'aria-modal': 'false',
        oninput: autosave,
        onkeydown: (e: KeyboardEvent) => {
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            void send();
          } else if (e.key === 'Escape') {
            e.preventDefault();
            void this.saveAndClose(collect(), status);
          }
        },
        ondragover: (e: DragEvent) => {
          e.preventDefault();
          this.el.classList.add('dragover');
        },
        ondragleave: () => this.el.classList.remove('dragover'),
        ondrop: (e: DragEvent) => {
          e.preventDefault();
          this.el.classList.remove('dragover');
          this.addFiles(e.dataTransfer?.files ?? null, attList);
          autosave();
        },
      },
      h(
        'header',
        null,
        h('span', null, m?.subject ? m.subject : 'New message'),
        h('button.btn.icon-only', { 'aria-label': 'Close (saves the draft)', onclick: () => void this.saveAndClose(collect(), status) }, icon('close')),
      ),
      h(
        'div.fields',
        null,
        h('label.field', null, h('span', null, 'From'), fromSel),
        h('div.field', null, h('label', { for: 'compose-to' }, h('span', null, 'To')), h('div', { style: 'display:flex;gap:4px' }, to, h('button.btn', { type: 'button', onclick: () => { ccRow.hidden = false; bccRow.hidden = false; } }, 'Cc/Bcc'))),
        ccRow,
        bccRow,
        h('label.field', null, h('span', null, 'Subject'), subject),
      ),
      body,
      h(
        'footer',
        null,
        sendBtn,
        laterBtn,
        scheduleRow,
        h('button.btn', { type: 'button', onclick: () => fileInput.click() }, icon('paperclip'), 'Attach'),
        fileInput,
        attList,
        status,
        h('button.btn.danger', { type: 'button', onclick: () => void this.discard() }, 'Discard'),
      ),
    );
    document.body.appendChild(this.el);
    this.renderAttachments(attList);
    (m?.to.length ? body : to).focus();
    if (m?.to.length) body.setSelectionRange(0, 0);
  }

  private addFiles(files: FileList | null, list: HTMLElement) {
    for (const f of Array.from(files ?? [])) this.attachments.push({ name: f.name, type: f.type || 'application/octet-stream', size: f.size, data: f });
    this.renderAttachments(list);
    this.dirty = true;
  }

  private renderAttachments(list: HTMLElement) {
    clear(
      list,
      this.attachments.map((a, i) =>
        h('span.chip', null, icon('paperclip'), a.name, h('small', null, formatSize(a.size)), h('button.x', {
          'aria-label': `Remove ${a.name}`,
          onclick: () => {
            this.attachments.splice(i, 1);
            this.renderAttachments(list);
          },
        }, '×')),
      ),
    );
  }

  private save(msg: OutgoingMessage, status: HTMLElement): Promise<void> {
    const drafts = byRole(this.app.mailboxes, 'drafts');
    if (!drafts || !this.dirty) return Promise.resolve();
    if (!this.app.net.online) {
      this.dirty = false;
      return cache.saveLocalDraft({ ...msg, draftId: this.draftId }).then(() => {
        status.textContent = 'Offline: draft saved on this device';
      });
    }
    this.dirty = false;
    const run = (async () => {
      try {
        this.draftId = await saveDraft(this.app.jmap, msg, drafts.id, this.draftId);
        void cache.removeLocalDraft(msg.messageId);
        status.textContent = `Draft saved ${new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`;
      } catch (e) {
        this.dirty = true;
        if (isNetworkError(e)) await cache.saveLocalDraft({ ...msg, draftId: this.draftId });
        status.textContent = isNetworkError(e) ? 'Offline: draft saved on this device' : `Draft not saved: ${e instanceof Error ? e.message : e}`;
      }
    })();
    this.saving = run.finally(() => (this.saving = null));
    return this.saving;
  }

  private async saveAndClose(msg: OutgoingMessage, status: HTMLElement) {
    clearTimeout(this.timer);
    await this.saving;
    await this.save(msg, status);
    this.close();
  }

  private async discard() {
    clearTimeout(this.timer);
    await this.saving;
    if (this.draftId) await this.app.jmap.destroyEmails([this.draftId]).catch(() => {});
    await cache.removeLocalDraft(this.messageId);
    this.close();
    this.app.scheduleRefresh();
  }

  private close() {
    clearTimeout(this.timer);
    this.el.remove();
  }
}

// The mail screen: top bar, mailbox tree, virtualised message list, reading pane; keyboard
// shortcuts, live updates (push), offline banner and outbox.
import { handleShortcut, replayPendingKeys } from './shortcuts';
import { type Auth, type Connectivity, isNetworkError } from './auth';
import { cache } from './cache';
import { clear, formatDate, h, icon, toast } from './dom';
import { idbOutbox } from './idb-outbox';
import { type Email, type Jmap, type Mailbox, LIST_PROPERTIES, subscribePush } from './jmap';
import { alreadySent, byRole, identities, type Identity, saveDraft, sendMessage, undoSend } from './mail';
import { undoSendSeconds } from './settings';
import { Outbox, type OutboxItem } from './outbox';
import { Composer } from './composer';
import { Reader } from './reader';
import { Settings } from './settings';
import { highlightTerms, parseSearch, searchTerms } from './search';

const ROW_HEIGHT = 72;
/** Rows fetched with the first screen. */
const PAGE = 100;
/** Ids fetched per Email/query while scrolling (rows are fetched separately, only those in view). */
const ID_CHUNK = 5000;
/** Lists up to this size get all their ids prefetched in the background (then scrolling only fetches rows). */
const PREFETCH_IDS_UP_TO = 200_000;
const ROLE_ICON: Record<string, string> = { inbox: 'inbox', sent: 'send', drafts: 'draft', trash: 'trash', archive: 'archive', junk: 'junk' };
const ROLE_ORDER = ['inbox', 'drafts', 'sent', 'archive', 'junk', 'trash'];

/** The name shown for a mailbox: "Inbox" rather than IMAP's "INBOX". */
export function mailboxLabel(mb: Mailbox): string {
  return mb.role === 'inbox' && mb.name.toUpperCase() === 'INBOX' ? 'Inbox' : mb.name;
}

export interface View {
  kind: 'mailbox' | 'search';
  mailboxId?: string;
  query?: string;
}

export class MailApp {
  mailboxes: Mailbox[] = [];
  identities: Identity[] = [];
  view: View = { kind: 'mailbox' };
  /** The folder a search was started from (× or an empty Enter goes back to it). */
  lastMailboxId?: string;
  /** Sparse: position → email id. */
  ids: (string | undefined)[] = [];
  total = 0;
  rows = new Map<string, Email>();
  selected = new Set<string>();
  current = -1;
  openId: string | null = null;
  outbox: Outbox;
  outboxItems: OutboxItem[] = [];
  reader: Reader;
  private loadingChunks = new Set<number>();
  private loadingRows = new Set<string>();
  private generation = 0;
  private stopPush: (() => void) | null = null;
  private probeTimer: ReturnType<typeof setInterval> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private el: Record<string, HTMLElement> = {};
  private keyHandler = (e: KeyboardEvent) => handleShortcut(this, e);
  /**
   * While mail is dragged, the list and the mailbox tree are not rebuilt (a push refresh used to
   * replace the dragged row and the drop target mid-drag, and the drop was lost); the renders
   * asked for meanwhile happen when the drag ends.
   */
  private dragging = false;
  private renderDeferred = false;
  private dragEnded = () => {
    if (!this.dragging) return;
    // After the drop handlers of this event have run.
    setTimeout(() => {
      this.dragging = false;
      if (!this.renderDeferred) return;
      this.renderDeferred = false;
      this.renderSidebar();
      this.renderRows();
    }, 0);
  };
  settingsOpen = false;
  /** True from a new mailbox or search until its list is shown (then queued keys replay). */
  listLoading = true;
  /** List keys pressed while the list was loading (src/shortcuts.ts). */
  pendingKeys: string[] = [];

  constructor(private root: HTMLElement, public auth: Auth, public jmap: Jmap, public net: Connectivity) {
    this.outbox = new Outbox(idbOutbox, async (m) => {
      const ctx = this.sendContext(m.from.email);
      // An earlier attempt may have gone through with its answer lost: do not send twice.
      if (await alreadySent(this.jmap, m, ctx.draftsId)) return;
      await sendMessage(this.jmap, m, ctx);
    });
    this.outbox.onChange = (items) => {
      this.outboxItems = items;
      this.renderBanner();
      this.renderSidebar();
    };
    this.reader = new Reader(this);
  }

  get me(): string {
    return this.auth.tokens?.address ?? '';
  }

  sendContext(fromEmail: string) {
    const drafts = byRole(this.mailboxes, 'drafts');
    const sent = byRole(this.mailboxes, 'sent');
    const identity = this.identities.find((i) => i.email.toLowerCase() === fromEmail.toLowerCase()) ?? this.identities[0];
    if (!drafts || !identity) throw new Error('No Drafts mailbox or identity: cannot send yet');
    return { draftsId: drafts.id, sentId: sent?.id ?? null, identityId: identity.id };
  }

  async start() {
    this.renderShell();
    document.addEventListener('keydown', this.keyHandler);
    document.addEventListener('dragend', this.dragEnded, true);
    document.addEventListener('drop', this.dragEnded, true);
    this.net.on((online) => this.onConnectivity(online));
    this.outboxItems = await this.outbox.items().catch(() => []);
    // Cached first, so the screen is useful at once (and while the server is down).
    const cached = await cache.mailboxes();
    if (cached) {
      this.mailboxes = cached;
      this.selectInitialMailbox();
      this.renderSidebar();
      await this.loadList(true);
    }
    try {
      await this.jmap.connect();
      await this.refreshAll();
      this.startPush();
      void this.outbox.flush();
    } catch (e) {
      if (!isNetworkError(e)) toast(e instanceof Error ? e.message : String(e));
      this.onConnectivity(false);
    }
    this.markListReady(this.generation);
    this.renderBanner();
  }

  destroy() {
    document.removeEventListener('keydown', this.keyHandler);
    document.removeEventListener('dragend', this.dragEnded, true);
    document.removeEventListener('drop', this.dragEnded, true);
    this.stopPush?.();
    clearInterval(this.probeTimer);
  }

  private selectInitialMailbox() {
    // A search stays a search when a push refresh reloads the mailboxes.
    if (this.view.kind === 'search') return;
    if (!this.view.mailboxId || !this.mailboxes.some((m) => m.id === this.view.mailboxId)) {
      this.view = { kind: 'mailbox', mailboxId: (byRole(this.mailboxes, 'inbox') ?? this.mailboxes[0])?.id };
    }
  }

  async refreshAll() {
    const [{ list }, ids] = await Promise.all([this.jmap.mailboxes(), identities(this.jmap).catch(() => [] as Identity[])]);
    this.mailboxes = list;
    this.identities = ids;
    void cache.saveMailboxes(list);
    this.selectInitialMailbox();
    this.renderSidebar();
    await this.loadList(false);
  }

  private startPush() {
    this.stopPush?.();
    this.stopPush = subscribePush(this.jmap, this.auth, (changed) => {
      if (changed.Email || changed.Mailbox || changed.Thread) this.scheduleRefresh();
    });
  }

  /** Coalesces bursts of StateChange events into one refresh. */
  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      void this.refreshAll().catch(() => {});
      if (this.openId) void this.reader.refresh();
    }, 150);
  }

  private onConnectivity(online: boolean) {
    this.renderBanner();
    clearInterval(this.probeTimer);
    if (!online) {
      // Probe until the server answers again; then resync, resume push, send the outbox.
      this.probeTimer = setInterval(async () => {
        try {
          await this.jmap.connect();
        } catch {
          /* still down */
        }
      }, 3000);
    } else {
      void (async () => {
        try {
          await this.refreshAll();
          this.startPush();
          await this.uploadLocalDrafts();
          const sent = await this.outbox.flush();
          if (sent) toast(`${sent} message${sent > 1 ? 's' : ''} from the outbox sent`);
        } catch {
          /* next probe */
        }
      })();
    }
  }

  /** Drafts written offline go to the server's Drafts once it is back. */
  private async uploadLocalDrafts() {
    const drafts = byRole(this.mailboxes, 'drafts');
    if (!drafts) return;
    for (const m of await cache.localDrafts()) {
      try {
        const { draftId, ...message } = m;
        await saveDraft(this.jmap, message, drafts.id, draftId);
        await cache.removeLocalDraft(m.messageId);
      } catch (e) {
        if (isNetworkError(e)) return;
      }
    }
  }

  // ---------- rendering ----------

  private renderShell() {
    const search = h('input', {
      type: 'search',
      id: 'search',
      placeholder: 'Search mail (from: to: subject: has:attachment is:unread in:)',
      'aria-label': 'Search mail',
      // × (ours, or the browser's `search` event) or deleting the text ends the search.
      oninput: (e: Event) => {
        clearBtn.hidden = !(e.target as HTMLInputElement).value;
        if (!(e.target as HTMLInputElement).value.trim() && this.view.kind === 'search') this.leaveSearch();
      },
      onsearch: (e: Event) => {
        if (!(e.target as HTMLInputElement).value.trim() && this.view.kind === 'search') this.leaveSearch();
      },
      onkeydown: (e: KeyboardEvent) => {
        if (e.key === 'Enter') {
          // An empty search is no search: it never lists every folder at once. While a search
          // is shown, it goes back to the folder it was started from (like ×).
          const q = (e.target as HTMLInputElement).value.trim();
          if (q) this.openSearch(q);
          else if (this.view.kind === 'search') this.leaveSearch();
        } else if (e.key === 'Escape') {
          (e.target as HTMLInputElement).blur();
        }
      },
    }) as HTMLInputElement;
    const clearBtn = h('button.btn.icon-only.search-clear', {
      type: 'button',
      hidden: true,
      title: 'Clear search',
      'aria-label': 'Clear search',
      onclick: () => {
        search.value = '';
        clearBtn.hidden = true;
        if (this.view.kind === 'search') this.leaveSearch();
        search.focus();
      },
    }, icon('close'));
    const themeBtn = h('button.btn.icon-only.theme-btn', { title: 'Toggle dark theme', 'aria-label': 'Toggle dark theme', onclick: () => this.toggleTheme() }, icon(document.documentElement.dataset.theme === 'dark' ? 'sun' : 'moon'));
    this.el.themeBtn = themeBtn;
    const sidebar = h('nav.sidebar', { 'aria-label': 'Mailboxes' });
    this.el.sidebar = sidebar;
    this.el.banner = h('div.banner', { role: 'status', 'aria-live': 'polite', id: 'offline-banner' });
    this.el.listTitle = h('h2', { id: 'list-title' });
    this.el.spacer = h('div.spacer-rows', { role: 'presentation' });
    // The list is one tab stop; j/k move the current row, announced via aria-activedescendant.
    this.el.scroller = h('div.scroller', { tabindex: '0', role: 'listbox', 'aria-multiselectable': 'true', 'aria-labelledby': 'list-title', 'aria-busy': 'true', onscroll: () => this.renderRows() }, this.el.spacer);
    this.el.moveSelect = h('select', { 'aria-label': 'Move selected to', onchange: (e: Event) => this.moveSelected((e.target as HTMLSelectElement).value) });
    const toolbar = h(
      'div.list-toolbar',
      { role: 'toolbar', 'aria-label': 'Message actions' },
      h('input', { type: 'checkbox', 'aria-label': 'Select all loaded', onchange: (e: Event) => this.selectAll((e.target as HTMLInputElement).checked) }),
      this.el.listTitle,
      h('button.btn.icon-only', { title: 'Archive (e)', 'aria-label': 'Archive', onclick: () => this.archive(this.targetIds()) }, icon('archive')),
      h('button.btn.icon-only', { title: 'Delete (#)', 'aria-label': 'Delete', onclick: () => this.remove(this.targetIds()) }, icon('trash')),
      h('button.btn.icon-only', { title: 'Mark read/unread', 'aria-label': 'Toggle read', onclick: () => this.toggleRead(this.targetIds()) }, icon('read')),
      h('button.btn.icon-only', { title: 'Flag (s)', 'aria-label': 'Flag', onclick: () => this.toggleFlag(this.targetIds()) }, icon('star')),
      this.el.moveSelect,
    );
    this.el.list = h('section.list', { 'aria-label': 'Messages' }, toolbar, this.el.scroller);
    this.el.reader = h('section.reader', { 'aria-label': 'Reading pane', id: 'reader' });
    this.el.layout = h('div.layout', null, sidebar, this.el.list, this.el.reader);
    const topbar = h(
      'header.topbar',
      null,
      h('button.btn.icon-only.menu-btn', { 'aria-label': 'Mailboxes', onclick: () => sidebar.classList.toggle('open') }, icon('menu')),
      h('div.brand', null, h('span.brand-mark', { 'aria-hidden': 'true' }), h('span', null, 'Bulwark')),
      h('div.search', { role: 'search' }, icon('search'), search, clearBtn),
      h('div.spacer'),
      themeBtn,
      h('button.btn.icon-only', { title: 'Settings', 'aria-label': 'Settings', id: 'open-settings', onclick: () => this.openSettings() }, icon('settings')),
      h('button.btn.icon-only', { title: `Sign out ${this.me}`, 'aria-label': 'Sign out', onclick: () => this.signOut() }, icon('logout')),
    );
    const fab = h('button.btn.primary.fab', { onclick: () => this.compose(), 'aria-label': 'New message' }, icon('pen'), 'Compose');
    clear(this.root, h('div.app', null, topbar, this.el.banner, this.el.layout, fab));
    new ResizeObserver(() => this.renderRows()).observe(this.el.scroller);
    this.reader.renderEmpty();
  }

  private toggleTheme() {
    const dark = document.documentElement.dataset.theme === 'dark';
    localStorage.setItem('bulwark.theme', dark ? 'light' : 'dark');
    window.dispatchEvent(new Event('bulwark-theme'));
    this.el.themeBtn?.replaceChildren(icon(dark ? 'moon' : 'sun'));
    if (this.openId) void this.reader.refresh(true);
  }

  private async signOut() {
    this.destroy();
    await this.auth.logout();
    await cache.clear();
    location.reload();
  }

  renderBanner() {
    const b = this.el.banner;
    if (!b) return;
    const pending = this.outboxItems.length;
    const failed = this.outboxItems.filter((i) => i.failed).length;
    if (!this.net.online) {
      b.textContent = `Offline: the server cannot be reached. Showing saved mail${pending ? `; ${pending} message${pending > 1 ? 's' : ''} waiting in the outbox` : ''}. You stay signed in.`;
      b.classList.add('show');
    } else if (failed) {
      b.textContent = `${failed} message${failed > 1 ? 's' : ''} in the outbox could not be sent: ${this.outboxItems.find((i) => i.failed)?.lastError ?? ''}`;
      b.classList.add('show');
    } else if (pending) {
      b.textContent = `Sending ${pending} message${pending > 1 ? 's' : ''} from the outbox…`;
      b.classList.add('show');
    } else {
      b.classList.remove('show');
    }
  }

  private sortedTree(): { mb: Mailbox; depth: number }[] {
    const byParent = new Map<string | null, Mailbox[]>();
    for (const m of this.mailboxes) {
      const k = m.parentId ?? null;
      byParent.set(k, [...(byParent.get(k) ?? []), m]);
    }
    const rank = (m: Mailbox) => (m.role && ROLE_ORDER.includes(m.role) ? ROLE_ORDER.indexOf(m.role) : 100 + (m.sortOrder ?? 0));
    const out: { mb: Mailbox; depth: number }[] = [];
    const walk = (parent: string | null, depth: number) => {
      const kids = (byParent.get(parent) ?? []).sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
      for (const k of kids) {
        out.push({ mb: k, depth });
        if (depth < 10) walk(k.id, depth + 1);
      }
    };
    walk(null, 0);
    return out;
  }

  renderSidebar() {
    const sb = this.el.sidebar;
    if (!sb) return;
    if (this.dragging) {
      this.renderDeferred = true;
      return;
    }
    const items = this.sortedTree().map(({ mb, depth }) => {
      const active = this.view.kind === 'mailbox' && this.view.mailboxId === mb.id && !this.settingsOpen;
      const btn = h(
        'button.mb',
        {
          class: active ? 'active' : '',
          style: `padding-left:${10 + depth * 14}px`,
          'aria-current': active ? 'page' : undefined,
          'data-mailbox': mb.id,
          'data-role': mb.role ?? undefined,
          onclick: () => {
            sb.classList.remove('open');
            this.openMailbox(mb.id);
          },
          ondragover: (e: DragEvent) => {
            e.preventDefault();
            btn.classList.add('drop');
          },
          ondragleave: () => btn.classList.remove('drop'),
          ondrop: (e: DragEvent) => {
            e.preventDefault();
            btn.classList.remove('drop');
            const ids = (e.dataTransfer?.getData('text/x-bulwark-ids') ?? '').split(',').filter(Boolean);
            if (ids.length) void this.move(ids, mb.id);
          },
        },
        icon(ROLE_ICON[mb.role ?? ''] ?? 'folder'),
        h('span.name', null, mailboxLabel(mb)),
        mb.unreadEmails ? h('span.count', { 'aria-label': `${mb.unreadEmails} unread` }, String(mb.unreadEmails)) : null,
      );
      return h('li', null, btn);
    });
    const outbox = this.outboxItems.length ? h('p.outbox-info', { id: 'outbox-count' }, `Outbox: ${this.outboxItems.length} waiting`) : null;
    const folderName = h('input', { type: 'text', id: 'new-folder-name', 'aria-label': 'New folder name', placeholder: 'New folder', maxlength: '200' }) as HTMLInputElement;
    const newFolder = h(
      'form.new-folder',
      { onsubmit: (e: Event) => {
        e.preventDefault();
        void this.createFolder(folderName.value);
      } },
      folderName,
      h('button.btn.icon-only', { type: 'submit', title: 'Create folder', 'aria-label': 'Create folder' }, icon('plus')),
    );
    clear(
      sb,
      h('button.btn.primary.compose', { onclick: () => this.compose(), title: 'Compose (c)' }, icon('pen'), 'New message'),
      h('ul.mailboxes', null, items),
      newFolder,
      outbox,
    );
    const sel = this.el.moveSelect as HTMLSelectElement;
    clear(sel, h('option', { value: '' }, 'Move to…'), this.sortedTree().map(({ mb, depth }) => h('option', { value: mb.id }, '\u00a0'.repeat(depth * 2) + mb.name)));
  }

  /** Mailbox/set create (RFC 8621 §2.5) of a top-level folder; drag mail onto it to file it. */
  private async createFolder(raw: string) {
    const name = raw.trim();
    if (!name) return;
    try {
      const r = await this.jmap.call('Mailbox/set', { create: { f: { name, parentId: null } } });
      const failed = r.notCreated?.f;
      if (failed) return toast(`Folder not created: ${failed.description ?? failed.type}`);
      toast(`Folder “${name}” created`);
      await this.refreshAll();
    } catch (err) {
      toast(isNetworkError(err) ? 'Offline: creating a folder needs the server' : `Folder not created: ${err instanceof Error ? err.message : err}`);
    }
  }

  listKey(): string {
    return this.view.kind === 'search' ? `search:${this.view.query}` : `mb:${this.view.mailboxId}`;
  }

  filter(): Record<string, unknown> | null {
    if (this.view.kind === 'search') return parseSearch(this.view.query ?? '', this.mailboxes);
    return this.view.mailboxId ? { inMailbox: this.view.mailboxId } : null;
  }

  openMailbox(id: string) {
    // Another mailbox: the reading pane no longer shows a message from the old one.
    if (this.openId && (this.view.kind !== 'mailbox' || this.view.mailboxId !== id)) this.closeReader();
    this.settingsOpen = false;
    this.view = { kind: 'mailbox', mailboxId: id };
    this.lastMailboxId = id;
    const field = document.getElementById('search') as HTMLInputElement | null;
    if (field?.value) field.value = '';
    const clearBtn = document.querySelector<HTMLButtonElement>('.search-clear');
    if (clearBtn) clearBtn.hidden = true;
    this.resetList();
    this.renderSidebar();
    this.showMail();
    const gen = this.generation;
    void this.loadList(true)
      .then(() => this.loadList(false))
      .catch(() => {})
      .finally(() => this.markListReady(gen));
  }

  /** Back from a search to the folder shown before it (the Inbox if it is gone). */
  leaveSearch() {
    const id = this.mailboxes.some((m) => m.id === this.lastMailboxId) ? this.lastMailboxId : (byRole(this.mailboxes, 'inbox') ?? this.mailboxes[0])?.id;
    if (id) this.openMailbox(id);
  }

  openSearch(q: string) {
    if (this.view.kind === 'mailbox' && this.view.mailboxId) this.lastMailboxId = this.view.mailboxId;
    this.settingsOpen = false;
    this.view = { kind: 'search', query: q };
    this.resetList();
    this.renderSidebar();
    this.showMail();
    const gen = this.generation;
    void this.loadList(false)
      .catch((e) => toast(isNetworkError(e) ? 'Search needs the server' : String(e)))
      .finally(() => this.markListReady(gen));
  }

  private resetList() {
    this.ids = [];
    this.total = 0;
    this.rows.clear();
    this.selected.clear();
    this.current = -1;
    this.loadingChunks.clear();
    this.generation++;
    this.listLoading = true;
    this.pendingKeys = [];
    this.el.scroller.setAttribute('aria-busy', 'true');
    this.el.scroller.scrollTop = 0;
    // The old list's rows point at positions of a list that is gone: show "Loading…" instead.
    this.renderRows();
  }

  /**
   * The list of generation `gen` is shown (from the cache or the server) or could not be
   * loaded: keys pressed meanwhile now act on it, in order.
   */
  private markListReady(gen: number) {
    if (gen !== this.generation) return;
    const wasLoading = this.listLoading;
    this.listLoading = false;
    this.el.scroller?.removeAttribute('aria-busy');
    this.renderRows();
    if (wasLoading) replayPendingKeys(this);
  }

  private showMail() {
    if (this.el.settings) {
      this.el.settings.remove();
      delete this.el.settings;
      this.el.list.hidden = false;
      this.el.reader.hidden = false;
    }
  }

  openSettings() {
    this.settingsOpen = true;
    this.renderSidebar();
    this.el.list.hidden = true;
    this.el.reader.hidden = true;
    this.el.settings?.remove();
    this.el.settings = h('main.settings', { 'aria-label': 'Settings' });
    this.el.layout.appendChild(this.el.settings);
    void new Settings(this, this.el.settings).render();
  }

  /** Loads the list: from the cache (fromCache) or the server (first page; the rest on scroll). */
  async loadList(fromCache: boolean) {
    const gen = this.generation;
    const key = this.listKey();
    if (fromCache) {
      const c = await cache.list(key);
      if (!c || gen !== this.generation) return this.renderRows();
      this.ids = c.ids.slice();
      this.total = this.net.online ? c.total : c.ids.length;
      for (const r of c.rows) this.rows.set(r.id, r);
      // A cached empty list may be stale: keys keep waiting for the server's answer then.
      if (c.ids.length || !this.net.online) return this.markListReady(gen);
      return this.renderRows();
    }
    const accountId = this.jmap.accountId;
    const responses = await this.jmap.request([
      ['Email/query', { accountId, filter: this.filter(), sort: [{ property: 'receivedAt', isAscending: false }], position: 0, limit: PAGE * 2, calculateTotal: true }, 'q'],
      ['Email/get', { accountId, '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' }, properties: LIST_PROPERTIES }, 'g'],
    ]);
    if (gen !== this.generation) return;
    const q = responses.find((r) => r[2] === 'q');
    const g = responses.find((r) => r[2] === 'g');
    if (!q || q[0] === 'error') throw new Error(`Email/query failed: ${JSON.stringify(q?.[1] ?? {})}`);
    const ids = q[1].ids as string[];
    this.total = (q[1].total as number) ?? ids.length;
    // A fresh first window; positions further down are refetched lazily.
    this.ids = new Array(this.total);
    ids.forEach((id, i) => (this.ids[i] = id));
    this.loadingChunks.clear();
    for (const e of (g?.[1]?.list ?? []) as Email[]) this.rows.set(e.id, e);
    const known = new Set(ids);
    for (const id of Array.from(this.selected)) if (!known.has(id)) this.selected.delete(id);
    this.markListReady(gen);
    if (this.total <= PREFETCH_IDS_UP_TO) void this.prefetchIds(gen);
    void cache.saveList(key, { ids, total: this.total, rows: ids.map((id) => this.rows.get(id)).filter((e): e is Email => !!e) });
  }

  private async prefetchIds(gen: number) {
    for (let c = 0; c * ID_CHUNK < this.total && gen === this.generation; c++) {
      if (this.ids[c * ID_CHUNK] === undefined || this.ids[Math.min(this.total - 1, (c + 1) * ID_CHUNK - 1)] === undefined) {
        await this.loadIdChunk(c);
      }
    }
  }

  /** Fetches one chunk of ids (positions) of the current query; rows come separately. */
  private async loadIdChunk(chunk: number) {
    if (this.loadingChunks.has(chunk) || !this.net.online) return;
    this.loadingChunks.add(chunk);
    const gen = this.generation;
    try {
      const r = await this.jmap.call('Email/query', {
        filter: this.filter(),
        sort: [{ property: 'receivedAt', isAscending: false }],
        position: chunk * ID_CHUNK,
        limit: ID_CHUNK,
      });
      if (gen !== this.generation) return;
      (r.ids as string[]).forEach((id, i) => (this.ids[chunk * ID_CHUNK + i] = id));
      this.renderRows();
    } catch {
      this.loadingChunks.delete(chunk);
    }
  }

  /** Fetches the list properties of the given (visible) emails. */
  private async loadRowData(ids: string[]) {
    const wanted = ids.filter((id) => !this.loadingRows.has(id));
    if (!wanted.length || !this.net.online) return;
    for (const id of wanted) this.loadingRows.add(id);
    const gen = this.generation;
    try {
      const list = await this.jmap.getEmails(wanted);
      if (gen !== this.generation) return;
      for (const e of list) this.rows.set(e.id, e);
      this.renderRows();
    } catch {
      /* retried on the next render */
    } finally {
      for (const id of wanted) this.loadingRows.delete(id);
    }
  }

  private title(): string {
    if (this.view.kind === 'search') return `Search: ${this.view.query}`;
    const mb = this.mailboxes.find((m) => m.id === this.view.mailboxId);
    return mb ? mailboxLabel(mb) : 'Mail';
  }

  /** Renders only the rows in (and near) the viewport: fast with 50,000 messages. */
  renderRows() {
    const sc = this.el.scroller;
    if (!sc) return;
    if (this.dragging) {
      this.renderDeferred = true;
      return;
    }
    this.el.listTitle.textContent = `${this.title()}${this.total ? ` (${this.total.toLocaleString()})` : ''}`;
    const spacer = this.el.spacer;
    spacer.style.height = `${this.total * ROW_HEIGHT}px`;
    if (this.total === 0) {
      const empty = this.listLoading ? 'Loading…' : this.view.kind === 'search' ? 'No messages match.' : 'No messages here.';
      clear(spacer, h('div.empty', null, empty));
      spacer.style.height = 'auto';
      return;
    }
    const first = Math.max(0, Math.floor(sc.scrollTop / ROW_HEIGHT) - 5);
    // Bounded even if the scroller were not height-constrained (then the page scrolls instead).
    const last = Math.min(this.total - 1, Math.ceil((sc.scrollTop + Math.min(sc.clientHeight || 800, 4000)) / ROW_HEIGHT) + 5);
    const rows: HTMLElement[] = [];
    const missingChunks = new Set<number>();
    const missingRows: string[] = [];
    for (let i = first; i <= last; i++) {
      const id = this.ids[i];
      const e = id ? this.rows.get(id) : undefined;
      if (!id) missingChunks.add(Math.floor(i / ID_CHUNK));
      else if (!e) missingRows.push(id);
      rows.push(this.renderRow(i, e));
    }
    clear(spacer, rows);
    if (this.current >= first && this.current <= last) sc.setAttribute('aria-activedescendant', `row-${this.current}`);
    else sc.removeAttribute('aria-activedescendant');
    for (const c of missingChunks) void this.loadIdChunk(c);
    if (missingRows.length) void this.loadRowData(missingRows);
  }

  private renderRow(i: number, e: Email | undefined): HTMLElement {
    const top = `top:${i * ROW_HEIGHT}px`;
    if (!e) return h('div.row.placeholder', { style: top, 'aria-hidden': 'true' }, h('span'), h('span.from', null, '…'), h('span'), h('span.line2', null, '…'));
    const unread = !e.keywords?.$seen;
    const flagged = !!e.keywords?.$flagged;
    const selected = this.selected.has(e.id);
    const from = e.from?.[0];
    const row = h(
      'div.row',
      {
        style: top,
        role: 'option',
        id: `row-${i}`,
        'aria-selected': selected ? 'true' : 'false',
        'aria-label': `${unread ? 'Unread. ' : ''}${flagged ? 'Flagged. ' : ''}From ${from?.name || from?.email || 'unknown'}: ${e.subject || 'no subject'}, ${formatDate(e.receivedAt)}`,
        'data-id': e.id,
        'data-index': String(i),
        class: [unread ? 'unread' : '', selected ? 'selected' : '', this.current === i ? 'current' : ''].join(' '),
        draggable: 'true',
        ondragstart: (ev: DragEvent) => {
          this.dragging = true;
          const ids = this.selected.has(e.id) ? Array.from(this.selected) : [e.id];
          ev.dataTransfer?.setData('text/x-bulwark-ids', ids.join(','));
          ev.dataTransfer?.setData('text/plain', `${ids.length} message(s)`);
        },
        onclick: (ev: MouseEvent) => {
          if ((ev.target as HTMLElement).tagName === 'INPUT') return;
          if (ev.ctrlKey || ev.metaKey) return this.toggleSelect(e.id);
          if (ev.shiftKey && this.current >= 0) return this.selectRange(this.current, i);
          this.openAt(i);
        },
      },
      h('input', {
        type: 'checkbox',
        // One tab stop for the whole list (the scroller); select with x or a click.
        tabindex: '-1',
        checked: selected,
        'aria-label': `Select message from ${from?.name || from?.email || 'unknown'}`,
        onchange: () => this.toggleSelect(e.id),
      }),
      h('span.from', null, (this.isSentView() ? e.to?.map((a) => a.name || a.email).join(', ') : from?.name || from?.email) || '(unknown)'),
      h('span.date', null, flagged ? h('span.flag', { 'aria-label': 'flagged' }, '★ ') : null, e.hasAttachment ? icon('paperclip', 'has attachments') : null, formatDate(e.receivedAt)),
      this.view.kind === 'search'
        ? h('span.line2', null, this.folderChips(e), h('span.subject', null, this.marked(e.subject || '(no subject)')), e.preview ? [' — ', this.marked(e.preview)] : '')
        : h('span.line2', null, h('span.subject', null, e.subject || '(no subject)'), e.preview ? ` — ${e.preview}` : ''),
    );
    return row;
  }

  /** In a search: where each result is (issue 17 defect 7). */
  private folderChips(e: Email): HTMLElement | null {
    const names = this.sortedTree().filter(({ mb }) => e.mailboxIds?.[mb.id]).map(({ mb }) => mailboxLabel(mb));
    if (!names.length) return null;
    return h('span.folder', { title: `In ${names.join(', ')}` }, names.join(', '));
  }

  /** `text` with the search's words in <mark> (as text nodes: never parsed as HTML). */
  private marked(text: string): (string | HTMLElement)[] {
    return highlightTerms(text, searchTerms(this.view.query ?? '')).map((p) => (p.match ? h('mark', null, p.text) : p.text));
  }

  private isSentView(): boolean {
    const mb = this.mailboxes.find((m) => m.id === this.view.mailboxId);
    return this.view.kind === 'mailbox' && (mb?.role === 'sent' || mb?.role === 'drafts');
  }

  toggleSelect(id: string) {
    if (this.selected.has(id)) this.selected.delete(id);
    else this.selected.add(id);
    this.renderRows();
  }

  private selectRange(from: number, to: number) {
    const [a, b] = from < to ? [from, to] : [to, from];
    for (let i = a; i <= b; i++) {
      const id = this.ids[i];
      if (id) this.selected.add(id);
    }
    this.renderRows();
  }

  private selectAll(on: boolean) {
    this.selected.clear();
    if (on) for (const id of this.ids) if (id) this.selected.add(id);
    this.renderRows();
  }

  /** Selected messages, or the open one. */
  targetIds(): string[] {
    if (this.selected.size) return Array.from(this.selected);
    return this.openId ? [this.openId] : [];
  }

  openAt(i: number) {
    const id = this.ids[i];
    if (!id) return;
    this.current = i;
    const e = this.rows.get(id);
    this.openId = id;
    this.el.layout.classList.add('reading');
    this.renderRows();
    this.ensureVisible(i);
    const mbDrafts = byRole(this.mailboxes, 'drafts');
    if (e && mbDrafts && e.mailboxIds?.[mbDrafts.id] && e.keywords?.$draft) {
      void this.reader.openDraft(e);
      return;
    }
    if (e) void this.reader.open(e);
  }

  closeReader() {
    this.openId = null;
    this.el.layout.classList.remove('reading');
    this.reader.renderEmpty();
  }

  private ensureVisible(i: number) {
    const sc = this.el.scroller;
    const top = i * ROW_HEIGHT;
    if (top < sc.scrollTop) sc.scrollTop = top;
    else if (top + ROW_HEIGHT > sc.scrollTop + sc.clientHeight) sc.scrollTop = top + ROW_HEIGHT - sc.clientHeight;
  }

  get readerEl(): HTMLElement {
    return this.el.reader;
  }

  // ---------- actions ----------

  /** Applies a patch optimistically to the loaded rows, then on the server. */
  async patch(ids: string[], patch: (e: Email) => Record<string, unknown>, optimistic: (e: Email) => void, undo?: string) {
    if (!ids.length) return;
    const patches: Record<string, Record<string, unknown>> = {};
    for (const id of ids) {
      const e = this.rows.get(id);
      if (!e) continue;
      patches[id] = patch(e);
      optimistic(e);
    }
    this.renderRows();
    try {
      await this.jmap.updateEmails(patches);
      if (undo) toast(undo);
    } catch (err) {
      toast(isNetworkError(err) ? 'Offline: that change needs the server' : `Failed: ${err instanceof Error ? err.message : err}`);
      this.scheduleRefresh();
    }
  }

  toggleRead(ids: string[]) {
    const anyUnread = ids.some((id) => !this.rows.get(id)?.keywords?.$seen);
    return this.patch(ids, () => ({ 'keywords/$seen': anyUnread ? true : null }), (e) => {
      e.keywords = { ...e.keywords };
      if (anyUnread) e.keywords.$seen = true;
      else delete e.keywords.$seen;
    });
  }

  markRead(id: string) {
    const e = this.rows.get(id);
    if (!e || e.keywords?.$seen) return;
    void this.patch([id], () => ({ 'keywords/$seen': true }), (x) => (x.keywords = { ...x.keywords, $seen: true }));
  }

  toggleFlag(ids: string[]) {
    const anyUnflagged = ids.some((id) => !this.rows.get(id)?.keywords?.$flagged);
    return this.patch(ids, () => ({ 'keywords/$flagged': anyUnflagged ? true : null }), (e) => {
      e.keywords = { ...e.keywords };
      if (anyUnflagged) e.keywords.$flagged = true;
      else delete e.keywords.$flagged;
    });
  }

  /** Moves to `target`; `extra` are more patch entries for each (keywords). */
  async move(ids: string[], target: string, extra: Record<string, unknown> = {}) {
    if (!ids.length || !target) return;
    const name = this.mailboxes.find((m) => m.id === target)?.name ?? 'folder';
    const patches: Record<string, Record<string, unknown>> = {};
    // Where each one was, for Undo (the notice puts them back).
    const before: Record<string, Record<string, unknown>> = {};
    for (const id of ids) {
      patches[id] = { ...extra, mailboxIds: { [target]: true } };
      const was = this.rows.get(id)?.mailboxIds;
      if (was) before[id] = { mailboxIds: { ...was } };
    }
    this.removeFromList(ids);
    try {
      await this.jmap.updateEmails(patches);
      const undo = Object.keys(before).length
        ? {
            label: 'Undo',
            ms: 8000,
            run: () => {
              this.jmap
                .updateEmails(before)
                .then(() => toast(`${Object.keys(before).length} message${ids.length > 1 ? 's' : ''} moved back`))
                .catch((e) => toast(`Undo failed: ${e instanceof Error ? e.message : e}`))
                .finally(() => this.scheduleRefresh());
            },
          }
        : undefined;
      toast(`${ids.length} message${ids.length > 1 ? 's' : ''} moved to ${name}`, undo);
    } catch (err) {
      toast(isNetworkError(err) ? 'Offline: moving needs the server' : `Move failed: ${err instanceof Error ? err.message : err}`);
    }
    this.scheduleRefresh();
  }

  private moveSelected(target: string) {
    (this.el.moveSelect as HTMLSelectElement).value = '';
    void this.move(this.targetIds(), target);
  }

  archive(ids: string[]) {
    const archive = byRole(this.mailboxes, 'archive');
    if (!archive) return toast('No Archive mailbox');
    return this.move(ids, archive.id);
  }

  /** Whether the list shows the Junk mailbox (Report spam there becomes Not spam). */
  inJunk(): boolean {
    const junk = byRole(this.mailboxes, 'junk');
    return !!junk && this.view.mailboxId === junk.id;
  }

  /**
   * Report spam: into the Junk mailbox, keyword `$junk` (and not `$notjunk`). The server's
   * spam trainer learns from the move into Junk whoever makes it (it watches the change feed).
   */
  reportSpam(ids: string[]) {
    const junk = byRole(this.mailboxes, 'junk');
    if (!junk) return toast('No Junk mailbox');
    return this.move(ids, junk.id, { 'keywords/$junk': true, 'keywords/$notjunk': null });
  }

  /** Not spam: back to the Inbox, keyword `$notjunk` (the trainer learns it as wanted mail). */
  notSpam(ids: string[]) {
    const inbox = byRole(this.mailboxes, 'inbox');
    if (!inbox) return toast('No Inbox');
    return this.move(ids, inbox.id, { 'keywords/$notjunk': true, 'keywords/$junk': null });
  }

  async remove(ids: string[]) {
    const trash = byRole(this.mailboxes, 'trash');
    if (!ids.length) return;
    if (trash && this.view.mailboxId !== trash.id) return this.move(ids, trash.id);
    this.removeFromList(ids);
    try {
      await this.jmap.destroyEmails(ids);
      toast(`${ids.length} message${ids.length > 1 ? 's' : ''} deleted for good`);
    } catch (err) {
      toast(`Delete failed: ${err instanceof Error ? err.message : err}`);
    }
    this.scheduleRefresh();
  }

  /** Drops ids from the visible list and opens the next message, like every mail client. */
  private removeFromList(ids: string[]) {
    const gone = new Set(ids);
    const wasOpen = this.openId && gone.has(this.openId);
    this.ids = this.ids.filter((id) => !id || !gone.has(id));
    this.total = Math.max(0, this.total - ids.length);
    for (const id of ids) this.selected.delete(id);
    if (wasOpen) {
      const next = Math.min(this.current, this.total - 1);
      if (next >= 0 && this.ids[next]) this.openAt(next);
      else this.closeReader();
    }
    this.renderRows();
  }

  compose(init?: Parameters<Composer['open']>[0]) {
    new Composer(this).open(init);
  }

  /**
   * Queues for the outbox (offline) or sends now, held for the undo window (Settings → Undo
   * send) so the composer can take it back; `undo` cancels it and returns the draft's id.
   */
  async send(msg: import('./outbox').OutgoingMessage, draftId?: string, at?: Date): Promise<{ result: 'sent' | 'queued'; undoSeconds: number; undo?: () => Promise<string> }> {
    if (!this.net.online && !at) {
      await this.outbox.enqueue(msg);
      return { result: 'queued', undoSeconds: 0 };
    }
    const ctx = this.sendContext(msg.from.email);
    const undoSeconds = undoSendSeconds();
    try {
      const sent = await sendMessage(this.jmap, msg, ctx, draftId, at ?? undoSeconds);
      const undo = async () => {
        await undoSend(this.jmap, sent, ctx);
        return sent.emailId;
      };
      return { result: 'sent', undoSeconds, undo: (at || undoSeconds > 0) && sent.submissionId ? undo : undefined };
    } catch (e) {
      if (isNetworkError(e) && !at) {
        await this.outbox.enqueue(msg);
        return { result: 'queued', undoSeconds: 0 };
      }
      throw e;
    }
  }

  // ---------- keyboard (src/shortcuts.ts) ----------

  /** Keyboard shortcuts (also called for keys pressed inside the mail frame). */
  handleKey(e: KeyboardEvent) {
    handleShortcut(this, e);
  }

  /** The message list's scroller (the list's one tab stop). */
  get scroller(): HTMLElement | undefined {
    return this.el.scroller;
  }
}

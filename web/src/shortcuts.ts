// Keyboard shortcuts of the mail view, also for keys pressed inside the mail frame:
// j/k next/previous, r reply, a reply all, f forward, e archive, # delete, s flag, u read/unread,
// x select, o/Enter open, c compose, / search, ? help, Esc close.
//
// A list key (j/k/o/Enter/x) pressed while a mailbox or search is still loading would act on a
// list that is not there yet and be lost; it is queued instead and replayed, in order, once the
// list is shown (MailApp.markListReady → replayPendingKeys).
import type { MailApp } from './app';
import { h } from './dom';

/** Every shortcut with what it does: the `?` help lists these. */
export const SHORTCUTS: [string, string][] = [
  ['j / k', 'Next / previous message'],
  ['o, Enter', 'Open the message'],
  ['x', 'Select the message'],
  ['r', 'Reply'],
  ['a', 'Reply to all'],
  ['f', 'Forward'],
  ['e', 'Archive'],
  ['#', 'Delete'],
  ['!', 'Report spam (in Junk: Not spam)'],
  ['s', 'Flag / unflag'],
  ['u', 'Mark read / unread'],
  ['c', 'New message'],
  ['/', 'Search'],
  ['Ctrl+Enter', 'Send (in the composer)'],
  ['Esc', 'Close the message, the composer or this help'],
  ['?', 'This help'],
];

/** Shows (or hides) the keyboard help dialog; Escape or the button closes it. */
export function toggleShortcutHelp() {
  const open = document.getElementById('shortcut-help');
  if (open) {
    open.remove();
    return;
  }
  const close = () => document.getElementById('shortcut-help')?.remove();
  const closeBtn = h('button.btn', { type: 'button', onclick: close }, 'Close') as HTMLButtonElement;
  const dialog = h(
    'div#shortcut-help',
    {
      role: 'dialog',
      'aria-modal': 'true',
      'aria-labelledby': 'shortcut-help-title',
      onkeydown: (e: KeyboardEvent) => {
        if (e.key === 'Escape' || e.key === '?') {
          e.preventDefault();
          e.stopPropagation();
          close();
        }
      },
    },
    h('h2', { id: 'shortcut-help-title' }, 'Keyboard shortcuts'),
    h('table', null, SHORTCUTS.map(([keys, what]) => h('tr', null, h('th', null, h('kbd', null, keys)), h('td', null, what)))),
    closeBtn,
  );
  document.body.appendChild(dialog);
  closeBtn.focus();
}

/** Typing into these never triggers a shortcut. */
const EDITABLE = new Set(['INPUT', 'TEXTAREA', 'SELECT']);
/** Keys that move in or act on the message list: queued while it loads. */
const LIST_KEYS = new Set(['j', 'k', 'o', 'Enter', 'x']);
/** At most this many keys wait for a loading list (a held-down key must not pile up). */
export const MAX_PENDING_KEYS = 20;

/** What the shortcuts need of the mail app (a subset of MailApp, so tests can fake it). */
export type ShortcutHost = Pick<
  MailApp,
  'openId' | 'rows' | 'total' | 'current' | 'ids' | 'openAt' | 'reader' | 'archive' | 'remove' | 'reportSpam' | 'notSpam' | 'inJunk' | 'toggleFlag' | 'toggleRead' | 'toggleSelect' | 'targetIds' | 'compose' | 'closeReader' | 'scroller' | 'listLoading' | 'pendingKeys'
>;

export function handleShortcut(app: ShortcutHost, e: KeyboardEvent) {
  const t = e.target as HTMLElement;
  if (t && (EDITABLE.has(t.tagName) || t.isContentEditable)) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.querySelector('.composer')) return;
  if (e.key === 'Enter' && e.target !== app.scroller) return;
  if (app.listLoading && LIST_KEYS.has(e.key)) {
    if (app.pendingKeys.length < MAX_PENDING_KEYS) app.pendingKeys.push(e.key);
    e.preventDefault();
    return;
  }
  if (runShortcut(app, e.key)) e.preventDefault();
}

/** Runs the keys that arrived while the list was loading (called once it is shown). */
export function replayPendingKeys(app: ShortcutHost) {
  for (const key of app.pendingKeys.splice(0)) runShortcut(app, key);
}

/** Performs the action of one key; false if the key is not a shortcut. */
function runShortcut(app: ShortcutHost, key: string): boolean {
  const open = app.openId ? app.rows.get(app.openId) : undefined;
  switch (key) {
    case 'j':
      app.openAt(Math.min(app.total - 1, app.current + 1));
      break;
    case 'k':
      app.openAt(Math.max(0, app.current - 1));
      break;
    case 'r':
      if (open) void app.reader.reply('reply');
      break;
    case 'a':
      if (open) void app.reader.reply('replyAll');
      break;
    case 'f':
      if (open) void app.reader.reply('forward');
      break;
    case 'e':
      void app.archive(app.targetIds());
      break;
    case '#':
      void app.remove(app.targetIds());
      break;
    case '!':
      void (app.inJunk() ? app.notSpam(app.targetIds()) : app.reportSpam(app.targetIds()));
      break;
    case 's':
      void app.toggleFlag(app.targetIds());
      break;
    case 'u':
      if (open) void app.toggleRead([open.id]);
      break;
    case 'Enter':
    case 'o':
      app.openAt(Math.max(0, app.current));
      break;
    case 'x':
      if (app.current >= 0 && app.ids[app.current]) app.toggleSelect(app.ids[app.current] as string);
      break;
    case 'c':
      app.compose();
      break;
    case '/':
      (document.getElementById('search') as HTMLInputElement)?.focus();
      break;
    case '?':
      toggleShortcutHelp();
      break;
    case 'Escape':
      app.closeReader();
      break;
    default:
      return false;
  }
  return true;
}

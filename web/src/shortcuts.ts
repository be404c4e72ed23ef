// Keyboard shortcuts of the mail view, also for keys pressed inside the mail frame:
// j/k next/previous, r reply, a reply all, f forward, e archive, # delete, s flag, u read/unread,
// x select, o/Enter open, c compose, / search, Esc close.
import type { MailApp } from './app';

/** Typing into these never triggers a shortcut. */
const EDITABLE = new Set(['INPUT', 'TEXTAREA', 'SELECT']);

export function handleShortcut(app: MailApp, e: KeyboardEvent) {
  const t = e.target as HTMLElement;
  if (t && (EDITABLE.has(t.tagName) || t.isContentEditable)) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.querySelector('.composer')) return;
  const open = app.openId ? app.rows.get(app.openId) : undefined;
  switch (e.key) {
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
    case 's':
      void app.toggleFlag(app.targetIds());
      break;
    case 'u':
      if (open) void app.toggleRead([open.id]);
      break;
    case 'Enter':
    case 'o':
      if (e.target !== app.scroller && e.key === 'Enter') return;
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
    case 'Escape':
      app.closeReader();
      break;
    default:
      return;
  }
  e.preventDefault();
}

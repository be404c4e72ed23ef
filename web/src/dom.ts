// Minimal DOM building: h('div.cls#id', {attrs, on*: handlers}, ...children).
type Child = Node | string | number | null | undefined | false | Child[];

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K | string,
  attrs: Record<string, unknown> | null = null,
  ...children: Child[]
): HTMLElement {
  const [name, ...rest] = tag.split(/(?=[.#])/);
  const el = document.createElement(name || 'div');
  for (const part of rest) {
    if (part.startsWith('.')) el.classList.add(part.slice(1));
    else if (part.startsWith('#')) el.id = part.slice(1);
  }
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
      } else if (k === 'class') {
        for (const c of String(v).split(/\s+/).filter(Boolean)) el.classList.add(c);
      } else if (k === 'value' && 'value' in el) {
        (el as HTMLInputElement).value = String(v);
      } else if (k === 'checked' && 'checked' in el) {
        (el as HTMLInputElement).checked = Boolean(v);
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function clear(el: Element, ...children: Child[]) {
  el.replaceChildren();
  append(el, children);
}

/** Inline SVG icons (paths from a 24×24 grid), so the strict CSP needs no icon font. */
const ICONS: Record<string, string> = {
  inbox: 'M4 4h16v12h-5l-1 3h-4l-1-3H4z',
  send: 'M3 20l18-8L3 4v6l12 2-12 2z',
  draft: 'M4 20h4L19 9l-4-4L4 16zM14 6l4 4',
  trash: 'M6 7h12l-1 13H7zM9 7V4h6v3M4 7h16',
  archive: 'M3 4h18v4H3zM5 8v12h14V8M10 12h4',
  junk: 'M12 3l9 16H3zM12 10v4M12 17v.5',
  folder: 'M3 6h6l2 2h10v11H3z',
  plus: 'M12 5v14M5 12h14',
  star: 'M12 3l2.7 5.6 6.3.9-4.5 4.4 1 6.1L12 17l-5.5 3 1-6.1L3 9.5l6.3-.9z',
  reply: 'M10 8V4L3 11l7 7v-4c5 0 8 1.5 11 6-1-6-4-11-11-12z',
  replyAll: 'M7 8V4L0 11l7 7v-4M13 8V4L6 11l7 7v-4c5 0 8 1.5 11 6-1-6-4-11-11-12z',
  forward: 'M14 8V4l7 7-7 7v-4c-5 0-8 1.5-11 6 1-6 4-11 11-12z',
  mail: 'M3 5h18v14H3zM3 6l9 7 9-7',
  read: 'M3 9l9-6 9 6v11H3zM3 9l9 6 9-6',
  search: 'M10 3a7 7 0 105 12l5 5 1.5-1.5-5-5A7 7 0 0010 3zm0 2a5 5 0 110 10 5 5 0 010-10z',
  settings: 'M4 6h9M17 6h3M4 12h3M11 12h9M4 18h11M19 18h1M15 4v4M9 10v4M17 16v4',
  moon: 'M20 14A8 8 0 019.9 4 8 8 0 1020 14z',
  sun: 'M12 7a5 5 0 100 10 5 5 0 000-10zM12 1v3M12 20v3M1 12h3M20 12h3M4 4l2 2M18 18l2 2M4 20l2-2M18 6l2-2',
  menu: 'M3 6h18M3 12h18M3 18h18',
  close: 'M5 5l14 14M19 5L5 19',
  paperclip: 'M16 6l-8 8a2 2 0 003 3l8-8a4 4 0 00-6-6l-8 8a6 6 0 008 8l7-7',
  pen: 'M4 20h4L20 8l-4-4L4 16z',
  back: 'M15 5l-7 7 7 7',
  logout: 'M15 4h4v16h-4M10 8l-4 4 4 4M6 12h11',
  image: 'M3 5h18v14H3zM3 16l5-5 4 4 3-3 6 6M15 9a1 1 0 100-.1',
  shield: 'M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6zM12 8v5M12 16v.01',
};

export function icon(name: string, label?: string): SVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', label ? 'false' : 'true');
  if (label) svg.setAttribute('aria-label', label);
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name] ?? ICONS.folder);
  svg.appendChild(path);
  return svg;
}

export function formatDate(iso: string, now = new Date()): string {
  const d = new Date(iso);
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.getFullYear() === now.getFullYear()) return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  return d.toLocaleDateString();
}

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} GB`;
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;
/** A notice at the bottom; with `action`, a button (e.g. Undo) for as long as it is shown. */
export function toast(message: string, action?: { label: string; ms: number; run: () => void }) {
  let el = document.getElementById('toast');
  if (!el) {
    el = h('div#toast', { role: 'status', 'aria-live': 'polite' });
    document.body.appendChild(el);
  }
  el.textContent = message;
  if (action) {
    const button = h('button.toast-action', {
      type: 'button',
      onclick: () => {
        clearTimeout(toastTimer);
        el?.classList.remove('show');
        action.run();
      },
    }, action.label);
    el.append(' ', button);
  }
  el.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el?.classList.remove('show'), action?.ms ?? 3500);
}

/** A Copy button that puts `text` on the clipboard (a secret shown once: app passwords,
 * recovery codes), saying so in a notice. */
export function copyButton(text: () => string, what: string, id?: string): HTMLElement {
  return h('button.btn.copy', {
    type: 'button',
    id,
    'aria-label': `Copy ${what}`,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text());
        toast(`${what[0].toUpperCase()}${what.slice(1)} copied`);
      } catch {
        toast('Copying is not allowed here: select the text and copy it');
      }
    },
  }, 'Copy');
}

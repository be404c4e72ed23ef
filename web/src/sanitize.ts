// HTML mail sanitiser. Two layers keep hostile mail harmless:
//  1. this sanitiser (DOMPurify with a strict allow-list, then our own pass) removes scripts,
//     event handlers, javascript:/data: links, forms, embeds, and every remote resource
//     (img src/srcset, CSS url(), @import) unless the user allowed remote content;
//  2. the result is shown in an <iframe sandbox> without allow-scripts whose document carries
//     its own Content-Security-Policy (default-src 'none'; remote images only after consent).
import DOMPurify from 'dompurify';

export interface SanitizeOptions {
  /** Load remote images (the user clicked "show images"). */
  allowRemote: boolean;
  /** cid: → object URL of the inline part, if already fetched. */
  cidMap?: Record<string, string>;
}

export interface Sanitized {
  html: string;
  /** Remote resources removed (the "show images" bar appears when > 0). */
  blockedRemote: number;
  /** Links whose visible text names a different host than their real target. */
  suspiciousLinks: number;
}

const FORBID_TAGS = [
  'script', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'form', 'input', 'button',
  'select', 'textarea', 'option', 'meta', 'link', 'base', 'svg', 'math', 'template', 'noscript',
  'audio', 'video', 'source', 'track', 'portal', 'dialog', 'title', 'head',
];
const FORBID_ATTR = ['action', 'formaction', 'srcdoc', 'ping', 'background', 'poster', 'xlink:href', 'autofocus', 'tabindex'];
const SAFE_LINK = /^(https?:|mailto:|tel:|#)/i;
const REMOTE = /^(https?:)?\/\//i;
// Legacy/obscure CSS that can run code or fetch in old engines.
const CSS_DANGEROUS = /(expression\s*\(|behavior\s*:|-moz-binding|javascript:)/gi;
/**
 * CSS functions that can fetch (or take a URL as a plain string) other than url(): removed
 * whatever their arguments, before and after consent. url() is rewritten (cleanUrl).
 */
const CSS_FETCHING_FUNCTIONS = new Set([
  'image-set', '-webkit-image-set', 'cross-fade', '-webkit-cross-fade', 'image', 'element', '-moz-element', 'src', 'attr',
  'expression', // IE
]);
/** At-rules that fetch: @import (a style sheet), @font-face (its src descriptor: a font). */
const CSS_FETCHING_AT_RULES = new Set(['import', 'font-face']);

function isRemote(url: string): boolean {
  return REMOTE.test(url.trim());
}

const isHex = (c: string) => /^[0-9a-f]$/i.test(c);
const isNameStart = (c: string | undefined) => c !== undefined && (/^[a-z_]$/i.test(c) || c.charCodeAt(0) >= 0x80);
const isNameChar = (c: string | undefined) => c !== undefined && (isNameStart(c) || /^[0-9-]$/.test(c));
/** CSS Syntax §4.3.8: a backslash not followed by a newline (or the end) starts an escape. */
const isEscape = (s: string, i: number) => s[i] === '\\' && i + 1 < s.length && !/[\n\r\f]/.test(s[i + 1]);

/** Decodes the escape at s[i] (a backslash); returns the character and the index after it (CSS Syntax §4.3.7). */
function readEscape(s: string, i: number): [string, number] {
  let j = i + 1;
  if (!isHex(s[j] ?? '')) return [s[j] ?? '', j + 1];
  let hex = '';
  while (hex.length < 6 && isHex(s[j] ?? '')) hex += s[j++];
  if (/[ \t\n\r\f]/.test(s[j] ?? '')) j += s[j] === '\r' && s[j + 1] === '\n' ? 2 : 1;
  const cp = parseInt(hex, 16);
  const valid = cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
  return [valid ? String.fromCodePoint(cp) : '\ufffd', j];
}

/** Reads a name (identifier characters and escapes) at s[i]: its raw text, decoded value, end. */
function readName(s: string, i: number): { raw: string; name: string; end: number } {
  let j = i;
  let name = '';
  while (j < s.length) {
    if (isNameChar(s[j])) name += s[j++];
    else if (isEscape(s, j)) {
      const [c, next] = readEscape(s, j);
      name += c;
      j = next;
    } else break;
  }
  return { raw: s.slice(i, j), name, end: j };
}

/** Would an identifier start at s[i]? (CSS Syntax §4.3.9) */
function startsName(s: string, i: number): boolean {
  if (isNameStart(s[i]) || isEscape(s, i)) return true;
  if (s[i] === '-') return isNameStart(s[i + 1]) || s[i + 1] === '-' || isEscape(s, i + 1);
  return false;
}

/** Index just after the string starting with the quote at s[i]. */
function skipString(s: string, i: number): number {
  const q = s[i];
  let j = i + 1;
  while (j < s.length && s[j] !== q && !/[\n\r\f]/.test(s[j])) j += s[j] === '\\' ? 2 : 1;
  return Math.min(s.length, j + 1);
}

/** Index after whitespace and comments from s[i]. */
function skipBlank(s: string, i: number): number {
  let j = i;
  for (;;) {
    if (/[ \t\n\r\f]/.test(s[j] ?? '')) j++;
    else if (s.startsWith('/*', j)) {
      const e = s.indexOf('*/', j + 2);
      j = e < 0 ? s.length : e + 2;
    } else return j;
  }
}

/** Index just after the `close` matching an `open` before s[i] (strings, comments, nesting respected). */
function skipBalanced(s: string, i: number, open = '(', close = ')'): number {
  let depth = 1;
  let j = i;
  while (j < s.length) {
    const c = s[j];
    if (c === '"' || c === "'") j = skipString(s, j);
    else if (s.startsWith('/*', j)) j = skipBlank(s, j);
    else if (c === '\\') j += 2;
    else {
      if (c === open) depth++;
      else if (c === close && --depth === 0) return j + 1;
      j++;
    }
  }
  return s.length;
}

/** Index after an at-rule whose prelude starts at s[i]: after its `;` or its `{…}` block. */
function skipAtRule(s: string, i: number): number {
  let j = i;
  while (j < s.length) {
    const c = s[j];
    if (c === '"' || c === "'") j = skipString(s, j);
    else if (s.startsWith('/*', j)) j = skipBlank(s, j);
    else if (c === '\\') j += 2;
    else if (c === '(') j = skipBalanced(s, j + 1);
    else if (c === ';') return j + 1;
    else if (c === '{') return skipBalanced(s, j + 1, '{', '}');
    else j++;
  }
  return s.length;
}

/** The URL inside url( … ): a string argument or the raw url token, escapes decoded. */
function urlValue(inner: string): string {
  const from = skipBlank(inner, 0);
  const q = inner[from];
  let body = inner.slice(from).trim();
  if (q === '"' || q === "'") {
    const end = skipString(inner, from);
    body = inner.slice(from + 1, inner[end - 1] === q && end - 1 > from ? end - 1 : end);
  }
  let out = '';
  for (let j = 0; j < body.length; ) {
    if (body[j] === '\\') {
      const [c, next] = readEscape(body, j);
      out += c;
      j = next;
    } else out += body[j++];
  }
  return out.trim();
}

/** A url() after the policy: data: images kept, cid: resolved, remote only after consent; else none. */
function cleanUrl(u: string, opts: SanitizeOptions, count: { n: number }): string {
  const quoted = (x: string) => `url('${x.replace(/['"\\\n\r\f]/g, '')}')`;
  if (/^data:image\//i.test(u)) return quoted(u);
  if (/^cid:/i.test(u)) {
    const resolved = opts.cidMap?.[u.slice(4).replace(/^<|>$/g, '')];
    return resolved ? quoted(resolved) : 'none';
  }
  if (isRemote(u) && opts.allowRemote && /^https?:/i.test(u)) return quoted(u);
  if (isRemote(u)) count.n++;
  return 'none';
}

/**
 * Rewrites CSS text (a style attribute or a <style> element) so that it cannot fetch: one pass
 * over the text as CSS tokenises it (comments, strings, escapes such as `\75 rl(` = `url(`,
 * names compared case-insensitively), so no spelling of a fetching function gets through.
 * url() follows the remote-content policy; the other fetching functions and at-rules go.
 */
function cleanCss(css: string, opts: SanitizeOptions, count: { n: number }): string {
  let out = '';
  let i = 0;
  while (i < css.length) {
    const c = css[i];
    if (css.startsWith('/*', i)) {
      i = skipBlank(css, i);
      out += ' ';
    } else if (c === '"' || c === "'") {
      const end = skipString(css, i);
      out += css.slice(i, end);
      i = end;
    } else if (c === '@' && startsName(css, i + 1)) {
      const { raw, name, end } = readName(css, i + 1);
      if (CSS_FETCHING_AT_RULES.has(name.toLowerCase())) {
        count.n++;
        i = skipAtRule(css, end);
      } else {
        out += '@' + raw;
        i = end;
      }
    } else if (startsName(css, i)) {
      const { raw, name, end } = readName(css, i);
      const paren = skipBlank(css, end);
      const fn = name.toLowerCase();
      if (css[paren] === '(' && fn === 'url') {
        const close = skipBalanced(css, paren + 1);
        out += cleanUrl(urlValue(css.slice(paren + 1, css[close - 1] === ')' ? close - 1 : close)), opts, count);
        i = close;
      } else if (css[paren] === '(' && CSS_FETCHING_FUNCTIONS.has(fn)) {
        count.n++;
        out += 'none';
        i = skipBalanced(css, paren + 1);
      } else {
        out += raw;
        i = end;
      }
    } else if (c === '\\') {
      // A backslash that starts no name (before a newline or at the end): copied as is.
      out += css.slice(i, i + 2);
      i += 2;
    } else {
      out += c;
      i++;
    }
  }
  return out.replace(CSS_DANGEROUS, '');
}

function hostOf(url: string): string | null {
  try {
    return new URL(url).hostname.toLowerCase().replace(/^www\./, '');
  } catch {
    return null;
  }
}

/** If the visible text looks like a URL or domain, the host it names. */
function textHost(text: string): string | null {
  const t = text.trim();
  const m = /^(?:https?:\/\/)?((?:[a-z0-9-]+\.)+[a-z]{2,})(?:[/:?#]\S*)?$/i.exec(t);
  return m ? m[1].toLowerCase().replace(/^www\./, '') : null;
}

/**
 * `<base>` never survives (DOMPurify drops it), but merely parsing one makes Chromium check it
 * against the app's CSP (`base-uri 'none'`) — the inert parse document inherits it — and log a
 * violation for every such mail. Renamed to an unknown element first, which is dropped too.
 */
function withoutBaseTags(html: string): string {
  return html.replace(/<(\/?)base(?=[\t\n\f\r />]|$)/gi, '<$1x-base');
}

export function sanitizeHtml(input: string, opts: SanitizeOptions = { allowRemote: false }): Sanitized {
  const count = { n: 0 };
  let suspicious = 0;
  const purify = DOMPurify();
  purify.addHook('uponSanitizeElement', (node, data) => {
    if (data.tagName === 'style' && node.textContent != null) {
      node.textContent = cleanCss(node.textContent, opts, count);
    }
  });
  purify.addHook('afterSanitizeAttributes', (node) => {
    const el = node as Element;
    if (el.hasAttribute('style')) {
      el.setAttribute('style', cleanCss(el.getAttribute('style') ?? '', opts, count));
    }
    if (el.tagName === 'IMG') {
      const src = (el.getAttribute('src') ?? '').trim();
      if (el.hasAttribute('srcset')) {
        el.removeAttribute('srcset');
        count.n++;
      }
      if (/^cid:/i.test(src)) {
        const resolved = opts.cidMap?.[src.slice(4).replace(/^<|>$/g, '')];
        if (resolved) el.setAttribute('src', resolved);
        else el.removeAttribute('src');
      } else if (/^data:image\/(png|gif|jpe?g|webp|bmp);/i.test(src)) {
        // inline image data: allowed
      } else if (isRemote(src) && /^(https?:)?\/\//i.test(src)) {
        if (opts.allowRemote) {
          el.setAttribute('src', src.startsWith('//') ? 'https:' + src : src);
        } else {
          el.setAttribute('data-blocked-src', src);
          el.removeAttribute('src');
          count.n++;
        }
      } else {
        el.removeAttribute('src');
      }
    }
    if (el.tagName === 'A' || el.tagName === 'AREA') {
      const href = (el.getAttribute('href') ?? '').trim();
      if (!href || !SAFE_LINK.test(href)) {
        el.removeAttribute('href');
      } else if (!href.startsWith('#')) {
        el.setAttribute('target', '_blank');
        el.setAttribute('rel', 'noopener noreferrer nofollow');
        el.setAttribute('title', href);
        const shown = textHost(el.textContent ?? '');
        const real = hostOf(href);
        if (shown && real && shown !== real && !real.endsWith('.' + shown)) {
          el.setAttribute('data-suspicious', 'true');
          el.setAttribute('title', `Warning: this link goes to ${href}`);
          suspicious++;
        }
      }
    }
    for (const attr of Array.from(el.attributes)) {
      if (/^on/i.test(attr.name)) el.removeAttribute(attr.name);
    }
  });
  const html = purify.sanitize(withoutBaseTags(input), {
    WHOLE_DOCUMENT: false,
    FORBID_TAGS,
    FORBID_ATTR,
    ADD_TAGS: ['style'],
    ALLOW_DATA_ATTR: false,
    ADD_ATTR: ['target'],
    ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto|tel|cid|blob):|data:image\/(?:png|gif|jpe?g|webp|bmp);|#|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
    FORCE_BODY: true,
    SANITIZE_NAMED_PROPS: true,
  }) as unknown as string;
  return { html, blockedRemote: count.n, suspiciousLinks: suspicious };
}

/** Escapes text for HTML. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** Plain text mail → HTML with clickable links (safe: text is escaped first). */
export function textToHtml(text: string): string {
  const escaped = escapeHtml(text);
  const linked = escaped.replace(/\bhttps?:\/\/[^\s<>"']+/g, (u) => `<a href="${u}">${u}</a>`);
  return `<div class="plain">${linked.replace(/\r?\n/g, '<br>')}</div>`;
}

/**
 * The complete document for the reading frame: the frame's own CSP (no scripts at all, remote
 * images only when allowed), base styles, then the sanitised mail.
 */
/**
 * Does the mail choose its own colours (a `color` or `background` in a style, or the old
 * `color`/`bgcolor`/`background` attributes)? Such a mail was designed on a light page: shown
 * with the dark theme's light text it turns unreadable (white on its own light highlights,
 * its dark headings on the dark page), so it keeps a light sheet (issue 17 defect 6).
 */
export function choosesOwnColours(sanitizedHtml: string): boolean {
  return /(?:^|[\s;"'{])(?:color|background(?:-color)?)\s*:/i.test(sanitizedHtml) || /\s(?:color|bgcolor|background)\s*=/i.test(sanitizedHtml);
}

export function frameDocument(sanitizedHtml: string, opts: { allowRemote: boolean; dark: boolean }): string {
  const img = opts.allowRemote ? "img-src data: blob: https: http:" : 'img-src data: blob:';
  const csp = `default-src 'none'; ${img}; style-src 'unsafe-inline'; font-src data:; script-src 'none'; form-action 'none'; base-uri 'none'`;
  const dark = opts.dark && !choosesOwnColours(sanitizedHtml);
  // A styled mail in the dark theme: a light sheet with rounded corners on the dark page.
  const colors = dark
    ? 'color:#e6e6e6;background:#1e1f22'
    : opts.dark
      ? 'color:#1b1b1f;background:#ffffff;border-radius:8px;padding:12px 14px!important'
      : 'color:#1b1b1f;background:#ffffff';
  const link = dark ? '#8ab4ff' : '#1d4ed8';
  return (
    `<!doctype html><html><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="${csp}">` +
    `<meta name="referrer" content="no-referrer">` +
    `<style>html,body{margin:0;padding:0}body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;${colors};` +
    `padding:4px 2px;overflow-wrap:anywhere}img{max-width:100%;height:auto}a{color:${link}}` +
    `a[data-suspicious]{outline:2px dashed #d97706}.plain{white-space:normal;font-family:inherit}` +
    `blockquote{margin:0 0 0 .5em;padding-left:.8em;border-left:3px solid #9ca3af;color:inherit}pre{white-space:pre-wrap}</style>` +
    `</head><body>${sanitizedHtml}</body></html>`
  );
}

/** Elements whose content is never text a reader sees. */
const NOT_TEXT = new Set(['SCRIPT', 'STYLE', 'HEAD', 'TITLE', 'TEMPLATE', 'NOSCRIPT', 'SVG', 'MATH', 'OBJECT', 'IFRAME', 'SELECT', 'META', 'LINK']);
/** Elements that start and end a line. */
const BLOCK = new Set([
  'ADDRESS', 'ARTICLE', 'ASIDE', 'BLOCKQUOTE', 'CENTER', 'DD', 'DIV', 'DL', 'DT', 'FIELDSET', 'FIGCAPTION', 'FIGURE', 'FOOTER', 'FORM',
  'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'HEADER', 'HR', 'LI', 'MAIN', 'NAV', 'OL', 'P', 'PRE', 'SECTION', 'TABLE', 'TBODY', 'THEAD', 'TFOOT', 'TR', 'UL',
]);
/** Blocks followed by an empty line, as they are shown. */
const PARAGRAPH = new Set(['P', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'TABLE', 'UL', 'OL', 'BLOCKQUOTE', 'PRE']);

/**
 * The text of an HTML mail as it reads when shown (for quoting it in a reply or forward):
 * paragraphs and line breaks kept, list items as "- ", quotes as "> ", links as "text <url>".
 * The HTML is parsed by DOMParser into an inert document — nothing in it is fetched or run, and
 * it never touches the app's own document.
 */
export function htmlToText(html: string): string {
  const doc = new DOMParser().parseFromString(withoutBaseTags(html), 'text/html');
  const root = doc.body ?? doc.documentElement;
  let text: string;
  try {
    text = renderText(root);
  } catch {
    // Nesting deeper than the stack (a hostile mail): the plain text content will do.
    text = root.textContent ?? '';
  }
  return text.replace(/[ \t]+\n/g, '\n').replace(/\n{3,}/g, '\n\n').trim();
}

function renderText(root: Node): string {
  let out = '';
  const atLineStart = () => out === '' || out.endsWith('\n');
  // Looks only at the end of `out` (a regex anchored at $ would scan all of it, each time).
  const newlines = (n: number) => {
    if (out === '') return;
    let have = 0;
    while (have < n && out[out.length - 1 - have] === '\n') have++;
    if (have < n) out += '\n'.repeat(n - have);
  };
  const walk = (node: Node, pre: boolean) => {
    if (node.nodeType === 3) {
      let t = node.nodeValue ?? '';
      if (!pre) {
        t = t.replace(/[ \t\n\r\f]+/g, ' ');
        if (atLineStart() || out.endsWith(' ')) t = t.replace(/^ /, '');
      }
      out += t;
      return;
    }
    if (node.nodeType !== 1) return;
    const el = node as Element;
    const tag = el.tagName.toUpperCase();
    if (NOT_TEXT.has(tag)) return;
    if (tag === 'BR') {
      if (out.endsWith(' ')) out = out.slice(0, -1);
      out += '\n';
      return;
    }
    if (tag === 'HR') {
      newlines(1);
      out += '----------\n';
      return;
    }
    if (tag === 'IMG') {
      const alt = (el.getAttribute('alt') ?? '').trim();
      if (alt) out += `[${alt}]`;
      return;
    }
    if (tag === 'BLOCKQUOTE') {
      newlines(2);
      const inner = renderText(el).replace(/\n{3,}/g, '\n\n').trim();
      if (inner) out += inner.split('\n').map((l) => (l ? `> ${l}` : '>')).join('\n') + '\n';
      newlines(2);
      return;
    }
    const block = BLOCK.has(tag);
    if (block) newlines(PARAGRAPH.has(tag) ? 2 : 1);
    if (tag === 'LI') {
      const ol = el.parentElement?.tagName.toUpperCase() === 'OL';
      out += ol ? `${Array.from(el.parentElement?.children ?? []).filter((c) => c.tagName.toUpperCase() === 'LI').indexOf(el) + 1}. ` : '- ';
    }
    if ((tag === 'TD' || tag === 'TH') && !atLineStart() && !out.endsWith(' ')) out += ' ';
    for (const c of Array.from(el.childNodes)) walk(c, pre || tag === 'PRE');
    if (tag === 'A') {
      const href = (el.getAttribute('href') ?? '').trim();
      const text = (el.textContent ?? '').trim();
      if (/^https?:/i.test(href) && text && text !== href && text.replace(/\/$/, '') !== href.replace(/\/$/, '')) out += ` <${href}>`;
    }
    if (block) newlines(PARAGRAPH.has(tag) ? 2 : 1);
  };
  for (const c of Array.from(root.childNodes)) walk(c, false);
  return out;
}

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
const CSS_URL = /url\(\s*(['"]?)(.*?)\1\s*\)/gi;
const CSS_IMPORT = /@import\s+[^;]+;?/gi;
// Legacy/obscure CSS that can run code or fetch in old engines.
const CSS_DANGEROUS = /(expression\s*\(|behavior\s*:|-moz-binding|javascript:)/gi;

function isRemote(url: string): boolean {
  return REMOTE.test(url.trim());
}

/** Rewrites url(...) in CSS text: keeps data:/cid:-resolved URLs, drops remote unless allowed. */
function cleanCss(css: string, opts: SanitizeOptions, count: { n: number }): string {
  let out = css.replace(CSS_IMPORT, () => {
    count.n++;
    return '';
  });
  out = out.replace(CSS_DANGEROUS, '');
  out = out.replace(CSS_URL, (_m, _q, url: string) => {
    const u = url.trim();
    if (/^data:image\//i.test(u)) return `url('${u.replace(/['"\\]/g, '')}')`;
    if (/^cid:/i.test(u)) {
      const resolved = opts.cidMap?.[u.slice(4).replace(/^<|>$/g, '')];
      return resolved ? `url('${resolved}')` : 'none';
    }
    if (isRemote(u) && opts.allowRemote && /^https?:/i.test(u)) return `url('${u.replace(/['"\\]/g, '')}')`;
    if (isRemote(u)) count.n++;
    return 'none';
  });
  return out;
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
  const html = purify.sanitize(input, {
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
export function frameDocument(sanitizedHtml: string, opts: { allowRemote: boolean; dark: boolean }): string {
  const img = opts.allowRemote ? "img-src data: blob: https: http:" : 'img-src data: blob:';
  const csp = `default-src 'none'; ${img}; style-src 'unsafe-inline'; font-src data:; script-src 'none'; form-action 'none'; base-uri 'none'`;
  const colors = opts.dark ? 'color:#e6e6e6;background:#1e1f22' : 'color:#1b1b1f;background:#ffffff';
  const link = opts.dark ? '#8ab4ff' : '#1d4ed8';
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

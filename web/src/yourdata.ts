// Settings → Your data: "Upload mail" (an mbox or one .eml into a folder, POST /migrate/import)
// and "Download my data" (the whole account as a Bulwark archive in one .tar, GET
// /migrate/export). Both carry the Bearer token in the Authorization header — the server takes
// no cookie — so the download is fetched and saved from a Blob URL, not a plain link.
import { OfflineError } from './auth';
import { clear, formatSize, h, toast } from './dom';
import type { Mailbox } from './jmap';
import type { MailApp } from './app';

export const MBOX_TYPE = 'application/mbox';
export const MESSAGE_TYPE = 'message/rfc822';

/** What the server answers for an upload. */
export interface ImportResult {
  kind?: string;
  imported: number;
  skipped: number;
  failed: number;
  failures: string[];
  foldersCreated: string[];
}

/** The Content-Type of a chosen file: by its extension, else by its start (an mbox begins with
 * a `From ` line; Thunderbird's local folders have no extension). */
export async function uploadType(file: Blob & { name?: string }): Promise<string> {
  const name = (file.name ?? '').toLowerCase();
  if (name.endsWith('.eml')) return MESSAGE_TYPE;
  if (name.endsWith('.mbox') || name.endsWith('.mbx')) return MBOX_TYPE;
  const head = await readText(file.slice(0, 512));
  return /^\s*From /.test(head) ? MBOX_TYPE : MESSAGE_TYPE;
}

function readText(b: Blob): Promise<string> {
  if (typeof b.text === 'function') return b.text();
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result ?? ''));
    r.onerror = () => reject(r.error);
    r.readAsText(b);
  });
}

/** The full `/`-separated path of a mailbox (the server's folder names). */
export function mailboxPath(m: Mailbox, all: Mailbox[]): string {
  const parts = [m.name];
  let parent = m.parentId;
  for (let depth = 0; parent && depth < 64; depth++) {
    const p = all.find((x) => x.id === parent);
    if (!p) break;
    parts.unshift(p.name);
    parent = p.parentId;
  }
  return parts.join('/');
}

/** One sentence for an upload's answer. */
export function describeImport(r: ImportResult): string {
  const parts = [`Imported ${r.imported} message${r.imported === 1 ? '' : 's'}`];
  if (r.skipped) parts.push(`${r.skipped} already here (skipped)`);
  if (r.failed) parts.push(`${r.failed} could not be imported`);
  let s = parts.join(', ') + '.';
  if (r.foldersCreated?.length) s += ` New folder${r.foldersCreated.length === 1 ? '' : 's'}: ${r.foldersCreated.join(', ')}.`;
  return s;
}

/** POSTs the file with upload progress (fetch has none); refreshes the token once on 401. */
async function postUpload(app: MailApp, url: string, file: File, type: string, onProgress: (sent: number, total: number) => void): Promise<{ status: number; json: any }> {
  for (let attempt = 0; ; attempt++) {
    const token = await app.auth.accessToken();
    const r = await new Promise<{ status: number; json: any }>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', url);
      xhr.setRequestHeader('Authorization', `Bearer ${token}`);
      xhr.setRequestHeader('Content-Type', type);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded, e.total);
      };
      xhr.onload = () => {
        let json: any = {};
        try {
          json = JSON.parse(xhr.responseText);
        } catch {
          /* not JSON */
        }
        resolve({ status: xhr.status, json });
      };
      xhr.onerror = () => reject(new OfflineError('The upload did not get through: the server cannot be reached, or the file is larger than it takes'));
      xhr.send(file);
    });
    if (r.status === 401 && attempt === 0) {
      await app.auth.refresh();
      continue;
    }
    return r;
  }
}

export class YourData {
  constructor(private app: MailApp) {}

  render(): HTMLElement {
    return h('div.grid', null, this.upload(), this.download());
  }

  private upload(): HTMLElement {
    const file = h('input', { type: 'file', id: 'data-upload-file', accept: '.mbox,.mbx,.eml,application/mbox,message/rfc822' }) as HTMLInputElement;
    const all = this.app.mailboxes;
    const folders = all
      .filter((m) => m.role !== 'inbox')
      .map((m) => mailboxPath(m, all))
      .sort((a, b) => a.localeCompare(b));
    const folder = h('select', { id: 'data-upload-folder' },
      h('option', { value: '' }, 'Inbox'),
      folders.map((f) => h('option', { value: f }, f))) as HTMLSelectElement;
    const submit = h('button.btn.primary', { type: 'submit', id: 'data-upload-submit' }, 'Upload') as HTMLButtonElement;
    const bar = h('progress', { id: 'data-upload-progress', max: '100', value: '0', hidden: true, 'aria-label': 'Upload progress', style: 'width:100%' }) as HTMLProgressElement;
    const status = h('p', { id: 'data-upload-status', role: 'status', 'aria-live': 'polite' });
    const details = h('div');
    const form = h('form.grid', {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const f = file.files?.[0];
        clear(details);
        status.classList.remove('error');
        status.textContent = '';
        if (!f) {
          status.classList.add('error');
          status.textContent = 'Choose a file first (.mbox, .mbx or .eml).';
          file.focus();
          return;
        }
        const type = await uploadType(f);
        const q = folder.value ? `?folder=${encodeURIComponent(folder.value)}` : '';
        submit.disabled = true;
        bar.hidden = false;
        bar.value = 0;
        status.textContent = `Uploading ${f.name} (${formatSize(f.size)})…`;
        try {
          const r = await postUpload(this.app, `/migrate/import${q}`, f, type, (sent, total) => {
            bar.value = Math.round((sent * 100) / Math.max(1, total));
            status.textContent = sent < total ? `Uploading ${f.name}: ${formatSize(sent)} of ${formatSize(total)}…` : 'Importing…';
          });
          if (r.status !== 200) throw new Error(r.json.description ?? `The server answered ${r.status}`);
          const result = r.json as ImportResult;
          status.textContent = describeImport(result);
          if (result.failures?.length) {
            details.appendChild(h('details', { id: 'data-upload-failures' },
              h('summary', null, `What could not be imported (${result.failed})`),
              h('ul', null, result.failures.slice(0, 50).map((line) => h('li', null, line)))));
          }
          file.value = '';
          await this.app.refreshAll().catch(() => {});
        } catch (err) {
          status.classList.add('error');
          status.textContent = `Not imported: ${err instanceof Error ? err.message : err}`;
        } finally {
          submit.disabled = false;
          bar.hidden = true;
        }
      },
    },
    h('h3', { style: 'margin:0;font-size:15px' }, 'Upload mail'),
    h('p.muted', { style: 'margin:0' }, 'Bring mail from another provider or app: an mbox file (.mbox, .mbx — what Thunderbird, Apple Mail and Google Takeout export) or one message (.eml). Flags and dates are kept; messages already in the folder are skipped, so uploading the same file again is safe.'),
    h('label', null, 'File', file),
    h('label', null, 'Into folder', folder),
    h('div', null, submit),
    bar,
    status,
    details);
    return form;
  }

  private download(): HTMLElement {
    const button = h('button.btn', { type: 'button', id: 'data-download' }, 'Download my data') as HTMLButtonElement;
    const status = h('p', { id: 'data-download-status', role: 'status', 'aria-live': 'polite' });
    button.addEventListener('click', async () => {
      button.disabled = true;
      status.classList.remove('error');
      status.textContent = 'Preparing your archive…';
      try {
        const res = await this.app.auth.fetch('/migrate/export');
        if (!res.ok) {
          const json = await res.json().catch(() => ({}));
          throw new Error(json.description ?? `The server answered ${res.status}`);
        }
        const name = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') ?? '')?.[1] ?? 'bulwark-data.tar';
        const chunks: BlobPart[] = [];
        let received = 0;
        const reader = res.body?.getReader();
        if (reader) {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            chunks.push(value);
            received += value.length;
            status.textContent = `Downloading: ${formatSize(received)}…`;
          }
        } else {
          chunks.push(await res.blob());
        }
        const url = URL.createObjectURL(new Blob(chunks, { type: 'application/x-tar' }));
        const a = h('a', { href: url, download: name, hidden: true });
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60_000);
        status.textContent = `Saved ${name} (${formatSize(received)}). Untarred, bulwark import restores it on any Bulwark server.`;
      } catch (err) {
        status.classList.add('error');
        const why = err instanceof Error ? err.message : String(err);
        status.textContent = `Download failed: ${why}`;
        toast(`Download failed: ${why}`);
      } finally {
        button.disabled = false;
      }
    });
    return h('div.grid', { style: 'margin-top:20px;padding-top:20px;border-top:1px solid var(--border)' },
      h('h3', { style: 'margin:0;font-size:15px' }, 'Download my data'),
      h('p.muted', { style: 'margin:0' }, 'Everything in your account — every folder with its mail, flags and dates, your identities and vacation response — as one .tar file. Untarred, it is a Bulwark archive that ', h('code', null, 'bulwark import'), ' restores exactly, here or on any other Bulwark server.'),
      h('div', null, button),
      status);
  }
}

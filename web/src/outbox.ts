// Outbox: mail composed while the server is unreachable waits here (IndexedDB) and is sent, in
// order, when the server is back. A send that fails because the network is down stays queued;
// a send the server refuses is kept with its error so the user can fix it.
import { isNetworkError } from './auth';

export interface OutgoingAttachment {
  name: string;
  type: string;
  size: number;
  /** Set once uploaded. */
  blobId?: string;
  /** The file itself while it is not uploaded yet (IndexedDB stores Blobs). */
  data?: Blob;
}

export interface OutgoingMessage {
  from: { name: string; email: string };
  identityId?: string;
  /** Mailboxes as typed or formatted (`Bob <bob@x>`, `"Doe, Jane" <j@x>`, `bob@x`): mail.ts keeps the names. */
  to: string[];
  cc: string[];
  bcc: string[];
  subject: string;
  text: string;
  inReplyTo?: string[];
  references?: string[];
  attachments: OutgoingAttachment[];
  /** Our own Message-ID, so a resend after a lost answer can be recognised. */
  messageId: string;
  /** A reply or forward: the mail it answers, which gets this keyword once it is sent. */
  original?: { emailId: string; keyword: '$answered' | '$forwarded' };
  /** For drafts kept on the device: the server draft this one replaces. */
  draftId?: string;
}

export interface OutboxItem {
  id: string;
  createdAt: number;
  message: OutgoingMessage;
  attempts: number;
  lastError?: string;
  /** True when the server refused it (will not be retried automatically). */
  failed?: boolean;
}

export interface OutboxStorage {
  all(): Promise<OutboxItem[]>;
  put(item: OutboxItem): Promise<void>;
  delete(id: string): Promise<void>;
}

export type Sender = (m: OutgoingMessage) => Promise<void>;

export class Outbox {
  private flushing: Promise<number> | null = null;
  onChange: (items: OutboxItem[]) => void = () => {};

  constructor(private storage: OutboxStorage, private send: Sender) {}

  async items(): Promise<OutboxItem[]> {
    return (await this.storage.all()).sort((a, b) => a.createdAt - b.createdAt);
  }

  async enqueue(message: OutgoingMessage): Promise<OutboxItem> {
    const item: OutboxItem = { id: `ob-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`, createdAt: Date.now(), message, attempts: 0 };
    await this.storage.put(item);
    this.onChange(await this.items());
    return item;
  }

  async remove(id: string): Promise<void> {
    await this.storage.delete(id);
    this.onChange(await this.items());
  }

  /** Sends queued messages in order; stops at the first network failure. Returns how many were sent. */
  flush(): Promise<number> {
    if (!this.flushing) {
      // One tab at a time (Web Locks): two open tabs must not send the same message twice.
      const locks = (globalThis.navigator as Navigator | undefined)?.locks;
      const run: Promise<number> = locks ? (locks.request('bulwark-outbox', () => this.doFlush()) as unknown as Promise<number>) : this.doFlush();
      this.flushing = run.finally(() => {
        this.flushing = null;
      });
      return this.flushing;
    }
    return this.flushing;
  }

  private async doFlush(): Promise<number> {
    let sent = 0;
    for (const item of await this.items()) {
      if (item.failed) continue;
      item.attempts += 1;
      try {
        await this.send(item.message);
        await this.storage.delete(item.id);
        sent++;
      } catch (e) {
        item.lastError = e instanceof Error ? e.message : String(e);
        if (isNetworkError(e)) {
          await this.storage.put(item);
          break;
        }
        item.failed = true;
        await this.storage.put(item);
      }
    }
    this.onChange(await this.items());
    return sent;
  }
}

/** A fresh RFC 5322 Message-ID for our domain. */
export function newMessageId(address: string): string {
  const domain = address.split('@')[1] || 'localhost';
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('');
  return `${Date.now().toString(36)}.${rand}@${domain}`;
}

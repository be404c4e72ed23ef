import { OUTBOX, idbAll, idbDelete, idbPut } from './idb';
import type { OutboxItem, OutboxStorage } from './outbox';

export const idbOutbox: OutboxStorage = {
  all: () => idbAll<OutboxItem>(OUTBOX),
  put: (item) => idbPut(OUTBOX, item),
  delete: (id) => idbDelete(OUTBOX, id),
};

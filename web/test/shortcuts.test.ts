import { describe, expect, it } from 'vitest';
import { handleShortcut, MAX_PENDING_KEYS, replayPendingKeys, type ShortcutHost } from '../src/shortcuts';

/** A list of `n` messages; openAt behaves like MailApp's (no id at i: nothing happens). */
function fakeApp(n: number, loading: boolean) {
  const opened: number[] = [];
  const scroller = document.createElement('div');
  const app = {
    openId: null as string | null,
    rows: new Map(),
    total: loading ? 0 : n,
    current: -1,
    ids: loading ? [] : Array.from({ length: n }, (_, i) => `m${i}`),
    listLoading: loading,
    pendingKeys: [] as string[],
    scroller,
    openAt(i: number) {
      if (!app.ids[i]) return;
      app.current = i;
      opened.push(i);
    },
    targetIds: () => [],
    closeReader() {},
    compose() {},
    toggleSelect() {},
  };
  /** The list arrives (what MailApp.markListReady does before replaying). */
  const arrive = () => {
    app.ids = Array.from({ length: n }, (_, i) => `m${i}`);
    app.total = n;
    app.listLoading = false;
    replayPendingKeys(app as unknown as ShortcutHost);
  };
  return { app: app as unknown as ShortcutHost & { current: number }, opened, arrive, scroller };
}

function press(app: ShortcutHost, key: string, target: EventTarget) {
  const e = new KeyboardEvent('keydown', { key, cancelable: true });
  Object.defineProperty(e, 'target', { value: target });
  handleShortcut(app, e);
  return e;
}

describe('keyboard shortcuts while the list loads', () => {
  it('a list key pressed before the list is shown is kept and acts once it is', () => {
    const { app, opened, arrive, scroller } = fakeApp(5, true);
    expect(press(app, 'k', scroller).defaultPrevented).toBe(true);
    press(app, 'j', scroller);
    press(app, 'j', scroller);
    expect(opened).toEqual([]);
    arrive();
    // k opens row 0 (it stops at the top), then j, j: rows 1 and 2, in the order pressed.
    expect(opened).toEqual([0, 1, 2]);
    expect(app.current).toBe(2);
    expect(app.pendingKeys).toEqual([]);
  });

  it('keys act at once on a shown list', () => {
    const { app, opened, scroller } = fakeApp(3, false);
    press(app, 'k', scroller);
    press(app, 'j', scroller);
    expect(opened).toEqual([0, 1]);
  });

  it('a held-down key does not pile up without bound', () => {
    const { app, scroller } = fakeApp(3, true);
    for (let i = 0; i < MAX_PENDING_KEYS * 3; i++) press(app, 'j', scroller);
    expect(app.pendingKeys.length).toBe(MAX_PENDING_KEYS);
  });

  it('typing in a field is never a shortcut, loading or not', () => {
    const { app } = fakeApp(3, true);
    const input = document.createElement('input');
    expect(press(app, 'k', input).defaultPrevented).toBe(false);
    expect(app.pendingKeys).toEqual([]);
  });
});

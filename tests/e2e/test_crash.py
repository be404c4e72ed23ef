"""Crash safety: every message acknowledged with 250 survives SIGKILL exactly once."""

import re
import smtplib
import sys
import threading
import time
import unittest

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, ServerTestCase, imap_check, make_message,
                     safe_logout, wait_until)

SENDERS = 8
TOTAL = 2000
KILL_AFTER_FRACTION = 0.4
SEND_DEADLINE = 240.0  # whole sending phase, both sides of the crash


class CrashTest(ServerTestCase):

    def test_acknowledged_messages_survive_sigkill_exactly_once(self):
        per_sender = TOTAL // SENDERS
        lock = threading.Lock()
        acked: set[str] = set()
        attempted: set[str] = set()
        errors: list[str] = []
        killed = threading.Event()
        restarted = threading.Event()
        stop = threading.Event()
        deadline = time.monotonic() + SEND_DEADLINE

        def connect():
            s = self.server.smtp()
            s.ehlo("crash-client.test")
            return s

        def sender(idx: int):
            ids = [f"<crash-{idx}-{i}-{time.time_ns()}@e2e.test>" for i in range(per_sender)]
            s = None
            i = 0
            while i < per_sender and not stop.is_set() and time.monotonic() < deadline:
                mid = ids[i]
                try:
                    if s is None:
                        if killed.is_set() and not restarted.is_set():
                            restarted.wait(1.0)
                            continue
                        s = connect()
                    with lock:
                        attempted.add(mid)
                    body = f"message {i} from sender {idx}\r\n" + ("lorem ipsum " * 20 + "\r\n") * 3
                    s.sendmail("load@remote.test", [ALICE],
                               make_message(f"crash {idx}-{i}", message_id=mid, body=body))
                    with lock:
                        acked.add(mid)
                    i += 1
                except (smtplib.SMTPException, OSError) as exc:
                    # The message in flight is not acknowledged; move on (a retry after a crash
                    # may legitimately duplicate an unacknowledged message, which we do not count).
                    if not killed.is_set():
                        with lock:
                            errors.append(f"sender {idx} msg {i}: {exc!r}")
                    i += 1
                    try:
                        if s is not None:
                            s.close()
                    except Exception:  # noqa: BLE001
                        pass
                    s = None
            if s is not None:
                try:
                    s.quit()
                except Exception:  # noqa: BLE001
                    pass

        threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(SENDERS)]
        started = time.monotonic()
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) >= TOTAL * KILL_AFTER_FRACTION or
                   not any(t.is_alive() for t in threads),
                   SEND_DEADLINE, f"{int(TOTAL * KILL_AFTER_FRACTION)} acknowledged messages",
                   interval=0.01)
        killed.set()
        self.server.kill9()
        with lock:
            acked_at_kill = len(acked)
        rate = acked_at_kill / max(time.monotonic() - started, 1e-6)
        # Restart on the same data dir; the store must open without repair.
        self.server.start()
        restarted.set()
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic()))
        stop.set()
        self.assertFalse(any(t.is_alive() for t in threads), "senders finished in time")
        self.assertFalse(errors, f"errors before the crash: {errors[:5]}")
        self.assertGreaterEqual(acked_at_kill, TOTAL * KILL_AFTER_FRACTION,
                                "enough messages acknowledged before the kill")

        # Count Message-IDs in INBOX over IMAP.
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            typ, data = m.select("INBOX", readonly=True)
            self.assertEqual(typ, "OK", data)
            count = int(data[0])
            found: dict[str, int] = {}
            if count:
                data = imap_check(
                    m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"), "FETCH")
                for item in data:
                    if isinstance(item, tuple):
                        mm = re.search(rb"(?i)message-id:\s*(<[^>]+>)", item[1])
                        if mm:
                            key = mm.group(1).decode()
                            found[key] = found.get(key, 0) + 1
        finally:
            safe_logout(m)

        acked_found = [mid for mid in acked if found.get(mid, 0) >= 1]
        duplicated = [mid for mid in acked if found.get(mid, 0) > 1]
        missing = [mid for mid in acked if found.get(mid, 0) == 0]
        unacked_stored = [mid for mid in attempted - acked if mid in found]
        figures = (f"acknowledged={len(acked)} found={len(acked_found)} "
                   f"duplicated={len(duplicated)} missing={len(missing)} "
                   f"(acknowledged before kill={acked_at_kill}, attempted={len(attempted)}, "
                   f"stored-but-unacknowledged={len(unacked_stored)}, inbox={count}, "
                   f"rate before kill={rate:.0f} msg/s)")
        print(f"\nCRASH TEST FIGURES: {figures}", file=sys.stderr)
        (self.server.dir.parent / "bulwark-crash-figures.txt").write_text(figures + "\n")
        # The embedded store is SQLite: after a clean stop its integrity check must pass
        # (the crash needed no repair: the restarted server served the figures above).
        db = self.server.data_dir / "bulwark.db"
        if db.exists():
            self.server.stop()
            import sqlite3
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                result = con.execute("PRAGMA integrity_check").fetchall()
            finally:
                con.close()
            self.server.start()
            self.assertEqual(result, [("ok",)], f"integrity_check after crash: {result[:5]}")
        self.assertEqual(missing, [], f"acknowledged but missing: {figures}")
        self.assertEqual(duplicated, [], f"duplicated: {figures}")
        self.assertEqual(sum(found.values()), count, "every message has its Message-ID")

    def test_acknowledged_imap_appends_survive_sigkill_exactly_once(self):
        box = "CrashAppend"
        m = self.server.imap(ALICE, ALICE_PW)
        imap_check(m.create(box), "CREATE")
        safe_logout(m)
        writers, per_writer, kill_at = 4, 150, 200
        lock = threading.Lock()
        acked: set[str] = set()
        uid_of: dict[str, int] = {}
        killed = threading.Event()
        errors: list[str] = []

        def writer(idx: int):
            try:
                c = self.server.imap(ALICE, ALICE_PW)
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
                return
            for i in range(per_writer):
                mid = f"<append-{idx}-{i}-{time.time_ns()}@e2e.test>"
                try:
                    typ, data = c.append(box, None, None,
                                         make_message(f"append {idx}-{i}", message_id=mid))
                except Exception as exc:  # noqa: BLE001 - the kill breaks the connection
                    if not killed.is_set():
                        errors.append(f"writer {idx}: {exc!r}")
                    safe_logout(c)
                    return
                if typ == "OK":
                    mm = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0] or b"")
                    with lock:
                        acked.add(mid)
                        if mm:
                            uid_of[mid] = int(mm.group(1))
            safe_logout(c)

        threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(writers)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) >= kill_at or not any(t.is_alive() for t in threads),
                   SEND_DEADLINE, f"{kill_at} acknowledged APPENDs", interval=0.01)
        killed.set()
        self.server.kill9()
        for t in threads:
            t.join(30)
        self.assertFalse(errors, errors[:5])
        with lock:
            acked_ids = set(acked)
        self.server.start()
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            typ, data = m.select(box, readonly=True)
            self.assertEqual(typ, "OK", data)
            found: dict[str, int] = {}
            uid_now: dict[str, int] = {}
            if int(data[0]):
                data = imap_check(m.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"),
                                  "")
                for item in data:
                    if isinstance(item, tuple):
                        mm = re.search(rb"(?i)message-id:\s*(<[^>]+>)", item[1])
                        um = re.search(rb"UID (\d+)", item[0])
                        if mm:
                            key = mm.group(1).decode()
                            found[key] = found.get(key, 0) + 1
                            if um:
                                uid_now[key] = int(um.group(1))
            # UIDs handed out in APPENDUID still name the same messages (RFC 9051 §2.3.1.1),
            # and a new APPEND gets a UID above every UID given out before the crash.
            moved = {mid: (uid, uid_now.get(mid)) for mid, uid in uid_of.items()
                     if mid in uid_now and uid_now[mid] != uid}
            self.assertEqual(moved, {}, "acknowledged APPENDUIDs changed after the crash")
            m2 = self.server.imap(ALICE, ALICE_PW)
            try:
                typ, data = m2.append(box, None, None, make_message("after crash"))
                new_uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
            finally:
                safe_logout(m2)
            highest = max(list(uid_of.values()) + list(uid_now.values()) + [0])
            self.assertGreater(new_uid, highest, "a UID is never reused after a crash")
        finally:
            safe_logout(m)
        missing = [x for x in acked_ids if x not in found]
        duplicated = [x for x in acked_ids if found.get(x, 0) > 1]
        figures = (f"imap-append acknowledged={len(acked_ids)} "
                   f"found={len(acked_ids) - len(missing)} duplicated={len(duplicated)} "
                   f"missing={len(missing)} (mailbox total={sum(found.values())})")
        print(f"\nCRASH TEST FIGURES: {figures}", file=sys.stderr)
        self.assertEqual(missing, [], figures)
        self.assertEqual(duplicated, [], figures)

    def test_repeated_sigkill_during_delivery_loses_nothing(self):
        """Three crash/restart cycles under load (WAL replay after replay)."""
        senders, per_sender, cycles, step = 4, 200, 3, 120
        lock = threading.Lock()
        acked: set[str] = set()
        up = threading.Event()
        up.set()
        done = threading.Event()
        deadline = time.monotonic() + SEND_DEADLINE

        def sender(idx: int):
            s, i = None, 0
            while i < per_sender and not done.is_set() and time.monotonic() < deadline:
                if s is None:
                    if not up.wait(1.0):
                        continue
                    try:
                        s = self.server.smtp()
                        s.ehlo("cycle.test")
                    except (OSError, smtplib.SMTPException, KeyError):
                        s = None
                        continue
                mid = f"<cycle-{idx}-{i}-{time.time_ns()}@e2e.test>"
                try:
                    s.sendmail("load@remote.test", [BOB], make_message(f"cycle {idx}-{i}",
                                                                      to=BOB, message_id=mid))
                    with lock:
                        acked.add(mid)
                except (OSError, smtplib.SMTPException):
                    try:
                        s.close()
                    except Exception:  # noqa: BLE001
                        pass
                    s = None
                i += 1
            if s is not None:
                try:
                    s.quit()
                except Exception:  # noqa: BLE001
                    pass

        threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(senders)]
        for t in threads:
            t.start()
        for cycle in range(1, cycles + 1):
            wait_until(lambda: len(acked) >= cycle * step or not any(t.is_alive() for t in threads),
                       SEND_DEADLINE, f"{cycle * step} acknowledged", interval=0.01)
            up.clear()
            self.server.kill9()
            self.server.start()
            up.set()
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic()))
        done.set()
        m = self.server.imap(BOB, BOB_PW)
        try:
            typ, data = m.select("INBOX", readonly=True)
            self.assertEqual(typ, "OK", data)
            found: dict[str, int] = {}
            data = imap_check(m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"), "FETCH")
            for item in data:
                if isinstance(item, tuple):
                    mm = re.search(rb"(?i)message-id:\s*(<[^>]+>)", item[1])
                    if mm:
                        found[mm.group(1).decode()] = found.get(mm.group(1).decode(), 0) + 1
        finally:
            safe_logout(m)
        missing = [x for x in acked if x not in found]
        duplicated = [x for x in acked if found.get(x, 0) > 1]
        figures = (f"{cycles} kills: acknowledged={len(acked)} "
                   f"found={len(acked) - len(missing)} duplicated={len(duplicated)} "
                   f"missing={len(missing)}")
        print(f"\nCRASH TEST FIGURES: {figures}", file=sys.stderr)
        self.assertEqual(missing, [], figures)
        self.assertEqual(duplicated, [], figures)

    def test_store_reopens_after_crash_during_idle(self):
        # A crash with no traffic at all must not need repair either.
        self.server.kill9()
        self.server.start()
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            imap_check(m.select("INBOX"), "SELECT after crash")
        finally:
            safe_logout(m)
        self.assertEqual(self.server.cli("queue", "list").returncode, 0)


if __name__ == "__main__":
    unittest.main()

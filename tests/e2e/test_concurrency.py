"""Two IMAP sessions on one mailbox see each other's changes, in IDLE too."""

import re
import time
import unittest

from harness import (ALICE, ALICE_PW, DELIVERY_TIMEOUT, RawImap, ServerTestCase, imap_check,
                     imap_search, make_message, safe_logout, wait_until)

NOTIFY_TIMEOUT = 15.0


class IdleSession:
    """Session B: a raw IMAP client (implicit TLS) in IDLE on one mailbox."""

    def __init__(self, server, mailbox: str, user: str = ALICE, pw: str = ALICE_PW):
        self.c: RawImap = server.raw_imap(tls=True)
        self.c.login(user, pw)
        lines = self.c.ok(f'SELECT "{mailbox}"')
        self.exists = next(int(m.group(1)) for l in lines
                           if (m := re.match(rb"\* (\d+) EXISTS", l)))
        self.seen: list[bytes] = []
        self.tag = self.c.tag()
        self.c.send(f"{self.tag} IDLE\r\n".encode())
        line = self.c.read_line()
        while line.startswith(b"* "):  # untagged updates may precede the continuation
            self.seen.append(line)
            line = self.c.read_line()
        if not line.startswith(b"+"):
            raise AssertionError(f"IDLE not accepted: {line!r}")

    def wait_for(self, pattern: bytes, timeout: float = NOTIFY_TIMEOUT) -> re.Match:
        """Reads untagged lines until one matches `pattern` (regex) or the deadline passes."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"IDLE session did not receive {pattern!r} within {timeout:.0f}s; "
                    f"got {self.seen!r}")
            try:
                line = self.c.read_line(remaining)
            except TimeoutError:
                continue
            if not line:
                raise AssertionError(f"server closed the IDLE connection; got {self.seen!r}")
            self.seen.append(line)
            m = rx.match(line)
            if m:
                return m

    def done(self):
        self.c.send(b"DONE\r\n")
        lines = self.c.read_response(self.tag)
        if not lines or b" OK" not in lines[-1]:
            raise AssertionError(f"IDLE did not end with OK: {lines!r}")
        return lines

    def close(self):
        try:
            self.c.send(b"DONE\r\n")
            self.c.send(b"z LOGOUT\r\n")
        except OSError:
            pass
        self.c.close()


class ConcurrencyTest(ServerTestCase):
    n = 0

    def session_a(self):
        m = self.server.imap(ALICE, ALICE_PW)
        self.addCleanup(safe_logout, m)
        return m

    def fresh_mailbox(self, m) -> str:
        ConcurrencyTest.n += 1
        name = f"Shared{ConcurrencyTest.n}"
        imap_check(m.create(name), "CREATE")
        return name

    def idle(self, mailbox: str) -> IdleSession:
        s = IdleSession(self.server, mailbox)
        self.addCleanup(s.close)
        return s

    def test_idle_sees_exists_after_append_by_other_session(self):
        a = self.session_a()
        box = self.fresh_mailbox(a)
        imap_check(a.append(box, None, None, make_message("pre-existing")), "APPEND")
        b = self.idle(box)
        self.assertEqual(b.exists, 1)
        imap_check(a.append(box, None, None, make_message("appended while idle")), "APPEND")
        b.wait_for(rb"\* 2 EXISTS")
        b.done()

    def test_idle_sees_exists_after_smtp_delivery(self):
        b = self.idle("INBOX")
        subject = f"idle-smtp-{time.time_ns()}"
        s = self.server.smtp()
        try:
            s.sendmail("sender@remote.test", [ALICE], make_message(subject))
        finally:
            s.quit()
        b.wait_for(rb"\* %d EXISTS" % (b.exists + 1))
        lines = b.done()
        # After IDLE the new message is fetchable in that same session.
        lines = b.c.ok(f"FETCH {b.exists + 1} (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(subject.encode(), b"".join(lines))

    def test_idle_sees_expunge_by_other_session(self):
        a = self.session_a()
        box = self.fresh_mailbox(a)
        for i in range(3):
            imap_check(a.append(box, None, None, make_message(f"x{i}")), "APPEND")
        b = self.idle(box)
        imap_check(a.select(box), "SELECT")
        imap_check(a.store("2", "+FLAGS", r"(\Deleted)"), "STORE")
        imap_check(a.expunge(), "EXPUNGE")
        b.wait_for(rb"\* 2 EXPUNGE")
        b.done()
        lines = b.c.ok("SEARCH ALL")
        self.assertIn(b"* SEARCH 1 2\r\n", lines)

    def test_idle_sees_flag_change_by_other_session(self):
        a = self.session_a()
        box = self.fresh_mailbox(a)
        imap_check(a.append(box, None, None, make_message("flag me")), "APPEND")
        b = self.idle(box)
        imap_check(a.select(box), "SELECT")
        imap_check(a.store("1", "+FLAGS", r"(\Flagged)"), "STORE")
        b.wait_for(rb"\* 1 FETCH \(.*FLAGS \([^)]*\\Flagged")
        imap_check(a.store("1", "-FLAGS", r"(\Flagged)"), "STORE")
        b.wait_for(rb"\* 1 FETCH \(.*FLAGS \((?![^)]*\\Flagged)[^)]*\)")
        b.done()

    def test_selected_session_sees_changes_on_noop(self):
        a = self.session_a()
        box = self.fresh_mailbox(a)
        imap_check(a.append(box, None, None, make_message("one")), "APPEND")
        c = self.server.imap(ALICE, ALICE_PW, mode="imaps")
        self.addCleanup(safe_logout, c)
        imap_check(c.select(box), "SELECT")
        imap_check(a.append(box, None, None, make_message("two")), "APPEND")

        def saw_exists():
            imap_check(c.noop(), "NOOP")
            return b"2" in (c.untagged_responses.get("EXISTS") or [])
        wait_until(saw_exists, NOTIFY_TIMEOUT, "EXISTS 2 on NOOP in the other session")

        imap_check(a.select(box), "SELECT")
        imap_check(a.store("1", "+FLAGS", r"(\Deleted)"), "STORE")
        imap_check(a.expunge(), "EXPUNGE")

        def saw_expunge():
            imap_check(c.noop(), "NOOP")
            return b"1" in (c.untagged_responses.get("EXPUNGE") or [])
        wait_until(saw_expunge, NOTIFY_TIMEOUT, "EXPUNGE 1 on NOOP in the other session")
        self.assertEqual(imap_search(c, "ALL"), [1])
        self.assertEqual(imap_search(c, "SUBJECT", "two"), [1])

    def test_fetch_of_message_expunged_by_other_session(self):
        a = self.session_a()
        box = self.fresh_mailbox(a)
        for i in range(2):
            imap_check(a.append(box, None, None, make_message(f"gone{i}")), "APPEND")
        c = RawImap(self.server.addr("imaps"))
        self.addCleanup(c.close)
        c.login(ALICE, ALICE_PW)
        c.ok(f"SELECT {box}")
        imap_check(a.select(box), "SELECT")
        imap_check(a.store("1", "+FLAGS", r"(\Deleted)"), "STORE")
        imap_check(a.expunge(), "EXPUNGE")
        # RFC 9051 §7.5.1: EXPUNGE is not sent during FETCH/STORE/SEARCH, so session C still
        # sees 2 messages; fetching the vanished one gives its data or NO, never BAD or a hang.
        lines = c.command("FETCH 1:2 (UID FLAGS)")
        last = lines[-1]
        self.assertRegex(last, rb"^t\d+ (OK|NO)", lines)
        self.assertFalse(any(l.startswith(b"* BYE") for l in lines), lines)
        # NOOP then reports the expunge and the mailbox has one message.
        lines = c.ok("NOOP")
        self.assertIn(b"* 1 EXPUNGE\r\n", lines)
        lines = c.ok("SEARCH ALL")
        self.assertIn(b"* SEARCH 1\r\n", lines)

    def test_idle_sees_move_out_as_expunge_and_move_in_as_exists(self):
        a = self.session_a()
        src, dst = self.fresh_mailbox(a), self.fresh_mailbox(a)
        imap_check(a.append(src, None, None, make_message("mover")), "APPEND")
        b_src = self.idle(src)
        b_dst = self.idle(dst)
        imap_check(a.select(src), "SELECT")
        imap_check(a._simple_command("MOVE", "1", dst), "MOVE")
        b_src.wait_for(rb"\* 1 EXPUNGE")
        b_dst.wait_for(rb"\* 1 EXISTS")

    def test_two_writers_do_not_lose_appends(self):
        a = self.session_a()
        box = self.fresh_mailbox(a)
        c = self.server.imap(ALICE, ALICE_PW, mode="imaps")
        self.addCleanup(safe_logout, c)
        import threading
        errors = []

        def writer(m, prefix):
            try:
                for i in range(20):
                    imap_check(m.append(box, None, None, make_message(f"{prefix}{i}")), "APPEND")
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        ta = threading.Thread(target=writer, args=(a, "a"))
        tc = threading.Thread(target=writer, args=(c, "c"))
        ta.start(); tc.start()
        ta.join(DELIVERY_TIMEOUT * 2); tc.join(DELIVERY_TIMEOUT * 2)
        self.assertFalse(errors, errors)
        imap_check(a.select(box, readonly=True), "SELECT")
        uids = imap_search(a, "ALL", uid=True)
        self.assertEqual(len(uids), 40)
        self.assertEqual(len(set(uids)), 40, "UIDs are unique")


if __name__ == "__main__":
    unittest.main()

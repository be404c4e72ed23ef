"""IMAP to the letter (issue 14): RFC details a client relies on, each checked with a real
client library (Python imaplib, and the IMAPClient package). Each test names its RFC section.
Fast: one server, a few seconds in all."""

from __future__ import annotations

import imaplib
import re
import socket
import time
import unittest

from imapclient import IMAPClient

from harness import (ALICE, ALICE_PW, IO_TIMEOUT, ServerTestCase, fetch_literal, imap_check,
                     imap_search, insecure_tls, safe_logout)


def message(subject: str, extra: str = "", body: str = "body\r\n") -> bytes:
    return (f"From: a@remote.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n{extra}\r\n{body}").encode()


def recent_count(m: imaplib.IMAP4) -> int | None:
    """The last `* n RECENT` imaplib collected (and forgets it)."""
    _, data = m.response("RECENT")
    values = [int(d) for d in data if d is not None]
    return values[-1] if values else None


def recent_uids(m: imaplib.IMAP4) -> set[int]:
    data = imap_check(m.uid("FETCH", "1:*", "(FLAGS)"), "FETCH")
    out = set()
    for line in data:
        if isinstance(line, bytes) and rb"\Recent" in line:
            out.add(int(re.search(rb"UID (\d+)", line).group(1)))
    return out


class ImapLetterTest(ServerTestCase):
    counter = 0

    def login(self) -> imaplib.IMAP4:
        m = self.server.imap(ALICE, ALICE_PW)
        self.addCleanup(safe_logout, m)
        return m

    def client(self) -> IMAPClient:
        host, port = self.server.addr("imap")
        c = IMAPClient(host, port, ssl=False, timeout=IO_TIMEOUT)
        c.starttls(insecure_tls())
        c.login(ALICE, ALICE_PW)
        self.addCleanup(lambda: c.logout())
        return c

    def mailbox(self, m: imaplib.IMAP4, prefix: str) -> str:
        ImapLetterTest.counter += 1
        name = f"{prefix}{ImapLetterTest.counter}x{time.time_ns() % 100000}"
        imap_check(m.create(name), "CREATE")
        return name

    # ---- 1: \Recent (RFC 3501 §2.3.2, §6.3.1, §6.3.10, §6.4.4, §7.3.2) ------------------

    def test_recent_is_given_to_one_session_and_reported_after_select_noop_and_idle(self):
        admin = self.login()
        box = self.mailbox(admin, "Recent")
        for i in range(2):
            imap_check(admin.append(box, None, None, message(f"r{i}")), "APPEND")
        # STATUS (RECENT): nobody was given them yet (RFC 3501 §6.3.10).
        data = imap_check(admin.status(box, "(RECENT MESSAGES)"), "STATUS")
        self.assertIn(b"RECENT 2", data[0])
        # EXAMINE shows them recent without taking them (RFC 3501 §6.3.2).
        ex = self.login()
        imap_check(ex.select(box, readonly=True), "EXAMINE")
        self.assertEqual(recent_count(ex), 2)
        a, b = self.login(), self.login()
        imap_check(a.select(box), "SELECT")
        self.assertEqual(recent_count(a), 2, "the first SELECT gets both as recent")
        imap_check(b.select(box), "SELECT")
        self.assertEqual(recent_count(b), 0, "a second session gets none")
        # RFC 3501 §6.4.4 RECENT, NEW, OLD.
        self.assertEqual(imap_search(a, "RECENT"), [1, 2])
        self.assertEqual(imap_search(b, "RECENT"), [])
        self.assertEqual(imap_search(b, "OLD"), [1, 2])
        imap_check(a.store("1", "+FLAGS", r"(\Seen)"), "STORE")
        self.assertEqual(imap_search(a, "NEW"), [2])
        self.assertEqual(recent_uids(a), {1, 2})
        # A message appended by a session without the mailbox selected: the first of the
        # selecting sessions to hear of it gets it (here `b`, in NOOP), the other does not.
        imap_check(admin.append(box, None, None, message("r-new")), "APPEND")
        imap_check(b.noop(), "NOOP")
        _, exists = b.response("EXISTS")
        self.assertEqual(exists[-1], b"3")
        self.assertEqual(recent_count(b), 1)
        imap_check(a.noop(), "NOOP")
        self.assertEqual(recent_count(a), 2)
        self.assertEqual(recent_uids(b), {3})
        self.assertNotIn(3, recent_uids(a))
        data = imap_check(admin.status(box, "(RECENT)"), "STATUS")
        self.assertIn(b"RECENT 0", data[0])
        # IDLE (RFC 2177) reports EXISTS and RECENT at once (IMAPClient).
        c = self.client()
        c.select_folder(box)
        c.idle()
        try:
            imap_check(admin.append(box, None, None, message("r-idle")), "APPEND")
            got = []
            deadline = time.monotonic() + IO_TIMEOUT
            while time.monotonic() < deadline and (1, b"RECENT") not in got:
                got += c.idle_check(timeout=1)
        finally:
            c.idle_done()
        self.assertIn((4, b"EXISTS"), got)
        self.assertIn((1, b"RECENT"), got)

    def test_imap4rev2_sessions_never_see_recent(self):
        # RFC 9051 §2.3.2: IMAP4rev2 dropped \Recent.
        admin = self.login()
        box = self.mailbox(admin, "Rev2")
        imap_check(admin.append(box, None, None, message("x")), "APPEND")
        c = self.client()
        c.enable("IMAP4rev2")
        info = c.select_folder(box)
        self.assertNotIn(b"RECENT", info)
        self.assertEqual(c.get_flags([1]), {1: ()})
        # The message is still unclaimed for an IMAP4rev1 session.
        m = self.login()
        imap_check(m.select(box), "SELECT")
        self.assertEqual(recent_count(m), 1)

    # ---- 2: keywords announced before use, in the case first written (RFC 3501 §7.2.6,
    # RFC 9051 §7.3.5, §2.3.2) ----------------------------------------------------------

    def test_new_keywords_are_announced_with_flags_before_fetch_and_keep_their_case(self):
        admin = self.login()
        box = self.mailbox(admin, "Kw")
        imap_check(admin.append(box, None, None, message("k")), "APPEND")
        watcher = self.client()
        watcher.select_folder(box)
        writer = self.client()
        writer.select_folder(box)
        writer.add_flags([1], [b"$Forwarded", b"NonJunk"], silent=True)
        _, responses = watcher.noop()
        kinds = [r[1] if isinstance(r[0], int) else r[0] for r in responses]
        self.assertIn(b"FLAGS", kinds, responses)
        self.assertIn(b"FETCH", kinds, responses)
        self.assertLess(kinds.index(b"FLAGS"), kinds.index(b"FETCH"), responses)
        flags = next(r[1] for r in responses if r[0] == b"FLAGS")
        self.assertIn(b"$Forwarded", flags)
        self.assertIn(b"NonJunk", flags)
        # Same keywords in another case: compared case-insensitively, shown as first written.
        writer.add_flags([1], [b"nonjunk", b"$FORWARDED"], silent=True)
        m = self.login()
        typ, data = m.select(box)
        self.assertEqual(typ, "OK")
        _, announced = m.response("FLAGS")
        self.assertIn(b"$Forwarded NonJunk", announced[-1])
        data = imap_check(m.fetch("1", "(FLAGS)"), "FETCH")
        self.assertIn(b"$Forwarded", data[0])
        self.assertIn(b"NonJunk", data[0])
        self.assertNotIn(b"nonjunk", data[0])
        self.assertEqual(imap_search(m, "KEYWORD", "NONJUNK"), [1])

    def test_concurrent_keyword_writers_never_fetch_an_unannounced_keyword(self):
        """Several sessions set random new keywords at once; every session's stream is read in
        order: each keyword a FETCH shows was announced by that session's FLAGS before, no
        EXPUNGE comes during FETCH/STORE, and MODSEQs of a message never go back."""
        import random
        import threading
        admin = self.login()
        box = self.mailbox(admin, "Busy")
        for i in range(10):
            imap_check(admin.append(box, None, None, message(f"busy{i}")), "APPEND")
        system = {b"\\seen", b"\\answered", b"\\flagged", b"\\deleted", b"\\draft",
                  b"\\recent"}
        problems: list[str] = []
        seconds, sessions = 4.0, 6

        def worker(n: int):
            rnd = random.Random(n)
            c = self.server.raw_imap()
            try:
                c.login(ALICE, ALICE_PW)
                announced: set[bytes] = set()
                modseq: dict[int, int] = {}
                lines = c.ok(f"SELECT {box} (CONDSTORE)")
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    kw = f"Kw{rnd.randrange(40)}"
                    seq = rnd.randrange(1, 11)
                    cmd = rnd.choice([f"STORE {seq} +FLAGS ({kw})", "NOOP",
                                      "FETCH 1:* (FLAGS)", f"STORE {seq} -FLAGS ({kw})"])
                    lines += c.ok(cmd)
                    for line in lines:
                        if line.startswith(b"* FLAGS ("):
                            inner = line[len(b"* FLAGS ("):line.rindex(b")")]
                            announced = {f.lower() for f in inner.split()}
                        elif b" EXPUNGE" in line and not cmd.startswith("NOOP"):
                            problems.append(f"EXPUNGE during {cmd}")
                        elif b" FETCH (" in line:
                            mm = re.search(rb"FLAGS \(([^)]*)\)", line)
                            for f in (mm.group(1).split() if mm else []):
                                if f.lower() not in system and f.lower() not in announced:
                                    problems.append(f"{f!r} used before FLAGS announced it")
                            ms = re.search(rb"MODSEQ \((\d+)\)", line)
                            num = int(line.split()[1])
                            if ms:
                                v = int(ms.group(1))
                                if v < modseq.get(num, 0):
                                    problems.append(f"MODSEQ of {num} went back")
                                modseq[num] = v
                    lines = []
            except BaseException as e:
                problems.append(f"session {n}: {e!r}")
            finally:
                c.close()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 60)
        self.assertEqual(problems[:5], [])

    # ---- 3, 4: subscriptions (RFC 3501 §6.3.6, §6.3.9; RFC 5258 §3.1, §3.5) ------------

    def test_lsub_parents_delete_keeps_subscription_and_childinfo(self):
        m = self.login()
        top = self.mailbox(m, "Subs")
        for child in ("a", "b/deep"):
            imap_check(m.create(f"{top}/{child}"), "CREATE")
        imap_check(m.subscribe(f"{top}/a"), "SUBSCRIBE")
        imap_check(m.subscribe(f"{top}/b/deep"), "SUBSCRIBE")
        data = imap_check(m.lsub('""', f"{top}/%"), "LSUB")
        lines = [l for l in data if l]
        self.assertIn(f'() "/" "{top}/a"'.encode(), lines)
        # The unsubscribed parent of a subscribed child, \Noselect (RFC 3501 §6.3.9).
        self.assertIn(f'(\\Noselect) "/" "{top}/b"'.encode(), lines)
        # LIST (SUBSCRIBED RECURSIVEMATCH) % names the parent with CHILDINFO.
        typ, data = m._simple_command("LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', "%")
        self.assertEqual(typ, "OK")
        _, data = m._untagged_response(typ, data, "LIST")
        self.assertTrue(any(f'"{top}" ("CHILDINFO" ("SUBSCRIBED"))'.encode() in l
                            for l in data if l), data)
        # DELETE does not unsubscribe; LIST (SUBSCRIBED) shows it \NonExistent.
        imap_check(m.delete(f"{top}/a"), "DELETE")
        data = imap_check(m.lsub('""', f"{top}/a"), "LSUB")
        self.assertTrue(any(f'"{top}/a"'.encode() in l for l in data if l), data)
        typ, data = m._simple_command("LIST", "(SUBSCRIBED)", '""', f"{top}/*")
        _, data = m._untagged_response(typ, data, "LIST")
        self.assertIn(f'(\\Subscribed \\NonExistent) "/" "{top}/a"'.encode(), data)
        imap_check(m.unsubscribe(f"{top}/a"), "UNSUBSCRIBE")
        data = imap_check(m.lsub('""', f"{top}/a"), "LSUB")
        self.assertEqual([l for l in data if l], [])
        # IMAPClient's LSUB sees the same list.
        c = self.client()
        names = [name for _, _, name in c.list_sub_folders("", f"{top}/*")]
        self.assertEqual(names, [f"{top}/b/deep"])

    # ---- 5: no NUL in a plain literal (RFC 9051 §9, RFC 3516 §4.3) ---------------------

    def test_nul_bytes_never_go_out_in_a_plain_literal(self):
        m = self.login()
        box = self.mailbox(m, "Nul")
        raw = (b"From: a@remote.test\r\nSubject: nul\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
               b"Content-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: binary\r\n\r\nA\x00B\r\n--b--\r\n")
        imap_check(m.append(box, None, None, raw), "APPEND")
        imap_check(m.select(box), "SELECT")
        part = fetch_literal(imap_check(m.fetch("1", "(BODY.PEEK[1])"), "FETCH"))
        self.assertEqual(part, b"A\x80B")  # as Dovecot does: one byte for one
        whole = fetch_literal(imap_check(m.fetch("1", "(BODY.PEEK[])"), "FETCH"))
        self.assertNotIn(b"\x00", whole)
        self.assertEqual(len(whole), len(raw))
        # BINARY may send NUL, in a literal8 (RFC 3516 §4.3). (imaplib reads `~{n}`;
        # IMAPClient 4.1 does not parse literal8.)
        data = imap_check(m.fetch("1", "(BINARY.PEEK[1])"), "FETCH")
        self.assertIn(b"BINARY[1] ~{3}", data[0][0])
        self.assertEqual(fetch_literal(data), b"A\x00B")

    # ---- 6, 7: CONDSTORE details (RFC 4731 §3.2, RFC 7162 §3.1, §3.1.5) -----------------

    def test_esearch_min_max_modseq_and_highestmodseq_on_enabling_fetch(self):
        m = self.login()
        box = self.mailbox(m, "Cond")
        for i in range(3):
            imap_check(m.append(box, None, None, message(f"c{i}")), "APPEND")
        imap_check(m.select(box), "SELECT")
        m.response("HIGHESTMODSEQ")  # the one SELECT sent
        data = imap_check(m.fetch("1:3", "(MODSEQ)"), "FETCH")
        _, announced = m.response("HIGHESTMODSEQ")
        self.assertTrue(announced and announced[-1], "first MODSEQ FETCH announces it")
        imap_check(m.store("2", "+FLAGS", r"(\Flagged)"), "STORE")
        data = imap_check(m.fetch("1:3", "(MODSEQ)"), "FETCH")
        modseqs = [int(re.search(rb"MODSEQ \((\d+)\)", d).group(1)) for d in data]
        self.assertGreater(modseqs[1], max(modseqs[0], modseqs[2]))
        for ret, want in (("MIN", modseqs[0]), ("MAX", modseqs[2]),
                          ("COUNT", modseqs[1])):
            typ, _ = m._simple_command("SEARCH", "RETURN", f"({ret})", "MODSEQ", "1")
            self.assertEqual(typ, "OK")
            _, lines = m.response("ESEARCH")
            self.assertIn(f"MODSEQ {want}".encode(), lines[-1], (ret, lines))

    # ---- 8: THREAD=REFERENCES step 5 (RFC 5256 §2.2) -----------------------------------

    def test_thread_references_merges_by_base_subject(self):
        m = self.login()
        box = self.mailbox(m, "Thread")
        msgs = [
            message("Lunch", "Message-ID: <l1@t>\r\n"),
            # The parent it names is not here: step 5 joins it to "Lunch" by subject.
            message("Re: Lunch", "Message-ID: <l2@t>\r\nReferences: <gone@t>\r\n"),
            message("Other", "Message-ID: <o1@t>\r\n"),
        ]
        for raw in msgs:
            imap_check(m.append(box, None, None, raw), "APPEND")
        c = self.client()
        c.select_folder(box, readonly=True)
        self.assertEqual(c.thread("REFERENCES"), ((1, 2), (3,)))

    # ---- 9: SORT collation and groups (RFC 5256 §3, RFC 4790 §9.2, RFC 3501 §6.4.4) -----

    def test_sort_uses_ascii_casemap_and_groups_count(self):
        m = self.login()
        box = self.mailbox(m, "Sort")
        for subject, cc, to in (("b", "zed@x.test", "z@x.test"),
                                ("_", "team: amy@x.test;", "crew: q@x.test, r@x.test;"),
                                ("A", "mike@x.test", "m@x.test")):
            raw = (f"From: a@remote.test\r\nTo: {to}\r\nCc: {cc}\r\n"
                   f"Subject: {subject}\r\n\r\nbody\r\n").encode()
            imap_check(m.append(box, None, None, raw), "APPEND")
        c = self.client()
        c.select_folder(box, readonly=True)
        # i;ascii-casemap: "A" < "b" (as "B") < "_" (0x5F).
        self.assertEqual(c.sort(["SUBJECT"]), [3, 1, 2])
        # A group sorts by its name, the addr-mailbox of its ENVELOPE start marker.
        self.assertEqual(c.sort(["CC"]), [3, 2, 1])
        self.assertEqual(c.search(["TO", "crew"]), [2])
        self.assertEqual(c.search(["TO", "r@x.test"]), [2])

    # ---- 11: SORT=DISPLAY (RFC 5957) -----------------------------------------------------

    def test_sort_display_orders_by_display_name_else_address_rfc5957(self):
        m = self.login()
        box = self.mailbox(m, "SortDisplay")
        # DISPLAYFROM: the decoded display name, or the address when there is none.
        for sender in ("Zoe <a@remote.test>", "=?UTF-8?Q?Andr=C3=A9?= <z@remote.test>",
                       "m@remote.test"):
            raw = (f"From: {sender}\r\nTo: {sender}\r\nSubject: s\r\n\r\nbody\r\n").encode()
            imap_check(m.append(box, None, None, raw), "APPEND")
        c = self.client()
        self.assertIn(b"SORT=DISPLAY", c.capabilities())
        c.select_folder(box, readonly=True)
        # "André" < "m@remote.test" < "Zoe" (by FROM it would be a < m < z: 1, 3, 2).
        self.assertEqual(c.sort(["DISPLAYFROM"]), [2, 3, 1])
        self.assertEqual(c.sort(["REVERSE", "DISPLAYTO"]), [1, 3, 2])
        self.assertEqual(c.sort(["FROM"]), [1, 3, 2])

    # ---- 10: ENVELOPE source route (RFC 3501 §7.4.2, RFC 5322 §4.4) --------------------

    def test_envelope_returns_the_source_route(self):
        m = self.login()
        box = self.mailbox(m, "Route")
        raw = (b"From: Joe <@relay.test,@hop.test:joe@example.test>\r\nSubject: route\r\n"
               b"\r\nbody\r\n")
        imap_check(m.append(box, None, None, raw), "APPEND")
        c = self.client()
        c.select_folder(box, readonly=True)
        env = c.fetch([1], ["ENVELOPE"])[1][b"ENVELOPE"]
        sender = env.from_[0]
        self.assertEqual((sender.name, sender.route, sender.mailbox, sender.host),
                         (b"Joe", b"@relay.test,@hop.test", b"joe", b"example.test"))

    # ---- SEARCH folding (RFC 3501 §6.4.4; issue 14 JMAP item 7: the same folding as JMAP) --

    def test_search_matches_decoded_headers_without_case_or_accents(self):
        m = self.login()
        box = self.mailbox(m, "Fold")
        tag = f"{time.time_ns()}"
        raw = (f"From: =?UTF-8?Q?Zo=C3=AB_M=C3=BCller?= <z@remote.test>\r\nTo: {ALICE}\r\n"
               f"Subject: =?UTF-8?Q?R=C3=A9union_{tag}_=E4=BC=9A=E8=AD=B0?=\r\n"
               "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nCaf\u00e9 cr\u00e8me\r\n").encode()
        imap_check(m.append(box, None, None, raw), "APPEND")
        c = self.client()
        c.select_folder(box, readonly=True)
        self.assertEqual(c.search(["SUBJECT", tag]), [1])
        for criteria in (["SUBJECT", "REUNION"], ["SUBJECT", "Réunion"], ["SUBJECT", "議"],
                         ["FROM", "zoe muller"], ["FROM", "ZOË"], ["TEXT", "réunion " + tag],
                         ["BODY", "CAFE CREME"]):
            with self.subTest(criteria=criteria):
                self.assertEqual(c.search(criteria, charset="UTF-8"), [1], criteria)
        for criteria in (["FROM", "zoe miller"], ["SUBJECT", "議事"]):
            with self.subTest(criteria=criteria):
                self.assertEqual(c.search(criteria, charset="UTF-8"), [], criteria)


class ImapRefusalTest(ServerTestCase):
    """Issue 14 IMAP item 12: connections past `max_connections_per_ip` are refused cheaply,
    with at most one `* BYE` (RFC 9051 §7.1.5 as the greeting) per second per address."""

    limits_toml = "max_connections_per_ip = 2\n"

    def test_refusals_past_the_per_ip_limit_are_rate_limited(self):
        held = [self.server.imap(ALICE, ALICE_PW) for _ in range(2)]
        for m in held:
            self.addCleanup(safe_logout, m)
        host, port = self.server.addr("imap")
        started = time.monotonic()
        byes = 0
        for _ in range(30):
            s = socket.create_connection((host, port), timeout=IO_TIMEOUT)
            try:
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                data = b""
            finally:
                s.close()
            self.assertFalse(data.startswith(b"* OK"), "a refused connection was greeted")
            if data.startswith(b"* BYE"):
                byes += 1
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(byes, 1, "the first refusal says why")
        self.assertLessEqual(byes, int(elapsed) + 1, f"{byes} BYE lines in {elapsed:.2f}s")


class ImapTrustedNetworkTest(ServerTestCase):
    """`[limits] trusted_networks` exempts a proxy's network from the per-IP limit."""

    limits_toml = 'max_connections_per_ip = 1\ntrusted_networks = ["127.0.0.0/8", "::1/128"]\n'

    def test_trusted_network_is_not_held_to_the_per_ip_limit(self):
        held = [self.server.imap(ALICE, ALICE_PW) for _ in range(3)]
        for m in held:
            self.addCleanup(safe_logout, m)
            imap_check(m.noop(), "NOOP")


if __name__ == "__main__":
    unittest.main()

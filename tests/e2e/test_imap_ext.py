"""IMAP extensions of issue 14 item 11, each checked with a real client library (Python
imaplib, the IMAPClient package) and, where ids are shared, against JMAP over raw JSON.
Each test names its RFC section. One server, a few seconds in all."""

from __future__ import annotations

import imaplib
import re
import time
import unittest
from datetime import datetime, timezone

from imapclient import IMAPClient

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, IO_TIMEOUT, LISTENERS, ServerTestCase, imap_check,
                     insecure_tls, safe_logout)
from jmapclient import JmapHttp, basic_auth


def message(subject: str, extra: str = "", body: str = "body\r\n") -> bytes:
    return (f"From: a@remote.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n{extra}\r\n{body}").encode()


def code(data: list, name: str) -> str | None:
    """The argument of response code `[NAME (arg)]` in a tagged response's text."""
    for d in data:
        if isinstance(d, bytes):
            m = re.search(rb"\[" + name.encode() + rb" \(([^)]*)\)\]", d)
            if m:
                return m.group(1).decode()
    return None


class ImapExtTest(ServerTestCase):
    listeners = LISTENERS + ("http",)
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

    def jmap(self) -> JmapHttp:
        return JmapHttp(self.server.addr("http"), basic_auth(ALICE, ALICE_PW))

    def name(self, prefix: str) -> str:
        ImapExtTest.counter += 1
        return f"{prefix}{ImapExtTest.counter}x{time.time_ns() % 100000}"

    def capabilities(self) -> list[str]:
        return [c.decode() for c in self.client().capabilities()]

    # ---- OBJECTID (RFC 8474) -----------------------------------------------------------

    def test_objectid_mailboxid_in_create_select_status_list_matches_jmap(self):
        self.assertIn("OBJECTID", self.capabilities())
        m = self.login()
        box = self.name("Obj")
        typ, data = m.create(box)
        self.assertEqual(typ, "OK", data)
        # RFC 8474 §4.1: CREATE answers OK [MAILBOXID (id)].
        created = code(data, "MAILBOXID")
        self.assertIsNotNone(created, data)
        self.assertRegex(created, r"^[A-Za-z0-9_-]{1,255}$")
        # RFC 8474 §4.2: SELECT and EXAMINE send * OK [MAILBOXID (id)].
        imap_check(m.select(box), "SELECT")
        _, sel = m.response("MAILBOXID")
        self.assertEqual(sel, [f"({created})".encode()])
        m.close()
        # RFC 8474 §4.3: STATUS (MAILBOXID), also through LIST-STATUS (RFC 5819).
        data = imap_check(m.status(box, "(MAILBOXID MESSAGES)"), "STATUS")
        self.assertIn(f"MAILBOXID ({created})".encode(), data[0])
        imap_check(m._simple_command("LIST", '""', box, "RETURN (STATUS (MAILBOXID))"), "LIST")
        _, statuses = m.response("STATUS")
        self.assertTrue(any(f"MAILBOXID ({created})".encode() in s for s in statuses), statuses)
        # The same id as JMAP's Mailbox id (one object, one id across protocols).
        boxes = self.jmap().ok("Mailbox/get", {"ids": None})["list"]
        self.assertEqual([b["id"] for b in boxes if b["name"] == box], [created])
        # A mailbox keeps its id across RENAME (RFC 8474 §4: immutable).
        renamed = self.name("Renamed")
        imap_check(m.rename(box, renamed), "RENAME")
        data = imap_check(m.status(renamed, "(MAILBOXID)"), "STATUS")
        self.assertIn(f"MAILBOXID ({created})".encode(), data[0])

    def test_objectid_emailid_threadid_fetch_and_search_match_jmap(self):
        c = self.client()
        box = self.name("Thr")
        c.create_folder(box)
        tag = self.name("t")
        c.append(box, message(f"parent {tag}", f"Message-ID: <p-{tag}@remote.test>\r\n"))
        c.append(box, message(f"Re: parent {tag}",
                              f"Message-ID: <r-{tag}@remote.test>\r\n"
                              f"In-Reply-To: <p-{tag}@remote.test>\r\n"
                              f"References: <p-{tag}@remote.test>\r\n"))
        c.append(box, message(f"other {tag}", f"Message-ID: <o-{tag}@remote.test>\r\n"))
        c.select_folder(box)
        # RFC 8474 §5.3: FETCH EMAILID / THREADID.
        got = c.fetch(c.search("ALL"), ["EMAILID", "THREADID"])
        self.assertEqual(len(got), 3)
        ids = {uid: (d[b"EMAILID"][0].decode(), d[b"THREADID"][0].decode())
               for uid, d in got.items()}
        uids = sorted(ids)
        (e1, t1), (e2, t2), (e3, t3) = (ids[u] for u in uids)
        self.assertEqual(t1, t2, "a reply shares its parent's THREADID (RFC 8474 §5.2)")
        self.assertNotEqual(t1, t3)
        self.assertEqual(len({e1, e2, e3}), 3, "each message has its own EMAILID")
        # The ids are JMAP's Email id and threadId.
        j = self.jmap()
        mailbox = [b["id"] for b in j.ok("Mailbox/get", {"ids": None})["list"]
                   if b["name"] == box][0]
        emails = j.ok("Email/get", {"ids": j.email_ids_with_subject(tag, mailbox),
                                    "properties": ["id", "threadId", "subject"]})["list"]
        self.assertEqual({(e["id"], e["threadId"]) for e in emails},
                         {(e1, t1), (e2, t2), (e3, t3)})
        # EMAILID stays when the message is moved (RFC 8474 §5.1), UID does not.
        other = self.name("Moved")
        c.create_folder(other)
        c.append(box, message(f"moved {tag}"))
        moving = max(c.search("ALL"))
        e_moving = c.fetch([moving], ["EMAILID"])[moving][b"EMAILID"][0].decode()
        c.move([moving], other)
        c.select_folder(other)
        self.assertEqual([d[b"EMAILID"][0].decode() for d in c.fetch(c.search("ALL"), ["EMAILID"]).values()],
                         [e_moving])
        c.select_folder(box)
        # RFC 8474 §6: SEARCH EMAILID / THREADID.
        self.assertEqual(c.search(["EMAILID", e2]), [uids[1]])
        self.assertEqual(sorted(c.search(["THREADID", t1])), uids[:2])
        self.assertEqual(c.search(["THREADID", t3]), [uids[2]])
        self.assertEqual(c.search(["NOT", "THREADID", t1]), [uids[2]])
        self.assertEqual(c.search(["EMAILID", "E999999999"]), [])
        # Bad syntax for an objectid is BAD, not a crash.
        m = self.login()
        imap_check(m.select(box), "SELECT")
        with self.assertRaises(imaplib.IMAP4.error):
            m.uid("SEARCH", "EMAILID", "E.1")
        self.assertEqual(m.noop()[0], "OK")

    # ---- LIST-STATUS (RFC 5819), STATUS=SIZE (RFC 8438) ---------------------------------

    def test_list_status_and_status_size(self):
        caps = self.capabilities()
        self.assertIn("LIST-STATUS", caps)
        self.assertIn("STATUS=SIZE", caps)
        m = self.login()
        box = self.name("Size")
        imap_check(m.create(box), "CREATE")
        msgs = [message("one"), message("two", body="a longer body\r\n" * 10)]
        for raw in msgs:
            imap_check(m.append(box, None, None, raw), "APPEND")
        total = sum(len(r) for r in msgs)
        # RFC 8438 §2: SIZE is the sum of the messages' RFC822.SIZE.
        data = imap_check(m.status(box, "(SIZE MESSAGES)"), "STATUS")
        self.assertIn(f"SIZE {total}".encode(), data[0])
        # RFC 5819 §2: one STATUS per listed mailbox after its LIST.
        typ, _ = m._simple_command("LIST", '""', "*", "RETURN (STATUS (MESSAGES SIZE))")
        self.assertEqual(typ, "OK")
        _, statuses = m.response("STATUS")
        mine = [s for s in statuses if box.encode() in s]
        self.assertEqual(len(mine), 1, statuses)
        self.assertIn(b"MESSAGES 2", mine[0])
        self.assertIn(f"SIZE {total}".encode(), mine[0])

    # ---- CREATE-SPECIAL-USE (RFC 6154 §3) ------------------------------------------------

    def test_create_with_special_use(self):
        self.assertIn("CREATE-SPECIAL-USE", self.capabilities())
        m = self.login()
        # A role already held by another mailbox: NO [USEATTR], nothing created (§3).
        taken = self.name("Arch")
        typ, data = m._simple_command("CREATE", taken, "(USE (\\Archive))")
        self.assertEqual(typ, "NO", data)
        self.assertIn(b"[USEATTR]", data[0])
        typ, data = m.status(taken, "(MESSAGES)")
        self.assertEqual(typ, "NO", "the mailbox was not created")
        # A special use the store has no mailboxes for: NO [USEATTR].
        typ, data = m._simple_command("CREATE", self.name("All"), "(USE (\\All))")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[USEATTR]", data[0])
        # Free the junk role, then CREATE ... (USE (\Junk)) gives it to the new mailbox.
        j = self.jmap()
        junk = j.mailbox_by_role("junk")
        j.ok("Mailbox/set", {"update": {junk["id"]: {"role": None}}})
        spam = self.name("Spam")
        typ, data = m._simple_command("CREATE", spam, "(USE (\\Junk))")
        self.assertEqual(typ, "OK", data)
        typ, data = m._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
        self.assertEqual(typ, "OK")
        _, listed = m.response("LIST")
        self.assertTrue(any(b"\\Junk" in line and spam.encode() in line for line in listed),
                        listed)
        self.assertEqual(j.mailbox_by_role("junk")["name"], spam)
        # The role is taken now: a second one is refused.
        typ, _ = m._simple_command("CREATE", self.name("Spam"), "(USE (\\Junk))")
        self.assertEqual(typ, "NO")

    # ---- PREVIEW (RFC 8970) ---------------------------------------------------------------

    def test_preview_fetch_and_lazy(self):
        self.assertIn("PREVIEW", self.capabilities())
        c = self.client()
        box = self.name("Prev")
        c.create_folder(box)
        c.append(box, message("hello", body="First line of the body.\r\nSecond   line.\r\n"))
        c.append(box, message("long", body=("word " * 200) + "\r\n"))
        c.select_folder(box)
        uids = sorted(c.search("ALL"))
        got = c.fetch(uids, ["PREVIEW"])
        first = got[uids[0]][b"PREVIEW"]
        first = first.decode() if isinstance(first, bytes) else first
        # RFC 8970 §3.1: plain text from the body, whitespace collapsed, no line breaks.
        self.assertEqual(first, "First line of the body. Second line.")
        long = got[uids[1]][b"PREVIEW"]
        long = long.decode() if isinstance(long, bytes) else long
        self.assertTrue(long.startswith("word word"))
        self.assertLessEqual(len(long), 256, "at most 256 characters (RFC 8970 §3.1)")
        # RFC 8970 §3.2: PREVIEW (LAZY) may be NIL when not cheap; ours is stored.
        lazy = c.fetch([uids[0]], ["PREVIEW (LAZY)", "UID"])[uids[0]][b"PREVIEW"]
        lazy = lazy.decode() if isinstance(lazy, bytes) else lazy
        self.assertEqual(lazy, first)
        # The same text as JMAP's Email preview.
        j = self.jmap()
        ids = j.email_ids_with_subject("hello")
        previews = [e["preview"] for e in j.ok("Email/get", {"ids": ids, "properties": ["preview"]})["list"]]
        self.assertIn(first, previews)
        # An unknown modifier is BAD.
        raw = self.server.raw_imap()
        raw.login(ALICE, ALICE_PW)
        raw.ok(f'SELECT "{box}"')
        bad = raw.command("FETCH 1 (PREVIEW (FUZZY))")
        self.assertIn(b" BAD ", bad[-1])
        raw.ok("LOGOUT")

    # ---- MULTIAPPEND (RFC 3502) -----------------------------------------------------------

    def test_multiappend_all_or_nothing(self):
        self.assertIn("MULTIAPPEND", self.capabilities())
        c = self.client()
        box = self.name("Multi")
        c.create_folder(box)
        msgs = [message(f"multi {i}") for i in range(3)]
        typ, data = c.multiappend(box, msgs)
        self.assertEqual(typ, "OK")
        text = b" ".join(d for d in data if isinstance(d, bytes))
        # RFC 4315 §3 / RFC 3502 §6.3.11: one APPENDUID with a UID set for all messages.
        m = re.search(rb"APPENDUID (\d+) (\S+)\]", text)
        self.assertIsNotNone(m, text)
        self.assertEqual(m.group(2), b"1:3")
        c.select_folder(box)
        self.assertEqual(len(c.search("ALL")), 3)
        subjects = sorted(d[b"ENVELOPE"].subject for d in c.fetch(c.search("ALL"), ["ENVELOPE"]).values())
        self.assertEqual(subjects, [b"multi 0", b"multi 1", b"multi 2"])
        # One bad message (empty) fails the whole command: none are appended (§6.3.11).
        raw = self.server.raw_imap()
        raw.login(ALICE, ALICE_PW)
        one = message("should not appear")
        lines = raw.command(f'APPEND "{box}" (\\Seen) {{{len(one)}+}}\r\n'.encode() + one
                            + b" {0+}\r\n")
        self.assertIn(b" NO ", lines[-1], lines)
        status = raw.ok(f'STATUS "{box}" (MESSAGES)')
        self.assertTrue(any(b"MESSAGES 3" in s for s in status), status)
        # A missing mailbox: NO [TRYCREATE] and nothing stored.
        lines = raw.command(f'APPEND "nobox-{box}" {{{len(one)}+}}\r\n'.encode() + one
                            + f" {{{len(one)}+}}\r\n".encode() + one)
        self.assertIn(b"[TRYCREATE]", lines[-1], lines)
        raw.ok("LOGOUT")

    # ---- REPLACE (RFC 8508) -----------------------------------------------------------

    def raw_session(self):
        raw = self.server.raw_imap()
        raw.login(ALICE, ALICE_PW)
        self.addCleanup(raw.close)
        return raw

    @staticmethod
    def literal(msg: bytes) -> bytes:
        return f"{{{len(msg)}+}}\r\n".encode() + msg

    def subjects(self, raw, box: str) -> list[bytes]:
        raw.ok(f'SELECT "{box}"')
        lines = raw.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return sorted(re.findall(rb"Subject: ([^\r]*)", b"".join(lines)))

    def test_replace_and_uid_replace(self):
        self.assertIn("REPLACE", self.capabilities())
        raw = self.raw_session()
        box, other = self.name("Draft"), self.name("Sent")
        raw.ok(f'CREATE "{box}"')
        raw.ok(f'CREATE "{other}"')
        raw.ok(f'APPEND "{box}" (\\Draft) '.encode() + self.literal(message("draft v1")))
        raw.ok(f'SELECT "{box}"')
        # RFC 8508 §3.3: OK [APPENDUID], then EXPUNGE of the old one, then the tagged OK.
        lines = raw.ok(f'REPLACE 1 "{box}" (\\Draft) '.encode() + self.literal(message("draft v2")))
        text = b"".join(lines)
        self.assertRegex(text, rb"\* OK \[APPENDUID \d+ 2\]")
        self.assertIn(b"* 1 EXPUNGE", text)
        self.assertLess(text.index(b"APPENDUID"), text.index(b"* 1 EXPUNGE"))
        self.assertEqual(self.subjects(raw, box), [b"draft v2"])
        # UID REPLACE into another mailbox: the original leaves this one.
        lines = raw.ok(f'UID REPLACE 2 "{other}" '.encode() + self.literal(message("sent v3")))
        self.assertIn(b"* 1 EXPUNGE", b"".join(lines))
        self.assertEqual(self.subjects(raw, other), [b"sent v3"])
        raw.ok(f'APPEND "{box}" '.encode() + self.literal(message("keep me")))
        raw.ok(f'SELECT "{box}"')
        # A missing target mailbox: NO [TRYCREATE], and the original stays (append first).
        lines = raw.command(f'UID REPLACE 3 "missing-{box}" '.encode() + self.literal(message("x")))
        self.assertIn(b"NO [TRYCREATE]", lines[-1])
        self.assertEqual(self.subjects(raw, box), [b"keep me"])
        # A UID that names no message: NO; the message is not appended anywhere.
        lines = raw.command(f'UID REPLACE 999 "{box}" '.encode() + self.literal(message("ghost")))
        self.assertIn(b" NO ", lines[-1])
        self.assertEqual(self.subjects(raw, box), [b"keep me"])
        # Read-only (EXAMINE): NO, nothing changes.
        raw.ok(f'EXAMINE "{box}"')
        lines = raw.command(f'REPLACE 1 "{box}" '.encode() + self.literal(message("ro")))
        self.assertIn(b"NO [READ-ONLY]", lines[-1])
        self.assertEqual(self.subjects(raw, box), [b"keep me"])

    # ---- UIDONLY (RFC 9586) ---------------------------------------------------------------

    def test_uidonly(self):
        self.assertIn("UIDONLY", self.capabilities())
        raw = self.raw_session()
        box = self.name("Uidonly")
        raw.ok(f'CREATE "{box}"')
        for i in range(3):
            raw.ok(f'APPEND "{box}" '.encode() + self.literal(message(f"u{i}")))
        lines = raw.ok("ENABLE UIDONLY")
        self.assertIn(b"* ENABLED UIDONLY\r\n", lines)
        raw.ok(f'SELECT "{box}"')
        # RFC 9586 §3: commands with message numbers are BAD [UIDREQUIRED].
        for cmd in ["FETCH 1 (FLAGS)", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL",
                    f'COPY 1 "{box}"', f'MOVE 1 "{box}"', "UID SEARCH 1:2",
                    "SORT (DATE) UTF-8 ALL"]:
            last = raw.command(cmd)[-1]
            self.assertIn(b"BAD [UIDREQUIRED]", last, cmd)
        # RFC 9586 §3.3: FETCH data comes as `* uid UIDFETCH (...)`.
        lines = raw.ok("UID FETCH 1:* (FLAGS)")
        fetches = [l for l in lines if l.startswith(b"* ")]
        self.assertEqual(len(fetches), 3, lines)
        for uid, line in zip((1, 2, 3), fetches):
            self.assertRegex(line, rb"^\* " + str(uid).encode() + rb" UIDFETCH \(FLAGS \(")
        self.assertFalse(any(re.match(rb"\* \d+ FETCH", l) for l in lines), lines)
        lines = raw.ok("UID STORE 2 +FLAGS (\\Deleted)")
        self.assertTrue(any(l.startswith(b"* 2 UIDFETCH (FLAGS (\\Deleted") for l in lines), lines)
        # RFC 9586 §3.4: VANISHED instead of EXPUNGE (without QRESYNC).
        lines = raw.ok("EXPUNGE")
        self.assertIn(b"* VANISHED 2\r\n", lines)
        self.assertFalse(any(re.match(rb"\* \d+ EXPUNGE", l) for l in lines), lines)
        # UID SEARCH still works, with UIDs.
        lines = raw.ok("UID SEARCH ALL")
        self.assertIn(b"* SEARCH 1 3\r\n", lines)

    # ---- ESORT (RFC 5267 §3), PARTIAL (RFC 9394) -----------------------------------------

    def test_esort_and_partial(self):
        caps = self.capabilities()
        self.assertIn("ESORT", caps)
        self.assertIn("PARTIAL", caps)
        raw = self.raw_session()
        box = self.name("Esort")
        raw.ok(f'CREATE "{box}"')
        # Sizes grow with i: UID i+1 is the (i+1)-th smallest.
        for i in range(5):
            raw.ok(f'APPEND "{box}" '.encode() + self.literal(message(f"s{i}", body="x" * (10 + 50 * i) + "\r\n")))
        raw.ok(f'SELECT "{box}"')

        def esearch(cmd: str) -> bytes:
            lines = raw.ok(cmd)
            found = [l for l in lines if l.startswith(b"* ESEARCH")]
            self.assertEqual(len(found), 1, lines)
            return found[0].rstrip(b"\r\n")

        # RFC 5267 §3: MIN/MAX are the first/last in sort order, ALL keeps the order.
        line = esearch("UID SORT RETURN (MIN MAX COUNT ALL) (REVERSE SIZE) UTF-8 ALL")
        self.assertRegex(line, rb'^\* ESEARCH \(TAG "t\d+"\) UID MIN 5 MAX 1 COUNT 5 ALL 5,4,3,2,1$')
        line = esearch("UID SORT RETURN () (SIZE) UTF-8 NOT UID 3")
        self.assertTrue(line.endswith(b" UID ALL 1:2,4:5"), line)
        # RFC 9394 §3: PARTIAL pages through the results, from the start or the end.
        self.assertTrue(esearch("UID SEARCH RETURN (PARTIAL 2:3) ALL").endswith(b"UID PARTIAL (2:3 2:3)"))
        self.assertTrue(esearch("UID SEARCH RETURN (COUNT PARTIAL -1:-2) ALL")
                        .endswith(b"UID COUNT 5 PARTIAL (-1:-2 4:5)"))
        self.assertTrue(esearch("UID SEARCH RETURN (PARTIAL 6:10) ALL").endswith(b"PARTIAL (6:10 NIL)"))
        line = esearch("UID SORT RETURN (PARTIAL 1:2) (REVERSE SIZE) UTF-8 ALL")
        self.assertTrue(line.endswith(b"UID PARTIAL (1:2 5,4)"), line)
        # PARTIAL with ALL is BAD (RFC 9394 §3).
        self.assertIn(b" BAD ", raw.command("UID SEARCH RETURN (ALL PARTIAL 1:2) ALL")[-1])
        self.assertIn(b" BAD ", raw.command("UID SEARCH RETURN (PARTIAL 0:2) ALL")[-1])
        # PARTIAL with SAVE saves the returned part (RFC 5182 $).
        raw.ok("UID SEARCH RETURN (SAVE PARTIAL -1:-2) ALL")
        lines = raw.ok("UID SEARCH UID $")
        self.assertIn(b"* SEARCH 4 5\r\n", lines)

    # ---- CONTEXT=SEARCH (RFC 5267 §4) -------------------------------------------------

    def test_context_search_updates(self):
        self.assertIn("CONTEXT=SEARCH", self.capabilities())
        raw = self.raw_session()
        box = self.name("Ctx")
        raw.ok(f'CREATE "{box}"')
        for i in range(3):
            raw.ok(f'APPEND "{box}" '.encode() + self.literal(message(f"c{i}")))
        raw.ok(f'SELECT "{box}"')
        raw.ok("UID STORE 1 +FLAGS (\\Flagged)")
        # RFC 5267 §4.3: the initial result, then ADDTO / REMOVEFROM as it changes.
        lines = raw.ok("UID SEARCH RETURN (UPDATE) FLAGGED")
        tag = lines[-1].split(b" ")[0].decode()
        self.assertTrue(any(l.startswith(f'* ESEARCH (TAG "{tag}") UID ALL 1'.encode()) for l in lines), lines)
        text = b"".join(raw.ok("UID STORE 3 +FLAGS (\\Flagged)"))
        self.assertIn(f'* ESEARCH (TAG "{tag}") UID ADDTO (0 3)'.encode(), text)
        text = b"".join(raw.ok("UID STORE 1 -FLAGS (\\Flagged)"))
        self.assertIn(f'* ESEARCH (TAG "{tag}") UID REMOVEFROM (0 1)'.encode(), text)
        # Another session's change shows up too (here on NOOP).
        other = self.login()
        imap_check(other.select(f'"{box}"'), "SELECT")
        imap_check(other.uid("STORE", "2", "+FLAGS", "(\\Flagged)"), "STORE")
        text = b"".join(raw.ok("NOOP"))
        self.assertIn(f'* ESEARCH (TAG "{tag}") UID ADDTO (0 2)'.encode(), text)
        # An expunge removes it once reported.
        imap_check(other.uid("STORE", "3", "+FLAGS", "(\\Deleted)"), "STORE")
        imap_check(other.expunge(), "EXPUNGE")
        text = b"".join(raw.ok("NOOP"))
        self.assertIn(f'* ESEARCH (TAG "{tag}") UID REMOVEFROM (0 3)'.encode(), text)
        self.assertLess(text.index(b"EXPUNGE"), text.index(b"REMOVEFROM"))
        # While IDLE, updates come at once (RFC 5267 §4.3 with RFC 2177).
        raw.send(b"I1 IDLE\r\n")
        self.assertTrue(raw.read_line().startswith(b"+ "))
        imap_check(other.uid("STORE", "1", "+FLAGS", "(\\Flagged)"), "STORE")
        seen = b""
        deadline = time.monotonic() + IO_TIMEOUT
        while b"ADDTO" not in seen and time.monotonic() < deadline:
            seen += raw.read_line()
        self.assertIn(f'* ESEARCH (TAG "{tag}") UID ADDTO (0 1)'.encode(), seen)
        raw.send(b"DONE\r\n")
        self.assertIn(b"I1 OK", raw.read_response("I1")[-1])
        imap_check(other.uid("STORE", "1", "-FLAGS", "(\\Flagged)"), "STORE")
        self.assertIn(b"REMOVEFROM (0 1)", b"".join(raw.ok("NOOP")))
        # CANCELUPDATE ends it; an unknown tag is BAD.
        raw.ok(f'CANCELUPDATE "{tag}"')
        text = b"".join(raw.ok("UID STORE 1 +FLAGS (\\Flagged)"))
        self.assertNotIn(b"ADDTO", text)
        self.assertIn(b" BAD ", raw.command(f'CANCELUPDATE "{tag}"')[-1])
        # UPDATE needs UID SEARCH; past the limit, NO [NOUPDATE] and a one-off result.
        self.assertIn(b" BAD ", raw.command("SEARCH RETURN (UPDATE) ALL")[-1])
        for _ in range(4):
            raw.ok("UID SEARCH RETURN (UPDATE COUNT) ALL")
        lines = raw.ok("UID SEARCH RETURN (UPDATE COUNT) ALL")
        self.assertTrue(any(b"NO [NOUPDATE" in l for l in lines), lines)


    # ---- CONTEXT=SORT (RFC 5267 §4) ---------------------------------------------------

    def test_context_sort_updates_at_sort_positions(self):
        self.assertIn("CONTEXT=SORT", self.capabilities())
        raw = self.raw_session()
        box = self.name("CtxSort")
        raw.ok(f'CREATE "{box}"')
        for subject in ("delta", "alpha", "charlie"):
            raw.ok(f'APPEND "{box}" '.encode() + self.literal(message(subject)))
        raw.ok(f'SELECT "{box}"')
        # RFC 5267 §4.3: the initial result in sort order.
        lines = raw.ok("UID SORT RETURN (UPDATE) (SUBJECT) UTF-8 UNDELETED")
        tag = lines[-1].split(b" ")[0].decode()
        self.assertIn(f'* ESEARCH (TAG "{tag}") UID ALL 2:3,1\r\n'.encode(), lines)
        # RFC 5267 §4.3.2: another session's "bravo" (UID 4) is added at position 2.
        other = self.login()
        imap_check(other.append(f'"{box}"', None, None, message("bravo")), "APPEND")
        text = b"".join(raw.ok("NOOP"))
        self.assertIn(f'* ESEARCH (TAG "{tag}") UID ADDTO (2 4)'.encode(), text)
        # RFC 5267 §4.3.3: charlie (UID 3, position 3) leaves the result.
        text = b"".join(raw.ok("UID STORE 3 +FLAGS.SILENT (\\Deleted)"))
        self.assertIn(f'* ESEARCH (TAG "{tag}") UID REMOVEFROM (3 3)'.encode(), text)
        # While IDLE, updates come at once: "aardvark" (UID 5) goes first.
        raw.send(b"I1 IDLE\r\n")
        self.assertTrue(raw.read_line().startswith(b"+ "))
        imap_check(other.append(f'"{box}"', None, None, message("aardvark")), "APPEND")
        seen = b""
        deadline = time.monotonic() + IO_TIMEOUT
        while b"ADDTO" not in seen and time.monotonic() < deadline:
            seen += raw.read_line()
        self.assertIn(f'* ESEARCH (TAG "{tag}") UID ADDTO (1 5)'.encode(), seen)
        raw.send(b"DONE\r\n")
        self.assertIn(b"I1 OK", raw.read_response("I1")[-1])
        # The positions applied in order give the sorted result a fresh SORT returns.
        lines = raw.ok("UID SORT RETURN (ALL) (SUBJECT) UTF-8 UNDELETED")
        self.assertTrue(any(l.rstrip().endswith(b"ALL 5,2,4,1") for l in lines), lines)
        # CANCELUPDATE ends it (RFC 5267 §4.3.5); UPDATE needs UID SORT.
        raw.ok(f'CANCELUPDATE "{tag}"')
        text = b"".join(raw.ok("UID STORE 3 -FLAGS.SILENT (\\Deleted)"))
        self.assertNotIn(b"ADDTO", text)
        self.assertIn(b" BAD ", raw.command("SORT RETURN (UPDATE) (SUBJECT) UTF-8 ALL")[-1])


    # ---- SAVEDATE (RFC 8514) -----------------------------------------------------------

    def test_savedate_fetch_and_search(self):
        self.assertIn("SAVEDATE", self.capabilities())
        c = self.client()
        box, other = self.name("Saved"), self.name("SavedCopy")
        c.create_folder(box)
        c.create_folder(other)
        old = datetime(2020, 1, 1, 10, 0, tzinfo=timezone.utc)
        c.append(box, message("saved"), msg_time=old)
        today = datetime.now(timezone.utc).date()
        c.select_folder(box)
        data = c.fetch(c.search("ALL"), ["INTERNALDATE", "SAVEDATE"])
        self.assertEqual(len(data), 1, data)
        uid, item = next(iter(data.items()))
        # RFC 8514 §4.3: the save date is when APPEND placed it here, not its internal date.
        self.assertEqual(item[b"INTERNALDATE"].year, 2020)
        saved = datetime.strptime(item[b"SAVEDATE"].decode().strip(), "%d-%b-%Y %H:%M:%S %z")
        self.assertEqual(saved.date(), today)
        # RFC 8514 §4.2: SAVEDBEFORE/SAVEDON/SAVEDSINCE on the save date's day.
        self.assertEqual(c.search(["SAVEDON", today]), [uid])
        self.assertEqual(c.search(["SAVEDSINCE", today]), [uid])
        self.assertEqual(c.search(["SAVEDBEFORE", today]), [])
        self.assertEqual(c.search(["SINCE", today]), [])
        self.assertEqual(c.search(["SAVEDATESUPPORTED"]), [uid])
        # COPY places a copy into the other mailbox now (RFC 8514 §1).
        c.copy([uid], other)
        c.select_folder(other)
        self.assertEqual(len(c.search(["SAVEDON", today])), 1)
        data = c.fetch(c.search("ALL"), ["SAVEDATE"])
        copied = next(iter(data.values()))[b"SAVEDATE"]
        self.assertEqual(datetime.strptime(copied.decode().strip(), "%d-%b-%Y %H:%M:%S %z").date(), today)


    # ---- METADATA, METADATA-SERVER (RFC 5464) -------------------------------------------

    def test_metadata_server_and_mailbox_entries(self):
        caps = self.capabilities()
        self.assertIn("METADATA", caps)
        self.assertIn("METADATA-SERVER", caps)
        raw = self.raw_session()
        box = self.name("Meta")
        raw.ok(f'CREATE "{box}"')
        # RFC 5464 §4.3 SETMETADATA, §4.2 GETMETADATA: server entries (mailbox "").
        raw.ok('SETMETADATA "" (/shared/comment "Hello from the admin")')
        text = b"".join(raw.ok('GETMETADATA "" /shared/comment'))
        self.assertIn(b'* METADATA "" ("/shared/comment" "Hello from the admin")', text)
        # Mailbox entries, with a literal value; DEPTH and MAXSIZE (§4.2.1, §4.2.2).
        raw.ok(f'SETMETADATA "{box}" (/private/comment "mine" /shared/a/b '.encode()
               + self.literal(b"nested value") + b")")
        text = b"".join(raw.ok(f'GETMETADATA (DEPTH infinity) "{box}" (/shared /private)'))
        self.assertIn(b'"/shared/a/b" "nested value"', text)
        self.assertIn(b'"/private/comment" "mine"', text)
        lines = raw.ok(f'GETMETADATA (MAXSIZE 5) "{box}" /shared/a/b')
        self.assertIn(b"[METADATA LONGENTRIES 12]", lines[-1])
        # Another client sees the same entries (stored in the account, not the session).
        other = self.raw_session()
        text = b"".join(other.ok(f'GETMETADATA "{box}" /private/comment'))
        self.assertIn(b'"/private/comment" "mine"', text)
        # RENAME keeps them; DELETE drops them (§3.2).
        renamed = box + "R"
        raw.ok(f'RENAME "{box}" "{renamed}"')
        self.assertIn(b'"mine"', b"".join(raw.ok(f'GETMETADATA "{renamed}" /private/comment')))
        raw.ok(f'DELETE "{renamed}"')
        raw.ok(f'CREATE "{renamed}"')
        self.assertIn(b'"/private/comment" NIL', b"".join(raw.ok(f'GETMETADATA "{renamed}" /private/comment')))
        # NIL removes; limits answer with the RFC's response codes (§4.3).
        raw.ok('SETMETADATA "" (/shared/comment NIL)')
        self.assertIn(b'"/shared/comment" NIL', b"".join(raw.ok('GETMETADATA "" /shared/comment')))
        big = b"x" * (32 * 1024 + 1)
        reply = raw.command(b'SETMETADATA "" (/shared/big ' + self.literal(big) + b")")[-1]
        self.assertIn(b"NO [METADATA MAXSIZE 32768]", reply)
        many = " ".join(f'/shared/n{i} "v"' for i in range(101))
        self.assertIn(b"NO [METADATA TOOMANY]", raw.command(f'SETMETADATA "" ({many})')[-1])
        self.assertIn(b" BAD ", raw.command('SETMETADATA "" (/elsewhere/x "v")')[-1])
        self.assertIn(b"NO [NONEXISTENT]", raw.command('GETMETADATA "NoSuchBox" /shared/x')[-1])


    # ---- CATENATE (RFC 4469) -----------------------------------------------------------

    def test_catenate_text_and_url_parts(self):
        self.assertIn("CATENATE", self.capabilities())
        raw = self.raw_session()
        box, out = self.name("CatSrc"), self.name("CatOut")
        raw.ok(f'CREATE "{box}"')
        raw.ok(f'CREATE "{out}"')
        source = (b"From: a@remote.test\r\nSubject: source\r\n"
                  b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                  b"--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
                  b"--b\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n--b--\r\n")
        raw.ok(f'APPEND "{box}" '.encode() + self.literal(source))
        status = b"".join(raw.ok(f'STATUS "{box}" (UIDVALIDITY)'))
        validity = int(re.search(rb"UIDVALIDITY (\d+)", status).group(1))
        head = b"From: me@example.test\r\nSubject: built\r\n\r\n"
        url = f"/{box};UIDVALIDITY={validity}/;UID=1/;SECTION=2"
        # RFC 4469 §5: a TEXT part and a URL to a section of a stored message, and with
        # MULTIAPPEND (RFC 3502) a second message that is a whole stored message.
        lines = raw.ok(f'APPEND "{out}" CATENATE (TEXT '.encode() + self.literal(head)
                       + f' URL "{url}") CATENATE (URL "/{box}/;UID=1")'.encode())
        self.assertRegex(lines[-1], rb"\[APPENDUID \d+ 1:2\]")
        c = self.client()
        c.select_folder(out, readonly=True)
        got = c.fetch([1, 2], ["BODY.PEEK[]"])
        self.assertEqual(got[1][b"BODY[]"], head + b"second part")
        self.assertEqual(got[2][b"BODY[]"], source)
        # RFC 4469 §5: an unresolvable URL fails the APPEND with [BADURL url]; nothing is added.
        reply = raw.command(f'APPEND "{out}" CATENATE (URL "/{box};UIDVALIDITY={validity + 1}/;UID=1")')[-1]
        self.assertIn(f"NO [BADURL /{box};UIDVALIDITY={validity + 1}/;UID=1]".encode(), reply)
        reply = raw.command(f'APPEND "{out}" CATENATE (URL "/{box}/;UID=77")')[-1]
        self.assertIn(b"NO [BADURL", reply)
        self.assertIn(b"MESSAGES 2", b"".join(raw.ok(f'STATUS "{out}" (MESSAGES)')))


    # ---- URLAUTH (RFC 4467) ------------------------------------------------------------

    def test_urlauth_genurlauth_urlfetch_resetkey(self):
        self.assertIn("URLAUTH", self.capabilities())
        raw = self.raw_session()
        box = self.name("Auth")
        raw.ok(f'CREATE "{box}"')
        raw.ok(f'APPEND "{box}" '.encode() + self.literal(message("shared part", body="the text\r\n")))
        owner = ALICE.replace("@", "%40")
        base = f"imap://{owner}@mail.example.test/{box}/;UID=1/;SECTION=TEXT"

        def generate(access: str) -> str:
            text = b"".join(raw.ok(f'GENURLAUTH "{base};URLAUTH={access}" INTERNAL'))
            m = re.search(rb'\* GENURLAUTH "([^"]+)"', text)
            self.assertIsNotNone(m, text)
            return m.group(1).decode()

        # RFC 4467 §6.1: the rump signed with the mailbox key (INTERNAL mechanism).
        for_bob = generate("user+" + BOB.replace("@", "%40"))
        self.assertRegex(for_bob, r":internal:[0-9a-f]{64}$")
        # §6.3: Bob may fetch it (reading Alice's message through the URL only); Alice
        # may not (the access identifier names Bob).
        bob = self.server.raw_imap()
        bob.login(BOB, BOB_PW)
        self.addCleanup(bob.close)
        text = b"".join(bob.ok(f'URLFETCH "{for_bob}"'))
        self.assertIn(b"{10}\r\nthe text\r\n", text)
        self.assertIn(b" NIL", b"".join(raw.ok(f'URLFETCH "{for_bob}"')))
        # A forged token or another message under the same token: NIL.
        forged = for_bob[:-4] + ("0000" if not for_bob.endswith("0000") else "1111")
        self.assertIn(b" NIL", b"".join(bob.ok(f'URLFETCH "{forged}"')))
        moved = for_bob.replace(";UID=1/", ";UID=2/")
        self.assertIn(b" NIL", b"".join(bob.ok(f'URLFETCH "{moved}"')))
        # RFC 4469 §5: Bob may also CATENATE it into his own mailbox.
        bob.ok(f'APPEND INBOX CATENATE (TEXT {{2+}}\r\n\r\n URL "{for_bob}")')
        # authuser: any user of this server.
        anyone = generate("authuser")
        self.assertIn(b"the text", b"".join(bob.ok(f'URLFETCH "{anyone}"')))
        # §6.2: RESETKEY voids every URL made before.
        raw.ok(f'RESETKEY "{box}" INTERNAL')
        self.assertIn(b" NIL", b"".join(bob.ok(f'URLFETCH "{anyone}"')))
        fresh = generate("authuser")
        raw.ok("RESETKEY")
        self.assertIn(b" NIL", b"".join(bob.ok(f'URLFETCH "{fresh}"')))
        # Only the owner may authorize, and only absolute URLs with ;URLAUTH=.
        bob_gen = bob.command(f'GENURLAUTH "{base};URLAUTH=authuser" INTERNAL')[-1]
        self.assertIn(b"NO [BADURL", bob_gen)
        self.assertIn(b"NO [BADURL", raw.command(f'GENURLAUTH "/{box}/;UID=1;URLAUTH=authuser" INTERNAL')[-1])


    # ---- NOTIFY (RFC 5465) -------------------------------------------------------------

    def test_notify_pushes_changes_between_commands(self):
        self.assertIn("NOTIFY", self.capabilities())
        raw = self.raw_session()
        box, other_box = self.name("NotifySel"), self.name("NotifyOther")
        raw.ok(f'CREATE "{box}"')
        raw.ok(f'CREATE "{other_box}"')
        raw.ok(f'SELECT "{box}"')
        lines = raw.ok("NOTIFY SET STATUS (SELECTED (MessageNew (UID FLAGS) MessageExpunge)) "
                       "(PERSONAL (MessageNew MessageExpunge MailboxName SubscriptionChange "
                       "MailboxMetadataChange ServerMetadataChange))")
        # RFC 5465 §3.1 STATUS: the other mailboxes' state at once.
        self.assertIn(f'* STATUS "{other_box}" (MESSAGES 0 UIDNEXT 1 UNSEEN 0)\r\n'.encode(), lines)
        other = self.login()

        def wait_for(needle: bytes) -> bytes:
            seen = b""
            deadline = time.monotonic() + IO_TIMEOUT
            while needle not in seen and time.monotonic() < deadline:
                seen += raw.read_line()
            return seen

        # No command in progress: the server sends the changes as they happen (§5.2).
        imap_check(other.append(f'"{other_box}"', None, None, message("n1")), "APPEND")
        seen = wait_for(b"* STATUS")
        self.assertIn(f'* STATUS "{other_box}" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)'.encode(), seen)
        imap_check(other.append(f'"{box}"', None, None, message("n2")), "APPEND")
        seen = wait_for(b"FETCH")
        self.assertIn(b"* 1 EXISTS", seen)
        self.assertRegex(seen, rb"\* 1 FETCH \(UID 1 FLAGS \([^)]*\)\)")
        # §5.4 MailboxName with OLDNAME, §5.5 SubscriptionChange.
        renamed = other_box + "R"
        imap_check(other.rename(f'"{other_box}"', f'"{renamed}"'), "RENAME")
        seen = wait_for(b"OLDNAME")
        self.assertIn(f'* LIST () "/" "{renamed}" ("OLDNAME" ("{other_box}"))'.encode(), seen)
        imap_check(other.subscribe(f'"{renamed}"'), "SUBSCRIBE")
        seen = wait_for(b"Subscribed")
        self.assertIn(f'* LIST (\\Subscribed) "/" "{renamed}"'.encode(), seen)
        # §5.7 MailboxMetadataChange: the changed entry names (RFC 5464 §4.4.2).
        meta = self.raw_session()
        meta.ok(f'SETMETADATA "{renamed}" (/private/comment "watched")')
        seen = wait_for(b"* METADATA")
        self.assertIn(f'* METADATA "{renamed}" "/private/comment"'.encode(), seen)
        # SELECTED: an expunge comes at once too.
        imap_check(other.select(f'"{box}"'), "SELECT")
        imap_check(other.store("1", "+FLAGS", "(\\Deleted)"), "STORE")
        imap_check(other.expunge(), "EXPUNGE")
        self.assertIn(b"* 1 EXPUNGE", wait_for(b"EXPUNGE"))
        # While IDLE, other mailboxes' changes come too.
        raw.send(b"I1 IDLE\r\n")
        self.assertTrue(raw.read_line().startswith(b"+ "))
        imap_check(other.append(f'"{renamed}"', None, None, message("n3")), "APPEND")
        seen = wait_for(b"* STATUS")
        self.assertIn(f'* STATUS "{renamed}" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)'.encode(), seen)
        raw.send(b"DONE\r\n")
        self.assertIn(b"I1 OK", raw.read_response("I1")[-1])
        # NOTIFY NONE: quiet again until the next command.
        raw.ok("NOTIFY NONE")
        self.assertIn(b" BAD ", raw.command("NOTIFY SET (PERSONAL (MessageNew))")[-1])
        self.assertIn(b" NO [BADEVENT", raw.command("NOTIFY SET (PERSONAL (Frobnicate))")[-1])


if __name__ == "__main__":
    unittest.main()

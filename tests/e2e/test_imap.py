"""IMAP end to end with imaplib (STARTTLS and implicit TLS) and curl."""

import imaplib
import re
import subprocess
import time
import unittest

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, ServerTestCase, fetch_literal, imap_check,
                     imap_search, make_message, require_tool, safe_logout)

SPECIAL_USE = {"Sent": r"\Sent", "Drafts": r"\Drafts", "Trash": r"\Trash",
               "Junk": r"\Junk", "Archive": r"\Archive"}

LIST_LINE = re.compile(rb'^\((?P<attrs>[^)]*)\) (?:"(?P<delim>[^"]*)"|NIL) (?P<name>.+)$')

MULTIPART = (
    b"From: Alice Example <alice@example.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: multipart test\r\n"
    b"Date: Tue, 02 Jan 2024 12:30:00 +0100\r\n"
    b"Message-ID: <multipart-1@e2e.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello text part\r\n"
    b"--b1\r\n"
    b'Content-Type: application/octet-stream; name="a.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="a.bin"\r\n'
    b"\r\n"
    b"AAECAwQ=\r\n"
    b"--b1--\r\n"
)


def unquote(name: bytes) -> str:
    name = name.strip()
    if name.startswith(b'"') and name.endswith(b'"'):
        name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
    return name.decode()


def list_mailboxes(m: imaplib.IMAP4, pattern: str = "*") -> dict[str, set[str]]:
    data = imap_check(m.list('""', pattern), "LIST")
    out = {}
    for line in data:
        if line is None:
            continue
        if isinstance(line, tuple):  # name sent as a literal
            head, lit = line
            mm = re.match(rb"^\(([^)]*)\)", head)
            out[lit.decode()] = set(mm.group(1).decode().split()) if mm else set()
            continue
        mm = LIST_LINE.match(line)
        if not mm:
            raise AssertionError(f"unparsable LIST line {line!r}")
        out[unquote(mm.group("name"))] = set(mm.group("attrs").decode().split())
    return out


def response_code(data, code: str):
    """Values of a [CODE a b c] response code in tagged/untagged response text."""
    for item in data or []:
        if isinstance(item, tuple):
            item = item[0]
        if item is None:
            continue
        mm = re.search(rb"\[" + code.encode() + rb" ([^\]]*)\]", item)
        if mm:
            return mm.group(1).decode().split()
    return None


class ImapTest(ServerTestCase):
    counter = 0

    def login(self, mode: str = "starttls", user: str = ALICE, pw: str = ALICE_PW):
        m = self.server.imap(user, pw, mode=mode)
        self.addCleanup(safe_logout, m)
        return m

    def fresh_mailbox(self, m, prefix: str = "Box") -> str:
        ImapTest.counter += 1
        name = f"{prefix}{ImapTest.counter}x{time.time_ns() % 100000}"
        imap_check(m.create(name), f"CREATE {name}")
        return name

    def append(self, m, mailbox: str, msg: bytes, flags: str | None = None) -> int:
        typ, data = m.append(mailbox, flags, None, msg)
        self.assertEqual(typ, "OK", data)
        appenduid = response_code(data, "APPENDUID")
        self.assertIsNotNone(appenduid, f"APPEND lacks APPENDUID (UIDPLUS): {data!r}")
        return int(appenduid[1])

    # ---- connection / auth -----------------------------------------------------------------

    def test_capabilities_after_login(self):
        m = self.login()
        data = imap_check(m.capability(), "CAPABILITY")
        caps = set(b" ".join(d for d in data if d).decode().upper().split())
        for cap in ("IMAP4REV1", "IDLE", "UIDPLUS", "CONDSTORE", "MOVE", "SPECIAL-USE",
                    "LITERAL+", "NAMESPACE", "ENABLE"):
            self.assertIn(cap, caps)
        self.assertNotIn("LOGINDISABLED", caps)

    def test_login_before_starttls_is_refused(self):
        m = self.server.imap(mode="plain")
        self.addCleanup(safe_logout, m)
        self.assertIn("LOGINDISABLED", m.capabilities)
        self.assertIn("STARTTLS", m.capabilities)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login(ALICE, ALICE_PW)
        # And the connection can still upgrade and log in afterwards.
        m.starttls(ssl_context=__import__("ssl")._create_unverified_context())
        imap_check(m.login(ALICE, ALICE_PW), "LOGIN after STARTTLS")

    def test_imaps_implicit_tls_login_and_list(self):
        m = self.login(mode="imaps")
        boxes = list_mailboxes(m)
        self.assertIn("INBOX", {b.upper() for b in boxes})

    def test_wrong_password_is_no(self):
        m = self.server.imap(mode="starttls")
        self.addCleanup(safe_logout, m)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login(BOB, "wrong-password")
        # The same connection may retry with the right password.
        imap_check(m.login(BOB, BOB_PW), "LOGIN after a failed attempt")

    def test_app_password_works_for_imap_login(self):
        token = self.server.add_app_password(BOB, "phone")
        self.assertGreaterEqual(len(token), 12, f"app password looks too short: {token!r}")
        m = self.server.imap(BOB, token)
        self.addCleanup(safe_logout, m)
        imap_check(m.select("INBOX"), "SELECT with app password")
        # The account password keeps working too.
        m2 = self.login(user=BOB, pw=BOB_PW)
        imap_check(m2.noop(), "NOOP")

    def test_authenticate_plain_after_tls(self):
        m = self.server.imap(mode="starttls")
        self.addCleanup(safe_logout, m)
        typ, _ = m.authenticate("PLAIN", lambda _: f"\0{ALICE}\0{ALICE_PW}".encode())
        self.assertEqual(typ, "OK")

    # ---- mailboxes ---------------------------------------------------------------------------

    def test_list_shows_special_use_mailboxes(self):
        m = self.login()
        boxes = list_mailboxes(m)
        for name, attr in SPECIAL_USE.items():
            self.assertIn(name, boxes, f"LIST lacks {name}: {sorted(boxes)}")
            self.assertIn(attr, boxes[name], f"{name} lacks {attr} in LIST: {boxes[name]}")
        # RFC 9051 §6.3.9 / RFC 6154: SPECIAL-USE selection option returns only those.
        typ, data = m._simple_command("LIST", "(SPECIAL-USE)", '""', '"*"')
        self.assertEqual(typ, "OK")
        _, data = m._untagged_response(typ, data, "LIST")
        names = {unquote(LIST_LINE.match(l).group("name")) for l in data if l}
        self.assertTrue(set(SPECIAL_USE) <= names, names)
        self.assertNotIn("INBOX", {n.upper() for n in names})

    def test_create_rename_delete_hierarchy(self):
        m = self.login()
        imap_check(m.create("Projects/2024/Q1"), "CREATE nested")
        boxes = list_mailboxes(m)
        self.assertIn("Projects/2024/Q1", boxes)
        self.assertIn("Projects/2024", boxes, "intermediate levels exist (RFC 9051 §6.3.4)")
        self.assertIn("Projects", boxes)
        self.assertIn(r"\HasChildren", boxes["Projects"])
        # Store a message below, rename the top: children and messages move along.
        self.append(m, "Projects/2024/Q1", make_message("in q1"))
        imap_check(m.rename("Projects", "Work"), "RENAME")
        boxes = list_mailboxes(m)
        self.assertNotIn("Projects", boxes)
        self.assertNotIn("Projects/2024/Q1", boxes)
        self.assertIn("Work/2024/Q1", boxes)
        imap_check(m.select("Work/2024/Q1", readonly=True), "SELECT renamed child")
        self.assertEqual(len(imap_search(m, "ALL")), 1)
        m.close()
        # Deleting a mailbox with children keeps the children (RFC 9051 §6.3.5: \Noselect or NO).
        imap_check(m.delete("Work/2024/Q1"), "DELETE leaf")
        imap_check(m.delete("Work/2024"), "DELETE middle")
        imap_check(m.delete("Work"), "DELETE top")
        boxes = list_mailboxes(m)
        self.assertFalse([b for b in boxes if b.startswith("Work")], boxes)
        # INBOX cannot be deleted; an existing name cannot be created twice.
        self.assertEqual(m.delete("INBOX")[0], "NO")
        name = self.fresh_mailbox(m)
        self.assertEqual(m.create(name)[0], "NO")
        self.assertEqual(m.select("DoesNotExist")[0], "NO")

    def test_subscribe_and_lsub(self):
        m = self.login()
        name = self.fresh_mailbox(m, "Sub")
        imap_check(m.subscribe(name), "SUBSCRIBE")
        data = imap_check(m.lsub('""', "*"), "LSUB")
        self.assertTrue(any(name.encode() in (l or b"") for l in data), data)
        imap_check(m.unsubscribe(name), "UNSUBSCRIBE")
        data = imap_check(m.lsub('""', "*"), "LSUB")
        self.assertFalse(any(name.encode() in (l or b"") for l in data), data)

    def test_status_counts(self):
        m = self.login()
        name = self.fresh_mailbox(m)
        self.append(m, name, make_message("s1"))
        self.append(m, name, make_message("s2"), r"(\Seen)")
        data = imap_check(m.status(name, "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)"), "STATUS")
        text = data[0].decode()
        self.assertRegex(text, r"MESSAGES 2\b")
        self.assertRegex(text, r"UNSEEN 1\b")
        self.assertRegex(text, r"UIDNEXT 3\b")

    # ---- messages ----------------------------------------------------------------------------

    def test_append_and_fetch_body_structure_envelope(self):
        m = self.login()
        name = self.fresh_mailbox(m)
        uid = self.append(m, name, MULTIPART)
        imap_check(m.select(name), "SELECT")
        data = imap_check(m.uid("FETCH", str(uid), "(BODY.PEEK[])"), "FETCH BODY.PEEK[]")
        self.assertEqual(fetch_literal(data), MULTIPART, "BODY[] returns the appended bytes")

        data = imap_check(m.uid("FETCH", str(uid), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "")
        self.assertEqual(fetch_literal(data), b"Subject: multipart test\r\n\r\n")

        data = imap_check(m.uid("FETCH", str(uid), "(BODY.PEEK[1])"), "FETCH part 1")
        self.assertEqual(fetch_literal(data), b"Hello text part")
        data = imap_check(m.uid("FETCH", str(uid), "(BODY.PEEK[]<0.4>)"), "FETCH partial")
        self.assertEqual(fetch_literal(data), b"From")

        data = imap_check(m.uid("FETCH", str(uid), "(FLAGS)"), "FETCH FLAGS")
        self.assertNotIn(b"\\Seen", data[0], "BODY.PEEK does not set \\Seen")

        data = imap_check(m.uid("FETCH", str(uid), "(BODYSTRUCTURE)"), "FETCH BODYSTRUCTURE")
        bs = b" ".join(x if isinstance(x, bytes) else x[0] for x in data).upper()
        self.assertIn(b'"MIXED"', bs)
        self.assertIn(b'("TEXT" "PLAIN"', bs)
        self.assertIn(b'"APPLICATION" "OCTET-STREAM"', bs)
        self.assertIn(b'"BASE64"', bs)
        self.assertIn(b'"B1"', bs, "boundary parameter in the extension data")

        data = imap_check(m.uid("FETCH", str(uid), "(ENVELOPE RFC822.SIZE INTERNALDATE)"), "")
        env = b" ".join(x if isinstance(x, bytes) else x[0] + x[1] for x in data)
        self.assertIn(b'"multipart test"', env)
        self.assertIn(b'"Alice Example" NIL "alice" "example.test"', env)
        self.assertIn(b'"<multipart-1@e2e.test>"', env)
        self.assertIn(f"RFC822.SIZE {len(MULTIPART)}".encode(), env)

        # A non-peek BODY[] fetch sets \Seen (RFC 9051 §6.4.5).
        imap_check(m.uid("FETCH", str(uid), "(BODY[])"), "FETCH BODY[]")
        data = imap_check(m.uid("FETCH", str(uid), "(FLAGS)"), "FETCH FLAGS")
        self.assertIn(b"\\Seen", data[0])

    def test_store_flags(self):
        m = self.login()
        name = self.fresh_mailbox(m)
        uid = self.append(m, name, make_message("flags"))
        imap_check(m.select(name), "SELECT")
        data = imap_check(m.uid("STORE", str(uid), "+FLAGS", r"(\Flagged \Seen $Label1)"), "")
        flags = b" ".join(d for d in data if isinstance(d, bytes))
        for f in (b"\\Flagged", b"\\Seen"):
            self.assertIn(f, flags)
        # Keywords compare case-insensitively (RFC 9051 §2.3.2).
        self.assertIn(b"$label1", flags.lower())
        imap_check(m.uid("STORE", str(uid), "-FLAGS", r"(\Seen)"), "STORE -FLAGS")
        data = imap_check(m.uid("FETCH", str(uid), "(FLAGS)"), "FETCH")
        self.assertNotIn(b"\\Seen", data[0])
        self.assertIn(b"\\Flagged", data[0])
        data = imap_check(m.uid("STORE", str(uid), "FLAGS.SILENT", r"(\Answered)"), "SILENT")
        self.assertFalse([d for d in data if d and b"FETCH" in d],
                         f".SILENT sends no FETCH: {data!r}")
        data = imap_check(m.uid("FETCH", str(uid), "(FLAGS)"), "FETCH")
        self.assertIn(b"\\Answered", data[0])
        self.assertNotIn(b"\\Flagged", data[0])
        # EXAMINE is read-only: STORE is refused.
        imap_check(m.select(name, readonly=True), "EXAMINE")
        self.assertEqual(m.uid("STORE", str(uid), "+FLAGS", r"(\Seen)")[0], "NO")

    def test_search_keys_and_uid_ranges(self):
        m = self.login()
        name = self.fresh_mailbox(m)
        uids = [
            self.append(m, name, make_message("apples report", sender="carol@remote.test")),
            self.append(m, name, make_message("bananas", sender="dave@remote.test"), r"(\Seen)"),
            self.append(m, name, make_message("apples again", sender="dave@remote.test")),
            self.append(m, name, make_message("cherries", sender="carol@remote.test",
                                              body="the secret word is zucchini\r\n"),
                        r"(\Seen \Flagged)"),
        ]
        self.assertEqual(uids, sorted(uids))
        imap_check(m.select(name), "SELECT")
        self.assertEqual(imap_search(m, "SUBJECT", "apples"), [1, 3])
        self.assertEqual(imap_search(m, "FROM", "carol@remote.test"), [1, 4])
        self.assertEqual(imap_search(m, "UNSEEN"), [1, 3])
        self.assertEqual(imap_search(m, "SEEN", "FROM", "dave"), [2])
        self.assertEqual(imap_search(m, "FLAGGED"), [4])
        self.assertEqual(imap_search(m, "BODY", "zucchini"), [4])
        self.assertEqual(imap_search(m, "OR", "SUBJECT", "bananas", "SUBJECT", "cherries"), [2, 4])
        self.assertEqual(imap_search(m, "NOT", "SUBJECT", "apples"), [2, 4])
        self.assertEqual(imap_search(m, "2:*"), [2, 3, 4])
        self.assertEqual(imap_search(m, "UID", f"{uids[1]}:{uids[2]}", uid=True), uids[1:3])
        self.assertEqual(imap_search(m, "UID", f"{uids[2]}:*", uid=True), uids[2:])
        self.assertEqual(imap_search(m, "CHARSET", "UTF-8", "SUBJECT", "cherries"), [4])
        self.assertEqual(imap_search(m, "SUBJECT", "nomatchanywhere"), [])

    def test_copy_and_move_with_copyuid(self):
        m = self.login()
        src, dst = self.fresh_mailbox(m, "Src"), self.fresh_mailbox(m, "Dst")
        u1 = self.append(m, src, make_message("to copy"))
        u2 = self.append(m, src, make_message("to move"))
        imap_check(m.select(src), "SELECT")
        # imaplib's uid() drops the tagged text, so send UID COPY/MOVE via _simple_command.
        typ, data = m._simple_command("UID", "COPY", str(u1), dst)
        self.assertEqual(typ, "OK", data)
        copyuid = response_code(data, "COPYUID")
        self.assertIsNotNone(copyuid, f"COPY lacks COPYUID: {data!r}")
        self.assertEqual(copyuid[1], str(u1))
        self.assertEqual(len(imap_search(m, "ALL")), 2, "COPY keeps the source")

        typ, data = m._simple_command("UID", "MOVE", str(u2), dst)
        self.assertEqual(typ, "OK", data)
        # RFC 6851 §4.3: COPYUID arrives in an untagged OK before the EXPUNGE.
        untagged = m.untagged_responses.get("OK", [])
        copyuid = response_code(list(untagged) + list(data), "COPYUID")
        self.assertIsNotNone(copyuid, f"MOVE lacks COPYUID: {data!r} {untagged!r}")
        self.assertEqual(copyuid[1], str(u2))
        self.assertEqual(imap_search(m, "ALL"), [1], "MOVE removed the message from the source")
        imap_check(m.select(dst, readonly=True), "SELECT dst")
        self.assertEqual(len(imap_search(m, "ALL")), 2)
        self.assertEqual(imap_search(m, "SUBJECT", '"to move"'), [2])
        # COPY to a missing mailbox: NO [TRYCREATE].
        imap_check(m.select(src), "SELECT")
        typ, data = m.uid("COPY", str(u1), "NoSuchBox")
        self.assertEqual(typ, "NO")
        self.assertIn(b"TRYCREATE", b" ".join(d for d in data if d))

    def test_expunge_and_uid_expunge(self):
        m = self.login()
        name = self.fresh_mailbox(m)
        uids = [self.append(m, name, make_message(f"e{i}")) for i in range(4)]
        imap_check(m.select(name), "SELECT")
        imap_check(m.store("2", "+FLAGS", r"(\Deleted)"), "STORE")
        data = imap_check(m.expunge(), "EXPUNGE")
        self.assertEqual([d for d in data if d], [b"2"])
        self.assertEqual(imap_search(m, "ALL", uid=True), [uids[0], uids[2], uids[3]])
        # UID EXPUNGE removes only the named UIDs (RFC 4315 §2.1).
        imap_check(m.uid("STORE", f"{uids[2]}:{uids[3]}", "+FLAGS", r"(\Deleted)"), "STORE")
        imap_check(m.uid("EXPUNGE", str(uids[3])), "UID EXPUNGE")
        self.assertEqual(imap_search(m, "ALL", uid=True), [uids[0], uids[2]])
        # CLOSE expunges silently.
        imap_check(m.close(), "CLOSE")
        data = imap_check(m.status(name, "(MESSAGES)"), "STATUS")
        self.assertIn(b"MESSAGES 1", data[0])

    def test_condstore_modseq_advances_and_changedsince(self):
        m = self.login()
        name = self.fresh_mailbox(m)
        u1 = self.append(m, name, make_message("cs1"))
        u2 = self.append(m, name, make_message("cs2"))
        imap_check(m.enable("CONDSTORE"), "ENABLE CONDSTORE")
        imap_check(m.select(name), "SELECT")
        hms = m.response("HIGHESTMODSEQ")[1]
        self.assertTrue(hms and hms[0], "SELECT reports HIGHESTMODSEQ")
        before = int(hms[0])
        imap_check(m.uid("STORE", str(u2), "+FLAGS", r"(\Flagged)"), "STORE")
        data = imap_check(m.uid("FETCH", f"{u1}:{u2}", "(FLAGS)", f"(CHANGEDSINCE {before})"), "")
        lines = [d for d in data if d]
        self.assertEqual(len(lines), 1, f"only the changed message: {lines!r}")
        mm = re.search(rb"MODSEQ \((\d+)\)", lines[0])
        self.assertTrue(mm, lines[0])
        self.assertGreater(int(mm.group(1)), before)

    def test_uidvalidity_and_uidnext_survive_restart_and_uids_not_reused(self):
        m = self.server.imap(ALICE, ALICE_PW)
        name = self.fresh_mailbox(m, "Persist")
        uids = [self.append(m, name, make_message(f"p{i}")) for i in range(3)]
        imap_check(m.select(name), "SELECT")
        imap_check(m.uid("STORE", str(uids[2]), "+FLAGS", r"(\Deleted)"), "STORE")
        imap_check(m.expunge(), "EXPUNGE")
        text = imap_check(m.status(name, "(UIDVALIDITY UIDNEXT)"), "STATUS")[0].decode()
        safe_logout(m)
        validity = re.search(r"UIDVALIDITY (\d+)", text).group(1)
        uidnext = int(re.search(r"UIDNEXT (\d+)", text).group(1))
        self.assertEqual(uidnext, uids[2] + 1)

        self.server.restart()
        m = self.login()
        text = imap_check(m.status(name, "(UIDVALIDITY UIDNEXT MESSAGES)"), "STATUS")[0].decode()
        self.assertIn(f"UIDVALIDITY {validity}", text)
        self.assertIn(f"UIDNEXT {uidnext}", text)
        self.assertIn("MESSAGES 2", text)
        new_uid = self.append(m, name, make_message("after restart"))
        self.assertEqual(new_uid, uidnext, "the expunged highest UID is not reused")

        self.server.restart(crash=True)
        m = self.login()
        text = imap_check(m.status(name, "(UIDVALIDITY UIDNEXT MESSAGES)"), "STATUS")[0].decode()
        self.assertIn(f"UIDVALIDITY {validity}", text)
        self.assertIn(f"UIDNEXT {uidnext + 1}", text)

    def test_curl_fetches_message_by_uid(self):
        curl = require_tool("curl")
        m = self.login()
        name = self.fresh_mailbox(m, "Curl")
        uid = self.append(m, name, make_message("fetched by curl", body="curl body line\r\n"))
        host, port = self.server.addr("imap")
        proc = subprocess.run(
            [curl, "-sS", "-k", "--ssl-reqd", "--max-time", "30",
             f"imap://{host}:{port}/{name};UID={uid}", "-u", f"{ALICE}:{ALICE_PW}"],
            capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        self.assertIn(b"Subject: fetched by curl", proc.stdout)
        self.assertIn(b"curl body line", proc.stdout)

    def test_curl_uploads_a_message(self):
        curl = require_tool("curl")
        m = self.login()
        name = self.fresh_mailbox(m, "Upload")
        src = self.server.dir / "upload.eml"
        src.write_bytes(make_message("uploaded by curl", body="curl upload body\r\n"))
        host, port = self.server.addr("imap")
        proc = subprocess.run(
            [curl, "-sS", "-k", "--ssl-reqd", "--max-time", "30", "-T", str(src),
             f"imap://{host}:{port}/{name}", "-u", f"{ALICE}:{ALICE_PW}"],
            capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        imap_check(m.select(name, readonly=True), "SELECT")
        self.assertEqual(imap_search(m, "SUBJECT", '"uploaded by curl"'), [1])

    def test_curl_imaps_lists_mailboxes(self):
        curl = require_tool("curl")
        host, port = self.server.addr("imaps")
        proc = subprocess.run(
            [curl, "-sS", "-k", "--max-time", "30", f"imaps://{host}:{port}/",
             "-u", f"{ALICE}:{ALICE_PW}"], capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        self.assertIn(b"Sent", proc.stdout)
        self.assertIn(b"INBOX", proc.stdout.upper())

    # ---- extensions ----------------------------------------------------------------------

    def raw(self):
        c = self.server.raw_imap(tls=True)
        self.addCleanup(c.close)
        c.login(ALICE, ALICE_PW)
        return c

    def test_append_literal_plus_flags_and_internaldate(self):
        m = self.login()
        name = self.fresh_mailbox(m, "LitPlus")
        c = self.raw()
        msg = make_message("literal plus")
        # RFC 7888: a non-synchronizing literal needs no continuation round trip.
        lines = c.ok(f'APPEND {name} (\\Flagged) "05-Mar-2021 14:07:09 +0100" {{{len(msg)}+}}\r\n'
                     .encode() + msg)
        self.assertIn(b"APPENDUID", lines[-1])
        lines = c.ok(f"EXAMINE {name}")
        lines = c.ok("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)")
        text = b"".join(lines)
        self.assertIn(b"\\Flagged", text)
        # The same instant (the server may normalise the zone, RFC 9051 §2.3.3).
        got = imaplib.Internaldate2tuple(text)
        self.assertIsNotNone(got, text)
        self.assertEqual(time.mktime(got), time.mktime(
            imaplib.Internaldate2tuple(b'INTERNALDATE "05-Mar-2021 13:07:09 +0000"')))
        self.assertIn(f"RFC822.SIZE {len(msg)}".encode(), text)

    def test_append_over_size_limit_is_refused_before_the_literal(self):
        c = self.raw()
        tag = c.tag()
        c.send(f"{tag} APPEND INBOX {{{2 * 1024 * 1024}}}\r\n".encode())
        line = c.read_line()
        self.assertFalse(line.startswith(b"+"), f"server invited a 2 MB literal: {line!r}")
        self.assertRegex(line, rb"^" + tag.encode() + rb" (NO|BAD)")
        self.assertIn(b"TOOBIG", line.upper(), "RFC 7889: NO [TOOBIG]")
        c.ok("NOOP")

    def test_binary_fetch_decodes_base64_part(self):
        m = self.login()
        name = self.fresh_mailbox(m, "Bin")
        uid = self.append(m, name, MULTIPART)
        c = self.raw()
        c.ok(f"EXAMINE {name}")
        lines = c.ok(f"UID FETCH {uid} (BINARY.PEEK[2] BINARY.SIZE[2])")
        text = b"".join(lines)
        self.assertIn(b"BINARY.SIZE[2] 5", text)
        self.assertIn(b"\x00\x01\x02\x03\x04", text)

    def test_search_utf8_subject_with_literal(self):
        m = self.login()
        name = self.fresh_mailbox(m, "Utf")
        self.append(m, name, make_message("plain ascii"))
        self.append(m, name, b"From: x@remote.test\r\n"
                    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
                    b"Message-ID: <utf8@e2e.test>\r\n\r\nHallo\r\n")
        c = self.raw()
        c.ok(f"EXAMINE {name}")
        needle = "Grüße".encode()
        tag = c.tag()
        c.send(f"{tag} SEARCH CHARSET UTF-8 SUBJECT {{{len(needle)}}}\r\n".encode())
        self.assertTrue(c.read_line().startswith(b"+"))
        c.send(needle + b"\r\n")
        lines = c.read_response(tag)
        self.assertIn(b"* SEARCH 2\r\n", lines, lines)

    def test_esearch_and_list_status(self):
        m = self.login()
        name = self.fresh_mailbox(m, "Es")
        for i in range(3):
            self.append(m, name, make_message(f"es{i}"), r"(\Seen)" if i == 1 else None)
        c = self.raw()
        lines = c.ok(f'LIST "" "{name}" RETURN (STATUS (MESSAGES UNSEEN))')
        self.assertIn(f'* STATUS "{name}" (MESSAGES 3 UNSEEN 2)\r\n'.encode(),
                      [l.replace(f"* STATUS {name} ".encode(), f'* STATUS "{name}" '.encode())
                       for l in lines], lines)
        c.ok(f"EXAMINE {name}")
        lines = c.ok("SEARCH RETURN (MIN MAX COUNT) ALL")
        esearch = [l for l in lines if l.startswith(b"* ESEARCH")]
        self.assertTrue(esearch, lines)
        self.assertIn(b"MIN 1", esearch[0])
        self.assertIn(b"MAX 3", esearch[0])
        self.assertIn(b"COUNT 3", esearch[0])

    def test_qresync_reports_vanished_uids_after_reconnect(self):
        m = self.login()
        name = self.fresh_mailbox(m, "Qr")
        uids = [self.append(m, name, make_message(f"q{i}")) for i in range(3)]
        c = self.raw()
        c.ok("ENABLE QRESYNC")
        lines = c.ok(f"SELECT {name}")
        text = b"".join(lines)
        validity = int(re.search(rb"UIDVALIDITY (\d+)", text).group(1))
        modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", text).group(1))
        c.ok("LOGOUT")
        # Another session expunges one message and flags another.
        imap_check(m.select(name), "SELECT")
        imap_check(m.uid("STORE", str(uids[1]), "+FLAGS", r"(\Deleted)"), "STORE")
        imap_check(m.expunge(), "EXPUNGE")
        imap_check(m.uid("STORE", str(uids[2]), "+FLAGS", r"(\Flagged)"), "STORE")
        c2 = self.raw()
        c2.ok("ENABLE QRESYNC")
        lines = c2.ok(f"SELECT {name} (QRESYNC ({validity} {modseq}))")
        text = b"".join(lines)
        self.assertIn(f"* VANISHED (EARLIER) {uids[1]}".encode(), text, lines)
        self.assertRegex(text, rb"\* \d+ FETCH \([^\r]*UID " + str(uids[2]).encode())
        self.assertNotRegex(text, rb"FETCH \([^\r]*UID " + str(uids[0]).encode() + rb"\b",
                            "unchanged messages are not reported")

    def test_rename_inbox_moves_messages_and_keeps_inbox(self):
        user, pw = f"ren{time.time_ns() % 10**6}@example.test", "rename-Secret-pw"
        self.server.add_account(user, pw)
        m = self.server.imap(user, pw)
        self.addCleanup(safe_logout, m)
        self.append(m, "INBOX", make_message("old inbox mail", to=user))
        # RFC 9051 §6.3.6: renaming INBOX moves its messages; INBOX stays, empty.
        imap_check(m.rename("INBOX", "OldInbox"), "RENAME INBOX")
        data = imap_check(m.status("INBOX", "(MESSAGES)"), "STATUS INBOX")
        self.assertIn(b"MESSAGES 0", data[0])
        data = imap_check(m.status("OldInbox", "(MESSAGES)"), "STATUS OldInbox")
        self.assertIn(b"MESSAGES 1", data[0])

    def test_mailbox_names_with_spaces_and_utf7(self):
        m = self.login()
        for name in ('"Reports 2024"', "&AMQ-rger", '"Caf&AOk- Stuff/Sub Folder"'):
            imap_check(m.create(name), f"CREATE {name}")
        boxes = list_mailboxes(m)
        self.assertIn("Reports 2024", boxes)
        self.assertIn("&AMQ-rger", boxes)
        self.assertIn("Caf&AOk- Stuff/Sub Folder", boxes)
        self.append(m, '"Reports 2024"', make_message("spaced"))
        imap_check(m.select('"Reports 2024"', readonly=True), "SELECT spaced")
        self.assertEqual(len(imap_search(m, "ALL")), 1)

    def test_unselect_does_not_expunge(self):
        m = self.login()
        name = self.fresh_mailbox(m, "Uns")
        self.append(m, name, make_message("keep"), r"(\Deleted)")
        imap_check(m.select(name), "SELECT")
        imap_check(m.unselect(), "UNSELECT")
        data = imap_check(m.status(name, "(MESSAGES)"), "STATUS")
        self.assertIn(b"MESSAGES 1", data[0])

    def test_login_name_and_inbox_are_case_insensitive(self):
        m = self.server.imap(ALICE.upper(), ALICE_PW)
        self.addCleanup(safe_logout, m)
        typ, data = m.select("inbox", readonly=True)
        self.assertEqual(typ, "OK", data)
        self.assertEqual(m.select("InBoX", readonly=True)[0], "OK")

    def test_fetch_sections_and_macros(self):
        m = self.login()
        name = self.fresh_mailbox(m, "Sec")
        uid = self.append(m, name, MULTIPART, r"(\Seen)")
        imap_check(m.select(name, readonly=True), "EXAMINE")
        header, body = MULTIPART.split(b"\r\n\r\n", 1)

        def one(items):
            return fetch_literal(imap_check(m.uid("FETCH", str(uid), items), items))
        self.assertEqual(one("(BODY.PEEK[HEADER])"), header + b"\r\n\r\n")
        self.assertEqual(one("(BODY.PEEK[TEXT])"), body)
        self.assertEqual(one("(RFC822.HEADER)"), header + b"\r\n\r\n")
        self.assertEqual(one("(BODY.PEEK[2.MIME])"),
                         b'Content-Type: application/octet-stream; name="a.bin"\r\n'
                         b"Content-Transfer-Encoding: base64\r\n"
                         b'Content-Disposition: attachment; filename="a.bin"\r\n\r\n')
        self.assertEqual(one("(BODY.PEEK[2])"), b"AAECAwQ=")
        self.assertEqual(one("(BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT DATE FROM TO MESSAGE-ID "
                             "MIME-VERSION)])"),
                         b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n')
        for macro in ("FAST", "ALL", "FULL"):
            data = imap_check(m.uid("FETCH", str(uid), macro), macro)
            flat = b" ".join(x if isinstance(x, bytes) else x[0] for x in data)
            # EXAMINE shows the unclaimed new message as \Recent (RFC 3501 §2.3.2, §6.3.2).
            self.assertIn(b"FLAGS (\\Seen \\Recent)", flat, macro)
            self.assertIn(b"INTERNALDATE", flat, macro)
            self.assertIn(b"RFC822.SIZE", flat, macro)

    def test_search_dates_sizes_and_headers(self):
        m = self.login()
        name = self.fresh_mailbox(m, "Dates")
        old = (b"From: a@remote.test\r\nSubject: old one\r\n"
               b"Date: Wed, 01 Mar 2000 10:00:00 +0000\r\n"
               b"X-Custom: marker-42\r\n\r\nshort\r\n")
        imap_check(m.append(name, None, '"01-Mar-2000 10:00:00 +0000"', old), "APPEND old")
        imap_check(m.append(name, None, None, make_message("new one", body="y" * 5000)), "APPEND")
        imap_check(m.select(name, readonly=True), "EXAMINE")
        self.assertEqual(imap_search(m, "BEFORE", "1-Jan-2001"), [1])
        self.assertEqual(imap_search(m, "SINCE", "1-Jan-2001"), [2])
        self.assertEqual(imap_search(m, "SENTBEFORE", "1-Jan-2001"), [1])
        self.assertEqual(imap_search(m, "LARGER", "4000"), [2])
        self.assertEqual(imap_search(m, "SMALLER", "4000"), [1])
        self.assertEqual(imap_search(m, "HEADER", "X-Custom", "marker-42"), [1])
        self.assertEqual(imap_search(m, "TEXT", "marker-42"), [1])

    def test_conditional_store_unchangedsince(self):
        m = self.login()
        name = self.fresh_mailbox(m, "Cond")
        u1 = self.append(m, name, make_message("c1"))
        u2 = self.append(m, name, make_message("c2"))
        c = self.raw()
        lines = c.ok(f"SELECT {name} (CONDSTORE)")
        hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)).group(1))
        c.ok(f"UID STORE {u2} +FLAGS (\\Seen)")
        # RFC 7162 §3.1.3: a STORE with an outdated UNCHANGEDSINCE fails for that message.
        lines = c.ok(f"UID STORE {u1}:{u2} (UNCHANGEDSINCE {hms}) +FLAGS (\\Flagged)")
        self.assertRegex(lines[-1], rb"\[MODIFIED " + str(u2).encode() + rb"\]")
        lines = c.ok(f"UID FETCH {u1}:{u2} (FLAGS)")
        text = b"".join(lines)
        self.assertRegex(text, rb"UID " + str(u1).encode() + rb"[^\r]*\\Flagged|"
                               rb"\\Flagged[^\r]*UID " + str(u1).encode())
        u2_line = [l for l in lines if f"UID {u2}".encode() in l][0]
        self.assertNotIn(b"\\Flagged", u2_line)

    def test_copy_keeps_flags_and_append_to_missing_mailbox_is_trycreate(self):
        m = self.login()
        src, dst = self.fresh_mailbox(m, "Cs"), self.fresh_mailbox(m, "Cd")
        uid = self.append(m, src, make_message("flagged copy"), r"(\Flagged $Work)")
        imap_check(m.select(src), "SELECT")
        imap_check(m.uid("COPY", str(uid), dst), "COPY")
        imap_check(m.select(dst, readonly=True), "EXAMINE")
        data = imap_check(m.fetch("1", "(FLAGS)"), "FETCH")
        self.assertIn(b"\\Flagged", data[0])
        self.assertIn(b"$work", data[0].lower())
        typ, data = m.append("NoSuchMailboxHere", None, None, make_message("x"))
        self.assertEqual(typ, "NO")
        self.assertIn(b"TRYCREATE", b" ".join(d for d in data if d))

    def test_sort_and_thread(self):
        m = self.login()
        name = self.fresh_mailbox(m, "Thr")
        root = (b"From: a@remote.test\r\nSubject: banana\r\nMessage-ID: <root@t>\r\n"
                b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nroot\r\n")
        reply = (b"From: b@remote.test\r\nSubject: Re: banana\r\nMessage-ID: <reply@t>\r\n"
                 b"In-Reply-To: <root@t>\r\nReferences: <root@t>\r\n"
                 b"Date: Mon, 01 Jan 2024 11:00:00 +0000\r\n\r\nreply\r\n")
        other = (b"From: c@remote.test\r\nSubject: apple\r\nMessage-ID: <other@t>\r\n"
                 b"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n\r\nother\r\n")
        for msg in (root, reply, other):
            imap_check(m.append(name, None, None, msg), "APPEND")
        imap_check(m.select(name, readonly=True), "EXAMINE")
        data = imap_check(m.sort("(SUBJECT)", "UTF-8", "ALL"), "SORT")
        # RFC 5256: base subject ("Re: banana" -> "banana"), ties by sent date.
        self.assertEqual(data[0].split(), [b"3", b"1", b"2"])
        data = imap_check(m.thread("REFERENCES", "UTF-8", "ALL"), "THREAD")
        self.assertIn(b"(1 2)", data[0])
        self.assertIn(b"(3)", data[0])

    def test_accounts_are_isolated(self):
        ma = self.login()
        name = self.fresh_mailbox(ma, "Private")
        self.append(ma, name, make_message("alice only"))
        mb = self.login(user=BOB, pw=BOB_PW)
        self.assertNotIn(name, list_mailboxes(mb))
        self.assertEqual(mb.select(name)[0], "NO")


if __name__ == "__main__":
    unittest.main()

"""The web client's "Upload mail" and "Download my data" over real HTTP (issue 18).

`POST /migrate/import` with an app password (HTTP Basic): a 200-message mbox written by
Python's `mailbox` (flags, a custom keyword) lands in the folder asked for and reads back over
IMAP; an .eml lands in INBOX; uploading the same mbox again imports nothing. `GET
/migrate/export` is one tar: untarred, `bulwark import` restores it into a second account, and
the two accounts are compared message by message over IMAP (bytes, flags and keywords,
internal dates, folders). Wrong content types get 415, a declared length over
`[limits] max_import_size` 413 before the body is sent, no or wrong credentials 401.
"""

import base64
import calendar
import http.client
import io
import json
import mailbox
import re
import socket
import tarfile
import tempfile
import time
import unittest
from pathlib import Path

from harness import ALICE, ALICE_PW, BOB, BOB_PW, LISTENERS, ServerTestCase, safe_logout

CAROL = "carol@example.test"
CAROL_PW = "carol-Secret-pw-3"
MESSAGES = 200
BASE = calendar.timegm((2025, 6, 1, 9, 0, 0))
MAX_IMPORT = 2 << 20


def mbox_flags(i: int) -> str:
    """Python mboxMessage flags: R read, O old, A answered, F flagged, T draft."""
    f = "O"
    if i % 2 == 0:
        f += "R"
    if i % 3 == 0:
        f += "A"
    if i % 5 == 0:
        f += "F"
    if i % 7 == 0:
        f += "T"
    return f


def expected_flags(i: int) -> set:
    names = {"R": "\\Seen", "A": "\\Answered", "F": "\\Flagged", "T": "\\Draft"}
    flags = {names[c] for c in mbox_flags(i) if c in names}
    if i % 4 == 0:
        flags.add("Project-X")
    return flags


def build_mbox(tag: str, n: int = MESSAGES) -> bytes:
    """An mbox as Python's `mailbox` writes it, read back as bytes."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "upload.mbox"
        mb = mailbox.mbox(str(path))
        mb.lock()
        for i in range(n):
            m = mailbox.mboxMessage()
            m["From"] = "Sender <sender@example.org>"
            m["To"] = ALICE
            m["Subject"] = f"{tag} {i}"
            m["Message-ID"] = f"<{tag}-{i}@example.org>"
            m["Date"] = "Sun, 01 Jun 2025 09:00:00 +0000"
            if i % 4 == 0:
                m["X-Keywords"] = "Project-X"
            m.set_payload(f"Message {i}\nFrom the middle of a line\n" + "line\n" * (i % 9))
            m.set_from("sender@example.org", time.gmtime(BASE + i * 60))
            m.set_flags(mbox_flags(i))
            mb.add(m)
        mb.flush()
        mb.unlock()
        mb.close()
        return path.read_bytes()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def imap_list(m) -> list:
    typ, data = m.list()
    assert typ == "OK", data
    names = []
    for line in data:
        match = re.match(rb'\(.*?\) (?:"[^"]*"|NIL) (.*)$', line)
        name = match.group(1).decode()
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        names.append(name)
    return sorted(names)


def folder_contents(m, folder: str) -> list:
    """Sorted (raw message, flags, internal date) of every message in the folder."""
    typ, data = m.select(f'"{folder}"', readonly=True)
    assert typ == "OK", (folder, data)
    if int(data[0]) == 0:
        return []
    typ, data = m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert typ == "OK", data
    out = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta, raw = item
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split())
        flags.discard("\\Recent")
        date = re.search(rb'INTERNALDATE "([^"]+)"', meta).group(1).decode()
        out.append((raw, tuple(sorted(flags)), date))
    return sorted(out)


class WebDataTest(ServerTestCase):
    listeners = LISTENERS + ("http",)
    limits_toml = f"max_import_size = {MAX_IMPORT}\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.app_pw = cls.server.add_app_password(ALICE, "web upload test")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, auth: str | None = "app"):
        conn = http.client.HTTPConnection(*self.server.addr("http"), timeout=60)
        try:
            h = dict(headers or {})
            if auth == "app":
                h["Authorization"] = basic(ALICE, self.app_pw)
            elif auth is not None:
                h["Authorization"] = auth
            conn.request(method, path, body=body, headers=h)
            res = conn.getresponse()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
        finally:
            conn.close()

    def upload(self, data: bytes, content_type: str, folder: str | None = None, auth="app"):
        path = "/migrate/import" + (f"?folder={folder}" if folder else "")
        status, headers, body = self.request("POST", path, data, {"Content-Type": content_type}, auth)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"raw": body}
        return status, answer

    def test_mbox_upload_reads_back_over_imap_and_again_imports_nothing(self):
        data = build_mbox("upload")
        status, answer = self.upload(data, "application/mbox", folder="Imported")
        self.assertEqual(status, 200, answer)
        self.assertEqual((answer["imported"], answer["skipped"], answer["failed"]),
                         (MESSAGES, 0, 0), answer)
        self.assertEqual(answer["foldersCreated"], ["Imported"])
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            self.assertIn("Imported", imap_list(m))
            typ, sel = m.select("Imported", readonly=True)
            self.assertEqual(int(sel[0]), MESSAGES)
            typ, rows = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            seen = {}
            for item in rows:
                if not isinstance(item, tuple):
                    continue
                meta, header = item
                i = int(re.search(rb"<upload-(\d+)@", header).group(1))
                flags = set(re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split())
                flags.discard("\\Recent")
                seen[i] = flags
            self.assertEqual(sorted(seen), list(range(MESSAGES)))
            for i, flags in seen.items():
                self.assertEqual(flags, expected_flags(i), f"message {i}")
            # Again: every message is already there.
            status, answer = self.upload(data, "application/mbox; charset=utf-8", folder="Imported")
            self.assertEqual(status, 200, answer)
            self.assertEqual((answer["imported"], answer["skipped"]), (0, MESSAGES), answer)
            m.noop()
            typ, sel = m.select("Imported", readonly=True)
            self.assertEqual(int(sel[0]), MESSAGES)
        finally:
            safe_logout(m)

    def test_eml_upload_lands_in_inbox(self):
        eml = (b"From: Someone <someone@example.org>\r\nTo: alice@example.test\r\n"
               b"Subject: uploaded eml\r\nMessage-ID: <eml-1@example.org>\r\n"
               b"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n\r\nHello from a file.\r\n")
        status, answer = self.upload(eml, "message/rfc822")
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["imported"], 1, answer)
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            m.select("INBOX", readonly=True)
            typ, found = m.search(None, "HEADER", "Message-ID", "eml-1@example.org")
            ids = found[0].split()
            self.assertEqual(len(ids), 1)
            typ, data = m.fetch(ids[0], "(INTERNALDATE BODY.PEEK[])")
            self.assertEqual(data[0][1], eml)
            # No file date: the Date header's.
            self.assertIn(b'" 2-Jun-2025 10:00:00 +0000"', data[0][0])  # RFC 9051 date-day-fixed
        finally:
            safe_logout(m)
        status, answer = self.upload(eml, "message/rfc822")
        self.assertEqual((status, answer["imported"], answer["skipped"]), (200, 0, 1))

    def test_download_untars_into_an_archive_that_import_restores_exactly(self):
        status, answer = self.upload(build_mbox("roundtrip", 60), "application/mbox",
                                     folder="Round/Trip")
        self.assertEqual((status, answer.get("imported")), (200, 60), answer)
        status, headers, body = self.request("GET", "/migrate/export")
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(headers["content-type"], "application/x-tar")
        match = re.fullmatch(r'attachment; filename="(bulwark-alice@example\.test-\d{4}-\d\d-\d\d)\.tar"',
                             headers["content-disposition"])
        self.assertIsNotNone(match, headers["content-disposition"])
        top = match.group(1)
        with tempfile.TemporaryDirectory() as d:
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                names = tar.getnames()
                self.assertIn(f"{top}/manifest.json", names)
                self.assertTrue(all(n == top or n.startswith(top + "/") for n in names), names[:5])
                tar.extractall(d, filter="data")
            archive = Path(d) / top
            manifest = json.loads((archive / "manifest.json").read_text())
            self.assertEqual(manifest["account"], ALICE)
            self.server.add_account(CAROL, CAROL_PW)
            self.server.cli("import", CAROL, str(archive))
        a = self.server.imap(ALICE, ALICE_PW)
        c = self.server.imap(CAROL, CAROL_PW)
        try:
            folders = imap_list(a)
            self.assertIn("Round/Trip", folders)
            self.assertEqual(imap_list(c), folders)
            total = 0
            for folder in folders:
                mine, theirs = folder_contents(a, folder), folder_contents(c, folder)
                self.assertEqual(len(mine), len(theirs), folder)
                self.assertEqual(mine, theirs, folder)
                total += len(mine)
            self.assertGreaterEqual(total, 60)
            self.assertEqual(len(manifest["messages"]), total)
            # Custom keywords come back as written.
            self.assertTrue(any("Project-X" in flags for _, flags, _ in folder_contents(c, "Round/Trip")))
        finally:
            safe_logout(a)
            safe_logout(c)

    def test_export_holds_only_the_signed_in_account(self):
        status, answer = self.upload(build_mbox("bobs-private", 3), "application/mbox",
                                     auth=basic(BOB, BOB_PW))
        self.assertEqual((status, answer.get("imported")), (200, 3), answer)
        status, _, body = self.request("GET", "/migrate/export")
        self.assertEqual(status, 200)
        self.assertNotIn(b"bobs-private", body)
        status, _, body = self.request("GET", "/migrate/export", auth=basic(BOB, BOB_PW))
        self.assertEqual(status, 200)
        self.assertIn(b"bobs-private", body)
        self.assertNotIn(b"upload 1", body)

    def test_wrong_type_is_415_and_nothing_is_imported(self):
        for content_type in ("text/plain", "application/x-www-form-urlencoded",
                             "multipart/form-data; boundary=x", "application/octet-stream"):
            status, answer = self.upload(b"From x\n\nhello\n", content_type)
            self.assertEqual(status, 415, content_type)
            self.assertEqual(answer["error"], "unsupportedMediaType")
            self.assertIn("application/mbox", answer["description"])

    def test_declared_length_over_the_limit_is_413_before_the_body_is_sent(self):
        host, port = self.server.addr("http")
        with socket.create_connection((host, port), timeout=30) as s:
            s.sendall(
                f"POST /migrate/import HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: {basic(ALICE, self.app_pw)}\r\n"
                f"Content-Type: application/mbox\r\nContent-Length: {MAX_IMPORT + 1}\r\n\r\n".encode())
            # Not one byte of the body sent: the answer comes anyway.
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply[:200])
        # Under the limit, the same size class of upload goes through.
        status, answer = self.upload(build_mbox("near-limit", 5), "application/mbox", folder="Small")
        self.assertEqual((status, answer.get("imported")), (200, 5), answer)

    def test_without_good_credentials_both_answer_401(self):
        data = build_mbox("nobody", 2)
        for auth in (None, basic(ALICE, "wrong password"), "Bearer not-a-token"):
            status, answer = self.upload(data, "application/mbox", auth=auth)
            self.assertEqual(status, 401, auth)
            status, headers, _ = self.request("GET", "/migrate/export", auth=auth)
            self.assertEqual(status, 401, auth)
            self.assertIn("www-authenticate", headers)
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            m.select("INBOX", readonly=True)
            typ, found = m.search(None, "SUBJECT", "nobody")
            self.assertEqual(found[0], b"")
        finally:
            safe_logout(m)


if __name__ == "__main__":
    unittest.main()

"""`bulwark import` / `bulwark export` against a running server, read back over IMAP.

Python's `mailbox` module writes the real mbox and Maildir sources (and reads our exports):
a 5,000-message mbox and a Maildir with Maildir++ and fs-layout folders, flags, Dovecot
keywords and dates. Re-running an import adds nothing; bad input fails alone with clear
messages and exit status 1; export → import into a second account is compared message by
message (bytes, flags, internal dates, folders). The import rate is printed.
"""

import calendar
import datetime
import mailbox
import os
import pty
import re
import subprocess
import shutil
import sys
import tempfile
import time
import unittest
from pathlib import Path

from harness import ALICE, ALICE_PW, BOB, BOB_PW, ServerTestCase, safe_logout

MBOX_MESSAGES = 5000
BASE = calendar.timegm((2024, 3, 1, 12, 0, 0))
# Maildir folders (store name → (source dir relative to the root, message count)).
MAILDIR_FOLDERS = {"INBOX": 30, "Work": 20, "Work/Clients": 10, "Lists/rust": 15}


def mbox_flags(i: int) -> str:
    """Python mboxMessage flags: R read, O old, A answered, F flagged, D deleted, T draft."""
    f = "O"
    if i % 2 == 0:
        f += "R"
    if i % 3 == 0:
        f += "A"
    if i % 5 == 0:
        f += "F"
    if i % 11 == 0:
        f += "T"
    if i % 13 == 0:
        f += "D"
    return f


def imap_flags_of_mbox(i: int) -> set:
    names = {"R": "\\seen", "A": "\\answered", "F": "\\flagged", "T": "\\draft", "D": "\\deleted"}
    return {names[c] for c in mbox_flags(i) if c in names}


def build_message(msg, mid: str, subject: str, body: str):
    msg["From"] = "Sender <sender@example.org>"
    msg["To"] = ALICE
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{mid}>"
    msg["Date"] = "Fri, 01 Mar 2024 12:00:00 +0000"
    msg.set_payload(body)
    return msg


def write_sources(root: Path) -> dict:
    """Writes the mbox and the Maildir; returns Message-ID → (folder, flags, internal date)."""
    expected = {}
    mb = mailbox.mbox(str(root / "big.mbox"))
    mb.lock()
    for i in range(MBOX_MESSAGES):
        mid = f"mbox-{i}@example.org"
        # Lines starting with "From " are escaped by the writer and must come back intact.
        body = f"Message {i}\nFrom the middle of a line start\n" + "text line\n" * (i % 40)
        m = build_message(mailbox.mboxMessage(), mid, f"mbox message {i}", body)
        date = BASE + i * 37
        m.set_from("sender@example.org", time.gmtime(date))
        m.set_flags(mbox_flags(i))
        mb.add(m)
        expected[mid] = ("INBOX", imap_flags_of_mbox(i), date)
    mb.flush()
    mb.unlock()
    mb.close()

    md_root = root / "Maildir"
    md = mailbox.Maildir(str(md_root), create=True)
    dirs = {"INBOX": md, "Work": md.add_folder("Work"), "Work/Clients": md.add_folder("Work.Clients")}
    # The fs layout (Dovecot LAYOUT=fs): a Maildir in a plain subdirectory.
    (md_root / "Lists").mkdir()
    dirs["Lists/rust"] = mailbox.Maildir(str(md_root / "Lists" / "rust"), create=True)
    # Dovecot keywords of .Work: letter a = "Project", b = "$Later".
    (md_root / ".Work" / "dovecot-keywords").write_text("0 Project\n1 $Later\n")
    n = 0
    for folder, count in MAILDIR_FOLDERS.items():
        for j in range(count):
            n += 1
            mid = f"md-{n}@example.org"
            m = build_message(mailbox.MaildirMessage(), mid, f"maildir {folder} {j}",
                              f"maildir body {n}\n")
            letters = ["", "S", "RS", "FS", "D", "T"][j % 6]
            flags = {"S": "\\seen", "R": "\\answered", "F": "\\flagged", "D": "\\draft",
                     "T": "\\deleted"}
            want = {flags[c] for c in letters}
            if folder == "Work" and j % 2 == 0:
                letters += "ab"
                want |= {"project", "$later"}
            m.set_subdir("cur" if letters else "new")
            m.set_flags(letters)
            date = BASE - 86400 * 30 + n * 3600
            m.set_date(date)
            dirs[folder].add(m)
            expected[mid] = (folder, want, date)
    return expected


def parse_fetch(data) -> list:
    """imaplib FETCH data → [(message_id, flags, internal date, body bytes)]."""
    out = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        head = item[0].decode()
        flags = set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).lower().split())
        flags.discard("\\recent")
        idate = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
        when = int(datetime.datetime.strptime(idate.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp())
        body = item[1]
        mid = re.search(rb"(?im)^Message-ID:\s*<([^>]+)>", body)
        out.append((mid.group(1).decode() if mid else "", frozenset(flags), when, body))
    return out


class MigrateTest(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = Path(tempfile.mkdtemp(prefix="bulwark-migrate-src-"))
        try:
            cls.expected = write_sources(cls.tmp)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("BULWARK_E2E_KEEP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def imap_folders(self, user: str, pw: str) -> dict:
        """Folder → list of parse_fetch tuples, over IMAP."""
        m = self.server.imap(user, pw)
        try:
            typ, listing = m.list()
            self.assertEqual(typ, "OK")
            names = [re.search(rb'"([^"]*)"$|(\S+)$', l).group(0).strip(b'"').decode()
                     for l in listing]
            out = {}
            for name in names:
                typ, data = m.select(f'"{name}"', readonly=True)
                self.assertEqual(typ, "OK", name)
                exists = int(data[0])
                out[name] = []
                if exists == 0:
                    continue
                typ, data = m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
                self.assertEqual(typ, "OK")
                out[name] = parse_fetch(data)
                self.assertEqual(len(out[name]), exists, name)
            return out
        finally:
            safe_logout(m)

    def import_(self, user: str, path: Path, *extra: str, check: bool = True):
        return self.server.cli("import", user, str(path), *extra, check=check)

    def test_1_import_read_back_over_imap_and_again_nothing_new(self):
        r = self.import_(ALICE, self.tmp / "big.mbox")
        rate = re.search(r"(\d+) messages/s", r.stdout)
        self.assertIn(f"imported {MBOX_MESSAGES} messages", r.stdout)
        sys.stderr.write(f"\n[import rate] mbox, {MBOX_MESSAGES} messages: {rate.group(1)} messages/s "
                         f"({r.stdout.strip()})\n")
        r = self.import_(ALICE, self.tmp / "Maildir")
        total = sum(MAILDIR_FOLDERS.values())
        self.assertIn(f"imported {total} messages", r.stdout)
        for created in ("Work", "Work/Clients", "Lists", "Lists/rust"):
            self.assertIn(f"created folder {created}\n", r.stdout)
        sys.stderr.write(f"[import rate] Maildir: {r.stdout.strip()}\n")

        folders = self.imap_folders(ALICE, ALICE_PW)
        self.assertEqual(len(folders["INBOX"]), MBOX_MESSAGES + MAILDIR_FOLDERS["INBOX"])
        for name, count in MAILDIR_FOLDERS.items():
            if name != "INBOX":
                self.assertEqual(len(folders[name]), count, name)
        # Custom keywords keep the case the Maildir's dovecot-keywords wrote them in
        # (RFC 9051 §2.3.2: compared without regard to case, shown as first written).
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            m.select("Work", readonly=True)
            typ, data = m.fetch("1:*", "(FLAGS)")
            self.assertEqual(typ, "OK")
            shown = b" ".join(d for d in data if isinstance(d, bytes))
            self.assertIn(b"Project", shown)
            self.assertIn(b"$Later", shown)
            self.assertNotIn(b"project", shown)
        finally:
            safe_logout(m)
        seen = set()
        for name, msgs in folders.items():
            for mid, flags, when, body in msgs:
                if mid not in self.expected:
                    continue
                folder, want, date = self.expected[mid]
                self.assertEqual(name, folder, mid)
                self.assertEqual(set(flags), want, mid)
                self.assertEqual(when, date, mid)
                self.assertNotIn(b"\nStatus:", body)  # mbox bookkeeping is not kept
                self.assertIn(b"\r\n", body)
                if mid.startswith("mbox-"):
                    self.assertIn(b"\r\nFrom the middle of a line start\r\n", body)
                seen.add(mid)
        self.assertEqual(seen, set(self.expected))

        # Running both again imports nothing.
        for path in ("big.mbox", "Maildir"):
            r = self.import_(ALICE, self.tmp / path)
            self.assertIn("imported 0 messages", r.stdout)
            self.assertIn("skipped as already there, 0 failed", r.stdout)
        again = self.imap_folders(ALICE, ALICE_PW)
        self.assertEqual({k: len(v) for k, v in again.items()},
                         {k: len(v) for k, v in folders.items()})

    def test_2_bad_input_fails_alone_with_clear_messages(self):
        bad = self.tmp / "bad"
        bad.mkdir()
        good = "".join(
            f"From x@example.org Fri Mar  1 12:00:0{i} 2024\nSubject: t{i}\nMessage-ID: <t{i}@x>\n\nbody {i}\n\n"
            for i in range(5))
        (bad / "truncated.mbox").write_text(good + "From x@example.org Fri Mar  1 12:00:09 2024\n"
                                            "Subject: cut\n\nhalf a li")
        r = self.import_(ALICE, bad / "truncated.mbox", "--folder", "Bad/Mbox", check=False)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("message 6 (line 31): truncated", r.stderr)
        self.assertIn("imported 5 messages", r.stdout)

        md = mailbox.Maildir(str(bad / "Maildir"), create=True)
        for i in range(3):
            md.add(build_message(mailbox.MaildirMessage(), f"bad-md-{i}@x", f"ok {i}", "fine\n"))
        (bad / "Maildir" / "cur" / "1700000000.gone.host:2,S").symlink_to(bad / "nowhere")
        (bad / "Maildir" / "cur" / "1700000001.big.host:2,S").write_bytes(
            b"Subject: big\r\n\r\n" + b"x" * (2 << 20))
        caf = os.fsencode(str(bad / "Maildir")) + b"/.Caf\xe9"
        os.makedirs(caf + b"/cur")
        with open(caf + b"/cur/1700000002.x.host:2,", "wb") as f:
            f.write(b"Subject: cafe\r\n\r\nx\r\n")
        r = self.import_(ALICE, bad / "Maildir", "--folder", "Bad/Maildir", check=False)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("1700000000.gone.host:2,S: cannot read", r.stderr)
        self.assertIn("over the size limit of 1048576 bytes", r.stderr)
        self.assertIn("is not UTF-8", r.stderr)
        self.assertIn("imported 3 messages", r.stdout)
        self.assertIn("3 failed", r.stdout)
        # Not a mail source at all.
        empty = bad / "empty"
        empty.mkdir()
        r = self.import_(ALICE, empty, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("neither a Maildir", r.stderr)
        r = self.import_("nobody@example.test", bad / "truncated.mbox", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no account nobody@example.test", r.stderr)

        folders = self.imap_folders(ALICE, ALICE_PW)
        self.assertEqual(len(folders["Bad/Mbox"]), 5)
        self.assertEqual(len(folders["Bad/Maildir"]), 3)

    def test_3_export_then_import_into_another_account_is_exact(self):
        # A folder with a dot in its name (a level of its own, not two).
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            self.assertEqual(m.create('"Releases/v1.2"')[0], "OK")
            typ, _ = m.append('"Releases/v1.2"', "(NonJunk)", None,
                              b"Subject: dotted\r\nMessage-ID: <dotted@example.org>\r\n\r\nv1.2\r\n")
            self.assertEqual(typ, "OK")
        finally:
            safe_logout(m)
        out = self.tmp / "alice-archive"
        r = self.server.cli("export", ALICE, str(out), "--format", "archive")
        self.assertIn("exported", r.stdout)
        r = self.import_(BOB, out)
        sys.stderr.write(f"[import rate] archive: {r.stdout.strip()}\n")
        r = self.import_(BOB, out)
        self.assertIn("imported 0 messages", r.stdout)
        a = self.imap_folders(ALICE, ALICE_PW)
        b = self.imap_folders(BOB, BOB_PW)
        self.assertEqual(sorted(a), sorted(b))
        for name in a:
            # Message by message: bytes, flags and internal date, in the same folder.
            self.assertEqual(sorted(a[name]), sorted(b[name]), name)
        self.assertEqual(len(a["Releases/v1.2"]), 1)
        self.assertGreater(sum(len(v) for v in a.values()), MBOX_MESSAGES)

        # The Maildir and mbox exports are real ones: Python's mailbox reads them.
        md_out = self.tmp / "alice-maildir"
        self.server.cli("export", ALICE, str(md_out), "--format", "maildir")
        md = mailbox.Maildir(str(md_out), factory=None)
        self.assertEqual(len(md), len(a["INBOX"]))
        self.assertEqual(len(md.get_folder("Work.Clients")), len(a["Work/Clients"]))
        work = md.get_folder("Work")
        kw = (md_out / ".Work" / "dovecot-keywords").read_text().split()
        self.assertIn("Project", kw)  # in the case it was first written in
        self.assertIn("$Later", kw)
        # The dot stays inside its level (Dovecot listescape), and reads back so.
        self.assertTrue((md_out / ".Releases.v1\\2e2" / "cur").is_dir())
        r = self.import_(BOB, md_out, "--folder", "Restored")
        self.assertIn("created folder Restored/Releases/v1.2\n", r.stdout)
        self.assertNotIn("Restored/Releases/v1/2", r.stdout)
        for key in work.keys():
            msg = work[key]
            mid = msg["Message-ID"].strip("<>")
            _, want, date = self.expected[mid]
            self.assertEqual("S" in msg.get_flags(), "\\seen" in want)
            self.assertEqual(int(msg.get_date()), date)
        mbox_out = self.tmp / "alice-mbox"
        self.server.cli("export", ALICE, str(mbox_out), "--format", "mbox")
        inbox = mailbox.mbox(str(mbox_out / "INBOX.mbox"))
        self.assertEqual(len(inbox), len(a["INBOX"]))
        flagged = sum(1 for m in inbox if "F" in m.get_flags())
        inbox.close()
        self.assertEqual(flagged, sum(1 for x in a["INBOX"] if "\\flagged" in x[1]))
        clients = mailbox.mbox(str(mbox_out / "Work" / "Clients.mbox"))
        self.assertEqual(len(clients), len(a["Work/Clients"]))
        clients.close()
        # An export into a directory that is not empty is refused.
        r = self.server.cli("export", ALICE, str(mbox_out), "--format", "mbox", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not empty", r.stderr)

    def test_4_progress_line_on_a_terminal(self):
        """On a terminal, standard error shows a progress line rewritten with CR."""
        master, slave = pty.openpty()
        try:
            proc = subprocess.run(
                [str(self.server.bin), "import", ALICE, str(self.tmp / "big.mbox"),
                 "--folder", "Progress", "--config", str(self.server.config)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                timeout=120, cwd=self.server.dir)
            os.close(slave)
            slave = None
            seen = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertEqual(proc.returncode, 0, proc)
        self.assertIn(f"imported {MBOX_MESSAGES} messages".encode(), proc.stdout)
        self.assertIn(b"\r", seen)
        self.assertRegex(seen, rb"\d+ imported, 0 skipped, 0 failed \(\d+ messages/s\)")


if __name__ == "__main__":
    unittest.main()

"""mbsync (isync) syncs a whole account to a local Maildir and back: flags, moves, deletions."""

import email
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path

from harness import (ALICE, ALICE_PW, ServerTestCase, imap_check, imap_search, make_message,
                     require_tool, safe_logout, wait_for_subject)

USER = "mb@example.test"
PW = "mbsync-Secret-pw-3"
SPECIAL = ("Sent", "Drafts", "Trash", "Junk", "Archive")


def mbsync_version(mbsync: str) -> tuple[int, ...]:
    out = subprocess.run([mbsync, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(x or 0) for x in m.groups()) if m else (1, 4, 0)


def maildir_files(folder: Path) -> list[Path]:
    return sorted(p for sub in ("cur", "new") if (folder / sub).is_dir()
                  for p in (folder / sub).iterdir() if p.is_file())


def subject_of(path: Path) -> str:
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f)
    return str(msg.get("Subject", ""))


def find_by_subject(folder: Path, subject: str) -> list[Path]:
    return [p for p in maildir_files(folder) if subject_of(p) == subject]


def maildir_flags(path: Path) -> str:
    return path.name.split(":2,", 1)[1] if ":2," in path.name else ""


class MbsyncTest(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server.add_account(USER, PW)

    def setUp(self):
        super().setUp()
        self.mbsync = require_tool("mbsync")
        self.work = self.server.dir / f"mbsync-{time.time_ns()}"
        self.mail = self.work / "mail"
        self.mail.mkdir(parents=True)

    def write_rc(self) -> Path:
        host, port = self.server.addr("imap")
        cert = self.server.data_dir / "tls" / "self-signed-cert.pem"
        self.assertTrue(cert.exists(), f"server certificate not found at {cert}")
        tls_key = "TLSType" if mbsync_version(self.mbsync) >= (1, 5) else "SSLType"
        rc = self.work / "mbsyncrc"
        rc.write_text(f"""
IMAPAccount e2e
Host {host}
Port {port}
User {self.user}
Pass "{self.pw}"
{tls_key} STARTTLS
CertificateFile {cert}
AuthMechs LOGIN
Timeout 60

IMAPStore e2e-remote
Account e2e

MaildirStore e2e-local
Path {self.mail}/
Inbox {self.mail}/INBOX
SubFolders Verbatim

Channel e2e
Far :e2e-remote:
Near :e2e-local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
""")
        return rc

    def run_mbsync(self):
        rc = self.write_rc()  # ports change on restart, so write it each time
        proc = subprocess.run([self.mbsync, "-V", "-c", str(rc), "-a"], capture_output=True,
                              text=True, timeout=180, cwd=self.work,
                              env={**os.environ, "HOME": str(self.work)})
        self.assertEqual(proc.returncode, 0,
                         f"mbsync failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                         f"{proc.stderr[-4000:]}")
        return proc

    user, pw = USER, PW

    def imap(self):
        m = self.server.imap(USER, PW)
        self.addCleanup(safe_logout, m)
        return m

    def deliver(self, subject: str):
        s = self.server.smtp()
        try:
            s.sendmail("sender@remote.test", [USER], make_message(subject, to=USER))
        finally:
            s.quit()

    def test_full_round_trip(self):
        # --- server state --------------------------------------------------------------------
        tag = str(time.time_ns() % 10**8)
        s_flag, s_move, s_del, s_seen = (f"{x}-{tag}" for x in ("flagme", "moveme", "deleteme",
                                                                 "seen"))
        for subj in (s_flag, s_move, s_del):
            self.deliver(subj)
        m = self.imap()
        lists = f"Lists{tag}"
        imap_check(m.create(lists), "CREATE")
        imap_check(m.append(lists, r"(\Seen)", None, make_message(s_seen, to=USER)), "APPEND")

        # --- first sync: everything comes down --------------------------------------------------
        self.run_mbsync()
        inbox, local_lists = self.mail / "INBOX", self.mail / lists
        for name in SPECIAL:
            self.assertTrue((self.mail / name / "cur").is_dir(), f"{name} not synced down")
        self.assertEqual(len(find_by_subject(inbox, s_flag)), 1)
        self.assertEqual(len(find_by_subject(inbox, s_move)), 1)
        self.assertEqual(len(find_by_subject(inbox, s_del)), 1)
        seen = find_by_subject(local_lists, s_seen)
        self.assertEqual(len(seen), 1)
        self.assertIn("S", maildir_flags(seen[0]), "server \\Seen arrives as maildir S flag")

        # --- local changes: flag, move to another folder, delete --------------------------------
        f = find_by_subject(inbox, s_flag)[0]
        flags = "".join(sorted(set(maildir_flags(f)) | {"F", "S"}))
        base = f.name.split(":2,", 1)[0]
        f.rename(inbox / "cur" / f"{base}:2,{flags}")
        mv = find_by_subject(inbox, s_move)[0]
        # A moved file must lose its ",U=<uid>" part (it belongs to the source folder).
        new_name = re.sub(r",U=\d+", "", mv.name)
        shutil.move(str(mv), str(local_lists / "cur" / new_name))
        find_by_subject(inbox, s_del)[0].unlink()

        self.run_mbsync()

        # --- verify over IMAP -------------------------------------------------------------------
        imap_check(m.select("INBOX"), "SELECT INBOX")
        hits = imap_search(m, "SUBJECT", f'"{s_flag}"')
        self.assertEqual(len(hits), 1)
        data = imap_check(m.fetch(str(hits[0]), "(FLAGS)"), "FETCH")
        self.assertIn(b"\\Flagged", data[0])
        self.assertIn(b"\\Seen", data[0])
        self.assertEqual(imap_search(m, "SUBJECT", f'"{s_move}"'), [],
                         "moved message is gone from INBOX")
        self.assertEqual(imap_search(m, "SUBJECT", f'"{s_del}"'), [],
                         "deleted message is gone from INBOX")
        imap_check(m.select(lists), "SELECT Lists")
        self.assertEqual(len(imap_search(m, "SUBJECT", f'"{s_move}"')), 1,
                         "moved message arrived in the other folder")
        self.assertEqual(len(imap_search(m, "ALL")), 2)

        # --- server-side changes come down ------------------------------------------------------
        s_new = f"server-new-{tag}"
        self.deliver(s_new)
        seen_uid = imap_search(m, "SUBJECT", f'"{s_seen}"')
        imap_check(m.store(str(seen_uid[0]), "+FLAGS", r"(\Flagged)"), "STORE")
        imap_check(m.create(f"Folder{tag}/Child"), "CREATE nested")
        self.run_mbsync()
        self.assertEqual(len(find_by_subject(inbox, s_new)), 1, "new server message came down")
        seen = find_by_subject(local_lists, s_seen)
        self.assertEqual(len(seen), 1)
        self.assertIn("F", maildir_flags(seen[0]), "server flag change came down")
        self.assertTrue((self.mail / f"Folder{tag}" / "Child" / "cur").is_dir(),
                        "new nested server folder came down")
        self.assertEqual(find_by_subject(inbox, s_del), [], "deleted message stays deleted")

        # --- a third sync is a no-op: nothing duplicated ---------------------------------------
        self.run_mbsync()
        self.assertEqual(len(maildir_files(inbox)), 2)
        self.assertEqual(len(maildir_files(local_lists)), 2)
        imap_check(m.select("INBOX", readonly=True), "SELECT")
        self.assertEqual(len(imap_search(m, "ALL")), 2)

    def test_many_messages_and_server_restart_do_not_duplicate(self):
        user, pw = "bulk@example.test", "bulk-Secret-pw-4"
        self.server.add_account(user, pw)
        m = self.server.imap(user, pw)
        self.addCleanup(safe_logout, m)
        n = 300
        for i in range(n):
            imap_check(m.append("Archive", r"(\Seen)" if i % 3 == 0 else None, None,
                                make_message(f"bulk {i}", to=user)), "APPEND")
        self.user, self.pw = user, pw
        t0 = time.monotonic()
        self.run_mbsync()
        archive = self.mail / "Archive"
        files = maildir_files(archive)
        self.assertEqual(len(files), n)
        self.assertEqual(sum(1 for f in files if "S" in maildir_flags(f)), n // 3)
        # A restart keeps UIDVALIDITY, so mbsync neither re-downloads nor duplicates.
        self.server.restart()
        proc = self.run_mbsync()
        self.assertEqual(len(maildir_files(archive)), n)
        self.assertNotIn("UIDVALIDITY", proc.stderr.upper().replace("UIDVALIDITY OK", ""))
        m2 = self.server.imap(user, pw)
        self.addCleanup(safe_logout, m2)
        imap_check(m2.select("Archive", readonly=True), "SELECT")
        self.assertEqual(len(imap_search(m2, "ALL")), n)
        print(f"\nmbsync: {n} messages down, restart, re-sync: {time.monotonic() - t0:.1f}s",
              file=sys.stderr)

    def test_local_new_folder_and_message_go_up(self):
        self.run_mbsync()
        tag = str(time.time_ns() % 10**8)
        folder = self.mail / f"Local{tag}"
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True)
        subject = f"local-new-{tag}"
        (folder / "cur" / f"{int(time.time())}.e2e{tag}.host:2,S").write_bytes(
            make_message(subject, to=USER))
        self.run_mbsync()
        m = self.imap()
        imap_check(m.select(f"Local{tag}", readonly=True), "SELECT new folder")
        hits = imap_search(m, "SUBJECT", f'"{subject}"')
        self.assertEqual(len(hits), 1)
        data = imap_check(m.fetch(str(hits[0]), "(FLAGS)"), "FETCH")
        self.assertIn(b"\\Seen", data[0])


if __name__ == "__main__":
    unittest.main()


class ReadmeMbsyncTest(ServerTestCase):
    """Issue 18: the README's ~/.mbsyncrc works as written with this machine's isync (Debian's
    1.4 reads `SSLType`); only the port, the user's paths and the password file differ."""

    def test_the_readme_mbsyncrc_syncs_the_inbox(self):
        mbsync = require_tool("mbsync")
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
        block = re.search(r"\*\*mbsync\*\*.*?```\n(.*?)```", readme, re.S)
        self.assertIsNotNone(block, "README has no mbsync block")
        home = self.server.dir / f"home-{time.time_ns()}"
        home.mkdir()
        (home / ".bulwark-pass").write_text(ALICE_PW + "\n")
        shutil.copy(self.server.data_dir / "tls" / "self-signed-cert.pem", home / "bulwark-cert.pem")
        port = self.server.addr("imaps")[1]
        rc = block.group(1).replace("Port 2993", f"Port {port}").replace("~/", f"{home}/")
        self.assertIn("SSLType IMAPS", rc)
        (home / "mbsyncrc").write_text(rc)
        s = self.server.smtp()
        try:
            s.sendmail("x@remote.test", ["alice@example.test"],
                       make_message("from the readme", to="alice@example.test"))
        finally:
            s.quit()
        wait_for_subject(self.server, ALICE, ALICE_PW, "from the readme")
        # As the README says: the Maildir root first, then mbsync -a.
        (home / "Mail" / "bulwark").mkdir(parents=True)
        run = subprocess.run([mbsync, "-c", str(home / "mbsyncrc"), "-a"], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "HOME": str(home)})
        self.assertEqual(run.returncode, 0, run.stderr + run.stdout)
        inbox = home / "Mail" / "bulwark" / "INBOX"
        self.assertEqual(len(find_by_subject(inbox, "from the readme")), 1)
        self.assertTrue((home / "Mail" / "bulwark" / "Sent").is_dir(), "folders created")

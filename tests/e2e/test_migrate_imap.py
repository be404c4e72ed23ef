"""`bulwark migrate ACCOUNT --from imaps://…` against a real Dovecot on loopback.

Dovecot (Debian's dovecot-imapd, installed by scripts/test) serves a Maildir seeded with
10,000 messages in 20 folders (flags, Dovecot keywords, internal dates as file times,
special-use folders, a nested and a non-ASCII folder name) over implicit TLS with a
certificate from a CA the test makes (`--tls-ca`). The migration is killed once midway and
run again: every message arrives exactly once, flags and internal dates equal Dovecot's.
A re-run copies nothing, syncs changed flags and copies a new message. `--dry-run` changes
nothing; `--csv` migrates two accounts. A hostile source (a 2 GB literal, a connection
dropped mid-copy) gets clear messages and the run resumes. Rates are printed.
"""

import imaplib
import os
import re
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

from harness import ALICE, ALICE_PW, BOB, BOB_PW, ServerTestCase, safe_logout, wait_until

SOURCE_USER = "olduser"
SOURCE_PW = "source-secret"
PER_FOLDER = 500
# Dovecot folder (as IMAP shows it, "." separated) → special use.
FOLDERS = ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Work", "Work.Clients",
           "Work.Clients.Acme", "Lists", "Lists.rust", "Lists.debian", "Family", "Travel",
           "Receipts", "Projects", "Projects.2024", "Newsletters", "Old", "Réunions"]
SPECIAL = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk",
           "Archive": "\\Archive"}
BASE_TIME = 1_700_000_000
KEYWORDS = ["$Forwarded", "NonJunk", "Project"]


def mutf7(name: str) -> str:
    """RFC 3501 §5.1.3 modified UTF-7 (enough for the test's names)."""
    out, buf = [], ""

    def flush():
        nonlocal buf
        if buf:
            import base64
            b = base64.b64encode(buf.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append("&" + b + "-")
            buf = ""

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf += ch
    flush()
    return "".join(out)


def flags_of(i: int) -> tuple[str, list[str]]:
    """Maildir info letters and keyword indexes of message i."""
    letters = ""
    if i % 7 == 0:
        letters += "D"
    if i % 5 == 0:
        letters += "F"
    if i % 3 == 0:
        letters += "R"
    if i % 2 == 0:
        letters += "S"
    if i % 11 == 0:
        letters += "T"
    kws = [k for j, k in enumerate(KEYWORDS) if i % (j + 4) == 0]
    return letters, kws


def seed_maildir(root: Path) -> dict:
    """Writes the Maildir++ tree; returns (folder, Message-ID) → (flags set, internal date)."""
    expected = {}
    n = 0
    for folder in FOLDERS:
        d = root if folder == "INBOX" else root / ("." + mutf7(folder))
        for sub in ("cur", "new", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        # Keyword letters a, b, c (Dovecot's dovecot-keywords file).
        (d / "dovecot-keywords").write_text("".join(f"{j} {k}\n" for j, k in enumerate(KEYWORDS)))
        for k in range(PER_FOLDER):
            n += 1
            mid = f"m{n}@old.example"
            letters, kws = flags_of(n)
            kw_letters = "".join("abc"[KEYWORDS.index(k2)] for k2 in kws)
            body = (f"From: Sender {n} <s{n}@old.example>\r\nTo: {SOURCE_USER}@old.example\r\n"
                    f"Subject: message {n} in {folder}\r\nMessage-ID: <{mid}>\r\n"
                    f"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\n"
                    + f"line {n}\r\n" * (1 + n % 30)).encode()
            name = f"{BASE_TIME + n}.M{n}P1.old.example,S={len(body)}:2,{''.join(sorted(letters + kw_letters))}"
            path = d / "cur" / name
            path.write_bytes(body)
            date = BASE_TIME + n * 60
            os.utime(path, (date, date))
            names = {"D": "\\draft", "F": "\\flagged", "R": "\\answered", "S": "\\seen", "T": "\\deleted"}
            flags = {names[c] for c in letters} | {k.lower() for k in kws}
            expected[(folder, mid)] = (flags, date)
    return expected


class Dovecot:
    """A Dovecot 2.3 on loopback with its own dirs, TLS from the test's CA."""

    def __init__(self, work: Path):
        self.work = work
        self.mail = work / "mail"
        for d in ("run", "state", "home"):
            (work / d).mkdir(parents=True, exist_ok=True)
        self.ca, key, cert = self._certs()
        self.port = _free_port()
        specials = "".join(
            f'  mailbox "{name}" {{\n    special_use = {use}\n  }}\n' for name, use in SPECIAL.items())
        (work / "dovecot.conf").write_text(f"""
base_dir = {work}/run
state_dir = {work}/state
log_path = {work}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
mail_location = maildir:{self.mail}
first_valid_uid = 100
passdb {{
  driver = static
  args = password={SOURCE_PW}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={work}/home/%n
}}
namespace inbox {{
  inbox = yes
  separator = .
{specials}}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}
""")

    def _certs(self):
        ca_key, ca, key, csr, cert = (self.work / n for n in ("ca.key", "ca.pem", "key.pem", "csr.pem", "cert.pem"))
        ext = self.work / "ext.cnf"
        ext.write_text("subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n")
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
            "-out", str(ca), "-days", "2", "-subj", "/CN=Test CA")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", "/CN=127.0.0.1")
        run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
        return ca, key, cert

    def start(self):
        subprocess.run(["dovecot", "-c", str(self.work / "dovecot.conf")], check=True)
        wait_until(lambda: _connectable(self.port), 20, "Dovecot listening")

    def stop(self):
        subprocess.run(["dovecot", "-c", str(self.work / "dovecot.conf"), "stop"],
                       capture_output=True)

    def imap(self) -> imaplib.IMAP4_SSL:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=ctx, timeout=60)
        c.login(SOURCE_USER, SOURCE_PW)
        return c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connectable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def snapshot(c: imaplib.IMAP4, folder: str) -> dict:
    """Message-ID → list of (flags, internal date) of one folder (a list: duplicates show)."""
    typ, _ = c.select(f'"{folder}"', readonly=True)
    assert typ == "OK", folder
    typ, data = c.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    out = {}
    if typ != "OK" or data == [None]:
        return out
    for part in data:
        if not isinstance(part, tuple):
            continue
        meta = part[0].decode()
        flags = {f.lower() for f in re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split()
                 if f.lower() != "\\recent"}
        date = int(time.mktime(imaplib.Internaldate2tuple(part[0])))
        mid = re.search(rb"<([^>]+)>", part[1]).group(1).decode()
        out.setdefault(mid, []).append((flags, date))
    return out


class MigrateFromDovecotTest(ServerTestCase):
    max_message_size = "10M"

    @classmethod
    def setUpClass(cls):
        if shutil.which("dovecot") is None:
            msg = "dovecot is not installed; scripts/test installs it (apt-get install dovecot-imapd)"
            if os.environ.get("BULWARK_E2E_ALLOW_MISSING_TOOLS"):
                raise unittest.SkipTest(msg)
            raise AssertionError(msg)
        super().setUpClass()
        cls.tmp = Path(tempfile.mkdtemp(prefix="bulwark-dovecot-"))
        os.chmod(cls.tmp, 0o755)
        cls.dovecot = Dovecot(cls.tmp)
        t0 = time.monotonic()
        cls.expected = seed_maildir(cls.dovecot.mail)
        subprocess.run(["chown", "-R", "65534:65534", str(cls.dovecot.mail)], check=True)
        cls.dovecot.start()
        print(f"\nseeded {len(cls.expected)} messages in {len(FOLDERS)} folders in "
              f"{time.monotonic() - t0:.1f} s", flush=True)

    @classmethod
    def tearDownClass(cls):
        cls.dovecot.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def migrate_cmd(self, account: str, *extra: str) -> list[str]:
        return [str(self.server.bin), "migrate", account,
                "--from", f"imaps://{SOURCE_USER}@127.0.0.1:{self.dovecot.port}",
                "--tls-ca", str(self.dovecot.ca), *extra, "--config", str(self.server.config)]

    def migrate(self, account: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, BULWARK_MIGRATE_PASSWORD=SOURCE_PW)
        p = subprocess.run(self.migrate_cmd(account, *extra), env=env, capture_output=True,
                           text=True, timeout=600, cwd=self.server.dir)
        if check and p.returncode != 0:
            self.fail(f"migrate failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def bulwark_total(self, user: str, pw: str) -> int:
        c = self.server.imap(user, pw)
        try:
            total = 0
            typ, data = c.list()
            for line in data:
                name = line.decode().rsplit(' "/" ', 1)[-1].strip('"')
                typ, st = c.status(f'"{name}"', "(MESSAGES)")
                if typ == "OK":
                    total += int(re.search(rb"MESSAGES (\d+)", st[0]).group(1))
            return total
        finally:
            safe_logout(c)

    def target_of(self, folder: str) -> str:
        return mutf7(folder).replace(".", "/")

    def assert_same_as_dovecot(self, user: str, pw: str):
        dov = self.dovecot.imap()
        ours = self.server.imap(user, pw)
        try:
            for folder in FOLDERS:
                src = snapshot(dov, mutf7(folder))
                dst = snapshot(ours, self.target_of(folder))
                self.assertEqual(len(src), PER_FOLDER, folder)
                self.assertEqual(set(dst), set(src), f"Message-IDs of {folder}")
                for mid, copies in dst.items():
                    self.assertEqual(len(copies), 1, f"{mid} in {folder} arrived {len(copies)} times")
                    self.assertEqual(copies[0], src[mid][0], f"flags/date of {mid} in {folder}")
        finally:
            safe_logout(dov)
            safe_logout(ours)

    def test_1_interrupted_migration_resumes_and_everything_arrives_once(self):
        env = dict(os.environ, BULWARK_MIGRATE_PASSWORD=SOURCE_PW)
        t0 = time.monotonic()
        proc = subprocess.Popen(self.migrate_cmd(ALICE), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.server.dir)
        try:
            wait_until(lambda: proc.poll() is not None or self.bulwark_total(ALICE, ALICE_PW) >= 2000,
                       300, "2,000 messages copied")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        killed_at = self.bulwark_total(ALICE, ALICE_PW)
        self.assertLess(killed_at, len(self.expected), "the first run was to be interrupted")
        p = self.migrate(ALICE)
        elapsed = time.monotonic() - t0
        self.assertIn("0 failed", p.stdout)
        self.assertRegex(p.stdout, r"20 of 20 folders")
        self.assert_same_as_dovecot(ALICE, ALICE_PW)
        self.assertEqual(self.bulwark_total(ALICE, ALICE_PW), len(self.expected))
        # Special-use folders went to ours (roles kept), the non-ASCII name decoded.
        c = self.server.imap(ALICE, ALICE_PW)
        try:
            typ, data = c.list()
            listing = b"\n".join(data).decode()
            self.assertRegex(listing, r'\\Sent.*"Sent"')
            self.assertIn("R&AOk-unions", listing)
            self.assertIn("Work/Clients/Acme", listing)
        finally:
            safe_logout(c)
        print(f"\nmigrated {len(self.expected)} messages from Dovecot (killed once at {killed_at}) "
              f"in {elapsed:.1f} s: {len(self.expected) / elapsed:.0f} messages/s", flush=True)

        # A re-run copies nothing; then changed flags are synced and a new message copied.
        p = self.migrate(ALICE)
        self.assertRegex(p.stdout, r" 0 messages copied .*10000 already here, 0 flags synced")
        dov = self.dovecot.imap()
        try:
            dov.select('"Work"')
            dov.uid("STORE", "1:10", "+FLAGS", "(\\Flagged $Important)")
            dov.select("INBOX")
            dov.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(BASE_TIME),
                       b"From: a@old.example\r\nSubject: late\r\nMessage-ID: <late@old.example>\r\n\r\nlate\r\n")
        finally:
            safe_logout(dov)
        p = self.migrate(ALICE)
        self.assertRegex(p.stdout, r" 1 messages copied")
        synced = int(re.search(r"(\d+) flags synced", p.stdout).group(1))
        self.assertEqual(synced, 10, p.stdout)  # $Important is new on all ten
        ours = self.server.imap(ALICE, ALICE_PW)
        try:
            ours.select('"Work"', readonly=True)
            typ, data = ours.fetch("1:10", "(FLAGS)")
            for line in data:
                self.assertIn(b"$Important", line)
                self.assertIn(b"\\Flagged", line)
            ours.select("INBOX", readonly=True)
            typ, data = ours.search(None, "HEADER", "Message-ID", "late@old.example")
            self.assertEqual(len(data[0].split()), 1)
        finally:
            safe_logout(ours)

    def test_2_dry_run_changes_nothing(self):
        before = self.server.imap(BOB, BOB_PW)
        try:
            _, names_before = before.list()
        finally:
            safe_logout(before)
        p = self.migrate(BOB, "--dry-run")
        # Every message at the source (10,000, and one more if test_1 added it) would be copied.
        self.assertRegex(p.stdout, r"dry run: (1000[01]) of \1 messages in 20 folders")
        self.assertIn("would create folder Work/Clients/Acme", p.stdout)
        after = self.server.imap(BOB, BOB_PW)
        try:
            _, names_after = after.list()
        finally:
            safe_logout(after)
        self.assertEqual(names_before, names_after)
        self.assertEqual(self.bulwark_total(BOB, BOB_PW), 0)

    def test_3_wrong_password_and_untrusted_certificate_are_clear(self):
        env = dict(os.environ, BULWARK_MIGRATE_PASSWORD="wrong")
        p = subprocess.run(self.migrate_cmd(BOB), env=env, capture_output=True, text=True,
                           timeout=120, cwd=self.server.dir)
        self.assertEqual(p.returncode, 1)
        self.assertIn("did not accept the login of olduser", p.stderr)
        cmd = [a for a in self.migrate_cmd(BOB) if a not in ("--tls-ca", str(self.dovecot.ca))]
        p = subprocess.run(cmd, env=dict(os.environ, BULWARK_MIGRATE_PASSWORD=SOURCE_PW),
                           capture_output=True, text=True, timeout=120, cwd=self.server.dir)
        self.assertEqual(p.returncode, 1)
        self.assertIn("TLS with 127.0.0.1", p.stderr)
        self.assertIn("--tls-ca", p.stderr)


class _HostileImap(socketserver.StreamRequestHandler):
    """A fake source: one folder with three messages; FETCH of bodies misbehaves."""
    mode = "literal"  # or "drop"
    bodies_served = 0

    def w(self, s: bytes):
        self.wfile.write(s)
        self.wfile.flush()

    def handle(self):
        self.w(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] fake\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            tag, _, rest = line.decode().strip().partition(" ")
            cmd = rest.upper()
            if cmd.startswith("CAPABILITY"):
                self.w(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n" + tag.encode() + b" OK\r\n")
            elif cmd.startswith("AUTHENTICATE"):
                self.w(tag.encode() + b" OK logged in\r\n")
            elif cmd.startswith("LIST"):
                self.w(b'* LIST () "/" INBOX\r\n' + tag.encode() + b" OK\r\n")
            elif cmd.startswith("EXAMINE"):
                self.w(b"* 3 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" + tag.encode() + b" OK [READ-ONLY]\r\n")
            elif cmd.startswith("UID FETCH 1:*"):
                for u in (1, 2, 3):
                    self.w(f'* {u} FETCH (UID {u} FLAGS (\\Seen) INTERNALDATE "01-Jan-2024 00:00:00 +0000" RFC822.SIZE 40)\r\n'.encode())
                self.w(tag.encode() + b" OK\r\n")
            elif cmd.startswith("UID FETCH"):
                uids = [int(u) for u in re.search(r"UID FETCH ([\d,]+)", cmd).group(1).split(",")]
                if type(self).mode == "literal":
                    self.w(b"* 1 FETCH (UID 1 BODY[] {2147483648}\r\n")
                    self.w(b"x" * 65536)
                    return
                for u in uids:
                    if type(self).mode == "drop" and type(self).bodies_served >= 2:
                        return  # the connection drops mid-copy
                    body = f"Subject: hostile {u}\r\nMessage-ID: <h{u}@fake>\r\n\r\nhi\r\n".encode()
                    self.w(f"* {u} FETCH (UID {u} BODY[] {{{len(body)}}}\r\n".encode() + body + b")\r\n")
                    type(self).bodies_served += 1
                self.w(tag.encode() + b" OK\r\n")
            elif cmd.startswith("LOGOUT"):
                self.w(b"* BYE\r\n" + tag.encode() + b" OK\r\n")
                return
            else:
                self.w(tag.encode() + b" BAD what\r\n")


class _Threading(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class HostileSourceTest(ServerTestCase):
    def run_against(self, port: int, account: str) -> subprocess.CompletedProcess:
        cmd = [str(self.server.bin), "migrate", account, "--from", f"imap://x@127.0.0.1:{port}",
               "--config", str(self.server.config)]
        return subprocess.run(cmd, env=dict(os.environ, BULWARK_MIGRATE_PASSWORD="p"),
                              capture_output=True, text=True, timeout=120, cwd=self.server.dir)

    def inbox_count(self, user, pw) -> int:
        c = self.server.imap(user, pw)
        try:
            typ, st = c.status("INBOX", "(MESSAGES)")
            return int(re.search(rb"MESSAGES (\d+)", st[0]).group(1))
        finally:
            safe_logout(c)

    def test_a_2gb_literal_is_refused_clearly_and_nothing_half_stored(self):
        _HostileImap.mode = "literal"
        srv = _Threading(("127.0.0.1", 0), _HostileImap)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            p = self.run_against(srv.server_address[1], ALICE)
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("announced a literal of 2147483648 bytes, over the limit", p.stderr)
        self.assertEqual(self.inbox_count(ALICE, ALICE_PW), 0)

    def test_a_dropped_connection_is_reported_and_the_rerun_finishes(self):
        _HostileImap.mode = "drop"
        _HostileImap.bodies_served = 0
        srv = _Threading(("127.0.0.1", 0), _HostileImap)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            p = self.run_against(srv.server_address[1], BOB)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("closed the connection", p.stderr)
            self.assertIn("run the same command again", p.stderr)
            # Served two bodies before dropping: the batch was not stored half-way.
            self.assertEqual(self.inbox_count(BOB, BOB_PW), 0)
            _HostileImap.mode = "ok"
            p = self.run_against(srv.server_address[1], BOB)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(self.inbox_count(BOB, BOB_PW), 3)
            p = self.run_against(srv.server_address[1], BOB)
            self.assertIn(" 0 messages copied", p.stdout)
            self.assertEqual(self.inbox_count(BOB, BOB_PW), 3)
        finally:
            srv.shutdown()
            srv.server_close()

    def test_b_csv_migrates_each_account(self):
        _HostileImap.mode = "ok"
        srv = _Threading(("127.0.0.1", 0), _HostileImap)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        port = srv.server_address[1]
        csv = Path(self.server.dir) / "accounts.csv"
        csv.write_text(f"account,from,password\n# the domain\n{ALICE},imap://a@127.0.0.1:{port},pw,with,commas\n"
                       f"{BOB},imap://b@127.0.0.1:{port}\nnobody@example.test,imap://n@127.0.0.1:{port}\n")
        try:
            cmd = [str(self.server.bin), "migrate", "--csv", str(csv), "--config", str(self.server.config)]
            p = subprocess.run(cmd, env=dict(os.environ, BULWARK_MIGRATE_PASSWORD="p"),
                               capture_output=True, text=True, timeout=120, cwd=self.server.dir)
        finally:
            srv.shutdown()
            srv.server_close()
        # The unknown account fails alone; the others are migrated.
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("nobody@example.test", p.stderr)
        self.assertIn(f"into {ALICE}", p.stdout)
        self.assertIn(f"into {BOB}", p.stdout)
        self.assertEqual(self.inbox_count(ALICE, ALICE_PW), 3)
        self.assertEqual(self.inbox_count(BOB, BOB_PW), 3)


if __name__ == "__main__":
    unittest.main()

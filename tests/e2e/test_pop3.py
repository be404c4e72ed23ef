"""POP3 (RFC 1939 with UIDL/TOP, STLS RFC 2595, SASL PLAIN RFC 5034, CAPA RFC 2449) with real
clients: Python's poplib and Debian's fetchmail. Mail goes in through SMTP (smtplib) and is
checked over IMAP (imaplib): the maildrop is the account's INBOX."""

from __future__ import annotations

import base64
import http.client
import os
import poplib
import socket
import subprocess
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

from harness import (
    CLI_TIMEOUT,
    DOMAIN,
    IO_TIMEOUT,
    LISTENERS,
    ServerTestCase,
    imap_check,
    imap_search,
    insecure_tls,
    make_message,
    require_tool,
    safe_logout,
    wait_for_subject,
)
from test_security_auth import http_json, totp_code

POP3_LISTENERS = LISTENERS + ("pop3", "pop3s", "http")


def crlf_lines(data: bytes) -> list[bytes]:
    """What poplib returns for a message: its lines without line endings."""
    lines = data.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def without_fetchmail_received(msg: bytes) -> bytes:
    """`msg` without the Received field fetchmail added (with its folded lines)."""
    lines = msg.split(b"\n")
    out, skipping = [], False
    for i, line in enumerate(lines):
        if line.startswith(b"Received: ") and any(
                b"with POP3 (fetchmail" in l for l in _field(lines, i)):
            skipping = True
            continue
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = False
        out.append(line)
    return b"\n".join(out)


def _field(lines: list[bytes], start: int) -> list[bytes]:
    field = [lines[start]]
    for line in lines[start + 1:]:
        if line[:1] not in (b" ", b"\t"):
            break
        field.append(line)
    return field


class Pop3Test(ServerTestCase):
    listeners = POP3_LISTENERS
    auth_toml = 'account_delay = "50ms"'

    _n = 0

    def new_account(self) -> tuple[str, str]:
        """A fresh account per test: tests share one server."""
        Pop3Test._n += 1
        user, pw = f"pop{Pop3Test._n}-{time.time_ns() % 10**6}@{DOMAIN}", "pop3-Secret-pw-7"
        self.server.add_account(user, pw)
        return user, pw

    def pop(self, user: str | None = None, pw: str | None = None,
            implicit: bool = False) -> poplib.POP3:
        if implicit:
            host, port = self.server.addr("pop3s")
            p = poplib.POP3_SSL(host, port, context=insecure_tls(), timeout=IO_TIMEOUT)
        else:
            host, port = self.server.addr("pop3")
            p = poplib.POP3(host, port, timeout=IO_TIMEOUT)
            p.stls(context=insecure_tls())
        if user is not None:
            p.user(user)
            p.pass_(pw)
        return p

    def deliver(self, user: str, pw: str, subject: str, body: str) -> tuple[bytes, bytes]:
        """Sends over SMTP; returns (what was sent, what INBOX stores, read over IMAP)."""
        sent = make_message(subject, to=user, body=body)
        with self.server.smtp() as s:
            s.sendmail("sender@remote.test", [user], sent)
        stored = wait_for_subject(self.server, user, pw, subject)
        return sent, stored

    def imap_inbox(self, user: str, pw: str) -> list[tuple[str, bool]]:
        """(subject, seen) of each INBOX message, in UID order."""
        m = self.server.imap(user, pw)
        try:
            imap_check(m.select("INBOX", readonly=True), "SELECT")
            out = []
            for uid in imap_search(m, "ALL", uid=True):
                data = imap_check(m.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
                meta = data[0][0].decode()
                subject = data[0][1].decode().strip().removeprefix("Subject: ")
                out.append((subject, "\\Seen" in meta))
            return out
        finally:
            safe_logout(m)

    # ---- tests --------------------------------------------------------------------------

    def test_capa_before_and_after_stls(self):
        host, port = self.server.addr("pop3")
        p = poplib.POP3(host, port, timeout=IO_TIMEOUT)
        try:
            self.assertTrue(p.getwelcome().startswith(b"+OK mail.example.test"))
            caps = p.capa()
            self.assertIn("STLS", caps)
            self.assertNotIn("USER", caps)  # no plaintext passwords before TLS
            with self.assertRaises(poplib.error_proto) as e:
                p.user("alice@example.test")
            self.assertIn(b"use STLS first", e.exception.args[0])
            p.stls(context=insecure_tls())
            caps = p.capa()
            for cap in ("USER", "SASL", "UIDL", "TOP", "PIPELINING", "RESP-CODES",
                        "AUTH-RESP-CODE"):
                self.assertIn(cap, caps)
            self.assertEqual(caps["SASL"], ["PLAIN"])
            self.assertNotIn("STLS", caps)
        finally:
            p.quit()

    def test_retr_top_uidl_match_what_smtp_delivered(self):
        user, pw = self.new_account()
        long_line = "x" * 1900  # poplib refuses lines over 2048 octets
        bodies = [
            "plain first message\r\n",
            f".starts with a dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n{long_line}\r\nend\r\n",
        ]
        msgs = [self.deliver(user, pw, f"pop-retr-{i}", b) for i, b in enumerate(bodies)]
        p = self.pop(user, pw)
        try:
            count, octets = p.stat()
            self.assertEqual(count, 2)
            self.assertEqual(octets, sum(len(stored) for _, stored in msgs))
            _, listing, _ = p.list()
            self.assertEqual(listing, [f"{i + 1} {len(s)}".encode() for i, (_, s) in enumerate(msgs)])
            for i, (sent, stored) in enumerate(msgs, start=1):
                resp, lines, _ = p.retr(i)
                self.assertEqual(resp, f"+OK {len(stored)} octets".encode())
                got = b"\r\n".join(lines) + b"\r\n"
                # Byte for byte what INBOX holds: the SMTP message with our trace fields on top.
                self.assertEqual(got, stored)
                self.assertTrue(got.endswith(sent), "the delivered message is not intact")
                header = stored.split(b"\r\n\r\n", 1)[0]
                _, top, _ = p.top(i, 0)
                self.assertEqual(top, crlf_lines(header) + [b""])
                _, top1, _ = p.top(i, 1)
                self.assertEqual(top1, crlf_lines(stored)[:len(top) + 1])
            _, uidl, _ = p.uidl()
            ids = [line.split()[1] for line in uidl]
            self.assertEqual(len(set(ids)), 2)
            self.assertEqual(p.uidl(2).split()[-1], ids[1])
            with self.assertRaises(poplib.error_proto) as e:
                p.retr(3)
            self.assertIn(b"No such message 3", e.exception.args[0])
        finally:
            p.quit()
        # UIDL is stable across sessions.
        p = self.pop(user, pw)
        try:
            self.assertEqual([line.split()[1] for line in p.uidl()[1]], ids)
        finally:
            p.quit()

    def test_dele_and_quit_remove_from_inbox_and_retr_marks_seen(self):
        user, pw = self.new_account()
        for i in range(3):
            self.deliver(user, pw, f"pop-dele-{i}", f"body {i}\r\n")
        p = self.pop(user, pw)
        p.retr(1)
        p.dele(2)
        self.assertEqual(p.stat()[0], 2)
        with self.assertRaises(poplib.error_proto):
            p.retr(2)
        resp = p.quit()
        self.assertIn(b"1 messages deleted", resp)
        self.assertEqual(self.imap_inbox(user, pw), [("pop-dele-0", True), ("pop-dele-2", False)])

    def test_dropped_connection_and_rset_delete_nothing(self):
        user, pw = self.new_account()
        for i in range(2):
            self.deliver(user, pw, f"pop-keep-{i}", "keep me\r\n")
        p = self.pop(user, pw)
        p.dele(1)
        p.dele(2)
        self.assertEqual(p.stat(), (0, 0))
        p.sock.close()  # no QUIT: no UPDATE state
        p = self.pop(user, pw)
        try:
            self.assertEqual(p.stat()[0], 2)
            p.dele(1)
            self.assertTrue(p.rset().startswith(b"+OK Maildrop has 2 messages"))
            self.assertEqual(p.stat()[0], 2)
        finally:
            self.assertIn(b"maildrop unchanged", p.quit())
        self.assertEqual([s for s, _ in self.imap_inbox(user, pw)], ["pop-keep-0", "pop-keep-1"])

    def test_mail_arriving_during_a_session_waits_for_the_next(self):
        user, pw = self.new_account()
        self.deliver(user, pw, "pop-snap-0", "first\r\n")
        p = self.pop(user, pw)
        try:
            self.assertEqual(p.stat()[0], 1)
            self.deliver(user, pw, "pop-snap-1", "second\r\n")
            self.assertEqual(p.stat()[0], 1)
            # A second session at the same time is allowed and sees both.
            q = self.pop(user, pw)
            self.assertEqual(q.stat()[0], 2)
            q.quit()
        finally:
            p.quit()

    def test_auth_plain_with_initial_response_and_continuation(self):
        user, pw = self.new_account()
        p = self.pop()
        try:
            ir = base64.b64encode(f"\0{user}\0{pw}".encode()).decode()
            self.assertTrue(p._shortcmd(f"AUTH PLAIN {ir}").startswith(b"+OK Logged in"))
        finally:
            p.quit()
        p = self.pop()
        try:
            resp = p._shortcmd("AUTH PLAIN")
            self.assertEqual(resp.strip(), b"+")
            bad = base64.b64encode(f"\0{user}\0wrong".encode()).decode()
            with self.assertRaises(poplib.error_proto) as e:
                p._shortcmd(bad)
            self.assertIn(b"[AUTH]", e.exception.args[0])
            self.assertEqual(p._shortcmd("AUTH PLAIN").strip(), b"+")
            self.assertTrue(p._shortcmd(ir).startswith(b"+OK"))
            self.assertEqual(p.stat(), (0, 0))
        finally:
            p.quit()

    def test_pop3s_implicit_tls(self):
        user, pw = self.new_account()
        self.deliver(user, pw, "pop-tls", "over 995\r\n")
        p = self.pop(user, pw, implicit=True)
        try:
            self.assertEqual(p.stat()[0], 1)
            self.assertNotIn("STLS", p.capa())
        finally:
            p.quit()

    def test_wrong_password_and_pipelining(self):
        user, pw = self.new_account()
        p = self.pop()
        try:
            p.user(user)
            with self.assertRaises(poplib.error_proto) as e:
                p.pass_("not-the-password")
            self.assertTrue(e.exception.args[0].startswith(b"-ERR [AUTH] "), e.exception.args[0])
            p.user(user)
            p.pass_(pw)
            # RFC 2449 PIPELINING: several commands in one write, answered in order.
            p.sock.sendall(b"NOOP\r\nSTAT\r\nLIST\r\nNOOP\r\n")
            self.assertEqual(p._getresp(), b"+OK")
            self.assertEqual(p._getresp(), b"+OK 0 0")
            self.assertEqual(p._getlongresp()[0], b"+OK 0 messages (0 octets)")
            self.assertEqual(p._getresp(), b"+OK")
        finally:
            p.quit()

    def test_two_factor_account_needs_an_app_password(self):
        user, pw = self.new_account()
        app_pw = self.server.add_app_password(user, "pop-phone")
        addr = self.server.addr("http")
        status, body, _ = http_json(addr, "POST", "/api/account/login",
                                    {"username": user, "password": pw})
        self.assertEqual(status, 200, body)
        token = body["access_token"]
        status, enrol, _ = http_json(addr, "POST", "/api/account/totp/enrol",
                                     {"password": pw}, token=token)
        self.assertEqual(status, 200, enrol)
        status, _, _ = http_json(addr, "POST", "/api/account/totp/confirm",
                                 {"code": totp_code(enrol["secret"])}, token=token)
        self.assertEqual(status, 200)
        p = self.pop()
        try:
            p.user(user)
            with self.assertRaises(poplib.error_proto) as e:
                p.pass_(pw)
            text = e.exception.args[0]
            self.assertTrue(text.startswith(b"-ERR [AUTH] Application password required"), text)
            self.assertIn(b"create an app password", text)
            p.user(user)
            self.assertTrue(p.pass_(app_pw).startswith(b"+OK Logged in"))
        finally:
            p.quit()

    def test_overlong_and_bad_commands(self):
        host, port = self.server.addr("pop3")
        with socket.create_connection((host, port), timeout=IO_TIMEOUT) as s:
            f = s.makefile("rb")
            self.assertTrue(f.readline().startswith(b"+OK"))
            s.sendall(b"NOOP " + b"x" * 300 + b"\r\n")
            self.assertIn(b"too long", f.readline())
            # One write: the server may close after the tenth, before later writes land.
            s.sendall(b"GET / HTTP/1.0\r\n" * 20)
            lines = [f.readline() for _ in range(9)]
            self.assertTrue(all(l.startswith(b"-ERR") for l in lines), lines)
            self.assertIn(b"too many bad commands", lines[-1])
            self.assertEqual(f.readline(), b"")  # closed

    def test_thunderbird_autoconfig_offers_pop3_with_the_real_ports(self):
        q = urllib.parse.urlencode({"emailaddress": f"alice@{DOMAIN}"})
        conn = http.client.HTTPConnection(*self.server.addr("http"), timeout=IO_TIMEOUT)
        try:
            conn.request("GET", f"/.well-known/autoconfig/mail/config-v1.1.xml?{q}")
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        self.assertEqual(resp.status, 200, body)
        pop = [s for s in ET.fromstring(body).find("emailProvider").findall("incomingServer")
               if s.get("type") == "pop3"]
        self.assertEqual([(int(s.findtext("port")), s.findtext("socketType")) for s in pop],
                         [(self.server.port("pop3s"), "SSL"),
                          (self.server.port("pop3"), "STARTTLS")])
        self.assertEqual(pop[0].findtext("hostname"), "mail.example.test")

    # ---- fetchmail ------------------------------------------------------------------------

    def fetchmail(self, work: Path, user: str, pw: str, keep: bool,
                  implicit: bool = False) -> subprocess.CompletedProcess:
        fetchmail = require_tool("fetchmail")
        port = self.server.port("pop3s" if implicit else "pop3")
        cert = self.server.data_dir / "tls" / "self-signed-cert.pem"
        self.assertTrue(cert.exists(), f"server certificate not found at {cert}")
        out = work / "delivered"
        out.mkdir(exist_ok=True)
        mda = work / "mda.sh"
        mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp {out}/msg.XXXXXXXX)"\n')
        mda.chmod(0o700)
        rc = work / "fetchmailrc"
        # TLS is mandatory (`ssl` on pop3s, `sslproto` makes STLS required on pop3) and the
        # server's self-signed certificate is checked
        # against the copy given as the trust anchor; it names the configured hostname and
        # `localhost`, which is what fetchmail checks (the address it connects to).
        rc.write_text(
            f"set no syslog\n"
            f"poll localhost service {port} protocol pop3 uidl"
            f" timeout {int(IO_TIMEOUT)}\n"
            f'  user "{user}" password "{pw}" is "{os.environ.get("USER", "root")}" here\n'
            f"  {'ssl' if implicit else ''} sslproto 'TLS1.2+' sslcertck sslcertfile {cert}\n"
            f"  {'keep' if keep else 'nokeep fetchall'}\n"
            f'  mda "{mda}"\n'
        )
        rc.chmod(0o600)
        env = dict(os.environ, HOME=str(work), FETCHMAILHOME=str(work))
        return subprocess.run(
            [fetchmail, "-f", str(rc), "--idfile", str(work / ".fetchids"), "-v", "--nodetach"],
            capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env, cwd=work)

    def delivered(self, work: Path) -> list[bytes]:
        return [p.read_bytes() for p in sorted((work / "delivered").glob("msg.*"))]

    def test_fetchmail_keep_then_delete(self):
        user, pw = self.new_account()
        stored = [self.deliver(user, pw, f"pop-fm-{i}", f"fetch me {i}\r\n.dot line\r\n")[1]
                  for i in range(2)]
        work = self.server.dir / f"fetchmail-{time.time_ns()}"
        work.mkdir()
        r = self.fetchmail(work, user, pw, keep=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("POP3> STLS", r.stdout + r.stderr)
        got = self.delivered(work)
        self.assertEqual(len(got), 2, r.stdout + r.stderr)
        for msg, original in zip(sorted(got, key=lambda m: b"pop-fm-1" in m), stored):
            # fetchmail adds its own Received field among the header fields; without it the
            # message is the stored one byte for byte (its mda gets LF line endings).
            self.assertIn(b"with POP3 (fetchmail", msg)
            self.assertEqual(without_fetchmail_received(msg), original.replace(b"\r\n", b"\n"))
        self.assertEqual(len(self.imap_inbox(user, pw)), 2)  # --keep: still on the server
        # UIDL bookkeeping: a second run with keep (over pop3s) fetches nothing new (exit 1:
        # no mail).
        r = self.fetchmail(work, user, pw, keep=True, implicit=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertNotIn("POP3> STLS", r.stdout + r.stderr)
        self.assertEqual(len(self.delivered(work)), 2)
        # Without keep (and fetchall): fetched again and deleted from the server.
        r = self.fetchmail(work, user, pw, keep=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.delivered(work)), 4)
        self.assertEqual(self.imap_inbox(user, pw), [])

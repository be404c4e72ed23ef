"""ManageSieve (RFC 5804) with the real sieve-connect client and a raw socket.

sieve-connect: upload, list, activate, download, delete (STARTTLS, AUTHENTICATE PLAIN).
Raw socket: CHECKSCRIPT with an error (the line is named), HAVESPACE over the limit, a 1 MB
PUTSCRIPT refused with QUOTA/MAXSIZE, a bad login, another user's scripts never visible,
AUTHENTICATE refused before STARTTLS.
"""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from harness import (
    CLI_TIMEOUT,
    DOMAIN,
    IO_TIMEOUT,
    LISTENERS,
    ServerTestCase,
    insecure_tls,
    require_tool,
)
from test_security_auth import http_json, totp_code

MS_LISTENERS = LISTENERS + ("managesieve", "http")

SCRIPT = 'require "fileinto";\r\nif header :contains "subject" "report" {\r\n  fileinto "Reports";\r\n}\r\n'


class Client:
    """A minimal ManageSieve client: responses are (lines before, final line)."""

    def __init__(self, addr: tuple[str, int]):
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(addr, timeout=IO_TIMEOUT)
        self.buf = b""
        self.greeting = self.response()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed; pending {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed in a literal")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self) -> tuple[list[bytes], bytes]:
        lines = []
        while True:
            line = self._line()
            if line.endswith(b"}") and b"{" in line:
                n = int(line[line.rindex(b"{") + 1:-1].rstrip(b"+"))
                line = line[:line.rindex(b"{")] + self._exact(n)
                line += self._line()
            if line.split(b" ", 1)[0] in (b"OK", b"NO", b"BYE"):
                return lines, line
            lines.append(line)

    def send(self, data: bytes) -> tuple[list[bytes], bytes]:
        self.sock.sendall(data)
        return self.response()

    def starttls(self):
        _, st = self.send(b"STARTTLS\r\n")
        assert st.startswith(b"OK"), st
        self.sock = insecure_tls().wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        return self.response()

    def login(self, user: str, pw: str) -> bytes:
        token = base64.b64encode(f"\0{user}\0{pw}".encode()).decode()
        return self.send(f'AUTHENTICATE "PLAIN" "{token}"\r\n'.encode())[1]

    def close(self):
        try:
            self.sock.sendall(b"LOGOUT\r\n")
        except OSError:
            pass
        self.sock.close()


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


class ManageSieveTest(ServerTestCase):
    listeners = MS_LISTENERS
    auth_toml = 'account_delay = "50ms"'
    _n = 0

    def new_account(self) -> tuple[str, str]:
        ManageSieveTest._n += 1
        user = f"ms{ManageSieveTest._n}-{time.time_ns() % 10**6}@{DOMAIN}"
        pw = "sieve-Secret-pw-7"
        self.server.add_account(user, pw)
        return user, pw

    def client(self, user: str | None = None, pw: str | None = None) -> Client:
        c = Client(self.server.addr("managesieve"))
        self.addCleanup(c.close)
        c.starttls()
        if user is not None:
            st = c.login(user, pw)
            self.assertTrue(st.startswith(b"OK"), st)
        return c

    def sieve_connect(self, user: str, pw: str, *args: str) -> str:
        tool = require_tool("sieve-connect")
        host, port = self.server.addr("managesieve")
        p = subprocess.run(
            [tool, "--server", host, "--port", str(port), "--user", user, "--passwordfd", "0",
             "--notlsverify", "--authmech", "PLAIN", *args],
            input=pw + "\n", capture_output=True, text=True, timeout=CLI_TIMEOUT)
        self.assertEqual(p.returncode, 0, f"sieve-connect {args}: {p.stdout}\n{p.stderr}")
        return p.stdout + p.stderr

    def test_greeting_and_capabilities(self):
        c = Client(self.server.addr("managesieve"))
        self.addCleanup(c.close)
        caps, st = c.greeting
        self.assertTrue(st.startswith(b"OK"), st)
        self.assertIn(b'"STARTTLS"', caps)
        self.assertIn(b'"VERSION" "1.0"', caps)
        self.assertTrue(any(l.startswith(b'"SIEVE" ') and b"fileinto" in l for l in caps), caps)
        # RFC 5804 §2.1: no PLAIN over a clear channel.
        st = c.login("nobody@" + DOMAIN, "x")
        self.assertTrue(st.startswith(b"NO (ENCRYPT-NEEDED)"), st)
        caps, st = c.starttls()
        self.assertIn(b'"SASL" "PLAIN"', caps)
        self.assertNotIn(b'"STARTTLS"', caps)

    def test_sieve_connect_upload_list_activate_download_delete(self):
        user, pw = self.new_account()
        with tempfile.TemporaryDirectory() as d:
            local = Path(d) / "reports.sieve"
            local.write_bytes(SCRIPT.encode())
            self.sieve_connect(user, pw, "--upload", "--localsieve", str(local),
                               "--remotesieve", "reports")
            listed = self.sieve_connect(user, pw, "--list")
            self.assertIn("reports", listed)
            self.sieve_connect(user, pw, "--activate", "--remotesieve", "reports")
            c = self.client(user, pw)
            lines, st = c.send(b"LISTSCRIPTS\r\n")
            self.assertTrue(st.startswith(b"OK"), st)
            self.assertEqual(lines, [b'"reports" ACTIVE'])
            c.close()
            back = Path(d) / "back.sieve"
            self.sieve_connect(user, pw, "--download", "--remotesieve", "reports",
                               "--localsieve", str(back))
            self.assertEqual(back.read_bytes().replace(b"\r\n", b"\n"),
                             SCRIPT.encode().replace(b"\r\n", b"\n"))
            self.sieve_connect(user, pw, "--deactivate")
            self.sieve_connect(user, pw, "--delete", "--remotesieve", "reports")
            listed = self.sieve_connect(user, pw, "--list")
            self.assertNotIn("reports", listed)

    def test_checkscript_error_names_the_line(self):
        user, pw = self.new_account()
        c = self.client(user, pw)
        bad = b'require "fileinto";\r\nkeep;\r\nbogus "x";\r\n'
        _, st = c.send(b"CHECKSCRIPT " + literal(bad) + b"\r\n")
        self.assertTrue(st.startswith(b"NO"), st)
        self.assertIn(b"line ", st)
        _, st = c.send(b"CHECKSCRIPT " + literal(SCRIPT.encode()) + b"\r\n")
        self.assertTrue(st.startswith(b"OK"), st)
        # PUTSCRIPT of a broken script stores nothing.
        _, st = c.send(b'PUTSCRIPT "broken" ' + literal(bad) + b"\r\n")
        self.assertTrue(st.startswith(b"NO"), st)
        lines, _ = c.send(b"LISTSCRIPTS\r\n")
        self.assertEqual(lines, [])

    def test_limits(self):
        user, pw = self.new_account()
        c = self.client(user, pw)
        _, st = c.send(b'HAVESPACE "big" 10000000\r\n')
        self.assertTrue(st.startswith(b"NO (QUOTA/MAXSIZE)"), st)
        _, st = c.send(b'HAVESPACE "small" 100\r\n')
        self.assertTrue(st.startswith(b"OK"), st)
        big = b"# " + b"x" * (1024 * 1024) + b"\r\nkeep;\r\n"
        _, st = c.send(b'PUTSCRIPT "big" ' + literal(big) + b"\r\n")
        self.assertTrue(st.startswith(b"NO (QUOTA/MAXSIZE)"), st)
        # The connection is still usable, and nothing was stored.
        lines, st = c.send(b"LISTSCRIPTS\r\n")
        self.assertTrue(st.startswith(b"OK"), st)
        self.assertEqual(lines, [])
        _, st = c.send(b'NOOP "tag-1"\r\n')
        self.assertEqual(st, b'OK (TAG "tag-1") "Done"')

    def test_bad_login(self):
        user, _ = self.new_account()
        c = self.client()
        st = c.login(user, "wrong-password")
        self.assertTrue(st.startswith(b"NO"), st)
        _, st = c.send(b"LISTSCRIPTS\r\n")
        self.assertTrue(st.startswith(b"NO"), st)

    def test_two_factor_account_needs_an_app_password(self):
        user, pw = self.new_account()
        app_pw = self.server.add_app_password(user, "sieve-addon")
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
        c = self.client()
        st = c.login(user, pw)
        self.assertTrue(st.startswith(b"NO (AUTH-TOO-WEAK)"), st)
        self.assertIn(b"app password", st)
        st = c.login(user, app_pw)
        self.assertTrue(st.startswith(b"OK"), st)

    def test_other_users_scripts_are_invisible(self):
        a, apw = self.new_account()
        b, bpw = self.new_account()
        ca = self.client(a, apw)
        _, st = ca.send(b'PUTSCRIPT "secret-of-a" ' + literal(b"keep;\r\n") + b"\r\n")
        self.assertTrue(st.startswith(b"OK"), st)
        _, st = ca.send(b'SETACTIVE "secret-of-a"\r\n')
        self.assertTrue(st.startswith(b"OK"), st)
        cb = self.client(b, bpw)
        lines, st = cb.send(b"LISTSCRIPTS\r\n")
        self.assertTrue(st.startswith(b"OK"), st)
        self.assertEqual(lines, [])
        for cmd in (b'GETSCRIPT "secret-of-a"', b'DELETESCRIPT "secret-of-a"',
                    b'SETACTIVE "secret-of-a"', b'RENAMESCRIPT "secret-of-a" "x"'):
            _, st = cb.send(cmd + b"\r\n")
            self.assertTrue(st.startswith(b"NO (NONEXISTENT)"), (cmd, st))
        lines, _ = ca.send(b"LISTSCRIPTS\r\n")
        self.assertEqual(lines, [b'"secret-of-a" ACTIVE'])
        _, st = ca.send(b'DELETESCRIPT "secret-of-a"\r\n')
        self.assertTrue(st.startswith(b"NO (ACTIVE)"), st)


if __name__ == "__main__":
    unittest.main()

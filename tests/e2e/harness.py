"""End-to-end harness: runs the real `bulwark` binary and talks to it with real clients.

Every test class starts its own server in a fresh temporary directory (`ServerTestCase`).
Nothing here sleeps a fixed time to wait for something: waits poll with a deadline.

Environment:
  BULWARK_BIN        path of the built binary (default: $CARGO_TARGET_DIR/debug/bulwark,
                     then <repo>/target/debug/bulwark)
  BULWARK_E2E_KEEP   keep temp dirs after the run (for debugging)
"""

from __future__ import annotations

import atexit
import base64
import imaplib
import os
import re
import shutil
import signal
import socket
import socketserver
import smtplib
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class _NoSuchName:
    """A dnslib resolver that answers NXDOMAIN for every name (a DNS with no records)."""

    def resolve(self, request, handler):
        from dnslib import RCODE
        reply = request.reply()
        reply.header.rcode = RCODE.NXDOMAIN
        return reply


_LOOPBACK_DNS: str | None = None
_LOOPBACK_DNS_LOCK = threading.Lock()


def loopback_dns() -> str:
    """`IP:PORT` of a DNS server on loopback (UDP and TCP) that knows no names, started once
    per process. Every test server resolves through it (`[dns] servers`), so the inbound
    SPF/DKIM/DMARC checks and MX lookups never leave the machine and answer at once."""
    global _LOOPBACK_DNS
    with _LOOPBACK_DNS_LOCK:
        if _LOOPBACK_DNS is None:
            from dnslib.server import DNSLogger, DNSServer
            quiet = DNSLogger(log="-request,-reply,-truncated,-data", prefix=False,
                              logf=lambda _line: None)
            for _ in range(20):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
                probe.close()
                try:
                    servers = [DNSServer(_NoSuchName(), port=port, address="127.0.0.1", tcp=tcp,
                                         logger=quiet) for tcp in (False, True)]
                except OSError:
                    continue
                for srv in servers:
                    srv.start_thread()
                _LOOPBACK_DNS = f"127.0.0.1:{port}"
                break
            else:
                raise AssertionError("no free port for the loopback DNS server")
        return _LOOPBACK_DNS

# Deadlines (seconds). Generous because the binary is a debug build on a 2-core machine that
# may be compiling at the same time.
START_TIMEOUT = 60.0
CLI_TIMEOUT = 120.0
IO_TIMEOUT = float(os.environ.get("BULWARK_E2E_IO_TIMEOUT", "30"))
DELIVERY_TIMEOUT = float(os.environ.get("BULWARK_E2E_DELIVERY_TIMEOUT", "30"))
POLL_INTERVAL = 0.05

DOMAIN = "example.test"
ALICE = "alice@example.test"
ALICE_PW = "alice-Secret-pw-1"
BOB = "bob@example.test"
BOB_PW = "bob-Secret-pw-2"
SALES = "sales@example.test"

LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps")


def bulwark_bin() -> Path:
    env = os.environ.get("BULWARK_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR")
    base = Path(target) if target else REPO_ROOT / "target"
    if not base.is_absolute():
        base = REPO_ROOT / base
    return base / "debug" / "bulwark"


def require_tool(name: str) -> str:
    """Path of an external client; fails (or skips with BULWARK_E2E_ALLOW_MISSING_TOOLS=1)."""
    path = shutil.which(name)
    if path:
        return path
    msg = f"{name} is not installed; scripts/test installs it (apt-get install -y swaks isync curl fetchmail sieve-connect)"
    if os.environ.get("BULWARK_E2E_ALLOW_MISSING_TOOLS"):
        raise unittest.SkipTest(msg)
    raise AssertionError(msg)


def insecure_tls() -> ssl.SSLContext:
    """Client context that accepts the server's generated self-signed certificate."""
    return ssl._create_unverified_context()


def wait_until(predicate, timeout: float, what: str, interval: float = POLL_INTERVAL):
    """Polls `predicate` until it returns a truthy value; raises AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_exc = exc
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Server process
# --------------------------------------------------------------------------------------------

_RUNNING: "set[Server]" = set()


def _die_with_parent_prefix() -> list[str]:
    """`setpriv --pdeathsig KILL` makes the server die if the test runner dies (so an
    interrupted run leaves no server behind). Done by exec'ing setpriv rather than a
    preexec_fn, which is unsafe while other threads run (crash tests start servers under load).
    Servers are started from the main thread (the death signal follows the forking thread)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


@atexit.register
def _kill_leftover_servers():
    for server in list(_RUNNING):
        if server.proc is not None and server.proc.poll() is None:
            try:
                os.killpg(server.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Server:
    """One bulwark server with its own data dir, config and process group.

    `limits_toml`, `auth_toml` and `outbound_toml` are extra lines for those tables
    (`outbound` only exists with a relay); `extra_toml` is appended last and must open its
    own `[table]`."""

    def __init__(self, name: str = "e2e", relay: tuple[str, int] | None = None,
                 max_message_size: str = "1M", extra_toml: str = "",
                 listeners=LISTENERS, auth_toml: str = "", outbound_toml: str = "",
                 limits_toml: str = ""):
        self.bin = bulwark_bin()
        if not self.bin.exists():
            raise AssertionError(
                f"bulwark binary not found at {self.bin}; build it with `cargo build -p bulwark` "
                "or set BULWARK_BIN"
            )
        self.dir = Path(tempfile.mkdtemp(prefix=f"bulwark-{name}-"))
        self.data_dir = self.dir / "data"
        self.config = self.dir / "bulwark.toml"
        self.log_path = self.dir / "server.log"
        self.listeners = tuple(listeners)
        self.proc: subprocess.Popen | None = None
        self.addrs: dict[str, tuple[str, int]] = {}
        self._stdout_lines: list[str] = []
        self._stdout_cond = threading.Condition()
        self._log = None
        self.starts = 0
        listen = "\n".join(f'{n} = "127.0.0.1:0"' for n in self.listeners)
        # DNS on loopback only (a test may bring its own zone with its own `[dns]`).
        dns = ("" if "[dns]" in extra_toml
               else f'[dns]\nservers = ["{loopback_dns()}"]\ntimeout = "2s"\n\n')
        outbound = (f'[outbound]\nrelay = "{relay[0]}:{relay[1]}"\n{outbound_toml}\n'
                    if relay else "")
        self.config.write_text(
            f'hostname = "mail.example.test"\n'
            f'data_dir = "{self.data_dir}"\n\n'
            f"[listen]\n{listen}\n\n"
            f"{outbound}\n"
            f'[limits]\nmax_message_size = "{max_message_size}"\n{limits_toml}\n'
            f"[auth]\nallow_plaintext_on_loopback = false\n{auth_toml}\n"
            f"{dns}"
            f"{extra_toml}"
        )

    # ---- admin CLI ------------------------------------------------------------------------

    def cli(self, *args: str, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin), *args, "--config", str(self.config)]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT, cwd=self.dir)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def add_domain(self, domain: str = DOMAIN):
        self.cli("domain", "add", domain)

    def add_account(self, address: str, password: str):
        self.cli("account", "add", address, "--password-stdin", input=password + "\n")

    def add_alias(self, alias: str, target: str):
        self.cli("alias", "add", alias, target)

    def add_app_password(self, address: str, name: str) -> str:
        out = self.cli("account", "app-password", "add", address, "--name", name).stdout
        lines = [l.strip() for l in out.splitlines() if l.strip()]
        if not lines:
            raise AssertionError(f"app-password add printed nothing: {out!r}")
        # The password is the last token of the last non-empty line ("password: xxxx" or "xxxx").
        return lines[-1].split()[-1]

    def queue_list(self) -> str:
        return self.cli("queue", "list").stdout

    def standard_fixture(self):
        """Domain example.test, accounts alice and bob, alias sales -> alice."""
        self.add_domain(DOMAIN)
        self.add_account(ALICE, ALICE_PW)
        self.add_account(BOB, BOB_PW)
        self.add_alias(SALES, ALICE)

    # ---- process --------------------------------------------------------------------------

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError("server already running")
        self.starts += 1
        self.addrs = {}
        with self._stdout_cond:
            self._stdout_lines = []
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== start #{self.starts} =====\n".encode())
        self._log.flush()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env["NO_COLOR"] = "1"
        self.proc = subprocess.Popen(
            [*_die_with_parent_prefix(), str(self.bin), "serve", "--config", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            cwd=self.dir, env=env, start_new_session=True,
        )
        _RUNNING.add(self)
        self._reader = threading.Thread(target=self._read_stdout, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        pattern = re.compile(r"listening:\s+(\S+)\s+(\S+):(\d+)")
        with self._stdout_cond:
            while True:
                for line in self._stdout_lines:
                    m = pattern.search(line)
                    if m:
                        self.addrs[m.group(1)] = (m.group(2), int(m.group(3)))
                if all(n in self.addrs for n in self.listeners):
                    break
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"server exited with {self.proc.returncode} during start\n{self.log_tail()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"server did not announce listeners {self.listeners} within "
                        f"{START_TIMEOUT:.0f}s; got {self.addrs}\nstdout: {self._stdout_lines}\n"
                        f"{self.log_tail()}"
                    )
                self._stdout_cond.wait(min(remaining, 0.5))
        for name, addr in self.addrs.items():
            wait_until(lambda a=addr: self._connectable(a), START_TIMEOUT,
                       f"{name} listener {addr} to accept connections")

    def _read_stdout(self, proc: subprocess.Popen):
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            with self._stdout_cond:
                self._stdout_lines.append(line)
                self._stdout_cond.notify_all()
            try:
                if self._log:
                    self._log.write(b"[stdout] " + raw)
                    self._log.flush()
            except ValueError:
                pass
        with self._stdout_cond:
            self._stdout_cond.notify_all()

    @staticmethod
    def _connectable(addr) -> bool:
        with socket.create_connection(addr, timeout=2):
            return True

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL to the whole process group (crash)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=IO_TIMEOUT)
        self._close_log()

    def stop(self):
        """SIGTERM, then SIGKILL if it does not exit within the deadline."""
        if self.proc is None or self.proc.poll() is not None:
            self._close_log()
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sys.stderr.write("bulwark did not stop on SIGTERM within 20s; sending SIGKILL\n")
            self.kill9()
        self._close_log()

    def restart(self, crash: bool = False):
        if crash:
            self.kill9()
        else:
            self.stop()
        self.start()

    def _close_log(self):
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.join(5)
            self._reader = None
        if self.proc is not None and self.proc.stdout is not None and self.proc.poll() is not None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        if self._log:
            try:
                self._log.flush()
                self._log.close()
            except ValueError:
                pass
            self._log = None

    def cleanup(self):
        self.stop()
        _RUNNING.discard(self)
        if not os.environ.get("BULWARK_E2E_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, max_bytes: int = 6000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no server log)"
        tail = data[-max_bytes:].decode("utf-8", "replace")
        return f"----- server log ({self.log_path}) tail -----\n{tail}\n----- end server log -----"

    # ---- addresses and clients ------------------------------------------------------------

    def addr(self, name: str) -> tuple[str, int]:
        return self.addrs[name]

    def port(self, name: str) -> int:
        return self.addrs[name][1]

    def smtp(self, name: str = "smtp", source_ip: str | None = None) -> smtplib.SMTP:
        host, port = self.addr(name)
        src = (source_ip, 0) if source_ip else None
        if name == "submissions":
            return smtplib.SMTP_SSL(host, port, timeout=IO_TIMEOUT, context=insecure_tls(),
                                    source_address=src)
        return smtplib.SMTP(host, port, timeout=IO_TIMEOUT, source_address=src)

    def submission(self, user: str, password: str) -> smtplib.SMTP:
        s = self.smtp("submission")
        s.ehlo("client.test")
        s.starttls(context=insecure_tls())
        s.ehlo("client.test")
        try:
            s.login(user, password)
        except BaseException:
            s.close()
            raise
        return s

    def imap(self, user: str | None = None, password: str | None = None,
             mode: str = "starttls") -> imaplib.IMAP4:
        if mode == "imaps":
            host, port = self.addr("imaps")
            m = imaplib.IMAP4_SSL(host, port, ssl_context=insecure_tls(), timeout=IO_TIMEOUT)
        else:
            host, port = self.addr("imap")
            m = imaplib.IMAP4(host, port, timeout=IO_TIMEOUT)
            if mode == "starttls":
                m.starttls(ssl_context=insecure_tls())
        # imaplib writes a literal and its CRLF separately; with Nagle on, the CRLF waits for
        # the server's delayed ACK (~40 ms per APPEND). Real clients send it in one write.
        m.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if user is not None:
            try:
                m.login(user, password)
            except BaseException:
                safe_logout(m)
                raise
        return m

    def raw_imap(self, tls: bool = True, source_ip: str | None = None) -> "RawImap":
        return RawImap(self.addr("imaps" if tls else "imap"), tls=tls, source_ip=source_ip)

    def raw_smtp(self, name: str = "smtp", source_ip: str | None = None) -> "RawSmtp":
        return RawSmtp(self.addr(name), tls=(name == "submissions"), source_ip=source_ip)


# --------------------------------------------------------------------------------------------
# Raw protocol clients (for IDLE, pipelining, BDAT and malformed input)
# --------------------------------------------------------------------------------------------


class LineConn:
    def __init__(self, addr, tls: bool, timeout: float = IO_TIMEOUT,
                 source_ip: str | None = None):
        sock = socket.create_connection(addr, timeout=timeout,
                                        source_address=(source_ip, 0) if source_ip else None)
        if tls:
            sock = insecure_tls().wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.buf = b""
        self.timeout = timeout

    def send(self, data: bytes):
        self.sock.sendall(data)

    def starttls(self):
        self.sock = insecure_tls().wrap_socket(self.sock, server_hostname="localhost")

    def read_line(self, timeout: float | None = None) -> bytes:
        """One line including CRLF; b'' when the peer closed. TimeoutError at the deadline."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete line within deadline; buffered {self.buf[:200]!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout as exc:
                raise TimeoutError(f"no complete line; buffered {self.buf[:200]!r}") from exc
            except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
                chunk = b""
            if not chunk:
                rest, self.buf = self.buf, b""
                return rest
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("short read")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("peer closed during literal")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class RawSmtp(LineConn):
    def __init__(self, addr, tls: bool = False, timeout: float = IO_TIMEOUT,
                 source_ip: str | None = None):
        super().__init__(addr, tls, timeout, source_ip)
        self.greeting = self.reply()

    def reply(self, timeout: float | None = None) -> tuple[int, list[str]]:
        """One (possibly multi-line) reply: (code, [text lines]). code 0 when the peer closed."""
        lines = []
        while True:
            line = self.read_line(timeout)
            if not line:
                return (0, lines)
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                try:
                    return (int(text[:3]), lines)
                except ValueError:
                    return (-1, lines)

    def cmd(self, line: str | bytes) -> tuple[int, list[str]]:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply()


class RawImap(LineConn):
    def __init__(self, addr, tls: bool = True, timeout: float = IO_TIMEOUT,
                 source_ip: str | None = None):
        super().__init__(addr, tls, timeout, source_ip)
        self.greeting = self.read_line()
        self.counter = 0

    def tag(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def read_response(self, tag: str | None, timeout: float | None = None) -> list[bytes]:
        """Lines up to and including the tagged completion for `tag` (literals inlined).
        Stops early at a BYE or when the peer closes (last element b'')."""
        lines: list[bytes] = []
        while True:
            line = self.read_line(timeout)
            if not line:
                lines.append(b"")
                return lines
            m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
            if m:
                line += self.read_exact(int(m.group(1)), timeout)
                line += self.read_line(timeout)
            lines.append(line)
            if tag is not None and line.startswith(tag.encode() + b" "):
                return lines
            if line.startswith(b"* BYE"):
                # Server is closing; collect anything left (tagged reply may follow).
                try:
                    nxt = self.read_line(2)
                    if nxt:
                        lines.append(nxt)
                except TimeoutError:
                    pass
                return lines

    def command(self, text: str | bytes, timeout: float | None = None) -> list[bytes]:
        tag = self.tag()
        if isinstance(text, str):
            text = text.encode()
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.read_response(tag, timeout)

    def ok(self, text: str | bytes) -> list[bytes]:
        lines = self.command(text)
        last = lines[-1] if lines else b""
        if b" OK" not in last[:20]:
            raise AssertionError(f"{text!r} failed: {lines!r}")
        return lines

    def login(self, user: str, password: str):
        self.ok(f'LOGIN "{user}" "{password}"')


# --------------------------------------------------------------------------------------------
# SMTP sink (stands in for the outbound relay)
# --------------------------------------------------------------------------------------------


def make_ca_and_certs(dir: Path, leaves: dict[str, list[str]]) -> tuple[Path, dict]:
    """A test CA and one certificate per entry of `leaves` (name -> DNS names or IP
    addresses; the first is also the subject's CN), each file with its chain. Returns
    (ca.pem, {name: (cert.pem, key.pem)})."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime
    import ipaddress

    def san(name: str):
        try:
            return x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            return x509.DNSName(name)

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bulwark e2e test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    ca_path = dir / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out = {}
    for name, dns_names in leaves.items():
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName(
                    [san(n) for n in dns_names]), critical=False)
                .add_extension(x509.ExtendedKeyUsage(
                    [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        cert_path, key_path = dir / f"{name}-cert.pem", dir / f"{name}-key.pem"
        cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM)
                              + ca.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        out[name] = (cert_path, key_path)
    return ca_path, out


class SinkMessage:
    def __init__(self, mail_from: str, rcpts: list[str], data: bytes, tls: bool = False):
        self.mail_from = mail_from
        self.rcpts = rcpts
        self.data = data
        # Whether the transaction ran inside STARTTLS.
        self.tls = tls


class _SinkHandler(socketserver.StreamRequestHandler):
    timeout = 60

    def w(self, text: str):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        sink: SmtpSink = self.server.sink  # type: ignore[attr-defined]
        self.w("220 sink.test ESMTP test sink")
        mail_from, rcpts = None, []
        in_tls = False
        while True:
            line = self.rfile.readline(10000)
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                if verb == "EHLO":
                    starttls = "250-STARTTLS\r\n" if sink.tls and not in_tls else ""
                    self.w("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                           f"{starttls}250-ENHANCEDSTATUSCODES\r\n250 SIZE 50000000")
                else:
                    self.w("250 sink.test")
            elif verb == "MAIL":
                m = re.search(r"<([^>]*)>", cmd)
                mail_from, rcpts = (m.group(1) if m else ""), []
                self.w("250 2.1.0 ok")
            elif verb == "RCPT":
                m = re.search(r"<([^>]*)>", cmd)
                address = m.group(1) if m else ""
                reply = sink._rcpt_reply(address)
                if reply.startswith("250"):
                    rcpts.append(address)
                self.w(reply)
            elif verb == "DATA":
                if not rcpts:
                    self.w("554 5.5.1 no valid recipients")
                    continue
                self.w("354 go ahead")
                body = bytearray()
                while True:
                    l = self.rfile.readline(1_000_000)
                    if not l:
                        return
                    if l in (b".\r\n", b".\n"):
                        break
                    if l.startswith(b".."):
                        l = l[1:]
                    body += l
                sink._add(SinkMessage(mail_from or "", list(rcpts), bytes(body), in_tls))
                mail_from, rcpts = None, []
                self.w("250 2.0.0 queued in sink")
            elif verb == "STARTTLS" and sink.tls and not in_tls:
                self.w("220 2.0.0 go ahead")
                try:
                    self.connection = sink.tls.wrap_socket(self.connection, server_side=True)
                except (OSError, ValueError):
                    return  # the client refused our certificate
                self.rfile = self.connection.makefile("rb")
                self.wfile = socketserver._SocketWriter(self.connection)  # type: ignore[attr-defined]
                in_tls, mail_from, rcpts = True, None, []
            elif verb == "RSET":
                mail_from, rcpts = None, []
                self.w("250 2.0.0 ok")
            elif verb == "NOOP":
                self.w("250 2.0.0 ok")
            elif verb == "QUIT":
                self.w("221 2.0.0 bye")
                return
            else:
                self.w("502 5.5.2 not implemented in sink")


class _ThreadingTCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SmtpSink:
    """A tiny SMTP server on 127.0.0.1:<free port> that records every message. With `tls`
    (a server `ssl.SSLContext`) it offers STARTTLS; `host`/`port` choose where it listens."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls=None):
        self.tls = tls
        self.messages: list[SinkMessage] = []
        self._cond = threading.Condition()
        # rcpt_policy(address, attempt) -> SMTP reply line; attempt counts RCPTs per address
        # (1 = first). Default: accept everything.
        self.rcpt_policy = lambda address, attempt: "250 2.1.5 ok"
        self.rcpt_attempts: dict[str, int] = {}
        self.server = _ThreadingTCPServer((host, port), _SinkHandler)
        self.server.sink = self  # type: ignore[attr-defined]
        self.addr = self.server.server_address
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _rcpt_reply(self, address: str) -> str:
        with self._cond:
            n = self.rcpt_attempts.get(address, 0) + 1
            self.rcpt_attempts[address] = n
            policy = self.rcpt_policy
        return policy(address, n)

    def count(self, predicate) -> int:
        with self._cond:
            return sum(1 for m in self.messages if predicate(m))

    def _add(self, msg: SinkMessage):
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = DELIVERY_TIMEOUT) -> SinkMessage:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if predicate(m):
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"sink did not receive the expected message within {timeout:.0f}s; "
                        f"got {len(self.messages)} message(s)"
                    )
                self._cond.wait(remaining)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------
# Test base class
# --------------------------------------------------------------------------------------------


class ServerTestCase(unittest.TestCase):
    """Starts one fresh server per test class; prints the server log when a test fails."""

    server: Server
    sink: SmtpSink | None = None
    with_sink = False
    max_message_size = "1M"
    extra_toml = ""
    auth_toml = ""
    outbound_toml = ""
    limits_toml = ""
    listeners = LISTENERS
    fixture = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sink = SmtpSink() if cls.with_sink else None
        cls.server = Server(
            name=cls.__name__,
            relay=cls.sink.addr if cls.sink else None,
            max_message_size=cls.max_message_size,
            extra_toml=cls.extra_toml,
            auth_toml=cls.auth_toml,
            outbound_toml=cls.outbound_toml,
            limits_toml=cls.limits_toml,
            listeners=cls.listeners,
        )
        try:
            if cls.fixture:
                cls.server.standard_fixture()
            cls.server.start()
        except BaseException:
            sys.stderr.write(cls.server.log_tail() + "\n")
            cls.server.cleanup()
            if cls.sink:
                cls.sink.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        if cls.sink:
            cls.sink.close()
        super().tearDownClass()

    def run(self, result=None):
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            sys.stderr.write(f"\n[{self.id()}] failed; {self.server.log_tail()}\n")
            if self.server.proc is not None and self.server.proc.poll() is not None:
                sys.stderr.write(f"server process exited with {self.server.proc.returncode}\n")
        return out

    def setUp(self):
        super().setUp()
        if not self.server.running():
            # A previous test crashed the server: report it here rather than in a confusing
            # connection error, then restart so later tests still run.
            code = self.server.proc.returncode if self.server.proc else None
            self.server.start()
            self.fail(f"server was not running at test start (exit code {code}); restarted")


# --------------------------------------------------------------------------------------------
# Mail helpers
# --------------------------------------------------------------------------------------------


def make_message(subject: str, sender: str = "sender@remote.test", to: str = ALICE,
                 body: str = "Hello from the e2e suite.\r\n", message_id: str | None = None,
                 extra_headers: str = "") -> bytes:
    mid = message_id or f"<{subject.replace(' ', '-')}-{time.time_ns()}@e2e.test>"
    text = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: {mid}\r\n{extra_headers}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
    return text.encode()


def imap_check(typ_data, what: str = "command"):
    typ, data = typ_data
    if typ != "OK":
        raise AssertionError(f"IMAP {what} returned {typ}: {data!r}")
    return data


def imap_search(m: imaplib.IMAP4, *criteria: str, uid: bool = False) -> list[int]:
    if uid:
        data = imap_check(m.uid("SEARCH", *criteria), "UID SEARCH")
    else:
        data = imap_check(m.search(None, *criteria), "SEARCH")
    return [int(x) for x in b" ".join(d for d in data if d).split()]


def wait_for_subject(server: Server, user: str, password: str, subject: str,
                     mailbox: str = "INBOX", timeout: float = DELIVERY_TIMEOUT) -> bytes:
    """Polls over IMAP until a message with `subject` is in `mailbox`; returns its full text."""
    m = server.imap(user, password)
    try:
        def found():
            imap_check(m.select(f'"{mailbox}"', readonly=True), "SELECT")
            uids = imap_search(m, "SUBJECT", f'"{subject}"', uid=True)
            return uids
        uids = wait_until(found, timeout, f"message {subject!r} in {user} {mailbox}")
        data = imap_check(m.uid("FETCH", str(uids[-1]), "(BODY.PEEK[])"), "FETCH")
        return fetch_literal(data)
    finally:
        safe_logout(m)


def fetch_literal(data) -> bytes:
    for item in data:
        if isinstance(item, tuple):
            return item[1]
    raise AssertionError(f"no literal in FETCH response: {data!r}")


def safe_logout(m):
    try:
        m.logout()
    except Exception:  # noqa: BLE001
        try:
            m.shutdown()
        except Exception:  # noqa: BLE001
            pass


def auth_plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()

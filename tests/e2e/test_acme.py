"""ACME (RFC 8555) against a real pebble (Debian package `pebble`) on loopback.

pebble really validates each challenge: it resolves the name through a DNS server of ours on
loopback (every name → 127.0.0.1) and connects to Bulwark's http listener (http-01) or one of
its TLS listeners with ALPN `acme-tls/1` (tls-alpn-01, RFC 8737). PEBBLE_VA_ALWAYS_VALID is
not set. The certificate Bulwark then serves must verify against pebble's own root.
"""

import imaplib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
from pathlib import Path

from harness import (ALICE, ALICE_PW, IO_TIMEOUT, Server, make_ca_and_certs, require_tool,
                     wait_until)

HOSTNAME = "mail.example.test"
ISSUE_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Everything127:
    """A dnslib resolver: A 127.0.0.1 for every name, no AAAA (pebble then dials IPv4)."""

    def resolve(self, request, handler):
        from dnslib import A, QTYPE, RR
        reply = request.reply()
        if request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.1"), ttl=60))
        return reply


def start_dns() -> tuple[list, int]:
    from dnslib.server import DNSLogger, DNSServer
    quiet = DNSLogger(log="-request,-reply,-truncated,-data", prefix=False,
                      logf=lambda _line: None)
    for _ in range(20):
        port = free_port()
        try:
            servers = [DNSServer(_Everything127(), port=port, address="127.0.0.1", tcp=tcp,
                                 logger=quiet) for tcp in (False, True)]
        except OSError:
            continue
        for s in servers:
            s.start_thread()
        return servers, port
    raise AssertionError("no free port for the DNS server")


def make_pebble_tls(dir: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 for pebble's own HTTPS API (the Debian package
    ships no test certificates). Returns (ca.pem, cert.pem, key.pem)."""
    ca, certs = make_ca_and_certs(dir, {"api": ["127.0.0.1", "localhost"]})
    return (ca, *certs["api"])


class Pebble:
    def __init__(self, http_port: int, tls_port: int, dns_port: int):
        self.bin = require_tool("pebble")
        self.dir = Path(tempfile.mkdtemp(prefix="bulwark-pebble-"))
        self.ca, cert, key = make_pebble_tls(self.dir)
        self.port = free_port()
        self.mgmt_port = free_port()
        config = self.dir / "pebble.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(cert), "privateKey": str(key),
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
        }}))
        env = dict(os.environ)
        # No random validation delays, a fresh authorization per order, no forced bad nonces
        # (instant-acme retries those, but they only slow the test). Challenges are still
        # really validated: PEBBLE_VA_ALWAYS_VALID is not set.
        env.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_AUTHZREUSE="0", PEBBLE_WFE_NONCEREJECT="0")
        env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        self.log = open(self.dir / "pebble.log", "wb")
        self.proc = subprocess.Popen(
            [self.bin, "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env,
            cwd=self.dir, start_new_session=True)
        ctx = ssl.create_default_context(cafile=str(self.ca))
        wait_until(lambda: self._up(ctx), 30, "pebble to answer its directory")
        self.ctx = ctx

    def _up(self, ctx) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"pebble exited: {self.log_text()}")
        try:
            with urllib.request.urlopen(self.directory, context=ctx, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def root_pem(self) -> str:
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt_port}/roots/0",
                                    context=self.ctx, timeout=IO_TIMEOUT) as r:
            return r.read().decode()

    def log_text(self) -> str:
        try:
            return (self.dir / "pebble.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def served_cert(addr, alpn: list[str] | None = None):
    """The leaf certificate a TLS listener presents (not verified), as a cryptography object."""
    from cryptography import x509
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection(addr, timeout=IO_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOSTNAME) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def issuer_cn(cert) -> str:
    from cryptography.x509.oid import NameOID
    attrs = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else ""


def issued_by_pebble(addr) -> bool:
    try:
        return "Pebble" in issuer_cn(served_cert(addr))
    except (OSError, ssl.SSLError):
        return False


class AcmeTest(unittest.TestCase):
    """One pebble; server A orders with http-01 (and renews at every check), server B with
    tls-alpn-01 on its IMAPS listener."""

    @classmethod
    def setUpClass(cls):
        cls.dns, dns_port = start_dns()
        cls.http_port = free_port()
        cls.tls_port = free_port()
        cls.pebble = Pebble(cls.http_port, cls.tls_port, dns_port)
        cls.servers = []

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.cleanup()
        cls.pebble.stop()
        for d in cls.dns:
            d.stop()

    def server(self, name: str, challenge: str, fixed: dict[str, int],
               renew_before: str = "30d", poll: str | None = None) -> Server:
        listeners = ("smtp", "imaps", "submissions", "http")
        ca = self.pebble.ca
        s = Server(name, listeners=listeners, extra_toml=(
            "[acme]\n"
            f'directory = "{self.pebble.directory}"\n'
            'contact = ["mailto:postmaster@example.test"]\n'
            f'challenge = "{challenge}"\n'
            f'renew_before = "{renew_before}"\n'
            f'ca_file = "{ca}"\n'))
        text = s.config.read_text()
        for listener, port in fixed.items():
            text = text.replace(f'{listener} = "127.0.0.1:0"', f'{listener} = "127.0.0.1:{port}"')
        s.config.write_text(text)
        self.servers.append(s)
        s.cli("config", "check")
        old = os.environ.get("BULWARK_ACME_POLL")
        if poll:
            os.environ["BULWARK_ACME_POLL"] = poll
        try:
            s.start()
        finally:
            if poll:
                if old is None:
                    os.environ.pop("BULWARK_ACME_POLL", None)
                else:
                    os.environ["BULWARK_ACME_POLL"] = old
        s.standard_fixture()
        return s

    def assert_verifies_with_pebble_root(self, s: Server, listener: str):
        root = self.pebble.root_pem()
        ctx = ssl.create_default_context(cadata=root)
        with socket.create_connection(s.addr(listener), timeout=IO_TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOSTNAME) as tls:
                self.assertIn((("commonName", HOSTNAME),), tls.getpeercert()["subject"])
        # A name the certificate does not carry fails: the check above is a real check.
        with socket.create_connection(s.addr(listener), timeout=IO_TIMEOUT) as raw:
            with self.assertRaises(ssl.SSLCertVerificationError):
                ctx.wrap_socket(raw, server_hostname="other.example.test")

    def wait_issued(self, s: Server, listener: str):
        try:
            wait_until(lambda: issued_by_pebble(s.addr(listener)), ISSUE_TIMEOUT,
                       f"{listener} to present a certificate issued by pebble")
        except AssertionError as e:
            raise AssertionError(f"{e}\nserver log:\n{s.log_tail()}\npebble log:\n"
                                 f"{self.pebble.log_text()}") from None

    def test_1_http01_certificate_then_renewal_without_restart(self):
        # renew_before longer than pebble's certificate lifetime: every check renews.
        s = self.server("acme-http", "http-01", {"http": self.http_port},
                        renew_before="36500d", poll="2")
        self.wait_issued(s, "imaps")
        self.assert_verifies_with_pebble_root(s, "imaps")
        self.assert_verifies_with_pebble_root(s, "submissions")
        first = served_cert(s.addr("imaps")).serial_number
        # The certificate is stored: `bulwark acme status` (another process) reads it.
        status = s.cli("acme", "status").stdout
        self.assertIn("Pebble", status)
        self.assertIn(HOSTNAME, status)
        pid = s.proc.pid
        wait_until(lambda: served_cert(s.addr("imaps")).serial_number != first, ISSUE_TIMEOUT,
                   "a renewed certificate to be served")
        self.assertEqual(s.proc.pid, pid)
        self.assertIsNone(s.proc.poll(), "the server restarted or died")
        self.assert_verifies_with_pebble_root(s, "imaps")
        # An http-01 token that is not open is a plain 404.
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/.well-known/acme-challenge/nosuchtoken",
                timeout=IO_TIMEOUT)
        self.assertEqual(cm.exception.code, 404)
        s.stop()

    def test_2_tls_alpn01_certificate_and_mail_clients_unaffected(self):
        s = self.server("acme-alpn", "tls-alpn-01", {"imaps": self.tls_port})
        self.wait_issued(s, "imaps")
        self.assert_verifies_with_pebble_root(s, "imaps")
        # A mail client offering its own ALPN protocol is not refused (the ACME config is
        # chosen only for `acme-tls/1`), and logs in over the new certificate.
        cert = served_cert(s.addr("imaps"), alpn=["imap"])
        self.assertIn("Pebble", issuer_cn(cert))
        # imaplib names the host it dials (127.0.0.1): the chain is verified here, the name
        # by assert_verifies_with_pebble_root above.
        ctx = ssl.create_default_context(cadata=self.pebble.root_pem())
        ctx.check_hostname = False
        host, port = s.addr("imaps")
        m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=IO_TIMEOUT)
        self.assertEqual(m.login(ALICE, ALICE_PW)[0], "OK")
        m.logout()
        # A handshake asking for acme-tls/1 outside an order gets no certificate of ours.
        with self.assertRaises((ssl.SSLError, OSError)):
            served_cert(s.addr("imaps"), alpn=["acme-tls/1"])
        s.stop()


class AcmeTwoNodesTest(unittest.TestCase):
    """Two nodes on one PostgreSQL with the same [acme]: one orders (the lease in the store),
    both serve the same certificate; pebble reaches only node 1, so when node 2 orders, node 1
    answers the challenge from the store."""

    @classmethod
    def setUpClass(cls):
        cls.dns, dns_port = start_dns()
        cls.http_port = free_port()
        cls.pebble = Pebble(cls.http_port, free_port(), dns_port)
        cls.nodes = []

    @classmethod
    def tearDownClass(cls):
        for n in cls.nodes:
            n.cleanup()
        cls.pebble.stop()
        for d in cls.dns:
            d.stop()

    def test_two_nodes_order_once_and_serve_the_same_certificate(self):
        from test_cluster import fresh_database, pg_node
        store = fresh_database("acme")
        acme = ("[acme]\n"
                f'directory = "{self.pebble.directory}"\n'
                f'ca_file = "{self.pebble.ca}"\n')
        old = os.environ.get("BULWARK_ACME_POLL")
        os.environ["BULWARK_ACME_POLL"] = "2"
        try:
            for i in (1, 2):
                n = pg_node(f"acme-node{i}", store, f"node{i}",
                            listeners=("smtp", "imaps", "http"))
                text = n.config.read_text() + "\n" + acme
                if i == 1:
                    text = text.replace('http = "127.0.0.1:0"',
                                        f'http = "127.0.0.1:{self.http_port}"')
                n.config.write_text(text)
                self.nodes.append(n)
                n.start()
        finally:
            if old is None:
                os.environ.pop("BULWARK_ACME_POLL", None)
            else:
                os.environ["BULWARK_ACME_POLL"] = old
        for n in self.nodes:
            try:
                wait_until(lambda n=n: issued_by_pebble(n.addr("imaps")), ISSUE_TIMEOUT,
                           f"{n.dir.name} to serve a certificate issued by pebble")
            except AssertionError as e:
                raise AssertionError(f"{e}\n" + "\n".join(x.log_tail() for x in self.nodes)
                                     + self.pebble.log_text()) from None
        serials = {served_cert(n.addr("imaps")).serial_number for n in self.nodes}
        self.assertEqual(len(serials), 1, "both nodes serve the one stored certificate")
        orders = [n.dir.name for n in self.nodes
                  for line in n.log_path.read_text(errors="replace").splitlines()
                  if "ACME: ordering a certificate" in line]
        self.assertEqual(len(orders), 1, f"exactly one order in the cluster: {orders}")
        created = sum(n.log_path.read_text(errors="replace").count("ACME account created")
                      for n in self.nodes)
        self.assertEqual(created, 1, "one ACME account for the cluster")
        print(f"\nACME cluster: ordered by {orders[0]}, served by both (serial {serials.pop():x})")


def tearDownModule():
    import test_cluster
    test_cluster.tearDownModule()


if __name__ == "__main__":
    unittest.main()

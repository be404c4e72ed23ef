"""MTA-STS for outbound mail (RFC 8461, issue 16) with real parts: a DNS server on loopback
(dnslib) holding the recipient domains' MX, `_mta-sts` TXT and `mta-sts.` A records; their
policies served over HTTPS (Python's http.server with a certificate from a test CA that
Bulwark trusts through `[outbound] tls_ca_file`); the MX hosts are SMTP sinks on 127.0.0.2
(STARTTLS, a certificate for some names) and 127.0.0.3 (no STARTTLS), on one port.

A user submits mail over SMTP (smtplib) and the queue worker delivers it:
  * enforce + a host with a valid certificate: delivered, inside TLS;
  * enforce + a host without STARTTLS, or with a certificate for another name, or an MX the
    policy does not list: nothing is sent, the entry waits with an error naming MTA-STS;
  * testing: delivered as without a policy (here in cleartext);
  * the policy is cached: once seen, removing the TXT record and pointing the MX at a
    cleartext host (a downgrade) does not get the mail sent in cleartext.
"""

from __future__ import annotations

import http.server
import os
import socket
import ssl
import tempfile
import threading
import time
import unittest
from pathlib import Path

from harness import ALICE, ALICE_PW, LISTENERS, Server, SmtpSink, make_ca_and_certs, make_message
from test_trust import DnsOnLoopback, free_port

WAIT = 30.0


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


class PolicyServer:
    """`https://mta-sts.DOMAIN/.well-known/mta-sts.txt` for every domain in `policies`."""

    def __init__(self, ctx: ssl.SSLContext):
        self.policies: dict[str, str] = {}
        self.fetches: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                domain = host.removeprefix("mta-sts.")
                outer.fetches.append(domain)
                body = outer.policies.get(domain)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def policy(mode: str, *mx: str) -> str:
    lines = ["version: STSv1", f"mode: {mode}"] + [f"mx: {m}" for m in mx] + ["max_age: 86400"]
    return "\r\n".join(lines) + "\r\n"


def sinks_on_one_port(tls_ctx: ssl.SSLContext) -> tuple[SmtpSink, SmtpSink]:
    """A STARTTLS sink on 127.0.0.2 and a cleartext one on 127.0.0.3, same port (the queue
    has one MX port)."""
    for _ in range(20):
        tls_sink = SmtpSink(host="127.0.0.2", port=0, tls=tls_ctx)
        try:
            return tls_sink, SmtpSink(host="127.0.0.3", port=tls_sink.addr[1])
        except OSError:
            tls_sink.close()
    raise AssertionError("no port free on both 127.0.0.2 and 127.0.0.3")


class MtaStsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bulwark-mta-sts-"))
        mta_sts_names = [f"mta-sts.{d}" for d in (
            "good.test", "notls.test", "wrongmx.test", "badcert.test", "testing.test",
            "wild.test", "cached.test")]
        ca, certs = make_ca_and_certs(cls.tmp, {
            "mx": ["mx.good.test", "a.wild.test", "mx.wrongmx.test", "mx.cached.test"],
            "web": mta_sts_names,
        })
        cls.policy_server = PolicyServer(server_context(*certs["web"]))
        cls.tls_sink, cls.plain_sink = sinks_on_one_port(server_context(*certs["mx"]))
        cls.dns = DnsOnLoopback()
        zone = []
        for d in ("good.test", "notls.test", "wrongmx.test", "badcert.test", "testing.test",
                  "wild.test", "cached.test"):
            # TTL 0 where the test changes the records (the resolver caches by TTL).
            ttl = 0 if d == "cached.test" else 60
            zone.append(f'_mta-sts.{d}. {ttl} IN TXT "v=STSv1; id=20261204T01;"')
            zone.append(f"mta-sts.{d}. 60 IN A 127.0.0.1")
        zone += [
            "good.test. 60 IN MX 10 mx.good.test.", "mx.good.test. 60 IN A 127.0.0.2",
            "notls.test. 60 IN MX 10 mx.notls.test.", "mx.notls.test. 60 IN A 127.0.0.3",
            "wrongmx.test. 60 IN MX 10 mx.wrongmx.test.", "mx.wrongmx.test. 60 IN A 127.0.0.2",
            "badcert.test. 60 IN MX 10 mx.badcert.test.", "mx.badcert.test. 60 IN A 127.0.0.2",
            "testing.test. 60 IN MX 10 mx.testing.test.", "mx.testing.test. 60 IN A 127.0.0.3",
            "wild.test. 60 IN MX 10 a.wild.test.", "a.wild.test. 60 IN A 127.0.0.2",
            "cached.test. 60 IN MX 10 mx.cached.test.", "mx.cached.test. 0 IN A 127.0.0.2",
            "plain.test. 60 IN MX 10 mx.plain.test.", "mx.plain.test. 60 IN A 127.0.0.3",
        ]
        cls.dns.zone.add("\n".join(zone) + "\n")
        cls.policy_server.policies.update({
            "good.test": policy("enforce", "mx.good.test"),
            "notls.test": policy("enforce", "mx.notls.test"),
            "wrongmx.test": policy("enforce", "mx.elsewhere.test"),
            "badcert.test": policy("enforce", "mx.badcert.test"),
            "testing.test": policy("testing", "mx.elsewhere.test"),
            "wild.test": policy("enforce", "*.wild.test"),
            "cached.test": policy("enforce", "mx.cached.test"),
        })
        cls.old_port = os.environ.get("BULWARK_MTA_STS_PORT")
        os.environ["BULWARK_MTA_STS_PORT"] = str(cls.policy_server.port)
        cls.server = Server(name="mta-sts", listeners=LISTENERS, extra_toml=(
            f'[dns]\nservers = ["{cls.dns.addr}"]\ntimeout = "2s"\n'
            f'[outbound]\nmx_port = {cls.tls_sink.addr[1]}\nretry_base = "1s"\n'
            f'retry_max = "2s"\ntls_ca_file = "{ca}"\n'))
        try:
            cls.server.standard_fixture()
            cls.server.start()
        except BaseException:
            print(cls.server.log_tail())
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.old_port is None:
            os.environ.pop("BULWARK_MTA_STS_PORT", None)
        else:
            os.environ["BULWARK_MTA_STS_PORT"] = cls.old_port
        cls.server.cleanup()
        for closer in (cls.policy_server.stop, cls.tls_sink.close, cls.plain_sink.close,
                       cls.dns.stop):
            closer()

    def run(self, result=None):
        outcome = super().run(result)
        if result is not None and not result.wasSuccessful():
            print(self.server.log_tail())
        return outcome

    def submit(self, rcpt: str, subject: str):
        s = self.server.submission(ALICE, ALICE_PW)
        try:
            self.assertEqual(s.sendmail(ALICE, [rcpt], make_message(subject, sender=ALICE, to=rcpt)), {})
        finally:
            s.quit()

    def delivered(self, sink: SmtpSink, subject: str):
        return sink.wait_for(lambda m: subject.encode() in m.data, timeout=WAIT)

    def assert_waits(self, rcpt: str, subject: str, why: str):
        """The entry stays queued with an error containing `why`; no sink got it."""
        deadline = time.monotonic() + WAIT
        out = ""
        while time.monotonic() < deadline:
            out = self.server.queue_list()
            lines = [line for line in out.splitlines() if rcpt in line]
            if lines and any(why in line for line in lines):
                break
            time.sleep(0.2)
        else:
            self.fail(f"{rcpt}: no queued error containing {why!r}:\n{out}")
        for sink in (self.tls_sink, self.plain_sink):
            self.assertEqual(sink.count(lambda m: subject.encode() in m.data), 0,
                             f"{subject} reached a host against the policy")

    def test_enforce_valid_certificate_is_delivered_over_tls(self):
        self.submit("bob@good.test", "sts-good")
        self.assertTrue(self.delivered(self.tls_sink, "sts-good").tls)
        self.assertIn("good.test", self.policy_server.fetches)

    def test_enforce_wildcard_mx_pattern(self):
        self.submit("bob@wild.test", "sts-wild")
        self.assertTrue(self.delivered(self.tls_sink, "sts-wild").tls)

    def test_enforce_host_without_starttls_waits(self):
        self.submit("bob@notls.test", "sts-notls")
        self.assert_waits("bob@notls.test", "sts-notls", "does not offer STARTTLS")

    def test_enforce_certificate_for_another_name_waits(self):
        self.submit("bob@badcert.test", "sts-badcert")
        self.assert_waits("bob@badcert.test", "sts-badcert", "no valid certificate")

    def test_enforce_mx_not_in_policy_waits(self):
        self.submit("bob@wrongmx.test", "sts-wrongmx")
        self.assert_waits("bob@wrongmx.test", "sts-wrongmx", "MTA-STS policy")

    def test_testing_mode_delivers_as_before(self):
        self.submit("bob@testing.test", "sts-testing")
        self.assertFalse(self.delivered(self.plain_sink, "sts-testing").tls)

    def test_no_policy_delivers_as_before(self):
        self.submit("bob@plain.test", "sts-plain")
        self.assertFalse(self.delivered(self.plain_sink, "sts-plain").tls)

    def test_cached_policy_survives_a_downgrade(self):
        self.submit("bob@cached.test", "sts-cached-1")
        self.assertTrue(self.delivered(self.tls_sink, "sts-cached-1").tls)
        # The attacker's view of DNS: no TXT record, the MX on a host without TLS.
        self.dns.zone.remove("_mta-sts.cached.test", "TXT")
        self.dns.zone.remove("mx.cached.test", "A")
        self.dns.zone.add("mx.cached.test. 0 IN A 127.0.0.3\n")
        fetches = self.policy_server.fetches.count("cached.test")
        self.submit("bob@cached.test", "sts-cached-2")
        self.assert_waits("bob@cached.test", "sts-cached-2", "does not offer STARTTLS")
        self.assertEqual(self.policy_server.fetches.count("cached.test"), fetches,
                         "the cached policy was fetched again")


if __name__ == "__main__":
    unittest.main()

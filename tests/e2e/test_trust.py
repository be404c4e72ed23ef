"""Issue 16 with real parts: a DNS server on loopback (Python dnslib) that two Bulwark
instances for two domains ask (`[dns] servers`); each delivers to the other through MX
lookups (`[outbound] mx_port`). Mail from one to the other passes SPF, DKIM and DMARC (the
receiver's stored Authentication-Results, read over IMAP) and dkimpy verifies the signature
on its own; a forged From of a p=reject domain gets 550 5.7.1 (smtplib); p=quarantine lands
in Junk; a DNS server that never answers gives temperror and the mail is accepted in bounded
time; `bulwark domain dns --check` reports what is missing."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
import unittest

from harness import LISTENERS, Server, imap_check, imap_search, make_message, wait_for_subject

try:
    import dkim
    from dnslib import QTYPE, RCODE, RR
    from dnslib.server import BaseResolver, DNSLogger, DNSServer
except ImportError as exc:  # scripts/test installs tests/e2e/requirements.txt
    raise AssertionError(
        f"{exc}; install the e2e requirements: python3 -m pip install -r tests/e2e/requirements.txt"
    ) from exc

PW = "trust-Secret-pw-1"


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Zone(BaseResolver):
    """An authoritative answer from records added as zone-file text; NXDOMAIN otherwise."""

    def __init__(self):
        self.rrs: list[RR] = []
        self.lock = threading.Lock()
        self.queries = 0

    def add(self, zone_text: str):
        with self.lock:
            self.rrs.extend(RR.fromZone(zone_text))

    def remove(self, name: str, rtype: str):
        with self.lock:
            self.rrs = [r for r in self.rrs
                        if not (str(r.rname).lower().rstrip(".") == name
                                and QTYPE[r.rtype] == rtype)]

    def txt(self, name: str) -> list[bytes]:
        with self.lock:
            return [b"".join(r.rdata.data) for r in self.rrs
                    if str(r.rname).lower().rstrip(".") == name and r.rtype == QTYPE.TXT]

    def resolve(self, request, handler):
        self.queries += 1
        reply = request.reply()
        qname = str(request.q.qname).lower().rstrip(".")
        with self.lock:
            known = [r for r in self.rrs if str(r.rname).lower().rstrip(".") == qname]
        for r in known:
            if r.rtype == request.q.qtype:
                reply.add_answer(r)
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class DnsOnLoopback:
    def __init__(self):
        self.zone = Zone()
        self.port = free_port(socket.SOCK_DGRAM)
        quiet = DNSLogger(log="-request,-reply,-truncated,-data", prefix=False,
                          logf=lambda _line: None)
        self.servers = [DNSServer(self.zone, port=self.port, address="127.0.0.1", tcp=tcp,
                                  logger=quiet)
                        for tcp in (False, True)]
        for s in self.servers:
            s.start_thread()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self):
        for s in self.servers:
            s.stop()


def mail_server(name: str, hostname: str, smtp_port: int, mx_port: int, dns: str,
                extra: str = "") -> Server:
    srv = Server(name=name, listeners=LISTENERS + ("http",), extra_toml=(
        f'[dns]\nservers = ["{dns}"]\ntimeout = "2s"\n'
        f"[outbound]\nmx_port = {mx_port}\nretry_base = \"1s\"\nretry_max = \"2s\"\n{extra}"
    ))
    text = srv.config.read_text()
    text = text.replace('hostname = "mail.example.test"', f'hostname = "{hostname}"')
    text = text.replace('smtp = "127.0.0.1:0"', f'smtp = "127.0.0.1:{smtp_port}"')
    srv.config.write_text(text)
    return srv


class TwoDomainsTest(unittest.TestCase):
    """a.test on one server, b.test on another, both answering to the same DNS."""

    @classmethod
    def setUpClass(cls):
        cls.dns = DnsOnLoopback()
        port_a, port_b = free_port(), free_port()
        cls.a = mail_server("trust-a", "mx.a.test", port_a, port_b, cls.dns.addr)
        cls.b = mail_server("trust-b", "mx.b.test", port_b, port_a, cls.dns.addr)
        try:
            for srv, domain, user in ((cls.a, "a.test", "alice"), (cls.b, "b.test", "bob")):
                srv.add_domain(domain)
                srv.add_account(f"{user}@{domain}", PW)
                out = srv.cli("domain", "dkim", "generate", domain).stdout
                assert "._domainkey." in out, out
                srv.start()
        except BaseException:
            for srv in (cls.a, cls.b):
                print(srv.log_tail())
                srv.cleanup()
            cls.dns.stop()
            raise
        # Hosts, reverse DNS, and the domains used as senders from outside.
        cls.dns.zone.add(
            "mx.a.test. 60 IN A 127.0.0.1\n"
            "mx.b.test. 60 IN A 127.0.0.1\n"
            "1.0.0.127.in-addr.arpa. 60 IN PTR mx.a.test.\n"
            'bank.test. 60 IN TXT "v=spf1 ip4:192.0.2.1 -all"\n'
            '_dmarc.bank.test. 60 IN TXT "v=DMARC1; p=reject"\n'
            'news.test. 60 IN TXT "v=spf1 ip4:192.0.2.1 -all"\n'
            '_dmarc.news.test. 60 IN TXT "v=DMARC1; p=quarantine"\n'
        )
        cls.published = False

    @classmethod
    def tearDownClass(cls):
        for srv in (cls.a, cls.b):
            srv.cleanup()
        cls.dns.stop()

    def dnsfunc(self, name, timeout=5):
        """dkimpy's TXT lookup, answered from the test's zone."""
        name = name.decode() if isinstance(name, bytes) else name
        found = self.dns.zone.txt(name.lower().rstrip("."))
        return found[0] if found else None

    def publish(self):
        """The records `bulwark domain dns` prints, served by the DNS server."""
        if not TwoDomainsTest.published:
            for srv, domain in ((self.a, "a.test"), (self.b, "b.test")):
                self.dns.zone.add(srv.cli("domain", "dns", domain).stdout)
            TwoDomainsTest.published = True

    def test_1_domain_dns_check_reports_missing_records(self):
        before = self.b.cli("domain", "dns", "b.test", "--check", check=False)
        self.assertNotEqual(before.returncode, 0, before.stdout)
        self.assertIn("MISSING  b.test. 3600 IN MX 10 mx.b.test.", before.stdout)
        self.assertIn("._domainkey.b.test.", before.stdout)
        self.publish()
        after = self.b.cli("domain", "dns", "b.test", "--check", check=False)
        self.assertEqual(after.returncode, 0, after.stdout + after.stderr)
        self.assertNotIn("MISSING", after.stdout)
        self.assertIn("all records of b.test are in place", after.stdout)
        # One record gone: named, and the exit status says so.
        self.dns.zone.remove("_dmarc.b.test", "TXT")
        try:
            gone = self.b.cli("domain", "dns", "b.test", "--check", check=False)
            self.assertEqual(gone.returncode, 1, gone.stdout)
            self.assertIn("MISSING  _dmarc.b.test. 3600 IN TXT", gone.stdout)
            self.assertEqual(gone.stdout.count("MISSING"), 1, gone.stdout)
        finally:
            self.dns.zone.add(self.b.cli("domain", "dns", "b.test").stdout.split(
                "; DMARC")[1].split("\n", 2)[1])

    def test_2_mail_between_the_domains_passes_spf_dkim_dmarc(self):
        self.publish()
        subject = f"trust-{time.time_ns()}"
        s = self.a.submission("alice@a.test", PW)
        try:
            s.sendmail("alice@a.test", ["bob@b.test"],
                       make_message(subject, sender="Alice <alice@a.test>", to="bob@b.test"))
        finally:
            s.quit()
        raw = wait_for_subject(self.b, "bob@b.test", PW, subject, timeout=60)
        head = raw.split(b"\r\n\r\n", 1)[0].decode()
        # Return-Path stays first (RFC 5321 §4.4), our results right below it, above the
        # Received fields (RFC 8601 §5).
        lines = head.split("\r\n")
        self.assertTrue(lines[0].startswith("Return-Path: <alice@a.test>"), head[:300])
        self.assertTrue(lines[1].startswith("Authentication-Results: mx.b.test;"), head[:300])
        self.assertLess(head.index("Authentication-Results:"), head.index("Received:"))
        self.assertEqual(head.count("Authentication-Results:"), 1, head)
        for want in ("dkim=pass", "header.d=a.test", "spf=pass", "smtp.mailfrom=alice@a.test",
                     "dmarc=pass", "header.from=a.test", "iprev=pass"):
            self.assertIn(want, head)
        self.assertIn("DKIM-Signature:", head)
        # dkimpy verifies the signature on its own, with the published key.
        self.assertTrue(dkim.verify(raw, dnsfunc=self.dnsfunc), "dkimpy rejects our signature")

    def test_3_forged_from_of_a_reject_domain_is_refused(self):
        self.publish()
        s = smtplib.SMTP(*self.b.addr("smtp"), timeout=30)
        try:
            s.ehlo("evil.example")
            with self.assertRaises(smtplib.SMTPDataError) as caught:
                s.sendmail("x@evil.example", ["bob@b.test"],
                           make_message("pay now", sender="CEO <ceo@bank.test>", to="bob@b.test"))
            self.assertEqual(caught.exception.smtp_code, 550)
            self.assertTrue(caught.exception.smtp_error.startswith(b"5.7.1 "),
                            caught.exception.smtp_error)
        finally:
            s.quit()

    def test_4_quarantine_lands_in_junk(self):
        self.publish()
        subject = f"news-{time.time_ns()}"
        s = smtplib.SMTP(*self.b.addr("smtp"), timeout=30)
        try:
            s.sendmail("letters@news.test", ["bob@b.test"],
                       make_message(subject, sender="News <letters@news.test>", to="bob@b.test"))
        finally:
            s.quit()
        raw = wait_for_subject(self.b, "bob@b.test", PW, subject, mailbox="Junk")
        self.assertIn(b"dmarc=fail", raw)
        m = self.b.imap("bob@b.test", PW)
        try:
            imap_check(m.select("INBOX", readonly=True), "SELECT")
            self.assertEqual(imap_search(m, "SUBJECT", f'"{subject}"'), [])
        finally:
            m.logout()

    def test_5_rotation_signs_with_the_new_selector_and_keeps_the_old_published(self):
        self.publish()
        out = self.a.cli("domain", "dkim", "rotate", "a.test", "--selector", "next").stdout
        self.assertIn("next._domainkey.a.test.", out)
        listing = self.a.cli("domain", "dkim", "list", "a.test").stdout
        self.assertRegex(listing, r"(?m)^next\s+rsa-2048\s+.*\bactive\b")
        self.assertRegex(listing, r"(?m)^b\d{8}\s+rsa-2048\s+.*\bretiring\b")
        zone = self.a.cli("domain", "dns", "a.test").stdout
        self.assertEqual(zone.count("._domainkey.a.test. 3600 IN TXT"), 2, zone)
        self.dns.zone.add("\n".join(l for l in zone.splitlines() if "next._domainkey" in l))
        # Another node would see the new key within a minute; this one at once after restart.
        self.a.restart()
        subject = f"rotated-{time.time_ns()}"
        s = self.a.submission("alice@a.test", PW)
        try:
            s.sendmail("alice@a.test", ["bob@b.test"],
                       make_message(subject, sender="Alice <alice@a.test>", to="bob@b.test"))
        finally:
            s.quit()
        raw = wait_for_subject(self.b, "bob@b.test", PW, subject, timeout=60)
        head = raw.split(b"\r\n\r\n", 1)[0]
        self.assertIn(b"header.s=next", head)
        self.assertIn(b"dkim=pass", head)

    def test_6_a_sieve_redirect_goes_out_arc_sealed(self):
        """RFC 8617: bob@b.test redirects to alice@a.test; b.test seals what it forwards,
        a.test's checks say arc=pass, and dkimpy verifies the ARC chain on its own."""
        self.publish()
        from jmapclient import JmapHttp, basic_auth
        c = JmapHttp(self.b.addr("http"), basic_auth("bob@b.test", PW))
        caps = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:sieve"]
        up = c.request("POST", f"/jmap/upload/{c.account_id}/",
                       body=b'redirect "alice@a.test";\n',
                       headers={"Content-Type": "application/sieve"})
        self.assertEqual(up.status, 201, up)
        r = c.ok("SieveScript/set", {"create": {"s": {"name": "fwd", "blobId": up.json()["blobId"]}},
                                     "onSuccessActivateScript": "#s"}, using=caps)
        self.assertIn("s", r.get("created", {}), r)
        subject = f"arc-{time.time_ns()}"
        s = self.a.submission("alice@a.test", PW)
        try:
            s.sendmail("alice@a.test", ["bob@b.test"],
                       make_message(subject, sender="Alice <alice@a.test>", to="bob@b.test"))
        finally:
            s.quit()
        raw = wait_for_subject(self.a, "alice@a.test", PW, subject, timeout=60)
        head = raw.split(b"\r\n\r\n", 1)[0].decode()
        for field in ("ARC-Seal: i=1;", "ARC-Message-Signature: i=1;",
                      "ARC-Authentication-Results: i=1; mx.b.test;"):
            self.assertIn(field, head)
        self.assertIn("d=b.test", head)
        ours = head.split("Authentication-Results: mx.a.test;", 1)[1].split("\r\n\S", 1)[0]
        self.assertIn("arc=pass", ours)

        # Verified as b.test sent it: a.test's own fields above the chain are taken off.
        lines = raw.split(b"\r\n")
        start = next(i for i, l in enumerate(lines) if l.startswith(b"ARC-"))
        cv, _results, comment = dkim.arc_verify(b"\r\n".join(lines[start:]), dnsfunc=self.dnsfunc)
        self.assertEqual(cv, dkim.CV_Pass, comment)


class SilentDnsTest(unittest.TestCase):
    """A DNS server that never answers: temperror, and the mail is accepted in bounded time."""

    def test_mail_is_accepted_with_temperror(self):
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        dns = f"127.0.0.1:{silent.getsockname()[1]}"
        srv = mail_server("trust-silent", "mx.c.test", free_port(), 25, dns)
        srv.config.write_text(srv.config.read_text().replace('timeout = "2s"', 'timeout = "1s"'))
        try:
            srv.add_domain("c.test")
            srv.add_account("carol@c.test", PW)
            srv.start()
            subject = f"silent-{time.time_ns()}"
            started = time.monotonic()
            s = smtplib.SMTP(*srv.addr("smtp"), timeout=60)
            try:
                s.sendmail("alice@a.test", ["carol@c.test"],
                           make_message(subject, sender="Alice <alice@a.test>", to="carol@c.test"))
            finally:
                s.quit()
            elapsed = time.monotonic() - started
            self.assertLess(elapsed, 20, f"end of DATA took {elapsed:.1f}s")
            raw = wait_for_subject(srv, "carol@c.test", PW, subject)
            self.assertIn(b"spf=temperror", raw)
            self.assertIn(b"dmarc=temperror", raw)
        except BaseException:
            print(srv.log_tail())
            raise
        finally:
            srv.cleanup()
            silent.close()


if __name__ == "__main__":
    unittest.main()

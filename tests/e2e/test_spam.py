"""Spam and phishing scoring (issue 16) against the running server, with smtplib and imaplib:
GTUBE lands in Junk with `X-Spam-Status: Yes`; an ordinary message stays in INBOX with `No`; a
phishing-shaped message (a display name carrying another address, an IDN look-alike domain,
"verify your account") goes to Junk; a client listed in a DNS block list (a dnslib zone on
loopback answering 127.0.0.2) adds its points; with `reject_score` set, GTUBE is refused with
550 5.7.1 at the end of DATA; a Sieve script can still move what scoring filed."""

import smtplib
import unittest

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, ServerTestCase, make_message,
                     wait_for_subject)
from jmapclient import JmapServerTestCase
from test_trust import DnsOnLoopback
from rules_gtube import GTUBE


def status_of(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    for line in head.split("\r\n"):
        if line.lower().startswith("x-spam-status:"):
            return line
    return ""


class SpamScoringTest(JmapServerTestCase):
    dns: DnsOnLoopback

    @classmethod
    def setUpClass(cls):
        cls.dns = DnsOnLoopback()
        # 127.0.0.9 listed in bl.test (RFC 5782 query name 9.0.0.127.bl.test); the other
        # tests send from 127.0.0.1, which is not listed.
        cls.dns.zone.add("9.0.0.127.bl.test. 60 IN A 127.0.0.2")
        cls.extra_toml = (f'[dns]\nservers = ["{cls.dns.addr}"]\ntimeout = "2s"\n'
                          '[spam]\njunk_score = 5\ndnsbl = ["bl.test"]\n')
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.dns.stop()

    def send(self, subject: str, body: str, sender: str = "Carol <carol@remote.test>",
             extra: str = "", source_ip: str | None = None):
        with self.server.smtp(source_ip=source_ip) as s:
            s.sendmail("carol@remote.test", [BOB],
                       make_message(subject, sender=sender, to=BOB, body=body + "\r\n",
                                    extra_headers=extra))

    def test_gtube_lands_in_junk_and_ordinary_mail_in_inbox(self):
        self.send("gtube test", f"This is the GTUBE, the\r\n{GTUBE}\r\n")
        raw = wait_for_subject(self.server, BOB, BOB_PW, "gtube test", mailbox="Junk")
        self.assertIn("X-Spam-Status: Yes", status_of(raw))
        self.assertIn("GTUBE=1000", status_of(raw))
        self.send("lunch tomorrow", "Shall we meet at noon?")
        raw = wait_for_subject(self.server, BOB, BOB_PW, "lunch tomorrow")
        self.assertTrue(status_of(raw).startswith("X-Spam-Status: No"), status_of(raw))

    def test_phishing_shaped_mail_goes_to_junk(self):
        self.send("Mailbox notice", "Please verify your account within 24 hours or lose it.",
                  sender='"support@example.test" <helpdesk@xn--exmple-cua.test>',
                  extra="Reply-To: collect@elsewhere.test\r\n")
        raw = wait_for_subject(self.server, BOB, BOB_PW, "Mailbox notice", mailbox="Junk")
        status = status_of(raw)
        for rule in ("FROM_NAME_OTHER_ADDRESS", "FROM_IDN_DOMAIN", "PHISHING_WORDING",
                     "REPLY_TO_ELSEWHERE"):
            self.assertIn(rule, status)

    def test_brand_impersonation_from_a_look_alike_domain_goes_to_junk(self):
        self.send("Your PayPal account", "Please log in to keep your account.",
                  sender='"PayPal Service" <service@paypa1.com>')
        raw = wait_for_subject(self.server, BOB, BOB_PW, "Your PayPal account", mailbox="Junk")
        status = status_of(raw)
        for rule in ("FROM_NAME_BRAND=3", "LOOKALIKE_DOMAIN=3"):
            self.assertIn(rule, status)

    def test_a_first_mail_from_a_sender_adds_to_other_phishing_signals(self):
        # Reply-To elsewhere (a phishing signal) from a sender Bob never had mail from.
        reply = "Reply-To: dora.private@elsewhere.test\r\n"
        self.send("hello from dora 1", "Hi Bob", sender="Dora <dora@friends.test>", extra=reply)
        first = status_of(wait_for_subject(self.server, BOB, BOB_PW, "hello from dora 1"))
        self.assertIn("FIRST_FROM_SENDER=1", first)
        self.send("hello from dora 2", "Hi again", sender="Dora <dora@friends.test>", extra=reply)
        second = status_of(wait_for_subject(self.server, BOB, BOB_PW, "hello from dora 2"))
        self.assertNotIn("FIRST_FROM_SENDER", second)
        # Without another signal a new sender scores nothing for being new.
        self.send("hello from erin", "Hi Bob", sender="Erin <erin@friends.test>")
        self.assertNotIn("FIRST_FROM_SENDER",
                         status_of(wait_for_subject(self.server, BOB, BOB_PW, "hello from erin")))

    def test_a_listed_client_gets_the_block_list_points(self):
        # Listed (5) + not authenticated: Junk, with DNSBL among the tests.
        self.send("from a listed host", "hello", source_ip="127.0.0.9")
        raw = wait_for_subject(self.server, BOB, BOB_PW, "from a listed host", mailbox="Junk")
        self.assertIn("DNSBL=5", status_of(raw))

    def test_a_sieve_script_can_act_on_the_score(self):
        from test_sieve_delivery import put_active_script
        put_active_script(self.server, ALICE,
                          'require "fileinto";\n'
                          'if header :contains "X-Spam-Status" "GTUBE" { fileinto "Archive"; }\n')
        with self.server.smtp() as s:
            s.sendmail("carol@remote.test", [ALICE],
                       make_message("gtube for alice", sender="Carol <carol@remote.test>",
                                    to=ALICE, body=GTUBE + "\r\n"))
        wait_for_subject(self.server, ALICE, ALICE_PW, "gtube for alice", mailbox="Archive")


class SpamRefusalTest(ServerTestCase):
    extra_toml = "[spam]\nreject_score = 15\n"

    def test_gtube_is_refused_when_a_reject_score_is_set(self):
        with self.server.smtp() as s:
            with self.assertRaises(smtplib.SMTPDataError) as refused:
                s.sendmail("carol@remote.test", [BOB],
                           make_message("refused gtube", sender="carol@remote.test", to=BOB,
                                        body=GTUBE + "\r\n"))
        self.assertEqual(refused.exception.smtp_code, 550)
        self.assertIn(b"5.7.1", refused.exception.smtp_error)


if __name__ == "__main__":
    unittest.main()

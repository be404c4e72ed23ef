"""Issue 13 on the SMTP/IMAP side, with real clients: unauthenticated memory (item 5), the
absolute pre-login deadline (16), <postmaster> (23), header senders on submission (14) and the
mark on MX mail that claims a local sender (15).

The slow load variants (50 MB literals, 10 x 46 MB DATA) are `scripts/security-load-proto`."""

from __future__ import annotations

import smtplib
import time
import unittest

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, ServerTestCase, make_message,
                     safe_logout, wait_for_subject)

HOSTNAME = "mail.example.test"  # the harness's `hostname`
# With the SPF/DKIM/DMARC checks on (the default) the mark is a method of our one
# Authentication-Results field (issue 16).
MARK = "x-bulwark=local-domain-unauthenticated"
OUR_RESULTS = f"Authentication-Results: {HOSTNAME};"


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


class UnauthenticatedImapMemoryTest(ServerTestCase):
    """Item 5: before login the server never agrees to buffer a message."""

    def test_large_synchronising_literal_before_login_is_refused_without_continuation(self):
        c = self.server.raw_imap(tls=False)
        try:
            c.send(b"a1 APPEND INBOX {100000}\r\n")
            line = c.read_line()
            self.assertFalse(line.startswith(b"+"), f"continuation before login: {line!r}")
            self.assertTrue(line.startswith(b"a1 BAD [TOOBIG]"), line)
            self.assertIn(b"before authentication", line)
            # The client sent no literal, so the connection goes on.
            self.assertIn(b" OK", c.command("NOOP")[-1])
        finally:
            c.close()

    def test_large_non_synchronising_literal_before_login_gets_bad_then_bye(self):
        c = self.server.raw_imap(tls=False)
        try:
            c.send(b"a1 APPEND INBOX {100000+}\r\n")
            self.assertTrue(c.read_line().startswith(b"a1 BAD [TOOBIG]"))
            self.assertTrue(c.read_line().startswith(b"* BYE"))
            self.assertEqual(c.read_line(), b"", "the server closes the connection")
        finally:
            c.close()

    def test_small_literals_still_work_for_login(self):
        m = self.server.imap()
        try:
            m.literal = BOB_PW.encode()
            typ, _ = m._simple_command("LOGIN", BOB)
            self.assertEqual(typ, "OK")
        finally:
            safe_logout(m)


class PreLoginDeadlineTest(ServerTestCase):
    """Item 16: a byte now and then does not keep an anonymous session open."""

    limits_toml = 'imap_login_timeout = "3s"'

    def test_login_deadline_counts_from_the_connection(self):
        c = self.server.raw_imap(tls=False)
        started = time.monotonic()
        try:
            bye = b""
            while time.monotonic() - started < 20:
                c.send(b"x")
                try:
                    bye = c.read_line(timeout=0.5)
                    break
                except TimeoutError:
                    continue
            elapsed = time.monotonic() - started
            self.assertTrue(bye.startswith(b"* BYE Autologout"), f"after {elapsed:.1f}s: {bye!r}")
            self.assertLess(elapsed, 8, "logged out about 3 s after connecting")
        finally:
            c.close()


class PostmasterTest(ServerTestCase):
    """Item 23: RFC 5321 §4.5.1, `<postmaster>` without a domain."""

    def test_bare_postmaster_is_accepted_and_delivered(self):
        subject = unique("pm")
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            s.mail("someone@remote.test")
            code, text = s.rcpt("<postmaster>")
            self.assertEqual(code, 250, text)
            code, text = s.data(make_message(subject, to="postmaster"))
            self.assertEqual(code, 250, text)
        finally:
            s.quit()
        # No postmaster alias: the oldest account of the primary domain (alice) gets it.
        msg = wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        self.assertIn(b"for <postmaster@example.test>", msg)

    def test_postmaster_of_a_local_domain_is_accepted_without_an_alias(self):
        subject = unique("pm2")
        s = self.server.smtp()
        try:
            refused = s.sendmail("someone@remote.test", ["postmaster@example.test"],
                                 make_message(subject, to="postmaster@example.test"))
            self.assertEqual(refused, {})
        finally:
            s.quit()
        wait_for_subject(self.server, ALICE, ALICE_PW, subject)

    def test_empty_forward_path_is_refused(self):
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            s.mail("someone@remote.test")
            code, _ = s.rcpt("<>")
            self.assertEqual(code, 501)
        finally:
            s.quit()


class SubmissionHeaderFromTest(ServerTestCase):
    """Item 14: submission refuses a From/Sender header the user may not send as."""

    def test_bob_may_not_send_with_alices_from(self):
        s = self.server.submission(BOB, BOB_PW)
        try:
            with self.assertRaises(smtplib.SMTPDataError) as ctx:
                s.sendmail(BOB, [ALICE], make_message(unique("spoof"),
                                                      sender="Alice <alice@example.test>"))
            self.assertEqual(ctx.exception.smtp_code, 550)
            text = ctx.exception.smtp_error.decode()
            self.assertIn("5.7.1", text)
            self.assertIn("alice@example.test", text)
        finally:
            s.close()

    def test_sender_header_of_someone_else_is_refused(self):
        s = self.server.submission(BOB, BOB_PW)
        try:
            with self.assertRaises(smtplib.SMTPDataError) as ctx:
                s.sendmail(BOB, [ALICE], make_message(unique("sender"), sender=BOB,
                                                      extra_headers=f"Sender: {ALICE}\r\n"))
            self.assertIn(b"Sender", ctx.exception.smtp_error)
        finally:
            s.close()

    def test_own_address_alias_and_plus_form_are_accepted(self):
        subjects = []
        s = self.server.submission(ALICE, ALICE_PW)
        try:
            for sender in ("Alice <alice@example.test>", "sales@example.test",
                           "alice+lists@example.test"):
                subject = unique("own")
                subjects.append(subject)
                self.assertEqual(s.sendmail(ALICE, [BOB], make_message(subject, sender=sender,
                                                                      to=BOB)), {})
        finally:
            s.quit()
        for subject in subjects:
            wait_for_subject(self.server, BOB, BOB_PW, subject)


class MxLocalSenderMarkTest(ServerTestCase):
    """Item 15: unauthenticated MX mail claiming a local sender is marked (RFC 8601)."""

    def test_local_sender_from_outside_is_marked_and_forged_results_removed(self):
        subject = unique("claim")
        forged = f"Authentication-Results: {HOSTNAME}; dkim=pass header.d=example.test\r\n"
        s = self.server.smtp()
        try:
            s.sendmail(ALICE, [BOB], make_message(subject, sender="Alice <alice@example.test>",
                                                  to=BOB, extra_headers=forged))
        finally:
            s.quit()
        msg = wait_for_subject(self.server, BOB, BOB_PW, subject).decode()
        self.assertIn(MARK, msg)
        self.assertNotIn("dkim=pass", msg, "a result for our own hostname from outside")
        head = msg.split("\r\n\r\n", 1)[0]
        self.assertEqual(head.count("Authentication-Results:"), 1, head)
        self.assertLess(head.index(OUR_RESULTS), head.index(MARK))
        self.assertLess(head.index("Authentication-Results"), head.index("From:"))

    def test_header_from_alone_is_enough_and_remote_senders_are_not_marked(self):
        claim, remote = unique("hdr"), unique("remote")
        s = self.server.smtp()
        try:
            s.sendmail("bounce@remote.test", [BOB],
                       make_message(claim, sender="Alice <alice@example.test>", to=BOB))
            s.sendmail("carol@remote.test", [BOB],
                       make_message(remote, sender="Carol <carol@remote.test>", to=BOB))
        finally:
            s.quit()
        self.assertIn(MARK.encode(), wait_for_subject(self.server, BOB, BOB_PW, claim))
        remote_msg = wait_for_subject(self.server, BOB, BOB_PW, remote)
        self.assertNotIn(MARK.encode(), remote_msg)
        self.assertIn(OUR_RESULTS.encode(), remote_msg, "checked, not marked")


if __name__ == "__main__":
    unittest.main()

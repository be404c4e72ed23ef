"""Greylisting (RFC 6647, `[spam] greylisting`) against the running server with smtplib:
the first attempt from a new client network and sender is deferred at RCPT with
`451 4.7.1` and nothing is stored; the sender's retry after `greylist_delay` is accepted and
delivered, and later mail from it passes at once; another sender, or the same sender to
another account, still waits; a signed-in client is never greylisted."""

import smtplib
import time
import unittest

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, ServerTestCase, make_message,
                     wait_for_subject, wait_until)

DELAY = 2


class GreylistTest(ServerTestCase):
    extra_toml = f'[spam]\ngreylisting = true\ngreylist_delay = "{DELAY}s"\n'

    def attempt(self, sender: str, rcpt: str, subject: str) -> tuple[int, bytes]:
        with self.server.smtp() as s:
            s.ehlo("client.remote.test")
            code, _ = s.mail(sender)
            self.assertEqual(code, 250)
            code, text = s.rcpt(rcpt)
            if code == 250:
                code2, _ = s.data(make_message(subject, sender=sender, to=rcpt))
                self.assertEqual(code2, 250)
            return code, text

    def test_first_attempt_waits_and_the_retry_passes(self):
        t0 = time.monotonic()
        code, text = self.attempt("news@lists.remote.test", BOB, "first try")
        self.assertEqual(code, 451)
        self.assertIn(b"4.7.1", text)
        # An MTA's retry: refused until the delay is over, then accepted (polled, not slept).
        def retried():
            c, _ = self.attempt("news@lists.remote.test", BOB, "retry")
            return c == 250
        wait_until(retried, 30, "the retry to pass", interval=0.5)
        # Records are in whole seconds: a retry passes at most one second early by the clock.
        self.assertGreaterEqual(time.monotonic() - t0, DELAY - 1)
        wait_for_subject(self.server, BOB, BOB_PW, "retry")
        # Known now: the next message passes at once; another sender waits on its own.
        self.assertEqual(self.attempt("news@lists.remote.test", BOB, "second")[0], 250)
        self.assertEqual(self.attempt("other@lists.remote.test", BOB, "other sender")[0], 451)
        # Per account: the same sender to Alice is new there.
        self.assertEqual(self.attempt("news@lists.remote.test", ALICE, "to alice")[0], 451)

    def test_a_signed_in_client_is_never_greylisted(self):
        with self.server.submission(ALICE, ALICE_PW) as s:
            s.sendmail(ALICE, [BOB], make_message("from alice", sender=ALICE, to=BOB))
        wait_for_subject(self.server, BOB, BOB_PW, "from alice")


if __name__ == "__main__":
    unittest.main()

"""RFC 4865 FUTURERELEASE on SMTP submission (issue 14, JMAP item 6 "advertised in SMTP
submission too"): smtplib sends with `HOLDFOR=`/`HOLDUNTIL=`; the message is durable once
`250` is given, is not delivered before its time, reaches the local and the remote
recipient after it, and survives a crash of the server while held (the hold is a record in
the store, released by whichever node's timer fires first)."""

from __future__ import annotations

import datetime
import smtplib
import time
import unittest

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, imap_check, imap_search, make_message,
                     safe_logout, wait_until)
from harness import ServerTestCase


class FutureReleaseTest(ServerTestCase):
    with_sink = True

    def bob_has(self, subject: str) -> bool:
        m = self.server.imap(BOB, BOB_PW)
        try:
            imap_check(m.select("INBOX", readonly=True), "SELECT")
            return bool(imap_search(m, "SUBJECT", f'"{subject}"'))
        finally:
            safe_logout(m)

    def send_held(self, subject: str, hold: str, to: list[str]) -> float:
        msg = make_message(subject, sender=ALICE, to=", ".join(to))
        with self.server.submission(ALICE, ALICE_PW) as s:
            code, ext = s.ehlo("client.test")
            self.assertIn("futurerelease", s.esmtp_features, ext)
            refused = s.sendmail(ALICE, to, msg, mail_options=[hold])
            self.assertEqual(refused, {})
        return time.monotonic()

    def test_advertised_with_its_limits_on_submission_only(self):
        with self.server.submission(ALICE, ALICE_PW) as s:
            interval, latest = s.esmtp_features["futurerelease"].split()
            self.assertEqual(int(interval), 30 * 24 * 3600)
            latest = datetime.datetime.fromisoformat(latest.replace("Z", "+00:00"))
            ahead = latest - datetime.datetime.now(datetime.timezone.utc)
            self.assertLess(abs(ahead.total_seconds() - 30 * 24 * 3600), 600)
            # Both parameters, or a release past the maximum: 501 5.5.4 at MAIL.
            code, text = s.mail(ALICE, ["HOLDFOR=10", "HOLDUNTIL=2030-01-01T00:00:00Z"])
            self.assertEqual(code, 501, text)
            code, text = s.mail(ALICE, ["HOLDFOR=99999999"])
            self.assertEqual(code, 501, text)
        with self.server.smtp() as mx:
            mx.ehlo("client.test")
            self.assertNotIn("futurerelease", mx.esmtp_features)
            code, text = mx.mail("x@remote.test", ["HOLDFOR=10"])
            self.assertEqual(code, 555, text)

    def test_held_until_its_time_then_delivered_locally_and_remotely(self):
        subject = "held for three seconds"
        sent = self.send_held(subject, "HOLDFOR=3", [BOB, "carol@remote.test"])
        # Held: not there yet (a second is well inside the three).
        self.assertFalse(self.bob_has(subject))
        self.assertEqual(self.sink.count(lambda m: subject.encode() in m.data), 0)
        wait_until(lambda: self.bob_has(subject), 30, "the held message in bob's INBOX")
        # Release times have one-second resolution (HOLDFOR counts from the accepting second).
        self.assertGreaterEqual(time.monotonic() - sent, 2.0)
        self.sink.wait_for(lambda m: subject.encode() in m.data)

    def test_holduntil_survives_a_crash_while_held(self):
        subject = "held across a crash"
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=4)
        self.send_held(subject, "HOLDUNTIL=" + until.strftime("%Y-%m-%dT%H:%M:%SZ"), [BOB])
        self.server.restart(crash=True)
        wait_until(lambda: self.bob_has(subject), 40, "the held message after the restart")


if __name__ == "__main__":
    unittest.main()

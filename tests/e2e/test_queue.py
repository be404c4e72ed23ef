"""Outbound queue end to end: retries, bounces (DSN), expiry, durability across SIGKILL.

The relay is the harness's SMTP sink; its RCPT policy decides per recipient (by local part):
  tempN-...   451 for the first N attempts, then 250
  hold-...    451 while `self.hold` is set
  reject-...  550 always
"""

import re
import time
import unittest

from harness import (ALICE, ALICE_PW, ServerTestCase, imap_check, imap_search,
                     make_message, safe_logout, wait_until)

QUEUE_TIMEOUT = 45.0


def policy_for(test):
    def policy(address: str, attempt: int) -> str:
        local = address.split("@", 1)[0]
        m = re.match(r"temp(\d+)-", local)
        if m and attempt <= int(m.group(1)):
            return "451 4.3.0 try again later (sink)"
        if local.startswith("hold-") and test.hold:
            return "451 4.3.0 held by the test (sink)"
        if local.startswith("reject-"):
            return "550 5.1.1 no such user here (sink)"
        return "250 2.1.5 ok"
    return policy


class QueueBase(ServerTestCase):
    with_sink = True
    hold = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sink.rcpt_policy = policy_for(cls)

    def submit(self, rcpts: list[str], subject: str, sender: str = ALICE, pw: str = ALICE_PW):
        s = self.server.submission(sender, pw)
        try:
            refused = s.sendmail(sender, rcpts, make_message(subject, sender=sender,
                                                             to=", ".join(rcpts)))
            self.assertEqual(refused, {})
        finally:
            s.quit()

    def wait_for_bounce(self, text: str, timeout: float = QUEUE_TIMEOUT) -> bytes:
        """A DSN in alice's INBOX that mentions `text`; returns its full text."""
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            def find():
                imap_check(m.select("INBOX", readonly=True), "SELECT")
                return imap_search(m, "TEXT", f'"{text}"')
            hits = wait_until(find, timeout, f"a bounce mentioning {text}", interval=0.2)
            data = imap_check(m.fetch(str(hits[-1]), "(BODY.PEEK[])"), "FETCH")
            for item in data:
                if isinstance(item, tuple):
                    return item[1]
            raise AssertionError(f"no body in {data!r}")
        finally:
            safe_logout(m)

    def queue_id_for(self, address: str) -> str:
        out = self.server.queue_list()
        current = None
        for line in out.splitlines():
            m = re.match(r"^(\S+)\s+\S+\s+\d+\s", line)
            if m and m.group(1) != "ID":
                current = m.group(1)
            elif address in line and current:
                return current
        raise AssertionError(f"{address} not in queue list:\n{out}")


class QueueRetryTest(QueueBase):
    outbound_toml = 'retry_base = "1s"\nretry_max = "2s"\n'

    def test_temporary_failure_is_retried_then_delivered_once(self):
        tag = time.time_ns()
        rcpt = f"temp2-{tag}@remote.test"
        subject = f"retry-{tag}"
        self.submit([rcpt], subject)
        # While it is failing, the queue shows the entry with the relay's error.
        wait_until(lambda: rcpt in self.server.queue_list(), QUEUE_TIMEOUT, "entry in queue list")
        self.sink.wait_for(lambda m: subject.encode() in m.data, QUEUE_TIMEOUT)
        self.assertEqual(self.sink.rcpt_attempts[rcpt], 3, "two 451s, then 250")
        wait_until(lambda: rcpt not in self.server.queue_list(), QUEUE_TIMEOUT,
                   "delivered entry to leave the queue")
        self.assertEqual(self.sink.count(lambda m: subject.encode() in m.data), 1)

    def test_permanent_failure_bounces_to_local_sender(self):
        tag = time.time_ns()
        bad, good = f"reject-{tag}@remote.test", f"good-{tag}@remote.test"
        subject = f"bounce-{tag}"
        self.submit([good, bad], subject)
        got = self.sink.wait_for(lambda m: subject.encode() in m.data, QUEUE_TIMEOUT)
        self.assertEqual(got.rcpts, [good])
        dsn = self.wait_for_bounce(bad)
        header = dsn.split(b"\r\n\r\n", 1)[0].lower()
        self.assertIn(b"multipart/report", header)
        self.assertIn(b"report-type=delivery-status", header.replace(b'"', b""))
        self.assertIn(b"message/delivery-status", dsn.lower())
        self.assertRegex(dsn, rb"(?i)Final-Recipient:\s*rfc822;\s*" + re.escape(bad.encode()))
        self.assertRegex(dsn, rb"(?i)Action:\s*failed")
        self.assertRegex(dsn, rb"(?i)Status:\s*5\.1\.1")
        self.assertNotRegex(dsn, rb"(?i)Final-Recipient:\s*rfc822;\s*" + re.escape(good.encode()),
                            "the delivered recipient is not reported as failed")
        self.assertIn(subject.encode(), dsn, "the bounce includes the original headers")
        wait_until(lambda: bad not in self.server.queue_list(), QUEUE_TIMEOUT,
                   "bounced entry to leave the queue")

    def test_queued_message_survives_sigkill_and_is_delivered_once(self):
        tag = time.time_ns()
        rcpt = f"hold-{tag}@remote.test"
        subject = f"durable-{tag}"
        type(self).hold = True
        self.submit([rcpt], subject)
        wait_until(lambda: self.sink.rcpt_attempts.get(rcpt, 0) >= 1, QUEUE_TIMEOUT,
                   "a first (failed) delivery attempt")
        self.server.kill9()
        self.server.start()
        self.assertIn(rcpt, self.server.queue_list(), "queued entry survived the crash")
        type(self).hold = False
        try:
            qid = self.queue_id_for(rcpt)
            self.server.cli("queue", "retry", qid)
            self.sink.wait_for(lambda m: subject.encode() in m.data, QUEUE_TIMEOUT)
            wait_until(lambda: rcpt not in self.server.queue_list(), QUEUE_TIMEOUT,
                       "delivered entry to leave the queue")
        finally:
            type(self).hold = True
        self.assertEqual(self.sink.count(lambda m: subject.encode() in m.data), 1)

    def test_queue_delete_removes_entry_without_bounce(self):
        tag = time.time_ns()
        rcpt = f"hold-{tag}@remote.test"
        self.submit([rcpt], f"delete-{tag}")
        wait_until(lambda: rcpt in self.server.queue_list(), QUEUE_TIMEOUT, "entry in queue")
        qid = self.queue_id_for(rcpt)
        self.server.cli("queue", "delete", qid)
        self.assertNotIn(rcpt, self.server.queue_list())


class QueueExpiryTest(QueueBase):
    outbound_toml = 'retry_base = "1s"\nretry_max = "1s"\nqueue_lifetime = "4s"\n'

    def test_expired_message_bounces_with_last_error(self):
        tag = time.time_ns()
        rcpt = f"hold-{tag}@remote.test"
        self.submit([rcpt], f"expire-{tag}")
        dsn = self.wait_for_bounce(rcpt)
        self.assertRegex(dsn, rb"(?i)Action:\s*failed")
        self.assertIn(b"451", dsn, "the bounce carries the relay's last (temporary) error")
        wait_until(lambda: rcpt not in self.server.queue_list(), QUEUE_TIMEOUT,
                   "expired entry to leave the queue")
        self.assertEqual(self.sink.count(lambda m: f"expire-{tag}".encode() in m.data), 0)


if __name__ == "__main__":
    unittest.main()

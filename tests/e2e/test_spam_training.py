"""The per-account spam classifier, taught by the user's moves (issue 16), with imaplib and
raw JMAP against the running server.

Bob receives lottery-style mail in his INBOX (the rules do not catch it) and moves it to Junk:
five with IMAP `UID MOVE`, five with JMAP `Email/set` (`mailboxIds`, as the web client's
"Report spam" does). He receives project mail that the rules file into Junk (its sender looks
phishy) and moves it out to INBOX with IMAP ("Not spam"). Once ten of each are learnt, new
lottery mail goes to his Junk with `BAYES_SPAM` in `X-Spam-Status`, and new project mail from
the same phishy-looking sender is rescued to INBOX with `BAYES_HAM`. Alice, who taught nothing,
gets the same lottery mail in INBOX: each account has its own model. Deleting mail from Junk
teaches nothing.
"""

import re
import time
import unittest

from harness import ALICE, ALICE_PW, BOB, BOB_PW, make_message, safe_logout, wait_for_subject, wait_until
from jmapclient import JmapServerTestCase

SPAMMY = "Claim your lottery prize now: casino bonus, jackpot winnings, free credits await"
HAMMY = "Agenda for the project meeting: roadmap review, release planning, budget figures"
# Looks phishy to the rules (display name with another domain's address, Reply-To elsewhere,
# no Message-ID): 3 + 1 + 1 = the default junk_score 5.
PHISHY_SENDER = '"team@projects.test" <dana@partner.test>'


def status_of(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    return next((l for l in head.split("\r\n") if l.lower().startswith("x-spam-status:")), "")


class SpamTrainingTest(JmapServerTestCase):
    def send(self, to: str, subject: str, body: str, sender: str = "Promo <promo@offers.test>",
             phishy: bool = False):
        if phishy:
            msg = (f"From: {PHISHY_SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\n"
                   f"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nReply-To: other@elsewhere.test\r\n"
                   f"\r\n{body}\r\n").encode()
        else:
            msg = make_message(subject, sender=sender, to=to, body=body + "\r\n")
        with self.server.smtp() as s:
            s.sendmail("someone@remote.test", [to], msg)

    def trained(self) -> tuple[int, int]:
        log = self.server.log_tail(max_bytes=2_000_000)
        spam = sum(int(m) for m in re.findall(r"spam classifier trained.*?spam=(\d+)", log))
        ham = sum(int(m) for m in re.findall(r"spam classifier trained.*?ham=(\d+)", log))
        return spam, ham

    def test_moves_teach_each_account_its_own_classifier(self):
        for i in range(10):
            self.send(BOB, f"lottery {i}", f"{SPAMMY} ticket {i}")
            self.send(BOB, f"project {i}", f"{HAMMY} item {i}", phishy=True)
        wait_for_subject(self.server, BOB, BOB_PW, "lottery 9")
        wait_for_subject(self.server, BOB, BOB_PW, "project 9", mailbox="Junk")

        imap = self.server.imap(BOB, BOB_PW)
        try:
            imap.select("INBOX")
            for i in range(5):
                typ, data = imap.uid("SEARCH", None, "SUBJECT", f'"lottery {i}"')
                uid = data[0].split()[0].decode()
                self.assertEqual(imap.uid("MOVE", uid, "Junk")[0], "OK")
            imap.select("Junk")
            for i in range(10):
                typ, data = imap.uid("SEARCH", None, "SUBJECT", f'"project {i}"')
                uid = data[0].split()[0].decode()
                self.assertEqual(imap.uid("MOVE", uid, "INBOX")[0], "OK")
        finally:
            safe_logout(imap)

        jmap = self.jmap(BOB, BOB_PW)
        junk = jmap.mailbox_by_role("junk")["id"]
        for i in range(5, 10):
            ids = jmap.email_ids_with_subject(f"lottery {i}")
            self.assertEqual(len(ids), 1, i)
            jmap.ok("Email/set", {"accountId": jmap.account_id,
                                  "update": {ids[0]: {"mailboxIds": {junk: True}}}})

        wait_until(lambda: self.trained() >= (10, 10), 30, "10 spam and 10 ham learnt")
        self.assertEqual(self.trained(), (10, 10))

        # Bob's classifier now files new lottery mail into Junk ...
        self.send(BOB, "lottery probe", f"{SPAMMY} ticket 99")
        raw = wait_for_subject(self.server, BOB, BOB_PW, "lottery probe", mailbox="Junk")
        self.assertIn("BAYES_SPAM=5", status_of(raw))
        self.assertIn("X-Spam-Status: Yes", status_of(raw))
        # ... and rescues project mail the rules alone would file there.
        self.send(BOB, "project probe", f"{HAMMY} item 99", phishy=True)
        raw = wait_for_subject(self.server, BOB, BOB_PW, "project probe")
        self.assertIn("BAYES_HAM=-3", status_of(raw))
        # Alice taught nothing: the same lottery mail stays in her INBOX.
        self.send(ALICE, "lottery for alice", f"{SPAMMY} ticket 98")
        raw = wait_for_subject(self.server, ALICE, ALICE_PW, "lottery for alice")
        self.assertNotIn("BAYES", status_of(raw))

        # What the scoring filed into Junk teaches nothing; deleting from Junk teaches nothing.
        imap = self.server.imap(BOB, BOB_PW)
        try:
            imap.select("Junk")
            imap.store("1:*", "+FLAGS", "(\\Deleted)")
            imap.expunge()
        finally:
            safe_logout(imap)
        # A later change of Junk (new mail the rules file there) is followed, and teaches nothing.
        self.send(BOB, "after the purge", f"{HAMMY} item 100", phishy=True)
        raw = wait_for_subject(self.server, BOB, BOB_PW, "after the purge")
        self.send(BOB, "gtube after the purge",
                  "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X")
        wait_for_subject(self.server, BOB, BOB_PW, "gtube after the purge", mailbox="Junk")
        self.assertEqual(self.trained(), (10, 10))


if __name__ == "__main__":
    unittest.main()

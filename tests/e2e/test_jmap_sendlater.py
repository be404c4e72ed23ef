"""Send later and undo send (issue 14, JMAP item 6): EmailSubmission with RFC 4865
FUTURERELEASE parameters (`HOLDFOR`, `HOLDUNTIL` in `envelope.mailFrom.parameters`, RFC 8621
§7) is held, `pending`, cancelable (`undoStatus: canceled`, §7.5) until its time, released
through the delivery pipeline to local and remote recipients, and survives a server restart
while held. Raw JSON over http.client; the remote side is the harness's SMTP sink."""

from __future__ import annotations

import time
import unittest

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, DELIVERY_TIMEOUT, imap_check, imap_search,
                     safe_logout, wait_for_subject, wait_until)
from jmapclient import JmapHttp, JmapServerTestCase

CAP_SUBMISSION = "urn:ietf:params:jmap:submission"


class SendLaterTest(JmapServerTestCase):
    with_sink = True

    def setUp(self):
        super().setUp()
        self.c = self.jmap(ALICE, ALICE_PW)

    def submit(self, c: JmapHttp, subject: str, to: list[str], params: dict | None) -> dict:
        """Creates a draft and submits it with the given mailFrom parameters; returns the
        EmailSubmission/set response arguments."""
        aid = c.account_id
        drafts = c.mailbox_by_role("drafts")["id"]
        identity = next(i for i in c.ok("Identity/get", {"ids": None})["list"] if i["email"] == ALICE)
        envelope = {"mailFrom": {"email": ALICE, "parameters": params},
                    "rcptTo": [{"email": r, "parameters": None} for r in to]}
        resp = c.call([
            ["Email/set", {"accountId": aid, "create": {"d": {
                "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
                "from": [{"email": ALICE}], "to": [{"email": r} for r in to], "subject": subject,
                "bodyValues": {"b": {"value": f"{subject}\r\n"}},
                "textBody": [{"partId": "b", "type": "text/plain"}]}}}, "c1"],
            ["EmailSubmission/set", {"accountId": aid, "create": {"s": {
                "identityId": identity["id"], "emailId": "#d", "envelope": envelope}}}, "c2"],
        ])
        return resp["methodResponses"][1][1]

    def submission(self, c: JmapHttp, sub_id: str) -> dict:
        return c.ok("EmailSubmission/get", {"ids": [sub_id]})["list"][0]

    def bob_has(self, subject: str) -> bool:
        m = self.server.imap(BOB, BOB_PW)
        try:
            imap_check(m.select("INBOX", readonly=True), "SELECT")
            return bool(imap_search(m, "SUBJECT", f'"{subject}"'))
        finally:
            safe_logout(m)

    def sent_to_sink(self, subject: str) -> int:
        return self.sink.count(lambda m: subject.encode() in m.data)

    def test_capability_advertises_futurerelease_rfc8621_1_3_2(self):
        caps = self.c.session()["accounts"][self.c.account_id]["accountCapabilities"][CAP_SUBMISSION]
        self.assertGreater(caps["maxDelayedSend"], 0, caps)
        self.assertIn("FUTURERELEASE", caps["submissionExtensions"], caps)
        resp = self.submit(self.c, f"too far {time.time_ns()}", ["carol@remote.test"],
                           {"HOLDFOR": str(caps["maxDelayedSend"] + 60)})
        self.assertEqual(resp["notCreated"]["s"]["type"], "invalidProperties", resp)
        resp = self.submit(self.c, f"both {time.time_ns()}", ["carol@remote.test"],
                           {"HOLDFOR": "5", "HOLDUNTIL": "2099-01-01T00:00:00Z"})
        self.assertEqual(resp["notCreated"]["s"]["type"], "invalidProperties", resp)

    def test_a_held_submission_is_pending_then_released_rfc4865_rfc8621_7(self):
        subject = f"held two seconds {time.time_ns()}"
        started = time.time()
        resp = self.submit(self.c, subject, ["carol@remote.test", BOB], {"HOLDFOR": "2"})
        created = resp["created"]["s"]
        self.assertEqual(created["undoStatus"], "pending", resp)
        self.assertEqual(self.submission(self.c, created["id"])["undoStatus"], "pending")
        # Nothing went out yet: neither to the remote sink nor into Bob's INBOX.
        self.assertEqual(self.sent_to_sink(subject), 0)
        self.assertFalse(self.bob_has(subject))
        msg = self.sink.wait_for(lambda m: subject.encode() in m.data, DELIVERY_TIMEOUT + 5)
        self.assertGreaterEqual(time.time() - started, 1.0, "released before its time")
        self.assertEqual(msg.rcpts, ["carol@remote.test"])
        wait_for_subject(self.server, BOB, BOB_PW, subject)
        final = wait_until(lambda: self.submission(self.c, created["id"])["undoStatus"] == "final"
                           and self.submission(self.c, created["id"]), DELIVERY_TIMEOUT, "final")
        self.assertEqual(final["deliveryStatus"][BOB]["delivered"], "yes", final)
        # Sent: it cannot be undone.
        resp = self.c.ok("EmailSubmission/set", {"update": {created["id"]: {"undoStatus": "canceled"}}})
        self.assertEqual(resp["notUpdated"][created["id"]]["type"], "cannotUnsend", resp)

    def test_undo_cancels_a_pending_submission_rfc8621_7_5(self):
        canceled = f"undone {time.time_ns()}"
        resp = self.submit(self.c, canceled, ["carol@remote.test"], {"HOLDFOR": "2"})
        sub_id = resp["created"]["s"]["id"]
        resp = self.c.ok("EmailSubmission/set", {"update": {sub_id: {"undoStatus": "canceled"}}})
        self.assertIn(sub_id, resp["updated"], resp)
        self.assertEqual(self.submission(self.c, sub_id)["undoStatus"], "canceled")
        # Only canceling is an update.
        resp = self.c.ok("EmailSubmission/set", {"update": {sub_id: {"undoStatus": "final"}}})
        self.assertEqual(resp["notUpdated"][sub_id]["type"], "invalidProperties", resp)
        # A later hold is released; the canceled one, due earlier, never went.
        later = f"after the undo {time.time_ns()}"
        self.submit(self.c, later, ["carol@remote.test"], {"HOLDFOR": "3"})
        self.sink.wait_for(lambda m: later.encode() in m.data, DELIVERY_TIMEOUT + 5)
        self.assertEqual(self.sent_to_sink(canceled), 0, "a canceled submission was sent")

    def test_a_hold_survives_a_restart(self):
        subject = f"held over a restart {time.time_ns()}"
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4))
        resp = self.submit(self.c, subject, ["carol@remote.test"], {"HOLDUNTIL": until})
        sub_id = resp["created"]["s"]["id"]
        self.server.restart()
        self.sink.wait_for(lambda m: subject.encode() in m.data, DELIVERY_TIMEOUT + 10)
        c = self.jmap(ALICE, ALICE_PW)
        wait_until(lambda: self.submission(c, sub_id)["undoStatus"] == "final", DELIVERY_TIMEOUT,
                   "the released submission final after the restart")
        self.assertEqual(self.sent_to_sink(subject), 1, "sent more than once")


if __name__ == "__main__":
    unittest.main()

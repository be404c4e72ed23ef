"""Sieve on delivery (issue 16), end to end: a script is uploaded over JMAP for Sieve Scripts
(RFC 9661, raw JSON over http.client) and made active; then mail sent with smtplib is filed
by it (`fileinto` with `imap4flags`, read back with imaplib), refused by `reject` (550 5.7.1 at
the end of DATA), redirected to another local account, and answered once by `vacation`."""

import json
import smtplib
import unittest

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, imap_check, make_message, wait_for_subject,
                     wait_until, imap_search, safe_logout)
from jmapclient import CAP_CORE, JmapHttp, JmapServerTestCase, basic_auth

CAP_SIEVE = "urn:ietf:params:jmap:sieve"
PASSWORDS = {ALICE: ALICE_PW, BOB: BOB_PW}


def put_active_script(server, user: str, script: str, name: str = "rules") -> str:
    """Uploads `script` for `user` and activates it (SieveScript/set); returns its id."""
    c = JmapHttp(server.addr("http"), basic_auth(user, PASSWORDS[user]))
    aid = c.account_id
    up = c.request("POST", f"/jmap/upload/{aid}/", body=script.encode(),
                   headers={"Content-Type": "application/sieve"})
    if up.status != 201:
        raise AssertionError(f"upload: {up!r}")
    blob = up.json()["blobId"]
    existing = c.ok("SieveScript/get", {}, using=[CAP_CORE, CAP_SIEVE])["list"]
    same = [s["id"] for s in existing if s["name"] == name]
    if same:
        args = {"update": {same[0]: {"blobId": blob}}, "onSuccessActivateScript": same[0]}
    else:
        args = {"create": {"s": {"name": name, "blobId": blob}}, "onSuccessActivateScript": "#s"}
    r = c.ok("SieveScript/set", args, using=[CAP_CORE, CAP_SIEVE])
    if r.get("notCreated") or r.get("notUpdated"):
        raise AssertionError(f"SieveScript/set: {json.dumps(r)}")
    return same[0] if same else r["created"]["s"]["id"]


class SieveDeliveryTest(JmapServerTestCase):
    def send(self, to: str, subject: str, body: str = "hello\r\n"):
        with self.server.smtp() as s:
            s.sendmail("carol@remote.test", [to],
                       make_message(subject, sender="Carol <carol@remote.test>", to=to, body=body))

    def flags_of(self, user: str, mailbox: str, subject: str) -> str:
        m = self.server.imap(user, PASSWORDS[user])
        try:
            imap_check(m.select(f'"{mailbox}"', readonly=True), "SELECT")
            uids = imap_search(m, "SUBJECT", f'"{subject}"', uid=True)
            data = imap_check(m.uid("FETCH", str(uids[-1]), "(FLAGS)"), "FETCH")
            return data[0].decode() if isinstance(data[0], bytes) else str(data[0])
        finally:
            safe_logout(m)

    def test_fileinto_reject_redirect_and_vacation(self):
        put_active_script(self.server, ALICE, r'''require ["fileinto", "imap4flags", "reject", "vacation"];
if header :contains "subject" "[report]" { fileinto :flags "\\Flagged" "Archive"; stop; }
if header :contains "subject" "unwanted" { reject "No thanks."; stop; }
if header :contains "subject" "for bob" { redirect "bob@example.test"; stop; }
if header :contains "subject" "are you there" {
  vacation :days 1 :subject "Out of office" "Back on Monday.";
}
''')
        self.send(ALICE, "[report] weekly")
        wait_for_subject(self.server, ALICE, ALICE_PW, "[report] weekly", mailbox="Archive")
        self.assertIn("\\Flagged", self.flags_of(ALICE, "Archive", "[report] weekly"))
        with self.server.smtp() as s:
            with self.assertRaises(smtplib.SMTPDataError) as refused:
                s.sendmail("carol@remote.test", [ALICE],
                           make_message("unwanted offer", sender="carol@remote.test", to=ALICE))
        self.assertEqual(refused.exception.smtp_code, 550)
        self.assertIn(b"No thanks.", refused.exception.smtp_error)
        self.send(ALICE, "for bob please")
        raw = wait_for_subject(self.server, BOB, BOB_PW, "for bob please")
        self.assertIn(b"X-Sieve-Redirected-From: alice@example.test", raw)
        # Vacation: bob (local, so we can read it) asks twice, gets one reply, from <>.
        for i in range(2):
            with self.server.smtp() as s:
                s.sendmail(BOB, [ALICE], make_message(f"are you there {i}", sender=BOB, to=ALICE))
        wait_for_subject(self.server, ALICE, ALICE_PW, "are you there 1")
        raw = wait_for_subject(self.server, BOB, BOB_PW, "Out of office")
        self.assertIn(b"Auto-Submitted: auto-replied", raw)
        self.assertIn(b"Back on Monday.", raw)
        m = self.server.imap(BOB, BOB_PW)
        try:
            imap_check(m.select("INBOX", readonly=True), "SELECT")
            self.assertEqual(len(imap_search(m, "SUBJECT", '"Out of office"')), 1)
        finally:
            safe_logout(m)


if __name__ == "__main__":
    unittest.main()

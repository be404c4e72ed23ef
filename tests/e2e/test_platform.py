"""The data platform (issue 12) end to end, with real clients against the real server:

* blobs belong to accounts: bob gets 404 for alice's message and attachment over
  /jmap/download, exactly as for a blob that does not exist;
* an EmailSubmission is a durable record: it survives a restart, and sending the same
  submission twice (a client retrying after a lost answer) delivers once;
* `bulwark account delete` leaves no row and no blob of the account in the database
  (read with Python's sqlite3 module).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
import urllib.request

from harness import ALICE, ALICE_PW, BOB, BOB_PW, make_message, wait_until
from jmapclient import JmapServerTestCase, USING_ALL


class PlatformTest(JmapServerTestCase):
    with_sink = True

    def _deliver_attachment(self, subject: str) -> str:
        secret = f"%PDF-secret-of-alice {time.time_ns()}"
        raw = (
            f"From: Carol <carol@remote.test>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nfor alice only\r\n"
            "--b\r\nContent-Type: application/pdf\r\n"
            "Content-Disposition: attachment; filename=a.pdf\r\n\r\n"
            f"{secret}\r\n--b--\r\n"
        )
        s = self.server.smtp("smtp")
        try:
            s.sendmail("carol@remote.test", [ALICE], raw.encode())
        finally:
            s.quit()
        return secret

    def test_bob_cannot_download_alices_blobs(self):
        subject = f"owned blob {time.time_ns()}"
        secret = self._deliver_attachment(subject)
        alice = self.jmap(ALICE, ALICE_PW)
        ids = wait_until(lambda: alice.email_ids_with_subject(subject), 30, "delivery")
        got = alice.ok("Email/get", {"accountId": alice.account_id, "ids": ids,
                                     "properties": ["blobId", "attachments"]})
        blob = got["list"][0]["blobId"]
        part = got["list"][0]["attachments"][0]["blobId"]
        bob = self.jmap(BOB, BOB_PW)
        for b in (blob, part):
            mine = alice.request("GET", f"/jmap/download/{alice.account_id}/{b}/x")
            self.assertEqual(mine.status, 200)
            theirs = bob.request("GET", f"/jmap/download/{bob.account_id}/{b}/x")
            self.assertEqual(theirs.status, 404, f"bob downloads {b}")
            none = bob.request("GET", f"/jmap/download/{bob.account_id}/{'0' * 64}/x")
            self.assertEqual(theirs.status, none.status)
        # The ids say nothing about the content: not its SHA-256, and another in bob's account.
        self.assertNotIn(hashlib.sha256(secret.encode()).hexdigest(), part)
        self.assertIn(secret.encode(), alice.request(
            "GET", f"/jmap/download/{alice.account_id}/{part}/a.pdf").body)
        # Email/import of alice's blob into bob's INBOX: an invalid blobId (RFC 8621 §4.8).
        inbox = bob.mailbox_by_role("inbox")["id"]
        resp = bob.call([["Email/import", {"accountId": bob.account_id, "emails": {
            "k": {"blobId": blob, "mailboxIds": {inbox: True}}}}, "i"]], USING_ALL)
        self.assertEqual(resp["methodResponses"][0][1]["notCreated"]["k"]["type"],
                         "invalidProperties", resp)

    def _submit(self, c, subject: str, to: str) -> dict:
        drafts = c.mailbox_by_role("drafts")["id"]
        identity = next(i for i in c.ok("Identity/get", {"accountId": c.account_id})["list"]
                        if i["email"] == ALICE)
        created = c.ok("Email/set", {"accountId": c.account_id, "create": {"d": {
            "mailboxIds": {drafts: True}, "from": [{"email": ALICE}], "to": [{"email": to}],
            "subject": subject, "textBody": [{"partId": "t"}],
            "bodyValues": {"t": {"value": "once only"}}}}})
        email = created["created"]["d"]["id"]
        return {"identityId": identity["id"], "emailId": email}

    def test_submission_is_durable_and_a_retry_sends_once(self):
        c = self.jmap(ALICE, ALICE_PW)
        subject = f"durable submission {time.time_ns()}"
        sub = self._submit(c, subject, BOB)
        first = c.ok("EmailSubmission/set", {"accountId": c.account_id, "create": {"s": sub}})
        sid = first["created"]["s"]["id"]
        # The client lost our answer and sends the same submission again.
        again = c.ok("EmailSubmission/set", {"accountId": c.account_id, "create": {"s": sub}})
        self.assertEqual(again["created"]["s"]["id"], sid)
        b = self.jmap(BOB, BOB_PW)
        wait_until(lambda: b.email_ids_with_subject(subject), 30, "bob's copy")
        self.server.restart()
        c = self.jmap(ALICE, ALICE_PW)
        got = c.ok("EmailSubmission/get", {"accountId": c.account_id, "ids": [sid]})
        self.assertEqual(got["list"][0]["emailId"], sub["emailId"], got)
        b = self.jmap(BOB, BOB_PW)
        self.assertEqual(len(b.email_ids_with_subject(subject)), 1, "one copy for bob")

    def test_account_delete_leaves_no_row_and_no_blob(self):
        victim = f"dora{time.time_ns()}@example.test"
        self.server.add_account(victim, "dora-password-1")
        subject = f"dora's secret {time.time_ns()}"
        raw = make_message(subject, sender="carol@remote.test", to=victim)
        s = self.server.smtp("smtp")
        try:
            s.sendmail("carol@remote.test", [victim], raw)
        finally:
            s.quit()
        d = self.jmap(victim, "dora-password-1")
        wait_until(lambda: d.email_ids_with_subject(subject), 30, "delivery")
        account_id = int(d.account_id.lstrip("A"))
        # Blob ids are per account and hide the content hash: read the stored hash itself.
        db = sqlite3.connect(f"file:{self.server.data_dir / 'bulwark.db'}?mode=ro", uri=True)
        try:
            blob = db.execute("SELECT blob FROM emails WHERE account = ?",
                              (account_id,)).fetchone()[0]
        finally:
            db.close()
        up = urllib.request.Request(
            f"http://{self.http_addr()[0]}:{self.http_addr()[1]}/jmap/upload/{d.account_id}/",
            data=b"an upload of dora", method="POST",
            headers={"Authorization": d.auth, "Content-Type": "text/plain"})
        with urllib.request.urlopen(up, timeout=30) as r:
            self.assertEqual(r.status, 201)
        upload = hashlib.sha256(b"an upload of dora").hexdigest()
        self.server.cli("account", "delete", victim, "--yes")
        self.assertNotIn(victim, self.server.cli("account", "list").stdout)
        db = sqlite3.connect(f"file:{self.server.data_dir / 'bulwark.db'}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for t in tables:
                cols = [r[1] for r in db.execute(f"PRAGMA table_info({t})")]
                if "account" in cols:
                    n = db.execute(f"SELECT count(*) FROM {t} WHERE account = ?",
                                   (account_id,)).fetchone()[0]
                    self.assertEqual(n, 0, f"{n} rows of the deleted account in {t}")
            n = db.execute("SELECT count(*) FROM accounts WHERE id = ?", (account_id,)).fetchone()[0]
            self.assertEqual(n, 0)
            for h in (blob, upload):
                n = db.execute("SELECT count(*) FROM blobs WHERE hash = ?", (h,)).fetchone()[0]
                self.assertEqual(n, 0, f"blob {h} of the deleted account is still stored")
        finally:
            db.close()

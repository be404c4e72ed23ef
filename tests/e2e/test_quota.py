"""Storage quotas against the running server, with real clients.

`[quota] default_storage` and `bulwark account quota` set the limit; imaplib reads it with
GETQUOTAROOT (RFC 9208) and meets `NO [OVERQUOTA]` on APPEND; smtplib meets `452 4.2.2` at
RCPT for a full mailbox while the other recipient gets the message; JMAP Quota/get
(RFC 9425) reports the same figures. Nothing already stored is touched by a lower limit.
"""

import imaplib
import re
import smtplib
import unittest

from harness import ALICE, ALICE_PW, BOB, BOB_PW, make_message, safe_logout, wait_until
from jmapclient import CAP_CORE, CAP_MAIL, JmapServerTestCase

CAP_QUOTA = "urn:ietf:params:jmap:quota"


class QuotaTest(JmapServerTestCase):
    extra_toml = '[quota]\ndefault_storage = "64K"\n'

    def storage(self, m: imaplib.IMAP4) -> tuple[int, int] | None:
        typ, data = m.getquotaroot("INBOX")
        self.assertEqual(typ, "OK", data)
        roots, quotas = data[0], data[1]
        self.assertTrue(roots[0].startswith(b'"INBOX"') or roots[0].startswith(b"INBOX"), roots)
        for q in quotas:
            found = re.search(rb"\(STORAGE (\d+) (\d+)\)", q or b"")
            if found:
                return int(found.group(1)), int(found.group(2))
        return None

    def test_limits_are_reported_and_enforced_by_every_protocol(self):
        # The server default applies: 64 KiB.
        out = self.server.cli("account", "quota", ALICE).stdout
        self.assertIn("of 64.0 KiB used", out)
        self.assertIn("server's default", out)
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            typ, caps = m.capability()
            self.assertIn(b"QUOTA=RES-STORAGE", caps[0])
            used0, limit = self.storage(m)
            self.assertEqual(limit, 64)
            # Alice's own limit: 8 KiB, set while she is connected; applied at once.
            self.server.cli("account", "quota", ALICE, "8K")
            big = make_message("big", to=ALICE, body="x" * 6000 + "\r\n")
            typ, data = m.append("INBOX", None, None, big)
            self.assertEqual(typ, "OK", data)
            used, limit = self.storage(m)
            self.assertEqual(limit, 8)
            self.assertGreaterEqual(used, used0 + 6)
            # A second one would pass 8 KiB: NO [OVERQUOTA], nothing stored.
            typ, data = m.append("INBOX", None, None, big)
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[OVERQUOTA]", data[0])
            m.select("INBOX")
            typ, data = m.search(None, "SUBJECT", "big")
            self.assertEqual(len(data[0].split()), 1)
            # SMTP: alice is deferred at RCPT with 452 4.2.2, bob gets the message now.
            small = make_message("to both", to=f"{ALICE}, {BOB}", body="y" * 3000 + "\r\n")
            with self.server.smtp() as s:
                refused_rcpts = s.sendmail("sender@remote.test", [ALICE, BOB], small)
            self.assertEqual(refused_rcpts[ALICE][0], 452, refused_rcpts)
            self.assertIn(b"4.2.2", refused_rcpts[ALICE][1])
            b = self.server.imap(BOB, BOB_PW)
            try:
                b.select("INBOX")
                typ, data = b.search(None, "SUBJECT", '"to both"')
                self.assertEqual(len(data[0].split()), 1)
            finally:
                safe_logout(b)
            # Only alice refused: every recipient refused gives one 452 for the transaction.
            with self.server.smtp() as s:
                with self.assertRaises(smtplib.SMTPRecipientsRefused) as all_refused:
                    s.sendmail("sender@remote.test", [ALICE], small)
            code, text = all_refused.exception.recipients[ALICE]
            self.assertEqual(code, 452, text)
            # JMAP Quota/get says the same.
            jm = self.jmap(ALICE, ALICE_PW)
            r = jm.call([["Quota/get", {"accountId": jm.account_id}, "q"]],
                        using=[CAP_CORE, CAP_MAIL, CAP_QUOTA])
            name, args, _ = r["methodResponses"][0]
            self.assertEqual(name, "Quota/get", args)
            q = args["list"][0]
            self.assertEqual((q["resourceType"], q["hardLimit"]), ("octets", 8 * 1024))
            self.assertGreater(q["used"], 6000)
            # Back to unlimited: APPEND works again, GETQUOTAROOT lists no root.
            self.server.cli("account", "quota", ALICE, "unlimited")
            typ, data = m.append("INBOX", None, None, big)
            self.assertEqual(typ, "OK", data)
            self.assertIsNone(self.storage(m))
            out = self.server.cli("account", "quota", ALICE, "default").stdout
            self.assertIn("of 64.0 KiB used", out)
            listed = self.server.cli("account", "list").stdout
            self.assertRegex(listed, r"alice@example\.test.*mail: .* of 64\.0 KiB")
            bad = self.server.cli("account", "quota", ALICE, "lots", check=False)
            self.assertNotEqual(bad.returncode, 0)
            self.assertIn("unlimited", bad.stderr)
        finally:
            safe_logout(m)


if __name__ == "__main__":
    unittest.main()

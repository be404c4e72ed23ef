"""SMTP end to end: swaks and smtplib against the inbound and submission listeners."""

import smtplib
import subprocess
import time
import unittest

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, DELIVERY_TIMEOUT, ServerTestCase,
                     auth_plain, fetch_literal, imap_check, imap_search, insecure_tls,
                     make_message, require_tool, safe_logout, wait_for_subject, wait_until)


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


class SmtpTest(ServerTestCase):
    with_sink = True

    def swaks(self, listener: str, *args: str) -> subprocess.CompletedProcess:
        swaks = require_tool("swaks")
        host, port = self.server.addr(listener)
        cmd = [swaks, "--server", host, "--port", str(port), "--ehlo", "client.test",
               "--timeout", "30", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=90)

    def assertSwaksOk(self, proc):
        self.assertEqual(proc.returncode, 0, f"swaks failed:\n{proc.stdout}\n{proc.stderr}")

    # ---- inbound -------------------------------------------------------------------------

    def test_inbound_swaks_delivers_to_inbox_with_trace_headers(self):
        subject = unique("inbound")
        proc = self.swaks("smtp", "--to", ALICE, "--from", "sender@remote.test",
                          "--header", f"Subject: {subject}", "--body", "inbound body text")
        self.assertSwaksOk(proc)
        msg = wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        header = msg.split(b"\r\n\r\n", 1)[0]
        self.assertIn(b"inbound body text", msg)
        self.assertRegex(header, rb"(?im)^Return-Path:\s*<sender@remote\.test>",
                         "Return-Path header with the envelope sender")
        self.assertRegex(header, rb"(?im)^Received:\s*from\b", "Received header")
        # RFC 5321 §4.4: Return-Path is the first header of the stored message (top of trace).
        first = header.split(b"\r\n", 1)[0]
        self.assertTrue(first.lower().startswith((b"return-path:", b"received:")),
                        f"trace headers are prepended, first line was {first!r}")

    def test_plus_addressing_delivers_to_base_account(self):
        subject = unique("plus")
        proc = self.swaks("smtp", "--to", "alice+newsletters@example.test",
                          "--from", "sender@remote.test", "--header", f"Subject: {subject}")
        self.assertSwaksOk(proc)
        wait_for_subject(self.server, ALICE, ALICE_PW, subject)

    def test_alias_delivers_to_target_account(self):
        subject = unique("alias")
        proc = self.swaks("smtp", "--to", "sales@example.test", "--from", "sender@remote.test",
                          "--header", f"Subject: {subject}")
        self.assertSwaksOk(proc)
        wait_for_subject(self.server, ALICE, ALICE_PW, subject)

    def test_unknown_local_user_is_550_5_1_1(self):
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            self.assertEqual(s.mail("sender@remote.test")[0], 250)
            code, text = s.rcpt("nobody@example.test")
            self.assertEqual(code, 550, text)
            self.assertIn(b"5.1.1", text)
        finally:
            s.quit()

    def test_unknown_user_via_swaks_fails(self):
        proc = self.swaks("smtp", "--to", "nobody@example.test", "--from", "sender@remote.test")
        self.assertNotEqual(proc.returncode, 0)
        self.assertRegex(proc.stdout, r"<\*\* +550[ -]5\.1\.1")

    def test_relay_to_remote_domain_without_auth_is_554_5_7_1(self):
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            self.assertEqual(s.mail("sender@remote.test")[0], 250)
            code, text = s.rcpt("someone@elsewhere.test")
            self.assertEqual(code, 554, text)
            self.assertIn(b"5.7.1", text)
        finally:
            s.quit()

    def test_ehlo_advertises_required_extensions(self):
        s = self.server.smtp()
        try:
            code, _ = s.ehlo("client.test")
            self.assertEqual(code, 250)
            for ext in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes",
                        "starttls", "chunking"):
                self.assertIn(ext, s.esmtp_features,
                              f"EHLO lacks {ext.upper()}: {s.esmtp_features}")
            self.assertTrue(s.esmtp_features["size"].strip().isdigit(),
                            "SIZE announces the limit")
            self.assertIn(int(s.esmtp_features["size"]), (1_000_000, 1024 * 1024),
                          "SIZE announces the configured 1M limit")
            # Inbound port does not offer AUTH before TLS.
            self.assertNotIn("auth", s.esmtp_features)
        finally:
            s.quit()

    def test_oversize_declared_with_size_param_is_552(self):
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            code, text = s.mail("sender@remote.test", ["SIZE=5000000"])
            self.assertEqual(code, 552, text)
        finally:
            s.quit()

    def test_oversize_data_without_size_param_is_552(self):
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            self.assertEqual(s.mail("sender@remote.test")[0], 250)
            self.assertEqual(s.rcpt(ALICE)[0], 250)
            body = ("x" * 998 + "\r\n") * 1300  # ~1.3 MB > 1M limit
            code, text = s.data(make_message("too big", body=body))  # returns the final reply
            self.assertEqual(code, 552, text)
            # The session is still usable afterwards.
            self.assertEqual(s.noop()[0], 250)
        finally:
            s.close()

    def test_message_just_under_limit_is_accepted(self):
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            subject = unique("nearlimit")
            body = ("y" * 998 + "\r\n") * 900  # ~0.9 MB
            s.sendmail("sender@remote.test", [ALICE], make_message(subject, body=body))
        finally:
            s.quit()
        msg = wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        self.assertGreater(len(msg), 900_000)

    def test_pipelined_commands_get_replies_in_order(self):
        c = self.server.raw_smtp("smtp")
        try:
            self.assertEqual(c.greeting[0], 220)
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            # RFC 2920: a client may send MAIL, RCPTs and DATA in one batch.
            c.send(b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
                   b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
            codes = [c.reply()[0] for _ in range(5)]
            self.assertEqual(codes, [250, 250, 550, 250, 354])
            subject = unique("pipelined")
            c.send(make_message(subject, to=BOB) + b"\r\n.\r\nQUIT\r\n")
            self.assertEqual(c.reply()[0], 250)
            self.assertEqual(c.reply()[0], 221)
        finally:
            c.close()
        wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        wait_for_subject(self.server, BOB, BOB_PW, subject)

    def test_bdat_chunks_are_reassembled(self):
        c = self.server.raw_smtp("smtp")
        subject = unique("bdat")
        msg = make_message(subject, body="chunk-one\r\n.leading dot stays\r\nchunk-two\r\n")
        first, second = msg[:50], msg[50:]
        try:
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            self.assertEqual(c.cmd("MAIL FROM:<sender@remote.test>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<alice@example.test>")[0], 250)
            # RFC 3030: BDAT carries exact byte counts; no dot-stuffing.
            c.send(f"BDAT {len(first)}\r\n".encode() + first)
            self.assertEqual(c.reply()[0], 250)
            c.send(f"BDAT {len(second)} LAST\r\n".encode() + second)
            code, text = c.reply()
            self.assertEqual(code, 250, text)
            self.assertEqual(c.cmd("QUIT")[0], 221)
        finally:
            c.close()
        stored = wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        self.assertTrue(stored.endswith(msg), "stored message ends with exactly the BDAT bytes")
        self.assertIn(b"\r\n.leading dot stays\r\n", stored)

    def test_smtplib_multiple_transactions_on_one_connection(self):
        s = self.server.smtp()
        subjects = [unique(f"multi{i}") for i in range(3)]
        try:
            s.ehlo("client.test")
            for subj in subjects:
                refused = s.sendmail("sender@remote.test", [ALICE], make_message(subj))
                self.assertEqual(refused, {})
        finally:
            s.quit()
        for subj in subjects:
            wait_for_subject(self.server, ALICE, ALICE_PW, subj)

    def test_inbound_starttls_delivery_swaks(self):
        subject = unique("inbound-tls")
        proc = self.swaks("smtp", "--tls", "--to", ALICE, "--from", "sender@remote.test",
                          "--header", f"Subject: {subject}")
        self.assertSwaksOk(proc)
        msg = wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        self.assertRegex(msg.split(b"\r\n\r\n", 1)[0], rb"(?i)with ESMTPS",
                         "Received says the hop was encrypted (RFC 3848)")

    def test_dot_stuffing_and_8bit_body_round_trip(self):
        subject = unique("dots")
        body = "..starts with a dot\r\n.\r\n...\r\nGrüße, 8-bit UTF-8 body ✓\r\n"
        raw = make_message(subject, body=body)
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            # smtplib dot-stuffs on the wire; the server must un-stuff (RFC 5321 §4.5.2).
            s.sendmail("sender@remote.test", [ALICE], raw, mail_options=["BODY=8BITMIME"])
        finally:
            s.quit()
        stored = wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        self.assertTrue(stored.endswith(raw), "body stored byte for byte after un-stuffing")

    def test_smtputf8_address_is_accepted_with_parameter(self):
        subject = unique("utf8addr")
        c = self.server.raw_smtp("smtp")
        try:
            c.cmd("EHLO client.test")
            code, text = c.cmd("MAIL FROM:<jörg@bücher.test>".encode())
            self.assertEqual(code // 100, 5, f"non-ASCII sender without SMTPUTF8: {code} {text}")
            self.assertEqual(c.cmd("MAIL FROM:<jörg@bücher.test> SMTPUTF8".encode())[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<alice@example.test>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(make_message(subject, sender="jörg@bücher.test") + b"\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
        finally:
            c.close()
        msg = wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        self.assertIn("Return-Path: <jörg@bücher.test>".encode(), msg)

    def test_null_sender_accepted_inbound(self):
        subject = unique("nullsender")
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            self.assertEqual(s.mail("<>")[0], 250)
            self.assertEqual(s.rcpt(ALICE)[0], 250)
            self.assertEqual(s.data(make_message(subject, sender="MAILER-DAEMON@remote.test"))[0],
                             250)
        finally:
            s.quit()
        msg = wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        self.assertRegex(msg, rb"(?im)^Return-Path:\s*<>")

    def test_rset_clears_transaction(self):
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            self.assertEqual(s.mail("a@remote.test")[0], 250)
            self.assertEqual(s.rcpt(ALICE)[0], 250)
            self.assertEqual(s.rset()[0], 250)
            code, _ = s.docmd("DATA")
            self.assertEqual(code, 503, "DATA after RSET has no transaction")
            self.assertEqual(s.mail("b@remote.test")[0], 250, "a new MAIL works after RSET")
        finally:
            s.close()

    def test_too_many_recipients_get_452(self):
        c = self.server.raw_smtp("smtp")
        try:
            c.cmd("EHLO client.test")
            c.send(b"MAIL FROM:<x@remote.test>\r\n" + b"".join(
                f"RCPT TO:<alice+r{i}@example.test>\r\n".encode() for i in range(105)))
            codes = [c.reply()[0] for _ in range(106)]
            self.assertEqual(codes[0], 250)
            self.assertEqual(codes[1:101], [250] * 100, "the first 100 recipients are accepted")
            # RFC 5321 §4.5.3.1.10: beyond the limit, 452 (temporary; client retries later).
            self.assertEqual(set(codes[101:]), {452}, codes[101:])
        finally:
            c.close()

    # ---- submission ------------------------------------------------------------------------

    def test_submission_starttls_auth_plain_swaks(self):
        subject = unique("sub-plain")
        proc = self.swaks("submission", "--tls", "--auth", "PLAIN", "--auth-user", ALICE,
                          "--auth-password", ALICE_PW, "--from", ALICE, "--to", BOB,
                          "--header", f"Subject: {subject}")
        self.assertSwaksOk(proc)
        wait_for_subject(self.server, BOB, BOB_PW, subject)

    def test_submission_starttls_auth_login_swaks(self):
        subject = unique("sub-login")
        proc = self.swaks("submission", "--tls", "--auth", "LOGIN", "--auth-user", ALICE,
                          "--auth-password", ALICE_PW, "--from", ALICE, "--to", BOB,
                          "--header", f"Subject: {subject}")
        self.assertSwaksOk(proc)
        wait_for_subject(self.server, BOB, BOB_PW, subject)

    def test_submissions_implicit_tls_swaks(self):
        subject = unique("subs")
        proc = self.swaks("submissions", "--tls-on-connect", "--auth", "PLAIN",
                          "--auth-user", BOB, "--auth-password", BOB_PW, "--from", BOB,
                          "--to", ALICE, "--header", f"Subject: {subject}")
        self.assertSwaksOk(proc)
        wait_for_subject(self.server, ALICE, ALICE_PW, subject)

    def test_submission_auth_before_starttls_is_refused(self):
        s = self.server.smtp("submission")
        try:
            s.ehlo("client.test")
            self.assertIn("starttls", s.esmtp_features)
            code, text = s.docmd("AUTH", "PLAIN " + auth_plain(ALICE, ALICE_PW))
            self.assertTrue(500 <= code < 600, f"AUTH before TLS answered {code} {text!r}")
            # And mail cannot be submitted without AUTH.
            code, text = s.mail(ALICE)
            if code == 250:
                code, text = s.rcpt(BOB)
            self.assertTrue(500 <= code < 600, f"unauthenticated submission got {code} {text!r}")
        finally:
            s.close()

    def test_submission_requires_auth_after_tls(self):
        s = self.server.smtp("submission")
        try:
            s.ehlo("client.test")
            s.starttls(context=insecure_tls())
            s.ehlo("client.test")
            self.assertIn("auth", s.esmtp_features)
            mechs = s.esmtp_features["auth"].upper().split()
            self.assertIn("PLAIN", mechs)
            self.assertIn("LOGIN", mechs)
            code, text = s.mail(ALICE)
            if code == 250:
                code, text = s.rcpt(BOB)
            self.assertTrue(500 <= code < 600, f"MAIL without AUTH got {code} {text!r}")
        finally:
            s.close()

    def test_submission_wrong_password_is_535(self):
        s = self.server.smtp("submission")
        try:
            s.ehlo("client.test")
            s.starttls(context=insecure_tls())
            s.ehlo("client.test")
            with self.assertRaises(smtplib.SMTPAuthenticationError) as ctx:
                s.login(BOB, "definitely-wrong")
            self.assertEqual(ctx.exception.smtp_code, 535, ctx.exception.smtp_error)
        finally:
            s.close()

    def test_submission_sender_spoofing_is_553(self):
        s = self.server.submission(ALICE, ALICE_PW)
        try:
            code, text = s.mail(BOB)
            self.assertEqual(code, 553, f"MAIL FROM another user's address: {code} {text!r}")
        finally:
            s.close()

    def test_submission_own_address_accepted_as_sender(self):
        s = self.server.submission(ALICE, ALICE_PW)
        try:
            self.assertEqual(s.mail(ALICE)[0], 250)
            s.rset()
        finally:
            s.quit()

    def test_submission_sender_may_be_own_alias_or_plus_address(self):
        s = self.server.submission(ALICE, ALICE_PW)
        try:
            for sender in ("sales@example.test", "alice+lists@example.test", ALICE.upper()):
                code, text = s.mail(sender)
                self.assertEqual(code, 250, f"{sender}: {code} {text!r}")
                s.rset()
        finally:
            s.quit()
        s = self.server.submission(BOB, BOB_PW)
        try:
            code, text = s.mail("sales@example.test")
            self.assertEqual(code, 553, f"bob may not send as alice's alias: {text!r}")
        finally:
            s.close()

    def test_submission_to_unknown_local_user_is_550(self):
        s = self.server.submission(ALICE, ALICE_PW)
        try:
            self.assertEqual(s.mail(ALICE)[0], 250)
            code, text = s.rcpt("nobody@example.test")
            self.assertEqual(code, 550, text)
        finally:
            s.close()

    def test_recipient_case_is_ignored(self):
        subject = unique("case")
        s = self.server.smtp()
        try:
            s.sendmail("x@remote.test", ["ALICE@EXAMPLE.TEST"], make_message(subject))
        finally:
            s.quit()
        wait_for_subject(self.server, ALICE, ALICE_PW, subject)

    def test_plus_address_on_alias(self):
        subject = unique("aliasplus")
        s = self.server.smtp()
        try:
            s.sendmail("x@remote.test", ["sales+leads@example.test"], make_message(subject))
        finally:
            s.quit()
        wait_for_subject(self.server, ALICE, ALICE_PW, subject)

    def test_submission_to_remote_goes_through_queue_to_relay(self):
        subject = unique("outbound")
        s = self.server.submission(ALICE, ALICE_PW)
        try:
            refused = s.sendmail(ALICE, ["carol@remote.test"],
                                 make_message(subject, sender=ALICE, to="carol@remote.test"))
            self.assertEqual(refused, {})
        finally:
            s.quit()
        assert self.sink is not None
        got = self.sink.wait_for(lambda m: subject.encode() in m.data)
        self.assertEqual(got.mail_from, ALICE)
        self.assertEqual(got.rcpts, ["carol@remote.test"])
        self.assertIn(b"Subject: " + subject.encode(), got.data)
        # Once delivered, the queue is empty (poll: the worker removes the entry after 250).
        wait_until(lambda: "carol@remote.test" not in self.server.queue_list(), DELIVERY_TIMEOUT,
                   "queue list to no longer show the delivered message")
        # Sent mail is not auto-saved on the server (clients save a copy themselves).
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            imap_check(m.select("Sent", readonly=True), "SELECT Sent")
            self.assertEqual(imap_search(m, "SUBJECT", f'"{subject}"'), [])
        finally:
            safe_logout(m)

    def test_submission_mixed_local_and_remote_recipients(self):
        subject = unique("mixed")
        s = self.server.submission(BOB, BOB_PW)
        try:
            refused = s.sendmail(BOB, [ALICE, "dave@remote.test"],
                                 make_message(subject, sender=BOB, to=ALICE))
            self.assertEqual(refused, {})
        finally:
            s.quit()
        wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        assert self.sink is not None
        got = self.sink.wait_for(lambda m: subject.encode() in m.data)
        self.assertEqual(got.rcpts, ["dave@remote.test"])

    def test_queue_list_runs(self):
        proc = self.server.cli("queue", "list")
        self.assertEqual(proc.returncode, 0)


class LargeMessageTest(ServerTestCase):
    """A 20 MB message (15 MB attachment) through SMTP, IMAP FETCH/BINARY and APPEND."""

    max_message_size = "30M"

    def test_large_attachment_round_trip(self):
        import base64
        import hashlib
        import os
        payload = os.urandom(15 * 1024 * 1024)
        att = base64.encodebytes(payload).replace(b"\n", b"\r\n")
        subject = unique("large")
        msg = (f"From: a@remote.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
               "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
               "--zz\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n--zz\r\n"
               "Content-Type: application/octet-stream\r\n"
               "Content-Transfer-Encoding: base64\r\n\r\n").encode() + att + b"--zz--\r\n"
        s = self.server.smtp()
        try:
            self.assertEqual(s.sendmail("a@remote.test", [ALICE], msg), {})
        finally:
            s.quit()
        m = self.server.imap(ALICE, ALICE_PW)
        try:
            imap_check(m.select("INBOX"), "SELECT")
            uid = imap_search(m, "SUBJECT", f'"{subject}"', uid=True)[0]
            body = fetch_literal(imap_check(m.uid("FETCH", str(uid), "(BODY.PEEK[])"), "FETCH"))
            self.assertTrue(body.endswith(msg))
            data = imap_check(m.uid("FETCH", str(uid), "(BINARY.PEEK[2])"), "BINARY")
            self.assertEqual(hashlib.sha256(fetch_literal(data)).digest(),
                             hashlib.sha256(payload).digest(), "BINARY decodes the attachment")
            typ, data = m.append("Archive", None, None, msg)
            self.assertEqual(typ, "OK", data)
        finally:
            safe_logout(m)


if __name__ == "__main__":
    unittest.main()

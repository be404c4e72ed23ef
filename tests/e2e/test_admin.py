"""Admin CLI against a running server: accounts, passwords, app passwords, aliases, config check."""

import imaplib
import smtplib
import time
import unittest

from harness import (ALICE, ALICE_PW, BOB, ServerTestCase, make_message, safe_logout,
                     wait_for_subject)


class AdminCliTest(ServerTestCase):

    def login_ok(self, user: str, pw: str) -> bool:
        try:
            m = self.server.imap(user, pw, mode="imaps")
        except imaplib.IMAP4.error:
            return False
        safe_logout(m)
        return True

    def test_account_added_while_running_can_log_in_and_receive(self):
        user = f"new{time.time_ns() % 10**6}@example.test"
        self.server.add_account(user, "fresh-Secret-pw")
        self.assertTrue(self.login_ok(user, "fresh-Secret-pw"))
        line = self.account_line(user)
        self.assertIn("mail: 0 bytes", line)
        s = self.server.smtp()
        try:
            s.sendmail("x@remote.test", [user], make_message("welcome", to=user))
        finally:
            s.quit()
        wait_for_subject(self.server, user, "fresh-Secret-pw", "welcome")
        # The per-account byte count (issue 12) is shown: the stored copy, Received included.
        line = self.account_line(user)
        used = int(line.split("mail: ")[1].split(" bytes")[0])
        self.assertGreater(used, len(make_message("welcome", to=user)), line)

    def account_line(self, user: str) -> str:
        lines = [l for l in self.server.cli("account", "list").stdout.splitlines()
                 if l.startswith(user + " ")]
        self.assertEqual(len(lines), 1, lines)
        return lines[0]

    def test_passwd_changes_password_while_running(self):
        user = f"pw{time.time_ns() % 10**6}@example.test"
        self.server.add_account(user, "old-Secret-pw")
        self.assertTrue(self.login_ok(user, "old-Secret-pw"))
        self.server.cli("account", "passwd", user, "--password-stdin", input="new-Secret-pw\n")
        self.assertTrue(self.login_ok(user, "new-Secret-pw"))
        self.assertFalse(self.login_ok(user, "old-Secret-pw"))

    def test_delete_account_refuses_login_and_mail(self):
        user = f"del{time.time_ns() % 10**6}@example.test"
        self.server.add_account(user, "del-Secret-pw")
        self.assertTrue(self.login_ok(user, "del-Secret-pw"))
        self.server.cli("account", "delete", user, "--yes")
        self.assertFalse(self.login_ok(user, "del-Secret-pw"))
        s = self.server.smtp()
        try:
            s.ehlo("client.test")
            s.mail("x@remote.test")
            code, text = s.rcpt(user)
            self.assertEqual(code, 550, text)
        finally:
            s.quit()
        self.assertNotIn(user, self.server.cli("account", "list").stdout)

    def test_app_password_works_for_smtp_and_can_be_revoked(self):
        token = self.server.add_app_password(ALICE, "laptop")
        s = self.server.submission(ALICE, token)
        s.quit()
        self.assertIn("laptop", self.server.cli("account", "app-password", "list", ALICE).stdout)
        self.assertNotIn(token, self.server.cli("account", "app-password", "list", ALICE).stdout,
                         "the password is never shown again")
        self.server.cli("account", "app-password", "delete", ALICE, "laptop")
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            self.server.submission(ALICE, token)
        self.assertFalse(self.login_ok(ALICE, token))
        self.assertTrue(self.login_ok(ALICE, ALICE_PW), "the account password is unaffected")

    def test_alias_added_while_running_delivers(self):
        alias = f"team{time.time_ns() % 10**6}@example.test"
        self.server.add_alias(alias, BOB)
        subject = f"alias-live-{time.time_ns()}"
        s = self.server.smtp()
        try:
            s.sendmail("x@remote.test", [alias], make_message(subject, to=alias))
        finally:
            s.quit()
        wait_for_subject(self.server, BOB, "bob-Secret-pw-2", subject)

    def test_cli_writes_succeed_during_heavy_delivery(self):
        import threading
        stop = threading.Event()
        sent = [0]
        errors = []

        def load():
            try:
                s = self.server.smtp()
                s.ehlo("load.test")
                while not stop.is_set():
                    s.sendmail("load@remote.test", [BOB], make_message("load"))
                    sent[0] += 1
                s.quit()
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

        threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            from harness import wait_until
            wait_until(lambda: sent[0] >= 20, 30, "load to start")
            tag = time.time_ns() % 10**6
            for i in range(4):
                start = time.monotonic()
                user = f"busy{tag}x{i}@example.test"
                self.server.add_account(user, "busy-Secret-pw")
                self.server.add_alias(f"busyalias{tag}x{i}@example.test", user)
                self.assertLess(time.monotonic() - start, 20, "CLI writes are not starved")
                self.assertTrue(self.login_ok(user, "busy-Secret-pw"))
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertFalse(errors, f"delivery failed while the CLI wrote: {errors[:3]}")

    def test_invalid_admin_input_is_refused(self):
        for args, stdin in [
            (("account", "add", "someone@unknown-domain.test", "--password-stdin"), "pw-x-1234\n"),
            (("account", "add", ALICE, "--password-stdin"), "again-pw-1234\n"),
            (("account", "add", "not-an-address", "--password-stdin"), "pw-x-1234\n"),
            (("alias", "add", f"x{time.time_ns()}@example.test", "nobody@example.test"), None),
            (("queue", "delete", "999999"), None),
        ]:
            with self.subTest(args=args):
                proc = self.server.cli(*args, input=stdin, check=False)
                self.assertNotEqual(proc.returncode, 0, f"{args} succeeded: {proc.stdout}")
                self.assertTrue(proc.stderr.strip(), f"{args}: no error message")
        self.assertTrue(self.login_ok(ALICE, ALICE_PW), "failed re-add did not change alice")

    def test_config_check_names_key_and_line(self):
        good = self.server.cli("config", "check", str(self.server.config), check=False)
        self.assertEqual(good.returncode, 0, good.stderr)
        bad = self.server.dir / "bad.toml"
        bad.write_text(
            'hostname = "mail.example.test"\n'
            'data_dir = "./d"\n'
            "[listen]\n"
            'smtp = "not-an-address"\n'
            "[limits]\n"
            'max_message_size = "lots"\n'
            "frobnicate = 1\n"
        )
        proc = self.server.cli("config", "check", str(bad), check=False)
        self.assertEqual(proc.returncode, 78, proc.stdout + proc.stderr)
        out = proc.stdout + proc.stderr
        self.assertRegex(out, r"bad\.toml:4: listen\.smtp")
        self.assertRegex(out, r"bad\.toml:6: limits\.max_message_size")
        self.assertRegex(out, r"bad\.toml:7: limits\.frobnicate")

    def test_serve_refuses_invalid_config(self):
        import subprocess
        bad = self.server.dir / "bad-serve.toml"
        bad.write_text('hostname = "mail.example.test"\n[listen]\nimap = "127.0.0.1:99999"\n')
        proc = subprocess.run([str(self.server.bin), "serve", "--config", str(bad)],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 78, proc.stderr)
        self.assertIn("listen.imap", proc.stdout + proc.stderr)


class ConnectionLimitTest(ServerTestCase):
    limits_toml = "max_connections_per_ip = 3\n"
    SOURCE = "127.0.0.91"

    def test_connections_per_ip_are_capped_and_released(self):
        from harness import RawImap
        conns = [RawImap(self.server.addr("imaps"), source_ip=self.SOURCE) for _ in range(3)]
        try:
            for c in conns:
                self.assertTrue(c.greeting.startswith(b"* OK"), c.greeting)
            try:
                extra = RawImap(self.server.addr("imaps"), source_ip=self.SOURCE, timeout=10)
                greeting = extra.greeting
                extra.close()
            except OSError as exc:
                greeting = repr(exc).encode()
            self.assertFalse(greeting.startswith(b"* OK"),
                             f"4th connection from one IP was served: {greeting!r}")
            # Another IP is not affected.
            other = RawImap(self.server.addr("imaps"), source_ip="127.0.0.92")
            self.assertTrue(other.greeting.startswith(b"* OK"))
            other.close()
        finally:
            for c in conns:
                c.close()
        # Once closed, the slots come back (poll: the server notices the close asynchronously).
        from harness import wait_until

        def served():
            c = RawImap(self.server.addr("imaps"), source_ip=self.SOURCE, timeout=10)
            try:
                return c.greeting.startswith(b"* OK")
            finally:
                c.close()
        wait_until(served, 15, "a new connection after the others closed")

    def test_smtp_connections_per_ip_are_capped(self):
        from harness import RawSmtp
        conns = [RawSmtp(self.server.addr("smtp"), source_ip="127.0.0.93") for _ in range(3)]
        try:
            for c in conns:
                self.assertEqual(c.greeting[0], 220)
            try:
                extra = RawSmtp(self.server.addr("smtp"), source_ip="127.0.0.93", timeout=10)
                code = extra.greeting[0]
                extra.close()
            except OSError:
                code = 0
            self.assertIn(code, (421, 0), "4th SMTP connection from one IP is refused with 421")
        finally:
            for c in conns:
                c.close()


if __name__ == "__main__":
    unittest.main()

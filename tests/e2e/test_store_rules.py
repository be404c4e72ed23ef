"""The store's mail rules as real clients meet them (issue 12): one address rule for every
path, so an account is found however its address is capitalised, also outside ASCII."""

import unittest

from harness import DOMAIN, ServerTestCase, auth_plain, insecure_tls

JURGEN = f"jürgen@{DOMAIN}"
JURGEN_PW = "jurgen-Secret-pw-3"


class AddressRuleTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server.add_account(JURGEN, JURGEN_PW)

    def auth(self, user: str, password: str) -> tuple[int, bytes]:
        s = self.server.smtp("submission")
        try:
            s.ehlo("client.test")
            s.starttls(context=insecure_tls())
            s.ehlo("client.test")
            return s.docmd("AUTH", "PLAIN " + auth_plain(user, password))
        finally:
            s.close()

    def test_a_non_ascii_address_signs_in_in_any_case(self):
        # The store used to fold only ASCII, SMTP and the CLI folded Unicode: the upper-case
        # spelling of an account created as jürgen@ was looked up as jÜrgen@ and not found.
        for user in (JURGEN, f"JÜRGEN@{DOMAIN.upper()}", f"Jürgen@{DOMAIN}"):
            with self.subTest(user=user):
                code, text = self.auth(user, JURGEN_PW)
                self.assertEqual(code, 235, f"AUTH as {user!r}: {code} {text!r}")

    def test_a_wrong_password_is_still_refused(self):
        code, _ = self.auth(f"JÜRGEN@{DOMAIN}", "not-the-password-9")
        self.assertEqual(code, 535)


if __name__ == "__main__":
    unittest.main()

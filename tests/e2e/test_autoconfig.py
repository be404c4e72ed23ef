"""Client autoconfiguration (issue 18): Thunderbird autoconfig, Microsoft Autodiscover (POX and
v2 JSON) and Apple configuration profiles, checked field by field against the formats each
client reads, with the real hostname and the ports the server listens on."""

import http.client
import json
import plistlib
import unittest
import urllib.parse
import xml.etree.ElementTree as ET

from harness import ALICE, LISTENERS, ServerTestCase

OUTLOOK_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{email}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""
OUTLOOK_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
RESPONSE_NS = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"


class AutoconfigTest(ServerTestCase):
    listeners = LISTENERS + ("http",)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(*self.server.addr("http"), timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def port(self, name: str) -> int:
        return self.server.addr(name)[1]

    def test_thunderbird_autoconfig_names_the_host_and_the_real_ports(self):
        q = urllib.parse.urlencode({"emailaddress": ALICE})
        for path in (f"/.well-known/autoconfig/mail/config-v1.1.xml?{q}", "/mail/config-v1.1.xml"):
            headers = {"Host": "autoconfig.example.test"} if "?" not in path else {}
            status, h, body = self.request("GET", path, headers=headers)
            self.assertEqual(status, 200, body)
            self.assertIn("xml", h["content-type"])
            root = ET.fromstring(body)
            self.assertEqual(root.tag, "clientConfig")
            self.assertEqual(root.get("version"), "1.1")
            provider = root.find("emailProvider")
            self.assertEqual(provider.get("id"), "example.test")
            self.assertEqual(provider.findtext("domain"), "example.test")
            incoming = provider.findall("incomingServer")
            self.assertEqual([s.get("type") for s in incoming], ["imap", "imap"])
            first = incoming[0]
            self.assertEqual(first.findtext("hostname"), "mail.example.test")
            self.assertEqual(int(first.findtext("port")), self.port("imaps"))
            self.assertEqual(first.findtext("socketType"), "SSL")
            self.assertEqual(int(incoming[1].findtext("port")), self.port("imap"))
            self.assertEqual(incoming[1].findtext("socketType"), "STARTTLS")
            self.assertEqual(first.findtext("username"), "%EMAILADDRESS%")
            self.assertEqual(first.findtext("authentication"), "password-cleartext")
            outgoing = provider.findall("outgoingServer")
            self.assertEqual([int(s.findtext("port")) for s in outgoing],
                             [self.port("submissions"), self.port("submission")])
            self.assertNotIn(str(self.port("smtp")), [s.findtext("port") for s in outgoing],
                             "the MX port is not for clients")

    def test_mta_sts_policy_is_served_for_our_domains_and_matches_the_dns_id(self):
        """RFC 8461 §3.2: the policy at mta-sts.DOMAIN names our MX; its id= in the TXT
        record `bulwark domain dns` prints is the hash of exactly this text."""
        status, headers, body = self.request("GET", "/.well-known/mta-sts.txt",
                                             headers={"Host": "mta-sts.example.test"})
        self.assertEqual(status, 200, body)
        self.assertTrue(headers["content-type"].startswith("text/plain"))
        lines = body.decode().split("\r\n")
        self.assertEqual(lines[0], "version: STSv1")
        self.assertIn("mode: testing", lines)
        self.assertIn("mx: mail.example.test", lines)
        self.assertIn("max_age: 86400", lines)
        fnv = 0xcbf29ce484222325
        for b in body:
            fnv = ((fnv ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        dns = self.server.cli("domain", "dns", "example.test").stdout
        self.assertIn(f'"v=STSv1; id={fnv:016x}"', dns)
        status, _, body = self.request("GET", "/.well-known/mta-sts.txt",
                                       headers={"Host": "mta-sts.elsewhere.test"})
        self.assertEqual(status, 404)
        status, _, _ = self.request("GET", "/.well-known/mta-sts.txt",
                                    headers={"Host": "mail.example.test"})
        self.assertEqual(status, 404)

    def test_other_domains_get_a_clear_404(self):
        q = urllib.parse.urlencode({"emailaddress": "someone@elsewhere.test"})
        status, _, body = self.request("GET", f"/.well-known/autoconfig/mail/config-v1.1.xml?{q}")
        self.assertEqual(status, 404)
        self.assertIn(b"elsewhere.test is not a mail domain of this server", body)
        status, _, body = self.request(
            "POST", "/autodiscover/autodiscover.xml",
            OUTLOOK_REQUEST.format(email="someone@elsewhere.test").encode(),
            {"Content-Type": "text/xml"})
        self.assertEqual(status, 404)
        error = ET.fromstring(body).find(f"{RESPONSE_NS}Response/{RESPONSE_NS}Error")
        self.assertEqual(error.findtext(f"{RESPONSE_NS}ErrorCode"), "603")

    def test_outlook_autodiscover_pox_answers_the_2006a_schema(self):
        for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
            status, h, body = self.request("POST", path, OUTLOOK_REQUEST.format(email=ALICE).encode(),
                                           {"Content-Type": "text/xml"})
            self.assertEqual(status, 200, body)
            root = ET.fromstring(body)
            self.assertEqual(root.tag, f"{RESPONSE_NS}Autodiscover")
            account = root.find(f"{OUTLOOK_NS}Response/{OUTLOOK_NS}Account")
            self.assertEqual(account.findtext(f"{OUTLOOK_NS}AccountType"), "email")
            self.assertEqual(account.findtext(f"{OUTLOOK_NS}Action"), "settings")
            protocols = {p.findtext(f"{OUTLOOK_NS}Type"): p for p in account.findall(f"{OUTLOOK_NS}Protocol")}
            self.assertEqual(set(protocols), {"IMAP", "SMTP"})
            imap, smtp = protocols["IMAP"], protocols["SMTP"]
            self.assertEqual(imap.findtext(f"{OUTLOOK_NS}Server"), "mail.example.test")
            self.assertEqual(int(imap.findtext(f"{OUTLOOK_NS}Port")), self.port("imaps"))
            self.assertEqual(imap.findtext(f"{OUTLOOK_NS}SSL"), "on")
            self.assertEqual(imap.findtext(f"{OUTLOOK_NS}LoginName"), ALICE)
            self.assertEqual(int(smtp.findtext(f"{OUTLOOK_NS}Port")), self.port("submissions"))
            self.assertEqual(smtp.findtext(f"{OUTLOOK_NS}AuthRequired"), "on")

    def test_hostile_autodiscover_requests_are_refused_clearly(self):
        for body in (b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><EMailAddress>&e;</EMailAddress>",
                     b"<Request>nothing</Request>", b"\xff\xfe", b"x" * 70_000):
            status, _, answer = self.request("POST", "/autodiscover/autodiscover.xml", body,
                                             {"Content-Type": "text/xml"})
            self.assertIn(status, (400, 413), answer[:200])
            self.assertNotIn(b"root:", answer)

    def test_autodiscover_v2_json_points_at_pox(self):
        q = urllib.parse.urlencode({"Email": ALICE, "Protocol": "AutodiscoverV1"})
        for path in (f"/autodiscover/autodiscover.json?{q}",
                     f"/autodiscover/autodiscover.json/v1.0/{ALICE}?Protocol=AutodiscoverV1"):
            status, _, body = self.request("GET", path)
            self.assertEqual(status, 200, body)
            answer = json.loads(body)
            self.assertEqual(answer["Protocol"], "AutodiscoverV1")
            self.assertTrue(answer["Url"].endswith("/autodiscover/autodiscover.xml"), answer)
        status, _, body = self.request(
            "GET", f"/autodiscover/autodiscover.json/v1.0/{ALICE}?Protocol=ActiveSync")
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["ErrorCode"], "InvalidProtocol")

    def test_apple_profile_is_a_valid_property_list_with_the_account(self):
        q = urllib.parse.urlencode({"emailaddress": ALICE})
        status, h, body = self.request("GET", f"/autoconfig/apple.mobileconfig?{q}")
        self.assertEqual(status, 200, body)
        self.assertEqual(h["content-type"], "application/x-apple-aspen-config")
        self.assertIn("attachment", h["content-disposition"])
        profile = plistlib.loads(body)
        self.assertEqual(profile["PayloadType"], "Configuration")
        (mail,) = profile["PayloadContent"]
        self.assertEqual(mail["PayloadType"], "com.apple.mail.managed")
        self.assertEqual(mail["EmailAccountType"], "EmailTypeIMAP")
        self.assertEqual(mail["EmailAddress"], ALICE)
        self.assertEqual(mail["IncomingMailServerHostName"], "mail.example.test")
        self.assertEqual(mail["IncomingMailServerPortNumber"], self.port("imaps"))
        self.assertEqual(mail["OutgoingMailServerPortNumber"], self.port("submissions"))
        self.assertTrue(mail["IncomingMailServerUseSSL"])
        # Stable identifiers: installing again replaces the account instead of adding one.
        _, _, again = self.request("GET", f"/autoconfig/apple.mobileconfig?{q}")
        self.assertEqual(plistlib.loads(again)["PayloadUUID"], profile["PayloadUUID"])


if __name__ == "__main__":
    unittest.main()

"""JMAP PushSubscription (RFC 8620 §7.2; issue 14, JMAP item 5) against a real HTTPS push
receiver on loopback: the PushVerification, no push before the client proves the URL is its
own, StateChanges after, retries after 503s, the `types` filter, expiry capped, and a
subscription the push service calls gone (410) is dropped. Raw JSON over http.client."""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

from harness import ALICE, ALICE_PW, DELIVERY_TIMEOUT, wait_until
from jmapclient import JmapServerTestCase


class PushReceiver:
    """An HTTPS server on 127.0.0.1 recording every POST; `fail_next` answers 503 (or the
    status given) to the next requests."""

    def __init__(self, cert: Path, key: Path):
        self.requests: list[dict] = []
        self.responses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    status = receiver.responses.pop(0) if receiver.responses else 201
                    receiver.requests.append({
                        "path": self.path, "status": status,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": json.loads(body or b"null"), "at": time.monotonic()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def accepted(self, kind: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["status"] < 300
                    and isinstance(r["body"], dict) and r["body"].get("@type") == kind]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a leaf for IP 127.0.0.1 signed by it: (ca cert, leaf cert, leaf key)."""
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "push.pem", directory / "push.key", directory / "push.csr"
    ext = directory / "leaf.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=Bulwark test push CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


@unittest.skipUnless(shutil.which("openssl"), "openssl is needed for the receiver's certificate")
class PushSubscriptionTest(JmapServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tls_dir = Path(tempfile.mkdtemp(prefix="bulwark-push-"))
        ca, cls.cert, cls.key = test_ca(cls.tls_dir)
        # The receiver is on loopback with a private CA: both must be allowed explicitly.
        cls.extra_toml = f'[push]\nallow_private_networks = true\nca_file = "{ca}"\n'
        super().setUpClass()
        cls.receiver = PushReceiver(cls.cert, cls.key)

    @classmethod
    def tearDownClass(cls):
        cls.receiver.close()
        super().tearDownClass()
        shutil.rmtree(cls.tls_dir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.c = self.jmap(ALICE, ALICE_PW)
        self.aid = self.c.account_id

    def subscribe(self, path: str, **extra) -> str:
        resp = self.c.ok("PushSubscription/set", {"create": {"s": {
            "deviceClientId": f"device-{path}", "url": self.receiver.url(path), **extra}}})
        self.assertIn("s", resp["created"] or {}, resp)
        return resp["created"]["s"]["id"]

    def verification(self, sub_id: str) -> dict:
        found = wait_until(lambda: [r for r in self.receiver.accepted("PushVerification")
                                    if r["body"]["pushSubscriptionId"] == sub_id],
                           DELIVERY_TIMEOUT, "a PushVerification at the receiver")
        return found[0]

    def state_changes(self, path: str) -> list[dict]:
        return [r for r in self.receiver.accepted("StateChange") if r["path"] == path]

    def test_verification_then_state_changes_with_retries_rfc8620_7_2(self):
        path = "/push/verified"
        sub_id = self.subscribe(path)
        got = self.verification(sub_id)
        code = got["body"]["verificationCode"]
        self.assertTrue(got["headers"].get("content-type", "").startswith("application/json"), got)
        self.assertIn("ttl", got["headers"], got)  # RFC 8030 §5.2
        # §7.2.1: url and keys are never returned; the code only once the client set it.
        listed = self.c.ok("PushSubscription/get", {"ids": [sub_id]})["list"][0]
        self.assertNotIn("url", listed)
        self.assertIsNone(listed["verificationCode"], listed)
        # Not verified yet: a delivery is not pushed.
        self.deliver(f"before verification {time.time_ns()}")
        wait_until(lambda: self.c.email_ids_with_subject("before verification"), DELIVERY_TIMEOUT,
                   "the first delivery visible")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            self.assertEqual(self.state_changes(path), [], "pushed before verification")
            time.sleep(0.05)
        # A wrong code is refused; the right one verifies.
        resp = self.c.ok("PushSubscription/set", {"update": {sub_id: {"verificationCode": "wrong"}}})
        self.assertEqual(resp["notUpdated"][sub_id]["type"], "invalidProperties", resp)
        resp = self.c.ok("PushSubscription/set", {"update": {sub_id: {"verificationCode": code}}})
        self.assertIn(sub_id, resp["updated"], resp)
        listed = self.c.ok("PushSubscription/get", {"ids": [sub_id]})["list"][0]
        self.assertEqual(listed["verificationCode"], code, listed)
        # The push service is down for two tries: the third lands.
        with self.receiver.lock:
            self.receiver.responses = [503, 503]
        self.deliver(f"after verification {time.time_ns()}")
        pushed = wait_until(lambda: self.state_changes(path), DELIVERY_TIMEOUT + 10,
                            "a StateChange after two 503s")
        changed = pushed[-1]["body"]["changed"][self.aid]
        self.assertIn("Email", changed, changed)
        self.assertIn("EmailDelivery", changed, changed)
        failed = [r for r in self.receiver.requests if r["path"] == path and r["status"] == 503]
        self.assertEqual(len(failed), 2, self.receiver.requests)
        # `types`: only Mailbox changes; $seen moves the Mailbox state (unread count).
        self.c.ok("PushSubscription/set", {"update": {sub_id: {"types": ["Mailbox"]}}})
        before = len(self.state_changes(path))
        email = self.c.email_ids_with_subject("after verification")[0]
        self.c.ok("Email/set", {"update": {email: {"keywords/$seen": True}}})
        pushed = wait_until(lambda: self.state_changes(path)[before:], DELIVERY_TIMEOUT,
                            "a Mailbox StateChange")
        self.assertEqual(set(pushed[-1]["body"]["changed"][self.aid]), {"Mailbox"}, pushed[-1])
        # Destroyed: gone from /get.
        resp = self.c.ok("PushSubscription/set", {"destroy": [sub_id]})
        self.assertEqual(resp["destroyed"], [sub_id], resp)
        self.assertEqual(self.c.ok("PushSubscription/get", {"ids": [sub_id]})["notFound"], [sub_id])

    def test_a_subscription_the_push_service_calls_gone_is_dropped_rfc8030_7_3(self):
        path = "/push/gone"
        sub_id = self.subscribe(path)
        code = self.verification(sub_id)["body"]["verificationCode"]
        self.c.ok("PushSubscription/set", {"update": {sub_id: {"verificationCode": code}}})
        with self.receiver.lock:
            self.receiver.responses = [410]
        self.deliver(f"gone {time.time_ns()}")
        wait_until(lambda: not any(s["id"] == sub_id
                                   for s in self.c.ok("PushSubscription/get", {})["list"]),
                   DELIVERY_TIMEOUT, "the subscription dropped after 410")

    def test_bad_subscriptions_are_refused_and_expiry_is_capped_rfc8620_7_2(self):
        resp = self.c.ok("PushSubscription/set", {"create": {
            "plain": {"deviceClientId": "d", "url": f"http://127.0.0.1:{self.receiver.port}/x"},
            "keys": {"deviceClientId": "d", "url": self.receiver.url("/k"),
                     "keys": {"p256dh": "x", "auth": "y"}},
            "nodevice": {"url": self.receiver.url("/n")},
            "far": {"deviceClientId": "d", "url": self.receiver.url("/far"),
                    "expires": "2099-01-01T00:00:00Z"},
        }})
        for cid, prop in (("plain", "url"), ("keys", "keys"), ("nodevice", "deviceClientId")):
            err = resp["notCreated"][cid]
            self.assertEqual((err["type"], err["properties"]), ("invalidProperties", [prop]), resp)
        # The server keeps subscriptions at most a week; the client renews by updating.
        expires = resp["created"]["far"]["expires"]
        self.assertLess(expires, "2099", resp)
        _, err = self.c.one("PushSubscription/set", {"ifInState": "1", "destroy": []})
        self.assertEqual(err["type"], "invalidArguments", err)


if __name__ == "__main__":
    unittest.main()

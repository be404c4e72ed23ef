"""Issue 13 (hostile users and networks), the HTTP/JMAP items, against the real binary:

* item 1: a chain of `Core/echo` calls that each reference the previous result twice stops
  at maxSizeResponse (`requestTooLarge`) instead of building hundreds of MB;
* item 4: per-IP connection cap on the `http` listener (503 beyond it) while SMTP and IMAP
  keep answering; slowloris (a request head sent a byte at a time) and idle connections are
  cut off by `limits.http_header_timeout` / `limits.http_idle_timeout`;
* item 8: an open WebSocket and EventSource end within seconds after `/auth/revoke`;
* item 18: security headers on `/jmap/*`, downloads of active types as octet-stream;
* item 19: a WebSocket from a foreign Origin with browser-attached credentials gets 403;
* item 20: the fifth concurrent upload of one account gets 429.

The slow load variants (20,000 idle connections, the 19/32-call amplification with figures)
are in `scripts/security-load`.
"""

from __future__ import annotations

import http.client
import select
import socket
import time
import unittest

from harness import ALICE, ALICE_PW, IO_TIMEOUT, wait_until
from jmapclient import (
    CAP_CORE,
    EventSource,
    JmapHttp,
    JmapServerTestCase,
    WebSocketJmap,
    bearer_auth,
    basic_auth,
    password_grant,
)

PER_IP = 20


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def http_get_status(addr, path: str = "/healthz", timeout: float = IO_TIMEOUT) -> int | None:
    """Status of one GET, or None when the server closed or reset the connection."""
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status
    except (ConnectionError, http.client.HTTPException, socket.timeout, OSError):
        return None
    finally:
        conn.close()


def smtp_greets(addr) -> bool:
    with socket.create_connection(addr, timeout=IO_TIMEOUT) as s:
        return s.recv(512).startswith(b"220")


def imap_greets(addr) -> bool:
    with socket.create_connection(addr, timeout=IO_TIMEOUT) as s:
        return s.recv(512).startswith(b"* OK")


def closed_within(sock: socket.socket, seconds: float, dribble: bytes | None = None) -> float | None:
    """Seconds until the server closed `sock` (sending `dribble` every 0.2 s), or None."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            if dribble is not None:
                sock.sendall(dribble)
            data = sock.recv(4096)
            if not data:
                return time.monotonic() - start
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - start
    return None


class HttpConnectionCapTest(JmapServerTestCase):
    limits_toml = f"max_connections_per_ip = {PER_IP}\n"

    def test_connections_over_the_per_ip_cap_are_refused_and_other_protocols_keep_answering(self):
        http_addr = self.server.addr("http")
        held: list[http.client.HTTPConnection] = []
        try:
            # Each held connection answered one request and stays open (keep-alive), so it
            # is surely counted; a connection refused while an earlier one was still closing
            # is replaced.
            deadline = time.monotonic() + IO_TIMEOUT
            while len(held) < PER_IP:
                self.assertLess(time.monotonic(), deadline, "could not hold the connections")
                conn = http.client.HTTPConnection(http_addr[0], http_addr[1], timeout=IO_TIMEOUT)
                conn.request("GET", "/healthz")
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    held.append(conn)
                else:
                    conn.close()
            # The 21st to 30th connection is refused (503, or closed before a response).
            refused = [http_get_status(http_addr) for _ in range(10)]
            self.assertTrue(all(s in (503, None) for s in refused), refused)
            self.assertIn(503, refused)
            # The other listeners are not starved.
            self.assertTrue(smtp_greets(self.server.addr("smtp")))
            self.assertTrue(imap_greets(self.server.addr("imap")))
        finally:
            for s in held:
                s.close()
        wait_until(lambda: http_get_status(http_addr) == 200, IO_TIMEOUT,
                   "the http listener to accept again once the held connections closed")


class HttpTimeoutTest(JmapServerTestCase):
    limits_toml = 'http_header_timeout = "1s"\nhttp_idle_timeout = "2s"\n'

    def test_slowloris_request_head_is_cut_off_at_the_header_timeout(self):
        s = socket.create_connection(self.server.addr("http"), timeout=IO_TIMEOUT)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            took = closed_within(s, 10, dribble=b"X")
        finally:
            s.close()
        self.assertIsNotNone(took, "a request head dribbled a byte at a time was never cut off")
        self.assertLess(took, 5)

    def test_silent_connection_is_closed(self):
        s = socket.create_connection(self.server.addr("http"), timeout=IO_TIMEOUT)
        try:
            took = closed_within(s, 10)
        finally:
            s.close()
        self.assertIsNotNone(took, "an idle connection was never closed")
        self.assertLess(took, 5)

    def test_ordinary_requests_and_quiet_push_still_work(self):
        self.assertEqual(http_get_status(self.server.addr("http")), 200)
        tokens = password_grant(self.server.addr("http"), ALICE, ALICE_PW)
        ws = WebSocketJmap(self.server.addr("http"), bearer_auth(tokens["access_token"]))
        try:
            self.assertEqual(ws.status, 101)
            # Quiet for longer than the idle timeout: keep-alive pings hold it open.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                try:
                    fin, opcode, payload = ws.recv_frame(deadline)
                except TimeoutError:
                    break
                if opcode == 0x9:
                    ws.send_frame(0xA, payload)
                self.assertNotEqual(opcode, 0x8, "the quiet WebSocket was closed")
            ws.send_json({"@type": "Request", "id": "r", "using": [CAP_CORE],
                          "methodCalls": [["Core/echo", {"still": "open"}, "c"]]})
            _, resp = ws.recv_json(IO_TIMEOUT)
            self.assertEqual(resp["methodResponses"][0][1], {"still": "open"})
        finally:
            ws.close()


class JmapAbuseTest(JmapServerTestCase):
    def setUp(self):
        super().setUp()
        self.http = JmapHttp(self.server.addr("http"), basic_auth(ALICE, ALICE_PW))

    def test_doubling_back_references_stop_at_max_size_response(self):
        session = self.http.session()
        limit = session["capabilities"][CAP_CORE].get("maxSizeResponse", 16 << 20)
        calls = [["Core/echo", {"s": "a" * 1024}, "c0"]]
        for i in range(1, 18):
            ref = {"resultOf": f"c{i - 1}", "name": "Core/echo", "path": ""}
            calls.append(["Core/echo", {"#l": ref, "#r": ref}, f"c{i}"])
        before = peak_rss_mib(self.server.proc.pid)
        r = self.http.post_api({"using": [CAP_CORE], "methodCalls": calls})
        after = peak_rss_mib(self.server.proc.pid)
        self.assertEqual(r.status, 200)
        self.assertLess(len(r.body), limit + 64 * 1024)
        kinds = [args.get("type") for name, args, _ in r.json()["methodResponses"] if name == "error"]
        self.assertIn("requestTooLarge", kinds)
        # Without the bound the 17 doublings build 128 MiB of JSON and ~1 GiB of RSS.
        self.assertLess(after - before, 200, f"peak RSS grew {before:.0f} -> {after:.0f} MiB")

    def test_jmap_responses_have_security_headers_and_active_downloads_are_octet_stream(self):
        aid = self.http.account_id
        up = self.http.request("POST", f"/jmap/upload/{aid}/", body=b"<script>alert(1)</script>",
                               headers={"Content-Type": "text/html"})
        self.assertEqual(up.status, 201, up)
        blob = up.json()["blobId"]
        for path in ["/jmap/session",
                     f"/jmap/download/{aid}/{blob}/x.html?accept=text/html",
                     f"/jmap/download/{aid}/{blob}/x.svg?accept=image/svg%2Bxml"]:
            r = self.http.request("GET", path)
            self.assertEqual(r.status, 200, path)
            self.assertEqual(r.headers.get("x-content-type-options"), "nosniff", path)
            self.assertEqual(r.headers.get("x-frame-options"), "DENY", path)
            self.assertIn("frame-ancestors 'none'", r.headers.get("content-security-policy", ""))
            if "download" in path:
                self.assertEqual(r.headers["content-type"], "application/octet-stream", path)
                self.assertTrue(r.headers["content-disposition"].startswith("attachment"))

    def test_websocket_from_a_foreign_origin_with_ambient_credentials_is_refused(self):
        addr = self.server.addr("http")
        auth = basic_auth(ALICE, ALICE_PW)

        def upgrade(extra: str) -> int:
            with socket.create_connection(addr, timeout=IO_TIMEOUT) as s:
                s.sendall((f"GET /jmap/ws HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jmap\r\n"
                           f"{extra}\r\n").encode())
                return int(s.recv(1024).split()[1])

        self.assertEqual(upgrade(f"Authorization: {auth}\r\nOrigin: https://evil.example\r\n"), 403)
        self.assertEqual(
            upgrade(f"Authorization: {auth}\r\nOrigin: http://{addr[0]}:{addr[1]}\r\n"), 101)
        self.assertEqual(upgrade(f"Authorization: {auth}\r\n"), 101)

    def test_open_websocket_and_eventsource_end_within_seconds_after_sign_out(self):
        addr = self.server.addr("http")
        tokens = password_grant(addr, ALICE, ALICE_PW)
        auth = bearer_auth(tokens["access_token"])
        ws = WebSocketJmap(addr, auth)
        es = EventSource(addr, auth)
        try:
            self.assertEqual(ws.status, 101)
            r = JmapHttp(addr, None).request(
                "POST", "/auth/revoke", body=f"token={tokens['access_token']}".encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=False)
            self.assertEqual(r.status, 200)
            start = time.monotonic()
            closed = None
            deadline = start + 10
            while time.monotonic() < deadline:
                try:
                    _, opcode, payload = ws.recv_frame(deadline)
                except (TimeoutError, ConnectionError):
                    closed = "eof"
                    break
                if opcode == 0x8:
                    closed = int.from_bytes(payload[:2], "big")
                    break
            self.assertEqual(closed, 1008, "the WebSocket was not closed with 1008")
            self.assertLess(time.monotonic() - start, 5)
            self.assertTrue(es.wait_closed(5), "the EventSource stream did not end")
        finally:
            ws.close()
            es.close()

    def test_fifth_concurrent_upload_is_refused(self):
        addr = self.server.addr("http")
        aid = self.http.account_id
        auth = basic_auth(ALICE, ALICE_PW)

        def start_upload() -> socket.socket:
            # A body that never comes keeps the upload running.
            s = socket.create_connection(addr, timeout=IO_TIMEOUT)
            s.sendall((f"POST /jmap/upload/{aid}/ HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: {auth}\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 1000000\r\n\r\npartial").encode())
            return s

        def fifth() -> int:
            return self.http.request("POST", f"/jmap/upload/{aid}/", body=b"x",
                                     headers={"Content-Type": "text/plain"}).status

        held = [start_upload() for _ in range(4)]
        try:
            def four_running_and_fifth_refused() -> bool:
                # A held upload that was itself refused (it raced an earlier probe) is
                # answered at once: replace it.
                answered, _, _ = select.select(held, [], [], 0)
                for s in answered:
                    held.remove(s)
                    s.close()
                    held.append(start_upload())
                return not answered and fifth() == 429

            wait_until(four_running_and_fifth_refused, IO_TIMEOUT,
                       "the fifth concurrent upload to get 429")
        finally:
            for s in held:
                s.close()
        wait_until(lambda: fifth() == 201, IO_TIMEOUT, "uploads to be accepted again")


if __name__ == "__main__":
    unittest.main()

"""Small JMAP clients for the end-to-end suite, written against the RFCs only:

* `JmapHttp`       — raw JSON over HTTP/1.1 (http.client): session, API, upload/download, tokens.
* `EventSource`    — an RFC 8620 §7.3 EventSource subscriber (streamed `text/event-stream`).
* `WebSocketJmap`  — a minimal RFC 6455 client (handshake, masked frames) speaking the RFC 8887
                     `jmap` subprotocol (Request/Response, WebSocketPushEnable).
* `jmapc_client()` — the `jmapc` library (PyPI) pointed at our plain-HTTP listener.
* `JmapServerTestCase` — `harness.ServerTestCase` with the `http` listener enabled.

Nothing here sleeps a fixed time: every wait has a deadline.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import json
import os
import queue
import socket
import struct
import sys
import threading
import time
import urllib.parse

from harness import (
    ALICE,
    IO_TIMEOUT,
    LISTENERS,
    Server,
    ServerTestCase,
    SmtpSink,
    make_message,
)

CAP_CORE = "urn:ietf:params:jmap:core"
CAP_MAIL = "urn:ietf:params:jmap:mail"
CAP_SUBMISSION = "urn:ietf:params:jmap:submission"
CAP_VACATION = "urn:ietf:params:jmap:vacationresponse"
CAP_WEBSOCKET = "urn:ietf:params:jmap:websocket"
USING_MAIL = [CAP_CORE, CAP_MAIL]
USING_ALL = [CAP_CORE, CAP_MAIL, CAP_SUBMISSION]

ERROR_URN = "urn:ietf:params:jmap:error:"
# RFC 6455 §1.3: the GUID hashed with the client key for Sec-WebSocket-Accept.
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_TEXT, WS_CLOSE, WS_PING, WS_PONG = 0x1, 0x8, 0x9, 0xA


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def bearer_auth(token: str) -> str:
    return f"Bearer {token}"


class HttpResult:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AssertionError(f"HTTP {self.status} body is not JSON: {self.body[:300]!r}") from exc

    def __repr__(self):
        return f"HttpResult({self.status}, {self.headers.get('content-type')}, {self.body[:300]!r})"


class JmapHttp:
    """Raw JMAP over HTTP: every call opens a fresh connection (no shared state between tests)."""

    def __init__(self, addr: tuple[str, int], auth: str | None):
        self.addr = addr
        self.auth = auth
        self._session = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, auth: str | None | bool = True,
                timeout: float = IO_TIMEOUT) -> HttpResult:
        conn = http.client.HTTPConnection(self.addr[0], self.addr[1], timeout=timeout)
        try:
            h = dict(headers or {})
            credentials = self.auth if auth is True else (auth or None)
            if credentials:
                h["Authorization"] = credentials
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return HttpResult(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    # ---- RFC 8620 §2 session ------------------------------------------------------------

    def session(self, refresh: bool = False) -> dict:
        if self._session is None or refresh:
            r = self.request("GET", "/.well-known/jmap")
            if r.status != 200:
                raise AssertionError(f"GET /.well-known/jmap: {r!r}")
            self._session = r.json()
        return self._session

    @property
    def account_id(self) -> str:
        return self.session()["primaryAccounts"][CAP_MAIL]

    def api_path(self) -> str:
        return urllib.parse.urlsplit(self.session()["apiUrl"]).path

    # ---- RFC 8620 §3 API ------------------------------------------------------------------

    def post_api(self, body: bytes | str | dict, content_type: str = "application/json") -> HttpResult:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        return self.request("POST", "/jmap/api", body=body, headers={"Content-Type": content_type})

    def call(self, method_calls: list, using: list[str] | None = None, **extra) -> dict:
        """Sends a Request; returns the Response object (asserts HTTP 200)."""
        req = {"using": using or USING_ALL, "methodCalls": method_calls, **extra}
        r = self.post_api(req)
        if r.status != 200:
            raise AssertionError(f"JMAP request failed: {r!r}\nrequest: {json.dumps(req)[:2000]}")
        return r.json()

    def one(self, method: str, args: dict, using: list[str] | None = None) -> tuple[str, dict]:
        """One method call with `accountId` filled in; returns (response name, arguments)."""
        args = {"accountId": self.account_id, **args}
        resp = self.call([[method, args, "c0"]], using)
        name, result, call_id = resp["methodResponses"][0]
        if call_id != "c0":
            raise AssertionError(f"call id mismatch: {resp!r}")
        return name, result

    def ok(self, method: str, args: dict, using: list[str] | None = None) -> dict:
        name, result = self.one(method, args, using)
        if name != method:
            raise AssertionError(f"{method} failed: {name} {result!r}")
        return result

    # ---- helpers over the Mail model (RFC 8621) -------------------------------------------

    def mailbox_by_role(self, role: str) -> dict:
        mailboxes = self.ok("Mailbox/get", {"ids": None})["list"]
        for m in mailboxes:
            if m.get("role") == role:
                return m
        raise AssertionError(f"no mailbox with role {role!r}: {[m.get('name') for m in mailboxes]}")

    def email_ids_with_subject(self, subject: str, mailbox_id: str | None = None) -> list[str]:
        cond: dict = {"subject": subject}
        if mailbox_id:
            cond["inMailbox"] = mailbox_id
        return self.ok("Email/query", {"filter": cond})["ids"]

    def email_state(self) -> str:
        return self.ok("Email/get", {"ids": []})["state"]


# --------------------------------------------------------------------------------------------
# OAuth-style token endpoint (POST /auth/token)
# --------------------------------------------------------------------------------------------


def token_request(addr, params: dict[str, str]) -> HttpResult:
    body = urllib.parse.urlencode(params).encode()
    return JmapHttp(addr, None).request(
        "POST", "/auth/token", body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=False)


def password_grant(addr, user: str, password: str) -> dict:
    r = token_request(addr, {"grant_type": "password", "username": user, "password": password})
    if r.status != 200:
        raise AssertionError(f"password grant failed: {r!r}")
    return r.json()


# --------------------------------------------------------------------------------------------
# EventSource (RFC 8620 §7.3)
# --------------------------------------------------------------------------------------------


class EventSource:
    """Streams `GET /jmap/eventsource` over a raw socket (HTTP/1.1, chunked or close-delimited
    body); a reader thread parses events into a queue.

    Once the constructor returns, the server has answered with its headers, i.e. the
    subscription exists (the server subscribes before it responds)."""

    def __init__(self, addr, auth: str, types: str = "*", closeafter: str = "no", ping: int = 0):
        qs = urllib.parse.urlencode({"types": types, "closeafter": closeafter, "ping": ping})
        self.sock = socket.create_connection(addr, timeout=IO_TIMEOUT)
        self.sock.sendall((
            f"GET /jmap/eventsource?{qs} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\n"
            f"Authorization: {auth}\r\nAccept: text/event-stream\r\n\r\n").encode())
        self.file = self.sock.makefile("rb")
        status_line = self.file.readline().decode("latin-1")
        parts = status_line.split()
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        self.headers: dict[str, str] = {}
        while True:
            line = self.file.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.content_type = self.headers.get("content-type", "")
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.events: "queue.Queue[tuple[float, str, str] | None]" = queue.Queue()
        self._closed = False
        if self.status == 200:
            self.sock.settimeout(None)  # an idle stream is not an error; close() unblocks it
            threading.Thread(target=self._read, daemon=True).start()

    def _body_chunks(self):
        """The decoded body, piece by piece (RFC 9112 §7.1 chunked coding)."""
        if not self.chunked:
            while True:
                data = self.file.read1(65536)
                if not data:
                    return
                yield data
        while True:
            size_line = self.file.readline()
            if not size_line:
                return
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            data = self.file.read(size)
            self.file.readline()  # CRLF after the chunk
            if len(data) < size:
                return
            yield data

    def _read(self):
        event, data, pending = "message", [], b""
        try:
            for piece in self._body_chunks():
                pending += piece
                while b"\n" in pending:
                    raw, _, pending = pending.partition(b"\n")
                    line = raw.decode("utf-8", "replace").rstrip("\r")
                    if line == "":
                        if data:
                            self.events.put((time.monotonic(), event, "\n".join(data)))
                        event, data = "message", []
                    elif line.startswith(":"):
                        continue  # comment / keep-alive
                    else:
                        field, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if field == "event":
                            event = value
                        elif field == "data":
                            data.append(value)
        except (OSError, ValueError):
            pass
        finally:
            self.events.put(None)

    def next_event(self, timeout: float, kind: str = "state") -> tuple[float, dict] | None:
        """(arrival time, parsed data) of the next `kind` event, None at the deadline or EOF."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                item = self.events.get(timeout=remaining)
            except queue.Empty:
                return None
            if item is None:
                return None
            at, event, data = item
            if event == kind:
                return at, json.loads(data)

    def wait_closed(self, timeout: float) -> bool:
        """True when the server ended the stream within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                if self.events.get(timeout=remaining) is None:
                    return True
            except queue.Empty:
                return False

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# --------------------------------------------------------------------------------------------
# WebSocket (RFC 6455) with the JMAP subprotocol (RFC 8887)
# --------------------------------------------------------------------------------------------


class WebSocketError(AssertionError):
    pass


class WebSocketJmap:
    """A minimal RFC 6455 client: HTTP/1.1 Upgrade handshake, masked client frames,
    unfragmented or fragmented text messages, ping/pong, close."""

    def __init__(self, addr, auth: str, path: str = "/jmap/ws", protocol: str = "jmap"):
        self.sock = socket.create_connection(addr, timeout=IO_TIMEOUT)
        self.buf = b""
        # StateChange pushes that arrived while `request` waited for its Response.
        self.pending: list[tuple[float, dict]] = []
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {protocol}\r\nAuthorization: {auth}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = self._read_until(b"\r\n\r\n", time.monotonic() + IO_TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
        self.status = int(lines[0].split()[1]) if len(lines[0].split()) > 1 else 0
        if self.status == 101:
            expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            if self.headers.get("sec-websocket-accept") != expected:
                raise WebSocketError(f"bad Sec-WebSocket-Accept in {self.headers!r}")

    def _read_until(self, marker: bytes, deadline: float) -> bytes:
        while marker not in self.buf:
            self._fill(deadline)
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _fill(self, deadline: float):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("websocket read deadline")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as exc:
            raise TimeoutError("websocket read deadline") from exc
        if not chunk:
            raise ConnectionError("websocket peer closed")
        self.buf += chunk

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send_frame(self, opcode: int, payload: bytes):
        # RFC 6455 §5.2/§5.3: FIN set, client frames always masked.
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, obj: dict):
        self.send_frame(WS_TEXT, json.dumps(obj).encode())

    def recv_frame(self, deadline: float) -> tuple[bool, int, bytes]:
        b0, b1 = self._read_exact(2, deadline)
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        if b1 & 0x80:
            raise WebSocketError("server frames must not be masked (RFC 6455 §5.1)")
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read_exact(2, deadline))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read_exact(8, deadline))
        return fin, opcode, self._read_exact(n, deadline)

    def recv_json(self, timeout: float) -> tuple[float, dict]:
        """(arrival time, message) of the next text message; answers pings on the way."""
        deadline = time.monotonic() + timeout
        message, first_opcode = b"", None
        while True:
            fin, opcode, payload = self.recv_frame(deadline)
            if opcode == WS_PING:
                self.send_frame(WS_PONG, payload)
                continue
            if opcode == WS_PONG:
                continue
            if opcode == WS_CLOSE:
                raise ConnectionError(f"websocket closed by server: {payload!r}")
            if first_opcode is None:
                first_opcode = opcode
            message += payload
            if fin:
                if first_opcode != WS_TEXT:
                    raise WebSocketError(f"expected a text message, got opcode {first_opcode}")
                return time.monotonic(), json.loads(message)

    def request(self, method_calls: list, request_id: str, using: list[str] | None = None,
                timeout: float = IO_TIMEOUT) -> dict:
        """RFC 8887 §4.3.1 Request → the Response (or RequestError) with our requestId;
        StateChange pushes that arrive first are kept in `self.pending`."""
        self.send_json({"@type": "Request", "id": request_id, "using": using or USING_ALL,
                        "methodCalls": method_calls})
        deadline = time.monotonic() + timeout
        while True:
            at, msg = self.recv_json(max(0.0, deadline - time.monotonic()))
            if msg.get("requestId") == request_id:
                return msg
            self.pending.append((at, msg))

    def next_push(self, timeout: float) -> tuple[float, dict] | None:
        """(arrival time, message) of the next StateChange, None at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                at, msg = self.pending.pop(0)
                if msg.get("@type") == "StateChange":
                    return at, msg
            try:
                at, msg = self.recv_json(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return None
            self.pending.append((at, msg))

    def close(self):
        try:
            self.send_frame(WS_CLOSE, struct.pack("!H", 1000))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# jmapc (a third-party JMAP client library, https://pypi.org/project/jmapc/)
# --------------------------------------------------------------------------------------------


def jmapc_client(addr, user: str | None = None, password: str | None = None,
                 token: str | None = None):
    """A `jmapc.Client` for our listener. jmapc always fetches the session resource from
    `https://{host}/.well-known/jmap`; the test listener is plain HTTP, so the subclass only
    changes that URL's scheme. Everything after it (apiUrl, uploadUrl, eventSourceUrl) comes
    from the session resource the server returned, as the RFC intends."""
    import jmapc  # imported lazily so the raw tests run even when jmapc is missing
    from jmapc.session import Session

    class PlainHttpClient(jmapc.Client):
        @functools.cached_property
        def jmap_session(self) -> Session:
            r = self.requests_session.get(f"http://{self._host}/.well-known/jmap", timeout=30)
            r.raise_for_status()
            return Session.from_dict(r.json())

    host = f"{addr[0]}:{addr[1]}"
    if token:
        return PlainHttpClient.create_with_api_token(host, token)
    return PlainHttpClient.create_with_password(host, user, password)


# --------------------------------------------------------------------------------------------
# Test base class and helpers
# --------------------------------------------------------------------------------------------


class JmapServerTestCase(ServerTestCase):
    """A `ServerTestCase` whose server also listens on `http` (the JMAP listener)."""

    listeners = LISTENERS + ("http",)

    @classmethod
    def setUpClass(cls):
        # Same as ServerTestCase.setUpClass, plus the `http` listener (harness.Server already
        # takes `listeners`; ServerTestCase does not pass it through).
        super(ServerTestCase, cls).setUpClass()
        cls.sink = SmtpSink() if cls.with_sink else None
        cls.server = Server(
            name=cls.__name__,
            relay=cls.sink.addr if cls.sink else None,
            max_message_size=cls.max_message_size,
            extra_toml=cls.extra_toml,
            auth_toml=cls.auth_toml,
            outbound_toml=cls.outbound_toml,
            limits_toml=cls.limits_toml,
            listeners=cls.listeners,
        )
        try:
            if cls.fixture:
                cls.server.standard_fixture()
            cls.server.start()
        except BaseException:
            sys.stderr.write(cls.server.log_tail() + "\n")
            cls.server.cleanup()
            if cls.sink:
                cls.sink.close()
            raise

    def http_addr(self) -> tuple[str, int]:
        return self.server.addr("http")

    def jmap(self, user: str, password: str) -> JmapHttp:
        return JmapHttp(self.http_addr(), basic_auth(user, password))

    def deliver(self, subject: str, to: str = ALICE, body: str = "Hello from the JMAP e2e suite.\r\n") -> float:
        """Delivers one message over the `smtp` listener; returns the time just before MAIL FROM
        (so a push deadline measured from it includes the whole SMTP transaction)."""
        s = self.server.smtp("smtp")
        try:
            s.ehlo("client.test")
            started_at = time.monotonic()
            refused = s.sendmail("sender@remote.test", [to], make_message(subject, to=to, body=body))
            if refused:
                raise AssertionError(f"recipients refused: {refused!r}")
        finally:
            try:
                s.quit()
            except Exception:  # noqa: BLE001
                s.close()
        return started_at

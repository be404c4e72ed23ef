"""JMAP end to end (issue 4): the real `bulwark serve` with its `http` listener, driven by

* the `jmapc` client library (PyPI; tests/e2e/requirements.txt) for the ordinary flow,
* raw JSON over HTTP for every RFC 8620 §3.6 error type (and never a 500),
* imaplib / a raw IMAP IDLE session for cross-protocol changes,
* an EventSource and a hand-written RFC 6455 WebSocket subscriber for push,
* the `POST /auth/token` endpoint for Bearer tokens (also across a restart).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
import unittest

from harness import (
    ALICE,
    ALICE_PW,
    BOB,
    BOB_PW,
    DELIVERY_TIMEOUT,
    IO_TIMEOUT,
    imap_check,
    imap_search,
    make_message,
    safe_logout,
    wait_for_subject,
    wait_until,
)
from jmapclient import (
    CAP_CORE,
    CAP_MAIL,
    CAP_VACATION,
    CAP_WEBSOCKET,
    ERROR_URN,
    USING_ALL,
    USING_MAIL,
    EventSource,
    JmapHttp,
    JmapServerTestCase,
    WebSocketJmap,
    basic_auth,
    bearer_auth,
    jmapc_client,
    password_grant,
    token_request,
)

# Issue 4: push must arrive within 1 s of the delivery; IMAP IDLE sees a JMAP change within 2 s.
PUSH_DEADLINE = 1.0
IDLE_DEADLINE = 2.0

HAVE_JMAPC = importlib.util.find_spec("jmapc") is not None


def method_error(resp: dict, index: int = 0) -> dict:
    name, args, _ = resp["methodResponses"][index]
    if name != "error":
        raise AssertionError(f"expected an error response, got {name} {args!r}")
    return args


# --------------------------------------------------------------------------------------------
# 1. A real JMAP client library
# --------------------------------------------------------------------------------------------


class JmapClientLibraryTest(JmapServerTestCase):
    """jmapc does session discovery, Mailbox/get, Email/query+get with a back-reference and
    EmailSubmission against the server."""

    @classmethod
    def setUpClass(cls):
        if not HAVE_JMAPC:
            msg = ("the jmapc JMAP client library is not installed: "
                   "python3 -m pip install -r tests/e2e/requirements.txt")
            # Same convention as harness.require_tool: missing clients fail unless allowed.
            if os.environ.get("BULWARK_E2E_ALLOW_MISSING_TOOLS"):
                raise unittest.SkipTest(msg)
            raise AssertionError(msg)
        super().setUpClass()

    def test_jmapc_discovers_session_and_reads_mailboxes(self):
        from jmapc.methods import MailboxGet, MailboxGetResponse

        client = jmapc_client(self.http_addr(), ALICE, ALICE_PW)
        session = client.jmap_session
        self.assertEqual(session.username, ALICE)
        self.assertIn(CAP_MAIL, session.capabilities.urns)
        self.assertTrue(session.api_url.endswith("/jmap/api"), session.api_url)
        resp = client.request(MailboxGet(ids=None))
        self.assertIsInstance(resp, MailboxGetResponse, resp)
        roles = {m.role for m in resp.data}
        self.assertIn("inbox", roles)
        for role in ("sent", "drafts", "trash"):
            self.assertIn(role, roles, f"special-use mailbox {role} missing: {resp.data}")

    def test_jmapc_queries_and_gets_email_by_back_reference(self):
        from jmapc import EmailQueryFilterCondition, Ref
        from jmapc.methods import EmailGet, EmailGetResponse, EmailQuery, MailboxGet

        subject = f"jmapc query {time.time_ns()}"
        self.deliver(subject, body="Body for jmapc.\r\n")
        wait_for_subject(self.server, ALICE, ALICE_PW, subject)
        client = jmapc_client(self.http_addr(), ALICE, ALICE_PW)
        inbox = next(m for m in client.request(MailboxGet(ids=None)).data if m.role == "inbox")
        results = client.request([
            EmailQuery(filter=EmailQueryFilterCondition(in_mailbox=inbox.id, text=subject)),
            EmailGet(ids=Ref("/ids"), properties=["id", "subject", "from", "mailboxIds",
                                                  "textBody", "bodyValues", "preview"],
                     fetch_text_body_values=True),
        ], raise_errors=True)
        get = results[1].response
        self.assertIsInstance(get, EmailGetResponse)
        self.assertEqual(len(get.data), 1, get.data)
        email = get.data[0]
        self.assertEqual(email.subject, subject)
        self.assertEqual(email.mail_from[0].email, "sender@remote.test")
        self.assertEqual(email.mailbox_ids, {inbox.id: True})
        part = email.text_body[0].part_id
        self.assertIn("Body for jmapc.", email.body_values[part].value)

    def test_jmapc_email_submission_delivers_to_local_recipient(self):
        from jmapc import (Address, Email, EmailAddress, EmailBodyPart, EmailBodyValue,
                           EmailSubmission, Envelope)
        from jmapc.methods import (EmailSet, EmailSubmissionSet, EmailSubmissionSetResponse,
                                   IdentityGet, MailboxQuery)
        from jmapc import MailboxQueryFilterCondition

        client = jmapc_client(self.http_addr(), ALICE, ALICE_PW)
        identity = next(i for i in client.request(IdentityGet()).data if i.email == ALICE)
        drafts = client.request(MailboxQuery(filter=MailboxQueryFilterCondition(role="drafts")))
        self.assertEqual(len(drafts.ids), 1, drafts)
        subject = f"jmapc submission {time.time_ns()}"
        results = client.request([
            EmailSet(create={"draft": Email(
                mail_from=[EmailAddress(name="Alice", email=ALICE)],
                to=[EmailAddress(name="Bob", email=BOB)],
                subject=subject,
                keywords={"$draft": True},
                mailbox_ids={drafts.ids[0]: True},
                body_values={"body": EmailBodyValue(value="Sent with jmapc.\r\n")},
                text_body=[EmailBodyPart(part_id="body", type="text/plain")],
            )}),
            EmailSubmissionSet(
                on_success_destroy_email=["#sendIt"],
                create={"sendIt": EmailSubmission(
                    email_id="#draft", identity_id=identity.id,
                    envelope=Envelope(mail_from=Address(email=ALICE),
                                      rcpt_to=[Address(email=BOB)]))},
            ),
        ], raise_errors=True)
        sub = results[1].response
        self.assertIsInstance(sub, EmailSubmissionSetResponse)
        self.assertFalse(sub.not_created, sub.not_created)
        self.assertIn("sendIt", sub.created or {})
        # onSuccessDestroyEmail: an implicit Email/set destroying the draft follows (§7.5).
        self.assertEqual(len(results), 3, [r.response for r in results])
        text = wait_for_subject(self.server, BOB, BOB_PW, subject)
        self.assertIn(b"Sent with jmapc.", text)
        self.assertNotIn(b"\nBcc:", text)


# --------------------------------------------------------------------------------------------
# 2. Raw JSON: every error type, never a 500
# --------------------------------------------------------------------------------------------


class JmapErrorTest(JmapServerTestCase):
    """RFC 8620 §3.6.1 request-level problems (HTTP 400 + RFC 7807 document) and §3.6.2
    method-level errors (HTTP 200, an `error` response in place of the method's)."""

    def setUp(self):
        super().setUp()
        self.c = self.jmap(ALICE, ALICE_PW)

    def assert_problem(self, r, type_suffix: str, status: int = 400) -> dict:
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/problem+json"), r)
        doc = r.json()
        self.assertEqual(doc["type"], ERROR_URN + type_suffix, doc)
        self.assertEqual(doc["status"], status, doc)
        return doc

    def test_session_resource_points_at_this_listener(self):
        session = self.c.session()
        host, port = self.http_addr()
        base = f"http://{host}:{port}"
        self.assertEqual(session["username"], ALICE)
        self.assertEqual(session["apiUrl"], f"{base}/jmap/api")
        self.assertTrue(session["uploadUrl"].startswith(f"{base}/"), session["uploadUrl"])
        self.assertTrue(session["downloadUrl"].startswith(f"{base}/"), session["downloadUrl"])
        self.assertTrue(session["eventSourceUrl"].startswith(f"{base}/"), session["eventSourceUrl"])
        for template in ("{accountId}", "{blobId}", "{name}", "{type}"):
            self.assertIn(template, session["downloadUrl"])
        self.assertEqual(session["capabilities"][CAP_WEBSOCKET]["url"], f"ws://{host}:{port}/jmap/ws")
        self.assertIn(session["primaryAccounts"][CAP_MAIL], session["accounts"])
        for key in ("maxSizeUpload", "maxConcurrentUpload", "maxSizeRequest", "maxConcurrentRequests",
                    "maxCallsInRequest", "maxObjectsInGet", "maxObjectsInSet", "collationAlgorithms"):
            self.assertIn(key, session["capabilities"][CAP_CORE])

    def test_upload_then_download_round_trips_a_blob(self):
        aid = self.c.account_id
        data = b"blob bytes \x00\x01 for the e2e suite"
        up = self.c.request("POST", f"/jmap/upload/{aid}/", body=data,
                            headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(up.status, 201, up)
        blob = up.json()
        self.assertEqual(blob["size"], len(data))
        url = self.c.session()["downloadUrl"].format(accountId=aid, blobId=blob["blobId"],
                                                     name="x.bin", type="application/octet-stream")
        path = url.split("/", 3)[3]
        down = self.c.request("GET", "/" + path)
        self.assertEqual(down.status, 200, down)
        self.assertEqual(down.body, data)

    def test_not_json_is_a_notjson_problem(self):
        for body in (b"{not json", b"", b"\xff\xfe\x00", b'{"using": [], "methodCalls": [}'):
            with self.subTest(body=body):
                self.assert_problem(self.c.post_api(body), "notJSON")

    def test_wrong_shapes_are_notrequest_problems(self):
        bodies = [
            "[1, 2]",
            '"a string"',
            '{"using": "urn:ietf:params:jmap:core", "methodCalls": []}',
            '{"using": [], "methodCalls": {}}',
            '{"using": [1], "methodCalls": []}',
            '{"using": [], "methodCalls": [["Core/echo", {}, 1]]}',
            '{"using": [], "methodCalls": [["Core/echo", [], "c"]]}',
            '{"using": [], "methodCalls": [["Core/echo", {}]]}',
            '{"using": [], "methodCalls": [], "createdIds": []}',
        ]
        for body in bodies:
            with self.subTest(body=body):
                self.assert_problem(self.c.post_api(body), "notRequest")

    def test_unknown_capability_is_refused(self):
        r = self.c.post_api({"using": [CAP_CORE, "urn:example:nonsense"],
                             "methodCalls": [["Core/echo", {}, "c"]]})
        doc = self.assert_problem(r, "unknownCapability")
        self.assertIn("urn:example:nonsense", doc.get("detail", ""))

    def test_too_many_calls_is_a_limit_problem_naming_the_limit(self):
        limit = self.c.session()["capabilities"][CAP_CORE]["maxCallsInRequest"]
        calls = [["Core/echo", {"n": i}, f"c{i}"] for i in range(limit + 1)]
        doc = self.assert_problem(self.c.post_api({"using": [CAP_CORE], "methodCalls": calls}),
                                  "limit")
        self.assertEqual(doc.get("limit"), "maxCallsInRequest", doc)
        # Exactly at the limit is fine.
        resp = self.c.call(calls[:limit], [CAP_CORE])
        self.assertEqual(len(resp["methodResponses"]), limit)

    def test_oversize_request_is_a_limit_problem(self):
        limit = self.c.session()["capabilities"][CAP_CORE]["maxSizeRequest"]
        body = b'{"using": [], "methodCalls": [], "pad": "' + b"x" * limit + b'"}'
        doc = self.assert_problem(self.c.post_api(body), "limit")
        self.assertEqual(doc.get("limit"), "maxSizeRequest", doc)

    def test_unknown_method_and_method_without_capability_are_unknownmethod(self):
        resp = self.c.call([["Frobnicate/get", {}, "a"],
                            ["Mailbox/get", {"accountId": self.c.account_id}, "b"],
                            ["Core/echo", {"still": "runs"}, "c"]], [CAP_CORE])
        self.assertEqual(method_error(resp, 0)["type"], "unknownMethod")
        # Mailbox/get without urn:ietf:params:jmap:mail in `using` (§3.6.2).
        self.assertEqual(method_error(resp, 1)["type"], "unknownMethod")
        # Later calls still run after an error.
        self.assertEqual(resp["methodResponses"][2], ["Core/echo", {"still": "runs"}, "c"])

    def test_wrong_argument_types_are_invalidarguments(self):
        aid = self.c.account_id
        cases = [
            ("Mailbox/get", {"accountId": aid, "ids": "not-a-list"}),
            ("Email/get", {"accountId": aid, "ids": [], "properties": 5}),
            ("Email/query", {"accountId": aid, "limit": -1}),
            ("Email/query", {"accountId": aid, "filter": "subject"}),
            ("Email/changes", {"accountId": aid}),
            ("Email/set", {"accountId": aid, "update": []}),
            ("Mailbox/get", {"accountId": 42}),
        ]
        for method, args in cases:
            with self.subTest(method=method, args=args):
                resp = self.c.call([[method, args, "c"]])
                self.assertEqual(method_error(resp)["type"], "invalidArguments", resp)

    def test_unknown_account_is_accountnotfound(self):
        resp = self.c.call([["Mailbox/get", {"accountId": "no-such-account"}, "c"],
                            ["Email/query", {"accountId": "Zzzzzz"}, "d"]])
        self.assertEqual(method_error(resp, 0)["type"], "accountNotFound")
        self.assertEqual(method_error(resp, 1)["type"], "accountNotFound")

    def test_if_in_state_mismatch_is_statemismatch(self):
        aid = self.c.account_id
        resp = self.c.call([["Mailbox/set", {"accountId": aid, "ifInState": "bogus-state",
                                             "create": {"m": {"name": "never"}}}, "c"],
                            ["Email/set", {"accountId": aid, "ifInState": "0",
                                           "update": {}}, "d"]])
        self.assertEqual(method_error(resp, 0)["type"], "stateMismatch")
        names = [m["name"] for m in self.c.ok("Mailbox/get", {"ids": None})["list"]]
        self.assertNotIn("never", names, "a stateMismatch must not apply the changes")

    def test_bad_back_references_are_invalidresultreference(self):
        aid = self.c.account_id
        resp = self.c.call([
            ["Email/query", {"accountId": aid}, "q"],
            # A reference to a call id that does not exist.
            ["Email/get", {"accountId": aid,
                           "#ids": {"resultOf": "nope", "name": "Email/query", "path": "/ids"}}, "a"],
            # Right call id, wrong method name.
            ["Email/get", {"accountId": aid,
                           "#ids": {"resultOf": "q", "name": "Mailbox/get", "path": "/ids"}}, "b"],
            # A path that does not resolve.
            ["Email/get", {"accountId": aid,
                           "#ids": {"resultOf": "q", "name": "Email/query", "path": "/nothing/*"}}, "c"],
            # Both `ids` and `#ids` (§3.7: invalidArguments).
            ["Email/get", {"accountId": aid, "ids": [],
                           "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "d"],
        ])
        self.assertEqual(resp["methodResponses"][0][0], "Email/query")
        for i in (1, 2, 3):
            self.assertEqual(method_error(resp, i)["type"], "invalidResultReference", resp)
        self.assertEqual(method_error(resp, 4)["type"], "invalidArguments", resp)

    def test_too_many_ids_in_get_is_requesttoolarge(self):
        limit = self.c.session()["capabilities"][CAP_CORE]["maxObjectsInGet"]
        resp = self.c.call([["Email/get", {"accountId": self.c.account_id,
                                           "ids": [f"M{i}" for i in range(limit + 1)]}, "c"]])
        self.assertEqual(method_error(resp)["type"], "requestTooLarge")

    def test_invalid_ids_are_notfound_not_errors(self):
        resp = self.c.call([["Email/get", {"accountId": self.c.account_id,
                                           "ids": ["", "x" * 300, "M-1", "\u00e9"]}, "c"]])
        name, args, _ = resp["methodResponses"][0]
        self.assertEqual(name, "Email/get", args)
        self.assertEqual(args["list"], [])
        self.assertEqual(len(args["notFound"]), 4)

    def test_no_credentials_or_wrong_password_is_401_with_challenge(self):
        for auth in (None, basic_auth(ALICE, "wrong"), "Bearer not.a.token", "Negotiate abc"):
            with self.subTest(auth=auth):
                r = JmapHttp(self.http_addr(), auth).request("GET", "/.well-known/jmap")
                self.assertEqual(r.status, 401, r)
                self.assertIn("www-authenticate", r.headers)

    def test_garbage_never_yields_a_server_error(self):
        aid = self.c.account_id
        bodies = [
            b"null", b"0", b"[]", b"{}", b'{"using": null}', b"\x00" * 100,
            b'{"using": [], "methodCalls": [[]]}',
            json.dumps({"using": USING_ALL, "methodCalls": [
                ["Email/get", {"accountId": aid, "ids": None, "properties": ["nonsense"]}, "a"],
                ["Email/query", {"accountId": aid, "sort": [{"property": "nope"}]}, "b"],
                ["Email/query", {"accountId": aid, "filter": {"operator": "XOR", "conditions": []}}, "c"],
                ["Email/set", {"accountId": aid, "create": {"x": {"mailboxIds": "no"}}}, "d"],
                ["Email/set", {"accountId": aid, "update": {"M999": {"keywords/$seen": "yes"}}}, "e"],
                ["Mailbox/set", {"accountId": aid, "destroy": [None, 5]}, "f"],
                ["Email/changes", {"accountId": aid, "sinceState": "not-a-state"}, "g"],
                ["Email/import", {"accountId": aid, "emails": {"i": {"blobId": "G0"}}}, "h"],
                ["EmailSubmission/set", {"accountId": aid, "create": {"s": {}}}, "i"],
                ["Thread/get", {"accountId": aid, "ids": ["T" * 1000]}, "j"],
                ["SearchSnippet/get", {"accountId": aid, "emailIds": ["x"]}, "k"],
            ]}).encode(),
        ]
        for body in bodies:
            with self.subTest(body=body[:60]):
                r = self.c.post_api(body)
                self.assertLess(r.status, 500, r)
                if r.status == 200:
                    for name, args, _ in r.json()["methodResponses"]:
                        if name == "error":
                            self.assertNotIn(args["type"], ("serverFail", "serverPartialFail"), args)
        # Other endpoints with garbage.
        for method, path, body in [
            ("GET", "/jmap/download/x/y/z", None),
            ("GET", f"/jmap/download/{aid}/not-a-blob/name.txt", None),
            ("POST", "/jmap/upload/nope/", b"data"),
            ("POST", "/auth/token", b"%zz"),
            ("GET", "/jmap/api", None),
        ]:
            with self.subTest(path=path):
                r = self.c.request(method, path, body=body)
                self.assertLess(r.status, 500, r)
        self.assertTrue(self.server.running())


# --------------------------------------------------------------------------------------------
# 3 + 4. Cross-protocol (IMAP <-> JMAP on one change log) and push
# --------------------------------------------------------------------------------------------


class JmapCrossProtocolAndPushTest(JmapServerTestCase):
    def setUp(self):
        super().setUp()
        self.c = self.jmap(ALICE, ALICE_PW)

    def deliver_and_find(self, subject: str) -> str:
        self.deliver(subject)
        ids = wait_until(lambda: self.c.email_ids_with_subject(subject), DELIVERY_TIMEOUT,
                         f"{subject!r} visible over JMAP")
        self.assertEqual(len(ids), 1, ids)
        return ids[0]

    def idle_session(self):
        """A raw IMAP session (STARTTLS, LOGIN, SELECT INBOX) in IDLE."""
        raw = self.server.raw_imap(tls=False)
        self.addCleanup(raw.close)
        raw.ok("STARTTLS")
        raw.starttls()
        raw.login(ALICE, ALICE_PW)
        raw.ok("SELECT INBOX")
        tag = raw.tag()
        raw.send(f"{tag} IDLE\r\n".encode())
        cont = raw.read_line()
        self.assertTrue(cont.startswith(b"+"), cont)
        return raw, tag

    @staticmethod
    def read_untagged_until(raw, predicate, deadline: float) -> list[bytes]:
        seen = []
        while time.monotonic() < deadline:
            try:
                line = raw.read_line(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            if not line:
                break
            seen.append(line)
            if predicate(line):
                return seen
        raise AssertionError(f"IDLE saw no matching update within the deadline; got {seen!r}")

    # ---- 3. cross-protocol ----------------------------------------------------------------

    def test_imap_store_shows_up_in_email_changes(self):
        subject = f"imap flag {time.time_ns()}"
        email_id = self.deliver_and_find(subject)
        before = self.c.email_state()
        m = self.server.imap(ALICE, ALICE_PW)  # STARTTLS (self-signed cert, unverified)
        self.addCleanup(safe_logout, m)
        imap_check(m.select("INBOX"), "SELECT")
        uids = imap_search(m, "SUBJECT", f'"{subject}"', uid=True)
        self.assertEqual(len(uids), 1)
        imap_check(m.uid("STORE", str(uids[0]), "+FLAGS", r"(\Flagged)"), "STORE")

        changes = self.c.ok("Email/changes", {"sinceState": before})
        self.assertEqual(changes["oldState"], before)
        self.assertNotEqual(changes["newState"], before, "the state string must advance")
        self.assertIn(email_id, changes["updated"], changes)
        self.assertNotIn(email_id, changes["created"])
        got = self.c.ok("Email/get", {"ids": [email_id], "properties": ["keywords"]})
        self.assertEqual(got["list"][0]["keywords"].get("$flagged"), True, got)
        self.assertEqual(got["state"], changes["newState"])
        # Nothing changed since: an empty change set with the same state.
        again = self.c.ok("Email/changes", {"sinceState": changes["newState"]})
        self.assertEqual((again["created"], again["updated"], again["destroyed"]), ([], [], []))
        self.assertEqual(again["newState"], changes["newState"])

    def test_jmap_keyword_change_is_seen_by_imap_idle(self):
        subject = f"jmap seen {time.time_ns()}"
        email_id = self.deliver_and_find(subject)
        raw, tag = self.idle_session()
        resp = self.c.ok("Email/set", {"update": {email_id: {"keywords/$seen": True}}})
        self.assertIn(email_id, resp["updated"], resp)
        changed_at = time.monotonic()
        lines = self.read_untagged_until(
            raw, lambda l: re.match(rb"\* \d+ FETCH .*\\Seen", l) is not None,
            changed_at + IDLE_DEADLINE)
        self.assertTrue(lines)
        raw.send(b"DONE\r\n")
        done = raw.read_response(tag)
        self.assertIn(b" OK", done[-1])

    def test_jmap_move_is_seen_by_imap_idle_as_expunge(self):
        subject = f"jmap move {time.time_ns()}"
        email_id = self.deliver_and_find(subject)
        inbox = self.c.mailbox_by_role("inbox")
        created = self.c.ok("Mailbox/set", {"create": {"m": {"name": f"Moved{time.time_ns()}"}}})
        self.assertIn("m", created["created"], created)
        target = created["created"]["m"]["id"]
        raw, tag = self.idle_session()
        resp = self.c.ok("Email/set", {"update": {email_id: {
            f"mailboxIds/{inbox['id']}": None, f"mailboxIds/{target}": True}}})
        self.assertIn(email_id, resp["updated"], resp)
        changed_at = time.monotonic()
        self.read_untagged_until(raw, lambda l: re.match(rb"\* \d+ EXPUNGE", l) is not None
                                 or re.match(rb"\* VANISHED", l) is not None,
                                 changed_at + IDLE_DEADLINE)
        raw.send(b"DONE\r\n")
        raw.read_response(tag)
        got = self.c.ok("Email/get", {"ids": [email_id], "properties": ["mailboxIds"]})
        self.assertEqual(got["list"][0]["mailboxIds"], {target: True})

    def test_uploaded_message_imported_over_jmap_is_seen_over_imap(self):
        subject = f"imported {time.time_ns()}"
        raw = make_message(subject, body="Imported through Email/import.\r\n")
        aid = self.c.account_id
        up = self.c.request("POST", f"/jmap/upload/{aid}/", body=raw,
                            headers={"Content-Type": "message/rfc822"})
        self.assertEqual(up.status, 201, up)
        inbox = self.c.mailbox_by_role("inbox")["id"]
        resp = self.c.ok("Email/import", {"emails": {"i": {
            "blobId": up.json()["blobId"], "mailboxIds": {inbox: True},
            "keywords": {"$seen": True}, "receivedAt": "2024-01-02T03:04:05Z"}}})
        self.assertIn("i", resp["created"], resp)
        m = self.server.imap(ALICE, ALICE_PW)
        self.addCleanup(safe_logout, m)
        imap_check(m.select("INBOX", readonly=True), "SELECT")
        uids = imap_search(m, "SUBJECT", f'"{subject}"', uid=True)
        self.assertEqual(len(uids), 1)
        data = imap_check(m.uid("FETCH", str(uids[0]), "(FLAGS INTERNALDATE BODY.PEEK[])"), "FETCH")
        meta = data[0][0]
        self.assertIn(rb"\Seen", meta)
        # RFC 9051 date-day-fixed: " 2-Jan-2024" (space-padded) is the canonical form.
        self.assertRegex(meta, rb'INTERNALDATE "[ 0]2-Jan-2024 03:04:05 \+0000"')
        self.assertEqual(data[0][1], raw)

    # ---- 4. push ----------------------------------------------------------------------------

    def assert_state_change(self, msg: dict, old_state: str):
        self.assertEqual(msg.get("@type"), "StateChange", msg)
        changed = msg["changed"][self.c.account_id]
        self.assertIn("Email", changed, msg)
        self.assertNotEqual(changed["Email"], old_state, msg)

    def test_eventsource_receives_statechange_within_a_second_of_smtp_delivery(self):
        before = self.c.email_state()
        es = EventSource(self.http_addr(), basic_auth(ALICE, ALICE_PW))
        self.addCleanup(es.close)
        self.assertEqual(es.status, 200)
        self.assertTrue(es.content_type.startswith("text/event-stream"), es.content_type)
        sent_at = self.deliver(f"eventsource push {time.time_ns()}")
        got = es.next_event(PUSH_DEADLINE + 1.0)
        self.assertIsNotNone(got, "no StateChange on the EventSource")
        at, msg = got
        self.assertLessEqual(at - sent_at, PUSH_DEADLINE,
                             f"StateChange arrived {at - sent_at:.3f}s after delivery")
        self.assert_state_change(msg, before)
        # The pushed state is a state the API reports (the client can sync from it).
        self.assertEqual(msg["changed"][self.c.account_id]["Email"], self.c.email_state())

    def test_eventsource_closeafter_state_ends_the_stream(self):
        es = EventSource(self.http_addr(), basic_auth(ALICE, ALICE_PW), closeafter="state",
                         types="Email")
        self.addCleanup(es.close)
        self.deliver(f"closeafter {time.time_ns()}")
        got = es.next_event(DELIVERY_TIMEOUT)
        self.assertIsNotNone(got)
        self.assertEqual(set(got[1]["changed"][self.c.account_id]), {"Email"})
        # §7.3 closeafter=state: the server ends the response after the first state event.
        self.assertTrue(es.wait_closed(IO_TIMEOUT),
                        "the EventSource stream stayed open after closeafter=state")

    def test_websocket_receives_statechange_within_a_second_of_smtp_delivery(self):
        session = self.c.session()
        self.assertIn(CAP_WEBSOCKET, session["capabilities"])
        self.assertTrue(session["capabilities"][CAP_WEBSOCKET]["url"].endswith("/jmap/ws"))
        before = self.c.email_state()
        ws = WebSocketJmap(self.http_addr(), basic_auth(ALICE, ALICE_PW))
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101, ws.status_line)
        self.assertEqual(ws.headers.get("sec-websocket-protocol"), "jmap", ws.headers)
        ws.send_json({"@type": "WebSocketPushEnable", "dataTypes": None})
        # Messages are handled in order: once this Response is back, push is enabled.
        resp = ws.request([["Core/echo", {"hello": "ws"}, "e"]], "r1", [CAP_CORE])
        self.assertEqual(resp.get("@type"), "Response", resp)
        self.assertEqual(resp["methodResponses"], [["Core/echo", {"hello": "ws"}, "e"]])
        sent_at = self.deliver(f"websocket push {time.time_ns()}")
        got = ws.next_push(PUSH_DEADLINE + 1.0)
        self.assertIsNotNone(got, "no StateChange on the WebSocket")
        at, msg = got
        self.assertLessEqual(at - sent_at, PUSH_DEADLINE,
                             f"StateChange arrived {at - sent_at:.3f}s after delivery")
        self.assert_state_change(msg, before)

    def test_websocket_request_errors_carry_the_request_id(self):
        ws = WebSocketJmap(self.http_addr(), basic_auth(ALICE, ALICE_PW))
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101, ws.status_line)
        resp = ws.request([], "bad1", ["urn:example:nonsense"])
        self.assertEqual(resp.get("@type"), "RequestError", resp)
        self.assertEqual(resp["type"], ERROR_URN + "unknownCapability", resp)
        aid = self.c.account_id
        resp = ws.request([["Email/query", {"accountId": aid}, "q"],
                           ["Email/get", {"accountId": aid, "properties": ["subject"],
                                          "#ids": {"resultOf": "q", "name": "Email/query",
                                                   "path": "/ids"}}, "g"]], "ok1", USING_MAIL)
        self.assertEqual([r[0] for r in resp["methodResponses"]], ["Email/query", "Email/get"])

    def test_websocket_without_credentials_is_refused(self):
        ws = WebSocketJmap(self.http_addr(), basic_auth(ALICE, "wrong"))
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 401, ws.status_line)


# --------------------------------------------------------------------------------------------
# 5. Tokens
# --------------------------------------------------------------------------------------------


class JmapTokenTest(JmapServerTestCase):
    def test_password_grant_refresh_and_revoke(self):
        addr = self.http_addr()
        bad = token_request(addr, {"grant_type": "password", "username": ALICE, "password": "nope"})
        self.assertEqual(bad.status, 400, bad)
        self.assertEqual(bad.json()["error"], "invalid_grant")
        self.assertEqual(token_request(addr, {"grant_type": "magic"}).json()["error"],
                         "unsupported_grant_type")

        pair = password_grant(addr, ALICE, ALICE_PW)
        self.assertEqual(pair["token_type"], "Bearer")
        self.assertGreater(pair["expires_in"], 0)
        c = JmapHttp(addr, bearer_auth(pair["access_token"]))
        self.assertEqual(c.session()["username"], ALICE)
        self.assertEqual(c.mailbox_by_role("inbox")["role"], "inbox")

        # A refresh token is not an access token.
        r = JmapHttp(addr, bearer_auth(pair["refresh_token"])).request("GET", "/.well-known/jmap")
        self.assertEqual(r.status, 401, r)
        # Refresh grant (RFC 6749 §6) issues a new working access token.
        r = token_request(addr, {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]})
        self.assertEqual(r.status, 200, r)
        refreshed = r.json()
        self.assertEqual(JmapHttp(addr, bearer_auth(refreshed["access_token"])).session()["username"],
                         ALICE)
        # A tampered token is refused.
        t = pair["access_token"]
        tampered = t[:-2] + ("AA" if not t.endswith("AA") else "BB")
        r = JmapHttp(addr, bearer_auth(tampered)).request("GET", "/.well-known/jmap")
        self.assertEqual(r.status, 401, r)

        # Revocation (RFC 7009) ends the session: access and refresh tokens stop working.
        other = password_grant(addr, ALICE, ALICE_PW)
        r = JmapHttp(addr, None).request(
            "POST", "/auth/revoke", body=f"token={other['access_token']}".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=False)
        self.assertEqual(r.status, 200, r)
        r = JmapHttp(addr, bearer_auth(other["access_token"])).request("GET", "/.well-known/jmap")
        self.assertEqual(r.status, 401, r)
        r = token_request(addr, {"grant_type": "refresh_token", "refresh_token": other["refresh_token"]})
        self.assertEqual(r.status, 400, r)
        # The first session is unaffected.
        self.assertEqual(c.session(refresh=True)["username"], ALICE)

    def test_token_survives_a_server_restart(self):
        pair = password_grant(self.http_addr(), ALICE, ALICE_PW)
        self.server.restart()
        addr = self.http_addr()  # a new port after the restart
        c = JmapHttp(addr, bearer_auth(pair["access_token"]))
        self.assertEqual(c.session()["username"], ALICE,
                         "the access token must stay valid across a restart (no forced re-login)")
        self.assertEqual(c.mailbox_by_role("inbox")["role"], "inbox")
        r = token_request(addr, {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]})
        self.assertEqual(r.status, 200, r)

    def test_tokens_survive_a_signing_key_rotation(self):
        pair = password_grant(self.http_addr(), ALICE, ALICE_PW)
        out = self.server.cli("auth", "rotate-key").stdout
        self.assertIn("new signing key", out)
        self.server.restart()
        addr = self.http_addr()
        # The old key keeps verifying: the token from before the rotation still works...
        c = JmapHttp(addr, bearer_auth(pair["access_token"]))
        self.assertEqual(c.session()["username"], ALICE, "no re-login after a key rotation")
        # ...and so does its refresh token.
        r = token_request(addr, {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]})
        self.assertEqual(r.status, 200, r)
        fresh = password_grant(addr, ALICE, ALICE_PW)
        self.assertEqual(JmapHttp(addr, bearer_auth(fresh["access_token"])).session()["username"], ALICE)

    def test_app_password_works_over_basic(self):
        app_pw = self.server.add_app_password(BOB, "jmap-e2e")
        c = self.jmap(BOB, app_pw)
        self.assertEqual(c.session()["username"], BOB)


# --------------------------------------------------------------------------------------------
# 6. Submission to a local recipient (raw JSON, onSuccessUpdateEmail)
# --------------------------------------------------------------------------------------------


class JmapSubmissionTest(JmapServerTestCase):
    """EmailSubmission and VacationResponse; the outbound relay is the harness's SMTP sink."""

    with_sink = True

    def submit(self, c: JmapHttp, subject: str, to: str, body: str) -> dict:
        aid = c.account_id
        drafts = c.mailbox_by_role("drafts")["id"]
        identity = next(i for i in c.ok("Identity/get", {"ids": None})["list"] if i["email"] == ALICE)
        return c.call([
            ["Email/set", {"accountId": aid, "create": {"d": {
                "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
                "from": [{"email": ALICE}], "to": [{"email": to}], "subject": subject,
                "bodyValues": {"b": {"value": body}},
                "textBody": [{"partId": "b", "type": "text/plain"}]}}}, "c1"],
            ["EmailSubmission/set", {"accountId": aid, "create": {"s": {
                "identityId": identity["id"], "emailId": "#d"}}}, "c2"],
        ])

    def test_submission_to_a_remote_recipient_goes_through_the_queue(self):
        c = self.jmap(ALICE, ALICE_PW)
        subject = f"remote submission {time.time_ns()}"
        resp = self.submit(c, subject, "carol@remote.test", "Over the queue.\r\n")
        self.assertIn("s", resp["methodResponses"][1][1].get("created", {}), resp)
        msg = self.sink.wait_for(lambda m: subject.encode() in m.data)
        self.assertEqual(msg.rcpts, ["carol@remote.test"])
        self.assertEqual(msg.mail_from, ALICE)
        self.assertIn(b"Over the queue.", msg.data)

    def test_vacation_response_answers_a_remote_sender_once(self):
        c = self.jmap(ALICE, ALICE_PW)
        got = c.ok("VacationResponse/get", {"ids": None}, [CAP_CORE, CAP_MAIL, CAP_VACATION])
        self.assertEqual(got["list"][0]["id"], "singleton")
        self.assertFalse(got["list"][0]["isEnabled"])
        upd = c.ok("VacationResponse/set", {"update": {"singleton": {
            "isEnabled": True, "subject": "Away", "textBody": "I am away this week."}}},
            [CAP_CORE, CAP_MAIL, CAP_VACATION])
        self.assertIn("singleton", upd["updated"], upd)
        self.addCleanup(c.ok, "VacationResponse/set",
                        {"update": {"singleton": {"isEnabled": False}}},
                        [CAP_CORE, CAP_MAIL, CAP_VACATION])

        def from_dave(m):
            return "dave@remote.test" in m.rcpts and b"I am away this week." in m.data

        def send(sender: str, subject: str):
            s = self.server.smtp("smtp")
            try:
                s.sendmail(sender, [ALICE], make_message(subject, sender=sender))
            finally:
                s.quit()

        send("dave@remote.test", f"first {time.time_ns()}")
        reply = self.sink.wait_for(from_dave)
        self.assertEqual(reply.mail_from, "", "RFC 3834 §3.1.1: auto-replies use the null sender")
        self.assertIn(b"Auto-Submitted: auto-replied", reply.data)
        # Once per sender per period: a second message from dave gets no reply; a message from
        # erin afterwards does (so the responder has seen dave's second message by then).
        send("dave@remote.test", f"second {time.time_ns()}")
        wait_for_subject(self.server, ALICE, ALICE_PW, "second")
        send("erin@remote.test", f"third {time.time_ns()}")
        self.sink.wait_for(lambda m: "erin@remote.test" in m.rcpts)
        self.assertEqual(self.sink.count(from_dave), 1)

    def test_submission_delivers_to_local_inbox_and_updates_the_draft(self):
        c = self.jmap(ALICE, ALICE_PW)
        aid = c.account_id
        drafts = c.mailbox_by_role("drafts")["id"]
        sent = c.mailbox_by_role("sent")["id"]
        identities = c.ok("Identity/get", {"ids": None})["list"]
        identity = next(i for i in identities if i["email"] == ALICE)
        subject = f"raw submission {time.time_ns()}"
        resp = c.call([
            ["Email/set", {"accountId": aid, "create": {"d": {
                "mailboxIds": {drafts: True}, "keywords": {"$draft": True, "$seen": True},
                "from": [{"name": "Alice", "email": ALICE}], "to": [{"email": BOB}],
                "bcc": [{"email": "hidden@example.test"}],
                "subject": subject,
                "bodyValues": {"b": {"value": "Raw JSON submission.\r\n"}},
                "textBody": [{"partId": "b", "type": "text/plain"}],
            }}}, "c1"],
            ["EmailSubmission/set", {"accountId": aid, "create": {"s": {
                "identityId": identity["id"], "emailId": "#d",
                "envelope": {"mailFrom": {"email": ALICE}, "rcptTo": [{"email": BOB}]},
            }}, "onSuccessUpdateEmail": {"#s": {
                f"mailboxIds/{drafts}": None, f"mailboxIds/{sent}": True, "keywords/$draft": None,
            }}}, "c2"],
        ])
        names = [r[0] for r in resp["methodResponses"]]
        self.assertEqual(names, ["Email/set", "EmailSubmission/set", "Email/set"], resp)
        email_id = resp["methodResponses"][0][1]["created"]["d"]["id"]
        sub = resp["methodResponses"][1][1]
        self.assertIn("s", sub["created"], sub)
        self.assertIn(email_id, resp["methodResponses"][2][1]["updated"], resp)

        text = wait_for_subject(self.server, BOB, BOB_PW, subject)
        self.assertIn(b"Raw JSON submission.", text)
        self.assertNotIn(b"hidden@example.test", text, "Bcc must be stripped from the sent copy")
        got = c.ok("Email/get", {"ids": [email_id], "properties": ["mailboxIds", "keywords"]})
        self.assertEqual(got["list"][0]["mailboxIds"], {sent: True})
        self.assertNotIn("$draft", got["list"][0]["keywords"])
        # The submission is recorded.
        subs = c.ok("EmailSubmission/get", {"ids": None})["list"]
        self.assertIn(email_id, [s["emailId"] for s in subs])

    def test_submission_with_a_foreign_envelope_sender_is_refused(self):
        c = self.jmap(ALICE, ALICE_PW)
        aid = c.account_id
        drafts = c.mailbox_by_role("drafts")["id"]
        identity = c.ok("Identity/get", {"ids": None})["list"][0]
        resp = c.call([
            ["Email/set", {"accountId": aid, "create": {"d": {
                "mailboxIds": {drafts: True}, "from": [{"email": ALICE}], "to": [{"email": BOB}],
                "subject": "spoof", "bodyValues": {"b": {"value": "x"}},
                "textBody": [{"partId": "b", "type": "text/plain"}]}}}, "c1"],
            ["EmailSubmission/set", {"accountId": aid, "create": {"s": {
                "identityId": identity["id"], "emailId": "#d",
                "envelope": {"mailFrom": {"email": BOB}, "rcptTo": [{"email": BOB}]}}}}, "c2"],
        ])
        sub = resp["methodResponses"][1][1]
        self.assertIn("s", sub.get("notCreated", {}), sub)


if __name__ == "__main__":
    unittest.main()

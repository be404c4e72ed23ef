"""JMAP to the letter (issue 14, JMAP items 2, 3, 4, 5 and 7): RFC 8620 / RFC 8621 details a
client relies on, each checked with raw JSON over HTTP (jmapclient.JmapHttp, http.client).
Each test names its RFC section. One server; every test makes its own unique messages."""

from __future__ import annotations

import time
import unittest

from harness import ALICE, ALICE_PW, BOB, BOB_PW, DELIVERY_TIMEOUT
from jmapclient import EventSource, JmapServerTestCase, basic_auth


def unique() -> str:
    return f"{time.time_ns()}"


def message(subject: str, *, message_id: str | None = None, in_reply_to: str | None = None,
            references: str | None = None, sender: str = "a@remote.test", to: str = ALICE,
            body: str = "body\r\n") -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
    if message_id:
        head += f"Message-ID: <{message_id}>\r\n"
    if in_reply_to:
        head += f"In-Reply-To: <{in_reply_to}>\r\n"
    if references:
        head += f"References: {references}\r\n"
    head += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    return (head + "\r\n" + body).encode()


class JmapLetterTest(JmapServerTestCase):
    def setUp(self):
        super().setUp()
        self.c = self.jmap(ALICE, ALICE_PW)
        self.aid = self.c.account_id
        self.inbox = self.c.mailbox_by_role("inbox")["id"]

    # ---- helpers ------------------------------------------------------------------------

    def upload(self, raw: bytes) -> str:
        up = self.c.request("POST", f"/jmap/upload/{self.aid}/", body=raw,
                            headers={"Content-Type": "message/rfc822"})
        self.assertEqual(up.status, 201, up)
        return up.json()["blobId"]

    def import_raw(self, raw: bytes, received_at: str | None = None) -> dict:
        """Imports one message into the inbox; returns its id and threadId."""
        email = {"blobId": self.upload(raw), "mailboxIds": {self.inbox: True}}
        if received_at:
            email["receivedAt"] = received_at
        resp = self.c.ok("Email/import", {"emails": {"i": email}})
        self.assertIn("i", resp["created"], resp)
        return resp["created"]["i"]

    def thread_of(self, email_id: str) -> str:
        got = self.c.ok("Email/get", {"ids": [email_id], "properties": ["threadId"]})
        return got["list"][0]["threadId"]

    def query(self, cond: dict) -> list[str]:
        return self.c.ok("Email/query", {"filter": cond})["ids"]

    # ---- item 4 ---------------------------------------------------------------------------

    def test_import_of_an_unknown_blob_is_invalid_properties_rfc8621_4_8(self):
        # RFC 8621 §4.8 names no blobNotFound for Email/import: the blobId is invalid.
        resp = self.c.ok("Email/import", {"emails": {"x": {
            "blobId": "Gdoesnotexist", "mailboxIds": {self.inbox: True}}}})
        self.assertEqual(resp["created"], {}, resp)
        err = resp["notCreated"]["x"]
        self.assertEqual(err["type"], "invalidProperties", err)
        self.assertEqual(err["properties"], ["blobId"], err)

    def test_search_snippet_not_found_is_null_when_all_found_rfc8621_5_1(self):
        tag = unique()
        e = self.import_raw(message(f"snippet {tag}"))
        resp = self.c.ok("SearchSnippet/get", {"emailIds": [e["id"]], "filter": {"subject": tag}})
        self.assertIsNone(resp["notFound"], resp)
        self.assertIn("<mark>", resp["list"][0]["subject"])
        resp = self.c.ok("SearchSnippet/get", {"emailIds": [e["id"], "Mnope"], "filter": {"subject": tag}})
        self.assertEqual(resp["notFound"], ["Mnope"], resp)

    # ---- item 3 ---------------------------------------------------------------------------

    def test_mailbox_sort_order_is_set_on_create_and_update_rfc8621_2(self):
        name = f"Sorted {unique()}"
        resp = self.c.ok("Mailbox/set", {"create": {"m": {"name": name, "sortOrder": 42}}})
        mid = resp["created"]["m"]["id"]
        got = self.c.ok("Mailbox/get", {"ids": [mid], "properties": ["sortOrder"]})
        self.assertEqual(got["list"][0]["sortOrder"], 42)
        resp = self.c.ok("Mailbox/set", {"update": {mid: {"sortOrder": 99}}})
        self.assertIn(mid, resp["updated"], resp)
        got = self.c.ok("Mailbox/get", {"ids": [mid], "properties": ["sortOrder"]})
        self.assertEqual(got["list"][0]["sortOrder"], 99)
        # A fresh session sees it too (stored, not cached in the request).
        other = self.jmap(ALICE, ALICE_PW)
        got = other.ok("Mailbox/get", {"ids": [mid], "properties": ["sortOrder"]})
        self.assertEqual(got["list"][0]["sortOrder"], 99)
        resp = self.c.ok("Mailbox/set", {"update": {mid: {"sortOrder": -3}}})
        self.assertEqual(resp["notUpdated"][mid]["type"], "invalidProperties", resp)

    # ---- item 7 ---------------------------------------------------------------------------

    def test_text_filters_match_decoded_headers_without_case_or_accents_rfc8621_4_4_1(self):
        tag = unique()
        raw = (f"From: =?UTF-8?Q?Zo=C3=AB_M=C3=BCller?= <zoe{tag}@remote.test>\r\n"
               f"To: =?UTF-8?B?5bGx55Sw5aSq6YOO?= <yamada{tag}@example.test>\r\n"
               f"Subject: =?UTF-8?Q?R=C3=A9union_{tag}_=E4=BC=9A=E8=AD=B0=E3=81=AE=E8=AD=B0=E9=A1=8C?=\r\n"
               "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\nOrdre du jour: caf\xc3\xa9.\r\n"
               ).encode("latin-1")
        email = self.import_raw(raw)["id"]
        hits = {
            "text accented as sent": {"text": "Réunion"},
            "text unaccented, upper case": {"text": "REUNION " + tag},
            "subject unaccented": {"subject": "reunion"},
            "subject CJK substring": {"subject": "議題"},
            "text CJK substring": {"text": "会議"},
            "from display name, folded": {"from": "zoe muller"},
            "from display name, as sent": {"from": "Zoë Müller"},
            "to CJK display name": {"to": "山田"},
            "body accent-insensitive": {"body": "CAFE"},
        }
        for what, cond in hits.items():
            with self.subTest(what):
                self.assertIn(email, self.query(cond), cond)
        for what, cond in {"wrong CJK": {"subject": "議事"}, "wrong name": {"from": "zoe miller"}}.items():
            with self.subTest(what):
                self.assertNotIn(email, self.query(cond), cond)
        # The snippet highlights the original characters, found through the folding.
        resp = self.c.ok("SearchSnippet/get", {"emailIds": [email], "filter": {"text": "reunion"}})
        self.assertIn("<mark>Réunion</mark>", resp["list"][0]["subject"], resp)

    # ---- item 2 ---------------------------------------------------------------------------

    def test_threads_join_by_any_shared_message_id_in_any_order_rfc8621_3(self):
        t = unique()
        # A reply imported before its parent: the parent joins the reply's thread.
        reply = self.import_raw(message(f"Re: p {t}", message_id=f"reply.{t}@x",
                                        in_reply_to=f"parent.{t}@x", references=f"<parent.{t}@x>"))
        parent = self.import_raw(message(f"p {t}", message_id=f"parent.{t}@x"))
        self.assertEqual(parent["threadId"], reply["threadId"], "a parent after its reply")
        # Two replies to a parent that never arrives share a thread.
        s1 = self.import_raw(message(f"Re: absent {t}", message_id=f"s1.{t}@x", in_reply_to=f"absent.{t}@x"))
        s2 = self.import_raw(message(f"Re: absent {t}", message_id=f"s2.{t}@x",
                                     references=f"<absent.{t}@x>"))
        self.assertEqual(s1["threadId"], s2["threadId"], "siblings of an absent parent")
        self.assertNotEqual(s1["threadId"], parent["threadId"])

    def test_a_missing_link_merges_two_threads_and_reports_the_changes_rfc8621_3(self):
        t = unique()
        root = self.import_raw(message(f"root {t}", message_id=f"root.{t}@x"))
        leaf = self.import_raw(message(f"Re: Re: root {t}", message_id=f"leaf.{t}@x",
                                       in_reply_to=f"mid.{t}@x"))
        self.assertNotEqual(root["threadId"], leaf["threadId"])
        email_state = self.c.email_state()
        thread_state = self.c.ok("Thread/get", {"ids": []})["state"]
        mid = self.import_raw(message(f"Re: root {t}", message_id=f"mid.{t}@x", in_reply_to=f"root.{t}@x",
                                      references=f"<root.{t}@x>"))
        self.assertEqual(mid["threadId"], root["threadId"])
        self.assertEqual(self.thread_of(leaf["id"]), root["threadId"], "the leaf moved into the root's thread")
        thread = self.c.ok("Thread/get", {"ids": [root["threadId"]]})["list"][0]
        self.assertEqual(set(thread["emailIds"]), {root["id"], mid["id"], leaf["id"]})
        changes = self.c.ok("Email/changes", {"sinceState": email_state})
        self.assertIn(mid["id"], changes["created"])
        self.assertIn(leaf["id"], changes["updated"], "its threadId changed")
        tchanges = self.c.ok("Thread/changes", {"sinceState": thread_state})
        self.assertIn(root["threadId"], tchanges["updated"])
        self.assertIn(leaf["threadId"], tchanges["destroyed"])
        gone = self.c.ok("Thread/get", {"ids": [leaf["threadId"]]})
        self.assertEqual(gone["notFound"], [leaf["threadId"]])

    # ---- item 5 ---------------------------------------------------------------------------

    def test_mailbox_changes_names_the_counts_when_only_counts_changed_rfc8621_2_2(self):
        state = self.c.ok("Mailbox/get", {"ids": []})["state"]
        self.import_raw(message(f"counts {unique()}"))
        changes = self.c.ok("Mailbox/changes", {"sinceState": state})
        self.assertIn(self.inbox, changes["updated"])
        self.assertEqual(sorted(changes["updatedProperties"]),
                         sorted(["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]))
        state = changes["newState"]
        name = f"Renamed {unique()}"
        mid = self.c.ok("Mailbox/set", {"create": {"m": {"name": name}}})["created"]["m"]["id"]
        state = self.c.ok("Mailbox/changes", {"sinceState": state})["newState"]
        self.c.ok("Mailbox/set", {"update": {mid: {"name": name + " 2"}}})
        changes = self.c.ok("Mailbox/changes", {"sinceState": state})
        self.assertEqual(changes["updated"], [mid])
        self.assertIsNone(changes["updatedProperties"], "a rename is more than counts")

    def test_blob_copy_within_the_account_and_its_errors_rfc8620_6_3(self):
        blob = self.upload(message(f"blob {unique()}"))
        resp = self.c.ok("Blob/copy", {"fromAccountId": self.aid, "blobIds": [blob, "Gmissing"]})
        self.assertEqual(resp["fromAccountId"], self.aid)
        self.assertEqual(resp["copied"], {blob: blob}, resp)
        self.assertEqual(resp["notCopied"]["Gmissing"]["type"], "notFound", resp)
        # The copied id works where a blob id is expected.
        created = self.c.ok("Email/import", {"emails": {"i": {
            "blobId": resp["copied"][blob], "mailboxIds": {self.inbox: True}}}})["created"]
        self.assertIn("i", created)
        # Bob's blob is not Alice's to copy; another account is fromAccountNotFound.
        bob = self.jmap(BOB, BOB_PW)
        up = bob.request("POST", f"/jmap/upload/{bob.account_id}/", body=b"bob's",
                         headers={"Content-Type": "application/octet-stream"})
        bob_blob = up.json()["blobId"]
        resp = self.c.ok("Blob/copy", {"fromAccountId": self.aid, "blobIds": [bob_blob]})
        self.assertIsNone(resp["copied"])
        self.assertEqual(resp["notCopied"][bob_blob]["type"], "notFound")
        name, err = self.c.one("Blob/copy", {"fromAccountId": bob.account_id, "blobIds": [bob_blob]})
        self.assertEqual((name, err["type"]), ("error", "fromAccountNotFound"), err)

    def test_identity_changes_are_real_deltas_rfc8621_6_and_rfc8620_5_2(self):
        state = self.c.ok("Identity/get", {"ids": []})["state"]
        created = self.c.ok("Identity/set", {"create": {"n": {"email": ALICE, "name": "Alt"}}})
        iid = created["created"]["n"]["id"]
        changes = self.c.ok("Identity/changes", {"sinceState": state})
        self.assertEqual((changes["created"], changes["updated"], changes["destroyed"]), ([iid], [], []))
        state = changes["newState"]
        self.assertEqual(self.c.ok("Identity/changes", {"sinceState": state})["created"], [])
        self.c.ok("Identity/set", {"update": {iid: {"textSignature": "-- \nAlt"}}})
        changes = self.c.ok("Identity/changes", {"sinceState": state})
        self.assertEqual((changes["created"], changes["updated"], changes["destroyed"]), ([], [iid], []))
        state = changes["newState"]
        self.c.ok("Identity/set", {"destroy": [iid]})
        changes = self.c.ok("Identity/changes", {"sinceState": state})
        self.assertEqual((changes["created"], changes["updated"], changes["destroyed"]), ([], [], [iid]))
        # An email change is not an identity change.
        state = changes["newState"]
        self.import_raw(message(f"not an identity {unique()}"))
        changes = self.c.ok("Identity/changes", {"sinceState": state})
        self.assertEqual((changes["created"], changes["updated"], changes["destroyed"]), ([], [], []))

    def test_query_changes_removed_is_exact_and_up_to_id_cuts_additions_rfc8620_5_6(self):
        tag = unique()
        first = self.import_raw(message(f"qc {tag} one"), "2024-01-01T00:00:01Z")["id"]
        q = self.c.ok("Email/query", {"filter": {"subject": tag}, "sort": [{"property": "receivedAt"}]})
        self.assertEqual(q["ids"], [first])
        # Two new emails and a keyword change: with an immutable filter and sort the
        # keyword change is no change to the results, and new emails were never removed.
        second = self.import_raw(message(f"qc {tag} two"), "2024-01-01T00:00:02Z")["id"]
        third = self.import_raw(message(f"qc {tag} three"), "2024-01-01T00:00:03Z")["id"]
        self.c.ok("Email/set", {"update": {first: {"keywords/$flagged": True}}})
        args = {"filter": {"subject": tag}, "sort": [{"property": "receivedAt"}],
                "sinceQueryState": q["queryState"]}
        ch = self.c.ok("Email/queryChanges", args)
        self.assertEqual(ch["removed"], [], ch)
        self.assertEqual([a["id"] for a in ch["added"]], [second, third], ch)
        self.assertEqual([a["index"] for a in ch["added"]], [1, 2], ch)
        # upToId: the client holds the results up to `second`; what comes after is left out.
        ch = self.c.ok("Email/queryChanges", {**args, "upToId": second})
        self.assertEqual([a["id"] for a in ch["added"]], [second], ch)
        # A mutable filter (keywords): the updated email is reported, the new ones never removed.
        args = {"filter": {"subject": tag, "notKeyword": "$seen"}, "sinceQueryState": q["queryState"]}
        ch = self.c.ok("Email/queryChanges", args)
        self.assertEqual(ch["removed"], [first], ch)
        self.assertEqual({a["id"] for a in ch["added"]}, {first, second, third}, ch)
        # A destroyed email is removed.
        q2 = self.c.ok("Email/query", {"filter": {"subject": tag}})
        self.c.ok("Email/set", {"destroy": [third]})
        ch = self.c.ok("Email/queryChanges", {"filter": {"subject": tag}, "sinceQueryState": q2["queryState"]})
        self.assertEqual((ch["removed"], ch["added"]), ([third], []), ch)

    # ---- item 5: per-type states and EmailDelivery -------------------------------------------

    def states(self) -> dict[str, str]:
        """The state of each mail type, as its /get reports it."""
        a = {"accountId": self.aid, "ids": []}
        calls = [["Email/get", a, "e"], ["Mailbox/get", a, "m"], ["Thread/get", a, "t"]]
        resp = self.c.call(calls)["methodResponses"]
        self.assertTrue(all("state" in args for _, args, _ in resp), resp)
        return {name.split("/")[0]: args["state"] for name, args, _ in resp}

    def test_each_mail_type_has_its_own_state_rfc8620_1_2_rfc8621_2_3_4(self):
        e = self.import_raw(message(f"states {unique()}"))
        before = self.states()
        # A keyword other than $seen changes no mailbox count and no thread: only the Email
        # state moves, and Mailbox/changes from the old state has nothing.
        self.c.ok("Email/set", {"update": {e["id"]: {"keywords/$flagged": True}}})
        after = self.states()
        self.assertNotEqual(after["Email"], before["Email"], after)
        self.assertEqual(after["Mailbox"], before["Mailbox"], (before, after))
        self.assertEqual(after["Thread"], before["Thread"], (before, after))
        ch = self.c.ok("Mailbox/changes", {"sinceState": before["Mailbox"]})
        self.assertEqual((ch["created"], ch["updated"], ch["destroyed"]), ([], [], []), ch)
        self.assertEqual(ch["newState"], before["Mailbox"], ch)
        ch = self.c.ok("Email/changes", {"sinceState": before["Email"]})
        self.assertEqual(ch["updated"], [e["id"]], ch)
        self.assertEqual(ch["newState"], after["Email"], ch)
        # $seen changes the unread counts: the Mailbox state moves, its changes say counts only.
        self.c.ok("Email/set", {"update": {e["id"]: {"keywords/$seen": True}}})
        seen = self.states()
        self.assertNotEqual(seen["Mailbox"], after["Mailbox"], seen)
        self.assertEqual(seen["Thread"], before["Thread"], seen)
        ch = self.c.ok("Mailbox/changes", {"sinceState": after["Mailbox"]})
        self.assertEqual(ch["updated"], [self.inbox], ch)
        self.assertEqual(ch["newState"], seen["Mailbox"], ch)
        # /set reports its own type's states.
        resp = self.c.ok("Email/set", {"update": {e["id"]: {"keywords/$seen": False}}})
        self.assertEqual(resp["oldState"], seen["Email"], resp)
        self.assertEqual(resp["newState"], self.states()["Email"], resp)
        # A state from the future cannot be calculated.
        _, err = self.c.one("Thread/changes", {"sinceState": str(int(seen["Email"]) + 1000)})
        self.assertEqual(err["type"], "cannotCalculateChanges", err)

    def test_email_delivery_is_pushed_for_new_mail_only_rfc8621_1_5(self):
        es = EventSource(self.http_addr(), basic_auth(ALICE, ALICE_PW))
        self.addCleanup(es.close)
        self.assertEqual(es.status, 200)

        def next_change(what: str) -> dict:
            got = es.next_event(DELIVERY_TIMEOUT)
            self.assertIsNotNone(got, f"no StateChange after {what}")
            return got[1]["changed"][self.aid]

        # The user's own import is no delivery.
        e = self.import_raw(message(f"own {unique()}"))
        changed = next_change("import")
        self.assertIn("Email", changed, changed)
        self.assertNotIn("EmailDelivery", changed, changed)
        # Mail arriving over SMTP is.
        self.deliver(f"delivered {unique()}")
        changed = next_change("delivery")
        self.assertIn("EmailDelivery", changed, changed)
        self.assertEqual(changed["Email"], self.states()["Email"], changed)
        # A flag change pushes the Email state alone.
        self.c.ok("Email/set", {"update": {e["id"]: {"keywords/$flagged": True}}})
        changed = next_change("flag change")
        self.assertEqual(set(changed), {"Email"}, changed)

    # ---- item 8: Blob management (RFC 9404) ---------------------------------------------------

    BLOB = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:blob"]

    def test_blob_upload_get_and_lookup_rfc9404(self):
        import base64
        import hashlib
        caps = self.c.session()["accounts"][self.aid]["accountCapabilities"]
        blob_caps = caps["urn:ietf:params:jmap:blob"]
        self.assertIn("Email", blob_caps["supportedTypeNames"], blob_caps)
        self.assertIn("sha-256", blob_caps["supportedDigestAlgorithms"], blob_caps)
        base = self.upload(b"0123456789")
        # §4.1: sources are concatenated in order: text, base64 and a range of a blob; a later
        # call refers to the creation by #id.
        calls = [
            ["Blob/upload", {"accountId": self.aid, "create": {"b1": {"type": "text/plain", "data": [
                {"data:asText": "Hello "},
                {"data:asBase64": base64.b64encode(b"wor").decode()},
                {"blobId": base, "offset": 3, "length": 2},
            ]}}}, "u"],
            ["Blob/get", {"accountId": self.aid, "ids": ["#b1"],
                          "properties": ["data:asText", "digest:sha-256", "size"]}, "g"],
        ]
        up, got = [r[1] for r in self.c.call(calls, self.BLOB)["methodResponses"]]
        created = up["created"]["b1"]
        self.assertEqual((created["type"], created["size"]), ("text/plain", 11), up)
        item = got["list"][0]
        self.assertEqual(item["data:asText"], "Hello wor34", got)
        self.assertEqual(item["id"], created["id"], got)
        self.assertEqual(item["digest:sha-256"],
                         base64.b64encode(hashlib.sha256(b"Hello wor34").digest()).decode())
        # §4.2: a range; size stays the whole blob's; past the end is isTruncated.
        got = self.c.ok("Blob/get", {"ids": [base], "properties": ["data:asText", "size"],
                                     "offset": 8, "length": 5}, self.BLOB)
        item = got["list"][0]
        self.assertEqual((item["data:asText"], item["size"], item.get("isTruncated")), ("89", 10, True), got)
        # Not UTF-8: `data` falls back to base64 with isEncodingProblem.
        binary = self.upload(b"\xff\xfeok")
        item = self.c.ok("Blob/get", {"ids": [binary]}, self.BLOB)["list"][0]
        self.assertEqual(item["data:asBase64"], base64.b64encode(b"\xff\xfeok").decode(), item)
        self.assertTrue(item["isEncodingProblem"], item)
        # Bad sources fail their creation only.
        resp = self.c.ok("Blob/upload", {"create": {
            "bad64": {"data": [{"data:asBase64": "*not base64*"}]},
            "past": {"data": [{"blobId": base, "offset": 8, "length": 5}]},
            "two": {"data": [{"data:asText": "a", "data:asBase64": "YQ=="}]},
            "fine": {"data": [{"data:asText": "fine"}]},
        }}, self.BLOB)
        self.assertEqual(set(resp["notCreated"]), {"bad64", "past", "two"}, resp)
        self.assertTrue(all(e["type"] == "invalidProperties" for e in resp["notCreated"].values()), resp)
        self.assertEqual(resp["created"]["fine"]["size"], 4, resp)
        # Another account's blob is not found, neither to read nor as a source.
        bob = self.jmap(BOB, BOB_PW)
        theirs = bob.request("POST", f"/jmap/upload/{bob.account_id}/", body=b"secret of bob",
                             headers={"Content-Type": "text/plain"}).json()["blobId"]
        got = self.c.ok("Blob/get", {"ids": [theirs]}, self.BLOB)
        self.assertEqual((got["list"], got["notFound"]), ([], [theirs]), got)
        resp = self.c.ok("Blob/upload", {"create": {"x": {"data": [{"blobId": theirs}]}}}, self.BLOB)
        self.assertEqual(resp["notCreated"]["x"]["type"], "blobNotFound", resp)
        # §4.3: which emails, threads and mailboxes reference a blob.
        e = self.import_raw(message(f"lookup {unique()}"))
        blob_id = self.c.ok("Email/get", {"ids": [e["id"]], "properties": ["blobId"]})["list"][0]["blobId"]
        got = self.c.ok("Blob/lookup", {"typeNames": ["Email", "Thread", "Mailbox"],
                                        "ids": [blob_id, theirs]}, self.BLOB)
        self.assertEqual(got["notFound"], [theirs], got)
        matched = got["list"][0]["matchedIds"]
        self.assertEqual(matched, {"Email": [e["id"]], "Thread": [e["threadId"]], "Mailbox": [self.inbox]}, got)
        _, err = self.c.one("Blob/lookup", {"typeNames": ["Calendar"], "ids": [blob_id]}, self.BLOB)
        self.assertEqual(err["type"], "unknownDataType", err)
        # Without the capability in `using` the methods do not exist (RFC 8620 §3.6.2).
        name, err = self.c.one("Blob/get", {"ids": [base]})
        self.assertEqual((name, err["type"]), ("error", "unknownMethod"), err)


if __name__ == "__main__":
    unittest.main()

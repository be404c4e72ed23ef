"""Several nodes on one PostgreSQL; drain, config reload, readiness, rolling restart, and the
per-account data (identities, signed-in devices) every node shares through the store.

Needs PostgreSQL: `scripts/test` starts one and exports BULWARK_TEST_PG. Run alone, this file
starts its own with `scripts/pg-test-server` (skipped with a message when the PostgreSQL server
binaries are not installed). Every test class gets a fresh database.
"""

from __future__ import annotations

import glob
import json
import os
import re
import smtplib
import socket
import subprocess
import sys
import threading
import time
import unittest
import uuid

from harness import (ALICE, ALICE_PW, BOB, BOB_PW, DOMAIN, IO_TIMEOUT, LISTENERS, REPO_ROOT,
                     RawImap, RawSmtp, Server, SmtpSink, imap_check, imap_search,
                     make_message, safe_logout, wait_until)
from jmapclient import (CAP_CORE, CAP_MAIL, CAP_VACATION, JmapHttp, basic_auth, bearer_auth,
                        password_grant)

DRAIN_TIMEOUT = 60.0
_PG = {"url": None, "dir": None}


def _pg_server_url() -> str:
    """BULWARK_TEST_PG, or a throwaway server started for this file."""
    url = os.environ.get("BULWARK_TEST_PG")
    if url:
        return url
    if _PG["url"]:
        return _PG["url"]
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        raise unittest.SkipTest(
            "PostgreSQL server binaries are not installed (apt-get install postgresql); "
            "scripts/test installs them and sets BULWARK_TEST_PG")
    out = subprocess.run([str(REPO_ROOT / "scripts" / "pg-test-server")], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key == "BULWARK_TEST_PG":
            _PG["url"] = value
        elif key == "BULWARK_TEST_PG_DIR":
            _PG["dir"] = value
    if not _PG["url"]:
        raise AssertionError(f"pg-test-server printed no URL: {out!r}")
    return _PG["url"]


def tearDownModule():
    if _PG["dir"]:
        subprocess.run([str(REPO_ROOT / "scripts" / "pg-test-server"), "stop", _PG["dir"]],
                       capture_output=True, timeout=120)


def fresh_database(prefix: str) -> str:
    """CREATE DATABASE with a unique name; returns its URL."""
    server = _pg_server_url()
    name = f"{prefix.lower()}_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {name}"], check=True,
                   capture_output=True, timeout=60)
    return server.rsplit("/", 1)[0] + "/" + name


def pg_node(name: str, store: str, node_id: str, relay=None, drain_timeout: str = "20s",
            listeners=LISTENERS + ("http",), outbound_toml: str = "",
            limits_toml: str = "") -> Server:
    server = Server(name=name, relay=relay, listeners=listeners, outbound_toml=outbound_toml,
                    auth_toml="allow_plaintext_on_loopback = true", limits_toml=limits_toml)
    # The harness writes `allow_plaintext_on_loopback = false` first; keep only ours.
    text = server.config.read_text().replace("allow_plaintext_on_loopback = false\n", "")
    server.config.write_text(
        f'store = "{store}"\nnode_id = "{node_id}"\ndrain_timeout = "{drain_timeout}"\n' + text)
    return server


def http_get(addr, path: str) -> tuple[int, str]:
    with socket.create_connection(addr, timeout=IO_TIMEOUT) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


def wait_exit(server: Server, timeout: float = DRAIN_TIMEOUT) -> int:
    code = server.proc.wait(timeout=timeout)
    server._close_log()
    return code


class ClusterBase(unittest.TestCase):
    nodes: list[Server] = []
    sink: SmtpSink | None = None

    @classmethod
    def make_nodes(cls, count: int, relay=None, outbound_toml: str = "", limits_toml: str = ""):
        cls.store = fresh_database(cls.__name__)
        cls.nodes = [pg_node(f"{cls.__name__}-{i + 1}", cls.store, f"node-{i + 1}", relay=relay,
                             outbound_toml=outbound_toml, limits_toml=limits_toml)
                     for i in range(count)]
        cls.nodes[0].standard_fixture()
        for node in cls.nodes:
            node.start()

    @classmethod
    def tearDownClass(cls):
        for node in cls.nodes:
            node.cleanup()
        if cls.sink:
            cls.sink.close()
        super().tearDownClass()

    def run(self, result=None):
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            for node in self.nodes:
                print(f"\n[{self.id()}] {node.config}: {node.log_tail(3000)}")
        return out


class TwoNodesTest(ClusterBase):
    """Two nodes share one PostgreSQL: accounts, mail and the outbound queue."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sink = SmtpSink()
        cls.hold = True
        cls.sink.rcpt_policy = lambda address, attempt: (
            "451 4.3.0 held by the test" if cls.hold else "250 2.1.5 ok")
        cls.make_nodes(2, relay=cls.sink.addr,
                       outbound_toml='retry_base = "1s"\nretry_max = "1s"\n')

    def test_status_names_node_store_and_readiness(self):
        out = self.nodes[1].cli("status").stdout
        self.assertIn("node id:   node-2", out)
        self.assertIn("PostgreSQL postgres://", out)
        self.assertRegex(out, r"server:\s+running \(pid \d+, node id node-2\)")
        self.assertIn("readiness: ready (HTTP 200)", out)
        status, body = http_get(self.nodes[0].addr("http"), "/readyz")
        self.assertEqual((status, body.strip()), (200, "ready"))

    def test_admin_on_one_node_and_mail_on_the_other(self):
        self.nodes[1].cli("account", "add", "carol@example.test", "--password-stdin",
                          input="carol-Secret-pw-3\n")
        self.assertIn("carol@example.test", self.nodes[0].cli("account", "list").stdout)
        subject = f"cross-node {uuid.uuid4().hex[:8]}"
        with self.nodes[0].smtp() as s:
            s.sendmail("x@remote.test", ["carol@example.test"],
                       make_message(subject, to="carol@example.test"))
        m = self.nodes[1].imap("carol@example.test", "carol-Secret-pw-3")
        try:
            imap_check(m.select("INBOX"), "SELECT")
            self.assertEqual(len(imap_search(m, "SUBJECT", f'"{subject}"')), 1)
        finally:
            safe_logout(m)

    def test_message_queued_on_one_node_is_delivered_once(self):
        subjects = [f"once-{i}-{uuid.uuid4().hex[:6]}" for i in range(8)]
        type(self).hold = True
        for i, subject in enumerate(subjects):
            s = self.nodes[i % 2].submission(ALICE, ALICE_PW)
            try:
                s.sendmail(ALICE, [f"r{i}@remote.test"], make_message(subject, sender=ALICE))
            finally:
                s.quit()
        # Both workers see every entry while the relay defers: leases must keep them apart.
        wait_until(lambda: "r7@remote.test" in self.nodes[0].queue_list(), 30, "queued entries")
        type(self).hold = False
        for node in self.nodes:
            node.cli("queue", "flush")
        for subject in subjects:
            self.sink.wait_for(lambda m, s=subject: s.encode() in m.data, timeout=60)
        wait_until(lambda: "empty" in self.nodes[1].queue_list(), 60, "an empty queue")
        for subject in subjects:
            copies = self.sink.count(lambda m, s=subject: s.encode() in m.data)
            self.assertEqual(copies, 1, f"{subject} delivered {copies} times")


    def test_recent_goes_to_exactly_one_session_across_nodes(self):
        """Issue 14: \\Recent (RFC 3501 §2.3.2) goes to one session per message. The claim is
        a compare-and-set in the store, so two IMAP4rev1 sessions on two nodes, both polling
        while messages arrive, never both get one, and every message goes to one of them."""
        box = f"Recent-{uuid.uuid4().hex[:8]}"
        admin = self.nodes[0].imap(ALICE, ALICE_PW)
        sessions = [self.nodes[0].imap(ALICE, ALICE_PW), self.nodes[1].imap(ALICE, ALICE_PW)]
        try:
            imap_check(admin.create(box), "CREATE")
            for s in sessions:
                imap_check(s.select(box), "SELECT")
            count = 12
            errors: list[BaseException] = []

            def poll(s):
                try:
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        imap_check(s.noop(), "NOOP")
                        _, exists = s.response("EXISTS")
                        if exists and exists[-1] is not None and int(exists[-1]) >= count:
                            return
                    raise AssertionError("the messages did not all arrive")
                except BaseException as e:  # reported by the main thread
                    errors.append(e)

            threads = [threading.Thread(target=poll, args=(s,)) for s in sessions]
            for t in threads:
                t.start()
            for i in range(count):
                imap_check(admin.append(box, None, None, make_message(f"recent-{i}")), "APPEND")
            for t in threads:
                t.join(90)
            self.assertEqual(errors, [])
            got = []
            for s in sessions:
                data = imap_check(s.uid("FETCH", "1:*", "(FLAGS)"), "FETCH")
                got.append({int(re.search(rb"UID (\d+)", d).group(1))
                            for d in data if isinstance(d, bytes) and rb"\Recent" in d})
            self.assertEqual(got[0] & got[1], set(), f"both sessions got {got[0] & got[1]}")
            self.assertEqual(got[0] | got[1], set(range(1, count + 1)), got)
        finally:
            for m in [admin] + sessions:
                safe_logout(m)

    def test_vacation_set_on_one_node_answers_once_whichever_node_delivers(self):
        """Issue 12: the vacation response lived in one node's data_dir; now it is in the store,
        and its per-sender reply claim is a compare-and-set, so two nodes never both answer."""
        type(self).hold = False
        using = [CAP_CORE, CAP_MAIL, CAP_VACATION]
        one = JmapHttp(self.nodes[0].addr("http"), basic_auth(ALICE, ALICE_PW))
        text = f"Away, node test {uuid.uuid4().hex[:6]}"
        upd = one.ok("VacationResponse/set", {"accountId": one.account_id, "update": {
            "singleton": {"isEnabled": True, "textBody": text}}}, using)
        self.assertIn("singleton", upd["updated"], upd)
        self.addCleanup(one.ok, "VacationResponse/set", {"accountId": one.account_id, "update": {
            "singleton": {"isEnabled": False}}}, using)
        two = JmapHttp(self.nodes[1].addr("http"), basic_auth(ALICE, ALICE_PW))
        got = two.ok("VacationResponse/get", {"accountId": two.account_id}, using)
        self.assertEqual(got["list"][0]["textBody"], text, "node 2 sees node 1's setting")

        def send(node: int, sender: str):
            with self.nodes[node].smtp() as s:
                s.sendmail(sender, [ALICE], make_message(f"to alice {uuid.uuid4().hex[:6]}",
                                                         sender=sender))

        def replies_to(address: str) -> int:
            return self.sink.count(lambda m: address in m.rcpts and text.encode() in m.data)

        dave = f"dave{uuid.uuid4().hex[:6]}@remote.test"
        send(1, dave)
        self.sink.wait_for(lambda m: dave in m.rcpts and text.encode() in m.data, timeout=60)
        # Again through the other node: the claim in the store says dave was answered.
        send(0, dave)
        erin = f"erin{uuid.uuid4().hex[:6]}@remote.test"
        send(0, erin)
        self.sink.wait_for(lambda m: erin in m.rcpts and text.encode() in m.data, timeout=60)
        wait_until(lambda: "empty" in self.nodes[0].queue_list(), 60, "an empty queue")
        self.assertEqual(replies_to(dave), 1)


class SharedAccountDataTest(ClusterBase):
    """Identities and devices live in the shared store, not in a node's data_dir."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.make_nodes(2)

    def jmap(self, node: int, user: str = ALICE, password: str = ALICE_PW) -> JmapHttp:
        return JmapHttp(self.nodes[node].addr("http"), basic_auth(user, password))

    def test_identity_created_on_one_node_is_returned_by_the_other(self):
        one, two = self.jmap(0), self.jmap(1)
        since = two.ok("Identity/get", {})["state"]
        name = f"Alice via node 1 {uuid.uuid4().hex[:6]}"
        created = one.ok("Identity/set", {"create": {"i": {
            "email": ALICE, "name": name, "textSignature": "-- sent from node 1"}}})
        ident = created["created"]["i"]["id"]
        got = two.ok("Identity/get", {"ids": [ident]})
        self.assertEqual(got["notFound"], [])
        self.assertEqual((got["list"][0]["name"], got["list"][0]["textSignature"]),
                         (name, "-- sent from node 1"))
        changes = two.ok("Identity/changes", {"sinceState": since})
        self.assertEqual(changes["created"], [ident])
        self.assertEqual(changes["newState"], got["state"])
        # And back: destroyed on node 2, gone on node 1.
        two.ok("Identity/set", {"destroy": [ident]})
        self.assertEqual(one.ok("Identity/get", {"ids": [ident]})["notFound"], [ident])

    def test_threads_join_and_merge_across_nodes_rfc8621_3(self):
        # Issue 14 JMAP item 2 on PostgreSQL: the thread references are in the store, so
        # a reply imported on one node and its parent on the other share a thread, and the
        # missing middle of a conversation merges two threads whichever node imports it.
        one, two = self.jmap(0), self.jmap(1)
        t = uuid.uuid4().hex[:10]

        def imported(c: JmapHttp, subject: str, mid: str, parent: str | None = None) -> dict:
            raw = (f"From: a@remote.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
                   f"Message-ID: <{mid}>\r\n" + (f"In-Reply-To: <{parent}>\r\n" if parent else "")
                   + "\r\nbody\r\n").encode()
            up = c.request("POST", f"/jmap/upload/{c.account_id}/", body=raw,
                           headers={"Content-Type": "message/rfc822"})
            self.assertEqual(up.status, 201, up)
            inbox = c.mailbox_by_role("inbox")["id"]
            resp = c.ok("Email/import", {"emails": {"i": {
                "blobId": up.json()["blobId"], "mailboxIds": {inbox: True}}}})
            return resp["created"]["i"]

        reply = imported(one, f"Re: p {t}", f"reply.{t}@x", f"parent.{t}@x")
        parent = imported(two, f"p {t}", f"parent.{t}@x")
        self.assertEqual(parent["threadId"], reply["threadId"])
        root = imported(one, f"r {t}", f"root.{t}@x")
        leaf = imported(two, f"Re: Re: r {t}", f"leaf.{t}@x", f"mid.{t}@x")
        self.assertNotEqual(root["threadId"], leaf["threadId"])
        since = one.email_state()
        mid = imported(two, f"Re: r {t}", f"mid.{t}@x", f"root.{t}@x")
        self.assertEqual(mid["threadId"], root["threadId"])
        got = one.ok("Email/get", {"ids": [leaf["id"]], "properties": ["threadId"]})
        self.assertEqual(got["list"][0]["threadId"], root["threadId"])
        self.assertIn(leaf["id"], one.ok("Email/changes", {"sinceState": since})["updated"])

    def test_legacy_identity_file_is_moved_into_the_store_at_start(self):
        node = self.nodes[1]
        account = int(self.jmap(0).account_id.lstrip("A"))
        ident = f"I{uuid.uuid4().hex[:12]}"
        node.stop()
        legacy = node.data_dir / "jmap-identities.json"
        legacy.write_text(json.dumps({
            "accounts": {str(account): {ident: {
                "name": "From the old file", "email": ALICE, "reply_to": None, "bcc": None,
                "text_signature": "-- old", "html_signature": ""}}},
            "states": {str(account): 7},
        }))
        node.start()
        # The node migrates before its JMAP listener serves: its first answer already has it.
        got = self.jmap(1).ok("Identity/get", {"ids": [ident]})
        self.assertEqual(got["notFound"], [])
        self.assertFalse(legacy.exists(), "the migrated file is removed")
        # Read through the other node: the identity is in the shared store now.
        got = self.jmap(0).ok("Identity/get", {"ids": [ident]})
        self.assertEqual((got["list"][0]["name"], got["list"][0]["textSignature"]),
                         ("From the old file", "-- old"))
        self.assertIn("migrated a legacy JMAP state file", node.log_tail(20000))

    def test_concurrent_sign_ins_on_both_nodes_are_all_listed(self):
        grants: list = []
        errors: list = []

        def grant(i: int):
            try:
                grants.append(password_grant(self.nodes[i % 2].addr("http"), BOB, BOB_PW))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=grant, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(IO_TIMEOUT * 3)
        self.assertEqual(errors, [])
        self.assertEqual(len(grants), 12)
        client = JmapHttp(self.nodes[1].addr("http"), bearer_auth(grants[0]["access_token"]))
        r = client.request("GET", "/api/account/sessions")
        self.assertEqual(r.status, 200, r)
        listed = [s for s in r.json() if s["via"] == "token"]
        self.assertEqual(len(listed), 12, "every sign-in is listed, on either node")


class HotMailboxCrashTest(ClusterBase):
    """Issue 19 (Show): 50 concurrent deliveries to one mailbox on PostgreSQL, grouped into
    shared transactions by the node's writer, while that node is killed with SIGKILL mid-batch.
    Afterwards a client sees UIDs 1..N without gaps (RFC 9051 §2.3.1.1: UIDs strictly
    ascending; a rolled-back batch must not burn any), MODSEQs strictly increasing with the UID
    (RFC 7162 §3.1.1), and every acknowledged message exactly once."""

    SESSIONS = 50
    KILL_AFTER_ACKS = 300
    AFTER_KILL_PER_SESSION = 4
    DEADLINE = 240.0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # 50 sessions from one loopback address (the default per-IP limit is lower).
        cls.make_nodes(2, limits_toml="max_connections_per_ip = 200")

    def test_concurrent_deliveries_to_one_mailbox_survive_sigkill_mid_batch(self):
        victim, survivor = self.nodes
        lock = threading.Lock()
        acked: set[str] = set()
        attempted: set[str] = set()
        errors: list[str] = []
        killed = threading.Event()
        deadline = time.monotonic() + self.DEADLINE

        def sender(idx: int):
            s, node, after_kill, i = None, victim, 0, 0
            while after_kill < self.AFTER_KILL_PER_SESSION and time.monotonic() < deadline:
                if killed.is_set() and node is victim:
                    # The node died under us: go on with the other node, as a client would.
                    node, s = survivor, None
                mid = f"<hot-{idx}-{i}-{uuid.uuid4().hex}@e2e.test>"
                i += 1
                try:
                    if s is None:
                        s = node.smtp()
                        s.ehlo("hot-client.test")
                    with lock:
                        attempted.add(mid)
                    s.sendmail("load@remote.test", [ALICE],
                               make_message(f"hot {idx}-{i}", message_id=mid))
                    with lock:
                        acked.add(mid)
                    if node is survivor:
                        after_kill += 1
                except (smtplib.SMTPException, OSError) as exc:
                    if node is survivor:
                        with lock:
                            errors.append(f"session {idx} on the surviving node: {exc!r}")
                        return
                    s = None
            if s is not None:
                try:
                    s.quit()
                except (smtplib.SMTPException, OSError):
                    pass

        threads = [threading.Thread(target=sender, args=(i,), daemon=True)
                   for i in range(self.SESSIONS)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) >= self.KILL_AFTER_ACKS, self.DEADLINE,
                   f"{self.KILL_AFTER_ACKS} acknowledged deliveries", interval=0.01)
        victim.kill9()
        killed.set()
        with lock:
            acked_at_kill = len(acked)
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic()))
        self.assertFalse(any(t.is_alive() for t in threads), "senders finished in time")
        self.assertEqual(errors, [], "the surviving node accepted every message")
        victim.start()  # the killed node starts again on the same database without repair

        for node in (survivor, victim):
            m = node.imap(ALICE, ALICE_PW)
            try:
                typ, data = m.select("INBOX", readonly=True)
                self.assertEqual(typ, "OK", data)
                data = imap_check(m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS "
                                        "(MESSAGE-ID)])"), "UID FETCH")
                modseq_lines = imap_check(m.uid("FETCH", "1:*", "(MODSEQ)"), "UID FETCH MODSEQ")
            finally:
                safe_logout(m)
            modseq_of = {}
            for line in modseq_lines:
                found_uid = re.search(rb"UID (\d+)", line)
                found_modseq = re.search(rb"MODSEQ \((\d+)\)", line)
                if found_uid and found_modseq:
                    modseq_of[int(found_uid.group(1))] = int(found_modseq.group(1))
            rows = []
            for item in data:
                if not isinstance(item, tuple):
                    continue
                uid = int(re.search(r"UID (\d+)", item[0].decode()).group(1))
                mid = re.search(rb"(?i)message-id:\s*(<[^>]+>)", item[1]).group(1).decode()
                rows.append((uid, modseq_of.get(uid, 0), mid))
            rows.sort()
            self.assertEqual(len(modseq_of), len(rows), "a MODSEQ for every message")
            uids = [r[0] for r in rows]
            modseqs = [r[1] for r in rows]
            found: dict[str, int] = {}
            for _, _, mid in rows:
                found[mid] = found.get(mid, 0) + 1
            figures = (f"acknowledged={len(acked)} (before the kill {acked_at_kill}), "
                       f"attempted={len(attempted)}, in INBOX={len(rows)}")
            self.assertEqual(uids, list(range(1, len(rows) + 1)),
                             f"UIDs 1..N without gaps ({node.config}; {figures})")
            self.assertTrue(all(a < b for a, b in zip(modseqs, modseqs[1:])),
                            f"MODSEQs strictly increase with the UID ({node.config})")
            self.assertEqual([m for m in acked if m not in found], [],
                             f"acknowledged but missing ({figures})")
            self.assertEqual([m for m, n in found.items() if n > 1], [],
                             f"stored twice ({figures})")
            self.assertEqual(set(found) - attempted, set(), "nothing that was not sent")
        print(f"\nHOT MAILBOX CRASH FIGURES: {figures}", file=sys.stderr)


class ReloadTest(ClusterBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.make_nodes(1)

    def test_invalid_config_is_refused_and_the_server_keeps_serving(self):
        node = self.nodes[0]
        good = node.config.read_text()
        try:
            node.config.write_text(good.replace('max_message_size = "1M"',
                                                'max_message_size = "1 parsec"'))
            proc = node.cli("config", "reload", check=False)
            self.assertEqual(proc.returncode, 78, proc.stderr)
            self.assertRegex(proc.stderr, re.escape(str(node.config)) + r":\d+: limits.max_message_size")
            self.assertIn("last good", proc.stderr)
            self.assertTrue(node.running())
            with node.smtp() as s:
                self.assertEqual(s.noop()[0], 250)
        finally:
            node.config.write_text(good)

    def test_valid_config_applies_live_keys_and_names_restart_keys(self):
        node = self.nodes[0]
        good = node.config.read_text()
        try:
            changed = good.replace('drain_timeout = "20s"', 'drain_timeout = "9s"')
            changed = changed.replace('smtp = "127.0.0.1:0"', 'smtp = "127.0.0.1:1"')
            changed += '\n[log]\nlevel = "debug"\n'
            node.config.write_text(changed)
            out = node.cli("config", "reload").stdout
            self.assertIn("applied log.level, drain_timeout", out)
            self.assertIn("needs a restart (old values kept until then): listen", out)
            with node.smtp() as s:  # still on the old address
                self.assertEqual(s.noop()[0], 250)
        finally:
            node.config.write_text(good)
            node.cli("config", "reload")


class DrainTest(ClusterBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.make_nodes(1)

    def test_drain_finishes_transactions_says_bye_and_exits(self):
        node = self.nodes[0]
        smtp = RawSmtp(node.addr("smtp"))
        self.assertEqual(smtp.greeting[0], 220)
        self.assertEqual(smtp.cmd("EHLO client.test")[0], 250)
        self.assertEqual(smtp.cmd("MAIL FROM:<x@remote.test>")[0], 250)
        self.assertEqual(smtp.cmd(f"RCPT TO:<{BOB}>")[0], 250)
        idle = RawImap(node.addr("imaps"))
        idle.login(BOB, "bob-Secret-pw-2")
        idle.ok("SELECT INBOX")
        idle.send(b"i1 IDLE\r\n")
        self.assertTrue(idle.read_line().startswith(b"+"))
        other = RawImap(node.addr("imaps"))
        other.login(ALICE, ALICE_PW)

        drain = subprocess.Popen([str(node.bin), "node", "drain", "--config", str(node.config)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: http_get(node.addr("http"), "/readyz") == (503, "draining\n"),
                       30, "/readyz to say draining")
            self.assertEqual(http_get(node.addr("http"), "/jmap/session")[0], 503)
            # IDLE: told at once.
            self.assertEqual(idle.read_line(), b"* BYE [UNAVAILABLE] server shutting down\r\n")
            # A session waiting between commands: told at once too.
            self.assertEqual(other.read_line(), b"* BYE [UNAVAILABLE] server shutting down\r\n")
            # SMTP: the open transaction completes, then 421.
            self.assertEqual(smtp.cmd("DATA")[0], 354)
            smtp.send(make_message("drained-in-flight", to=BOB) + b".\r\n")
            self.assertEqual(smtp.reply()[0], 250)
            code, lines = smtp.reply()
            self.assertEqual(code, 421)
            self.assertIn("4.3.2", lines[0])
            self.assertEqual(wait_exit(node), 0)
            out, err = drain.communicate(timeout=DRAIN_TIMEOUT)
            self.assertEqual(drain.returncode, 0, err)
            self.assertIn("drained", out)
            self.assertFalse((node.data_dir / "bulwark.pid").exists())
        finally:
            if drain.poll() is None:
                drain.kill()
            for c in (smtp, idle, other):
                c.close()
        # The message accepted during the drain is there after a restart.
        node.start()
        m = node.imap(BOB, "bob-Secret-pw-2")
        try:
            imap_check(m.select("INBOX"), "SELECT")
            self.assertEqual(len(imap_search(m, "SUBJECT", '"drained-in-flight"')), 1)
        finally:
            safe_logout(m)

    def test_drain_timeout_bounds_a_stuck_session(self):
        node = self.nodes[0]
        if not node.running():
            node.start()
        smtp = RawSmtp(node.addr("smtp"))
        try:
            self.assertEqual(smtp.greeting[0], 220)
            self.assertEqual(smtp.cmd("EHLO client.test")[0], 250)
            self.assertEqual(smtp.cmd("MAIL FROM:<x@remote.test>")[0], 250)
            started = time.monotonic()
            proc = node.cli("node", "drain", "--timeout", "2")
            self.assertIn("drained", proc.stdout)
            self.assertLess(time.monotonic() - started, 15)
            self.assertFalse(node.running())
        finally:
            smtp.close()
            node._close_log()


class RollingRestartTest(ClusterBase):
    """Two nodes, steady SMTP load spread over both; each is drained and restarted in turn.
    Every acknowledged message is found exactly once, and no command goes unanswered."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.make_nodes(2)

    def send_one(self, node: Server, subject: str) -> str:
        """'ok' (250 after DATA), 'refused' (421, connection refused/reset before a command was
        answered: try another node), or raises for a dropped command."""
        try:
            smtp = RawSmtp(node.addr("smtp"), timeout=IO_TIMEOUT)
        except OSError:
            return "refused"
        try:
            if smtp.greeting[0] != 220:
                return "refused"
            for line in ("EHLO load.test", "MAIL FROM:<load@remote.test>", f"RCPT TO:<{ALICE}>",
                         "DATA"):
                code, lines = smtp.cmd(line)
                if code == 421:
                    return "refused"
                if code not in (250, 354):
                    raise AssertionError(f"{line} -> {code} {lines}")
            smtp.send(make_message(subject) + b".\r\n")
            code, lines = smtp.reply()
            if code != 250:
                raise AssertionError(f"end of DATA -> {code} {lines}")
            return "ok"
        finally:
            smtp.close()

    def test_rolling_restart_loses_no_message_and_drops_no_command(self):
        acked: list[str] = []
        errors: list[str] = []
        stop = threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                subject = f"rolling-{i}-end"
                i += 1
                for attempt in range(40):
                    node = self.nodes[(i + attempt) % 2]
                    if not node.addrs:
                        continue
                    try:
                        outcome = self.send_one(node, subject)
                    except Exception as exc:  # noqa: BLE001 - a dropped command is the failure
                        errors.append(f"{subject}: {exc!r}")
                        outcome = "error"
                    if outcome == "ok":
                        acked.append(subject)
                        break
                    if outcome == "error":
                        break
                    time.sleep(0.05)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        try:
            wait_until(lambda: len(acked) >= 5, 60, "load to start")
            for node in self.nodes:
                before = len(acked)
                node.cli("node", "drain", "--timeout", "20")
                node._close_log()
                node.start()
                wait_until(lambda b=before: len(acked) >= b + 5, 60, "load to go on")
        finally:
            stop.set()
            loader.join(60)
        self.assertEqual(errors, [])
        m = self.nodes[0].imap(ALICE, ALICE_PW)
        try:
            imap_check(m.select("INBOX", readonly=True), "SELECT")
            lost, duplicated = [], []
            for subject in acked:
                hits = imap_search(m, "HEADER", "Subject", f'"{subject}"')
                if not hits:
                    lost.append(subject)
                elif len(hits) > 1:
                    duplicated.append(subject)
        finally:
            safe_logout(m)
        print(f"\nROLLING RESTART FIGURES: acknowledged={len(acked)} lost={len(lost)} "
              f"duplicated={len(duplicated)} client_errors={len(errors)}")
        self.assertEqual((lost, duplicated), ([], []))


if __name__ == "__main__":
    unittest.main()

"""The mailbox store goes away: nothing is lost, nothing hangs.

A node on its own PostgreSQL (started here with `scripts/pg-test-server`, because this test
stops and restarts it) takes SMTP load from smtplib. PostgreSQL is stopped for a few seconds
while the load continues: every message gets `250` (spooled on the node's disk) or a clean
4xx; IMAP answers `NO [UNAVAILABLE]` within a deadline; JMAP answers 503 with Retry-After.
PostgreSQL is started again; the spool drains; every acknowledged Message-ID is found exactly
once over IMAP. Prints a figure line.

Skipped with a message when the PostgreSQL server binaries are missing; a server that does not
open its spool (no "spool: ready" in its log) is a failure.
"""

from __future__ import annotations

import glob
import re
import smtplib
import subprocess
import threading
import time
import unittest
import uuid

from harness import (ALICE, ALICE_PW, IO_TIMEOUT, LISTENERS, REPO_ROOT, RawImap, Server,
                     make_message, wait_until)
from jmapclient import JmapHttp, bearer_auth, password_grant

# How long PostgreSQL stays down (the drill `store-outage` does the long version).
OUTAGE_SECONDS = 6.0
# Load before the outage.
WARMUP_SECONDS = 1.5
# A protocol answer during the outage must come within this (never a hang).
ANSWER_DEADLINE = 15.0
# The spool must drain within this after PostgreSQL is back.
DRAIN_DEADLINE = 90.0
# Load senders running in parallel, each pacing itself (this is not a throughput test).
SENDERS = 3
SEND_PAUSE = 0.02


def _as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd]


class PgServer:
    """A throwaway PostgreSQL this test may stop and start."""

    def __init__(self):
        if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
            raise unittest.SkipTest(
                "PostgreSQL server binaries are not installed (apt-get install postgresql); "
                "scripts/test installs them")
        out = subprocess.run([str(REPO_ROOT / "scripts" / "pg-test-server")],
                             capture_output=True, text=True, timeout=300, check=True).stdout
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        self.url = values["BULWARK_TEST_PG"]
        self.dir = values["BULWARK_TEST_PG_DIR"]
        self.port = int(re.search(r":(\d+)/", self.url).group(1))
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda d: [int(x) for x in re.findall(r"\d+", d)])
        self.pg_ctl = f"{bindirs[-1]}/pg_ctl"

    def stop(self, mode: str = "fast"):
        subprocess.run(_as_postgres(self.pg_ctl, "-D", f"{self.dir}/data", "-m", mode, "-w",
                                    "stop"), check=True, capture_output=True, timeout=120)

    def start(self):
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c max_connections=400 -c fsync=off -c full_page_writes=off")
        subprocess.run(_as_postgres(self.pg_ctl, "-D", f"{self.dir}/data", "-l",
                                    f"{self.dir}/server.log", "-w", "-t", "60", "-o", opts,
                                    "start"), check=True, capture_output=True, timeout=120)

    def remove(self):
        subprocess.run([str(REPO_ROOT / "scripts" / "pg-test-server"), "stop", self.dir],
                       capture_output=True, timeout=120)


class Load:
    """SMTP senders: each message has a unique Message-ID; records what was acknowledged."""

    def __init__(self, server: Server, tag: str = "outage"):
        self.server = server
        self.tag = tag
        self.acked: list[str] = []
        self.temporary: list[str] = []  # clean 4xx replies
        self.errors: list[str] = []  # anything else (5xx, timeouts, resets)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(SENDERS)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=IO_TIMEOUT * 2)

    def _run(self, n: int):
        client = None
        while not self.stopping.is_set():
            mid = f"<{self.tag}-{n}-{uuid.uuid4().hex}@e2e.test>"
            try:
                if client is None:
                    client = self.server.smtp()
                    client.ehlo("load.test")
                client.sendmail("sender@remote.test", [ALICE],
                                make_message("outage load", message_id=mid))
                with self.lock:
                    self.acked.append(mid)
                self.stopping.wait(SEND_PAUSE)
            except smtplib.SMTPResponseException as e:
                with self.lock:
                    (self.temporary if 400 <= e.smtp_code < 500 else self.errors).append(
                        f"{e.smtp_code} {e.smtp_error!r}")
                self._reset(client)
            except smtplib.SMTPRecipientsRefused as e:
                codes = [c for c, _ in e.recipients.values()]
                with self.lock:
                    (self.temporary if all(400 <= c < 500 for c in codes)
                     else self.errors).append(repr(e.recipients))
                self._reset(client)
            except (OSError, smtplib.SMTPException) as e:
                with self.lock:
                    self.errors.append(repr(e))
                client = None

    @staticmethod
    def _reset(client):
        try:
            client.rset()
        except (OSError, smtplib.SMTPException):
            pass


def message_ids_in_inbox(server: Server) -> list[str]:
    """Every Message-ID in alice's INBOX (one entry per message, duplicates kept)."""
    imap = server.imap(ALICE, ALICE_PW)
    try:
        typ, _ = imap.select("INBOX", readonly=True)
        if typ != "OK":
            return []
        typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        if typ != "OK":
            return []
        ids = []
        for item in data:
            if isinstance(item, tuple):
                m = re.search(rb"<[^>]+>", item[1])
                if m:
                    ids.append(m.group(0).decode())
        return ids
    finally:
        try:
            imap.logout()
        except Exception:
            pass


class StoreOutageTest(unittest.TestCase):
    pg: PgServer | None = None
    node: Server | None = None

    @classmethod
    def setUpClass(cls):
        cls.pg = PgServer()
        cls.node = Server(name="store-outage", listeners=LISTENERS + ("http",),
                          auth_toml="allow_plaintext_on_loopback = true")
        text = cls.node.config.read_text().replace("allow_plaintext_on_loopback = false\n", "")
        cls.node.config.write_text(f'store = "{cls.pg.url}"\nnode_id = "outage-1"\n' + text)
        cls.node.standard_fixture()
        cls.node.start()
        if "spool: ready" not in cls.node.log_path.read_text(errors="replace"):
            raise AssertionError("the server did not open its local spool (no 'spool: ready' in its log)")

    @classmethod
    def tearDownClass(cls):
        if cls.node:
            cls.node.cleanup()
        if cls.pg:
            cls.pg.remove()

    def run(self, result=None):
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before and self.node:
            print(f"\n[{self.id()}] {self.node.log_tail(4000)}")
        return out

    def check_each_once(self, acked: list[str]) -> tuple[list[str], list[str]]:
        counts: dict[str, int] = {}
        for mid in message_ids_in_inbox(self.node):
            counts[mid] = counts.get(mid, 0) + 1
        lost = [m for m in acked if counts.get(m, 0) == 0]
        duplicated = [m for m in acked if counts.get(m, 0) > 1]
        return lost, duplicated

    def test_a_crash_during_replay_still_delivers_each_spooled_message_once(self):
        node, pg = self.node, self.pg
        pg.stop("immediate")
        try:
            load = Load(node, tag="crash")
            load.start()
            spool = node.data_dir / "spool"
            wait_until(lambda: len(list(spool.glob("*.msg"))) >= 100, DRAIN_DEADLINE,
                       "100 messages in the spool")
            load.stop()
        finally:
            pg.start()
        spooled = len(list(spool.glob("*.msg")))
        # Kill the node as soon as the replay has made progress (mid-replay).
        wait_until(lambda: len(list(spool.glob("*.msg"))) < spooled, DRAIN_DEADLINE,
                   "the replay to start")
        node.kill9()
        left = len(list(spool.glob("*.msg")))
        node.start()
        wait_until(lambda: not any(spool.glob("*.msg")), DRAIN_DEADLINE, "the spool to drain")
        lost, duplicated = self.check_each_once(load.acked)
        print(f"\nstore-outage crash-during-replay figures: acked={len(load.acked)} "
              f"spooled={spooled} left_at_crash={left} lost={len(lost)} "
              f"duplicated={len(duplicated)} client_errors={len(load.errors)}")
        self.assertEqual(lost, [])
        self.assertEqual(duplicated, [])
        self.assertEqual(load.errors, [])

    def test_mail_survives_a_store_outage_and_clients_get_clear_temporary_errors(self):
        node, pg = self.node, self.pg
        http = node.addr("http")
        token = password_grant(http, ALICE, ALICE_PW)["access_token"]
        jmap = JmapHttp(http, bearer_auth(token))
        account = jmap.account_id
        imap = RawImap(node.addr("imaps"))
        imap.login(ALICE, ALICE_PW)

        load = Load(node)
        load.start()
        time.sleep(WARMUP_SECONDS)  # load runs meanwhile; nothing is being waited for
        pg.stop("fast")
        outage_started = time.monotonic()
        acked_before = len(load.acked)
        try:
            # IMAP: a clear NO [UNAVAILABLE], never a hang.
            def imap_unavailable():
                started = time.monotonic()
                lines = imap.command("SELECT INBOX", timeout=ANSWER_DEADLINE)
                self.assertLess(time.monotonic() - started, ANSWER_DEADLINE)
                last = lines[-1]
                return b"NO [UNAVAILABLE]" in last or None
            wait_until(imap_unavailable, ANSWER_DEADLINE, "IMAP NO [UNAVAILABLE]")

            # JMAP: 503 with Retry-After.
            def jmap_unavailable():
                r = jmap.post_api({"using": ["urn:ietf:params:jmap:core",
                                             "urn:ietf:params:jmap:mail"],
                                   "methodCalls": [["Mailbox/get", {"accountId": account},
                                                    "c1"]]})
                return r if r.status == 503 else None
            r = wait_until(jmap_unavailable, ANSWER_DEADLINE, "JMAP 503")
            self.assertTrue(r.headers.get("retry-after", "").isdigit(), r.headers)

            remaining = OUTAGE_SECONDS - (time.monotonic() - outage_started)
            if remaining > 0:
                time.sleep(remaining)  # the outage lasts; load keeps running
            acked_during = len(load.acked) - acked_before
        finally:
            pg.start()
        restarted = time.monotonic()
        time.sleep(1.0)  # a little load after recovery too
        load.stop()
        acked = list(load.acked)

        spool = node.data_dir / "spool"
        wait_until(lambda: not any(spool.glob("*.msg")), DRAIN_DEADLINE, "the spool to drain")
        drain_seconds = time.monotonic() - restarted
        ids = message_ids_in_inbox(node)
        counts: dict[str, int] = {}
        for mid in ids:
            counts[mid] = counts.get(mid, 0) + 1
        lost = [m for m in acked if counts.get(m, 0) == 0]
        duplicated = [m for m in acked if counts.get(m, 0) > 1]
        print(f"\nstore-outage figures: acked={len(acked)} found={len(acked) - len(lost)} "
              f"lost={len(lost)} duplicated={len(duplicated)} "
              f"temporary_4xx={len(load.temporary)} client_errors={len(load.errors)} "
              f"outage_s={OUTAGE_SECONDS:.0f} drain_s={drain_seconds:.1f}")
        self.assertEqual(lost, [], "acknowledged but not delivered")
        self.assertEqual(duplicated, [], "delivered more than once")
        self.assertEqual(load.errors, [], "only 250 or clean 4xx replies are allowed")
        self.assertGreater(acked_during, 0, "nothing was accepted into the spool")

        # Everything works again afterwards.
        lines = imap.command("SELECT INBOX", timeout=ANSWER_DEADLINE)
        self.assertIn(b" OK", lines[-1][:20])
        imap.close()


if __name__ == "__main__":
    unittest.main()

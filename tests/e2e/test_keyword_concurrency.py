"""Issue 14 (Show): 20 IMAP sessions on one mailbox for 30 s — most set and clear random keywords,
some append and expunge — and every session's view is checked against the RFC rules as it goes:

* every keyword in a FETCH FLAGS response was announced by an untagged FLAGS before
  (RFC 3501 §7.2.6, RFC 9051 §7.3.5);
* no EXPUNGE is sent while the server answers FETCH, STORE or SEARCH (RFC 9051 §7.5.1: it would
  renumber messages under the client's feet);
* a message's MODSEQ never goes down (RFC 7162 §3.1.1);
* sequence numbers stay valid for the session until it is told of an expunge (RFC 9051 §2.3.1.2):
  the server never answers one of ours with NO or BAD.

Raw sockets (not imaplib) so that every untagged line is seen in the order the server sent it.
"""

from __future__ import annotations

import random
import re
import threading
import time
import unittest

from harness import ALICE, ALICE_PW, ServerTestCase, make_message

SESSIONS = 20
CHURNERS = 4  # of SESSIONS: append and expunge instead of setting keywords
DURATION = 30.0
SEED = 30
KEYWORDS = [f"{prefix}{i}" for prefix in ("$Label", "Work", "nonjunk", "Project_") for i in range(10)]

FLAGS_LINE = re.compile(rb"^\* FLAGS \(([^)]*)\)")
FETCH_LINE = re.compile(rb"^\* (\d+) FETCH \((.*)\)\r\n$")
EXPUNGE_LINE = re.compile(rb"^\* (\d+) EXPUNGE")
EXISTS_LINE = re.compile(rb"^\* (\d+) EXISTS")
FLAGS_ITEM = re.compile(rb"FLAGS \(([^)]*)\)")
UID_ITEM = re.compile(rb"UID (\d+)")
MODSEQ_ITEM = re.compile(rb"MODSEQ \((\d+)\)")


class Watcher:
    """One session and the rules it checks on everything it receives."""

    def __init__(self, server, name: str):
        self.name = name
        self.c = server.raw_imap(tls=True)
        self.c.login(ALICE, ALICE_PW)
        self.announced: set[str] = set()
        self.exists = 0
        self.modseqs: dict[int, int] = {}
        self.violations: list[str] = []
        self.ops = 0
        self.expunges_seen = 0
        self.fetched_keywords: set[str] = set()
        self.run("SELECT INBOX (CONDSTORE)", "SELECT")

    def run(self, command: str, verb: str) -> list[bytes]:
        lines = self.c.command(command)
        self.ops += 1
        last = lines[-1] if lines else b""
        # RFC 9051 §7.1: NO [EXPUNGEISSUED] is a permitted answer for a message another
        # session expunged (not yet reported to this one).
        if not re.match(rb"^t\d+ (OK|NO \[EXPUNGEISSUED\])", last):
            self.violations.append(f"{self.name}: {command!r} answered {last!r}")
        for line in lines[:-1]:
            self.check(line, verb, command)
        return lines

    def check(self, line: bytes, verb: str, command: str):
        if m := FLAGS_LINE.match(line):
            self.announced = {f.decode().lower() for f in m.group(1).split()}
        elif m := EXISTS_LINE.match(line):
            self.exists = int(m.group(1))
        elif EXPUNGE_LINE.match(line):
            self.expunges_seen += 1
            self.exists -= 1
            if verb in ("FETCH", "STORE", "SEARCH"):
                self.violations.append(f"{self.name}: EXPUNGE during {command!r}: {line!r}")
        elif m := FETCH_LINE.match(line):
            body = m.group(2)
            if f := FLAGS_ITEM.search(body):
                for flag in f.group(1).split():
                    flag = flag.decode()
                    if flag.startswith("\\"):
                        continue
                    self.fetched_keywords.add(flag.lower())
                    if flag.lower() not in self.announced:
                        self.violations.append(
                            f"{self.name}: keyword {flag} used before FLAGS announced it "
                            f"(in {command!r}: {line!r})")
            uid, modseq = UID_ITEM.search(body), MODSEQ_ITEM.search(body)
            if uid and modseq:
                uid, modseq = int(uid.group(1)), int(modseq.group(1))
                if modseq < self.modseqs.get(uid, 0):
                    self.violations.append(
                        f"{self.name}: MODSEQ of UID {uid} went from {self.modseqs[uid]} to {modseq}")
                self.modseqs[uid] = max(modseq, self.modseqs.get(uid, 0))

    def keyword_round(self, rng: random.Random):
        if self.exists == 0:
            self.run("NOOP", "NOOP")
            return
        seq = rng.randint(1, self.exists)
        kw = rng.choice(KEYWORDS)
        op = rng.random()
        if op < 0.35:
            self.run(f"STORE {seq} +FLAGS ({kw})", "STORE")
        elif op < 0.55:
            self.run(f"STORE {seq} -FLAGS ({kw})", "STORE")
        elif op < 0.70:
            self.run(f"FETCH {seq} (FLAGS)", "FETCH")
        elif op < 0.80:
            self.run("FETCH 1:* (UID FLAGS MODSEQ)", "FETCH")
        elif op < 0.92:
            self.run(f"SEARCH KEYWORD {kw}", "SEARCH")
        else:
            self.run("NOOP", "NOOP")

    def churn_round(self, rng: random.Random, n: int):
        message = make_message(f"churn {self.name} {n}").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        lines = self.c.command(f"APPEND INBOX {{{len(message)}+}}\r\n".encode() + message)
        self.ops += 1
        for line in lines[:-1]:
            self.check(line, "APPEND", "APPEND")
        appended = re.search(rb"APPENDUID \d+ (\d+)", lines[-1] if lines else b"")
        if not appended:
            self.violations.append(f"{self.name}: APPEND answered {lines[-1:]!r}")
            return
        uid = appended.group(1).decode()
        # Expunge something older now and then, so the mailbox size stays near the seed.
        self.run(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)", "UID STORE")
        self.run(f"UID EXPUNGE {uid}", "UID EXPUNGE")
        self.run("NOOP", "NOOP")

    def close(self):
        try:
            self.c.command("LOGOUT")
        except OSError:
            pass
        self.c.close()


class KeywordConcurrencyTest(ServerTestCase):
    # 20 sessions from one loopback address.
    limits_toml = "max_connections_per_ip = 100"

    def test_twenty_sessions_setting_keywords_for_30_s_keep_every_rfc_rule(self):
        seeder = self.server.imap(ALICE, ALICE_PW)
        for i in range(SEED):
            seeder.append("INBOX", None, None, make_message(f"seed {i}"))
        seeder.logout()

        watchers = [Watcher(self.server, f"s{i}") for i in range(SESSIONS)]
        deadline = time.monotonic() + DURATION
        errors: list[str] = []

        def drive(index: int, w: Watcher):
            rng = random.Random(index)
            n = 0
            try:
                while time.monotonic() < deadline:
                    n += 1
                    if index < CHURNERS:
                        w.churn_round(rng, n)
                    else:
                        w.keyword_round(rng)
            except Exception as exc:  # noqa: BLE001 — reported below with the session's name
                errors.append(f"{w.name}: {exc!r}")

        threads = [threading.Thread(target=drive, args=(i, w), daemon=True)
                   for i, w in enumerate(watchers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DURATION + 60)
        for w in watchers:
            w.close()
        self.assertFalse(any(t.is_alive() for t in threads), "sessions finished")
        self.assertEqual(errors, [])
        violations = [v for w in watchers for v in w.violations]
        self.assertEqual(violations[:10], [], f"{len(violations)} rule violations")
        # The run exercised what it checks.
        keyword_sessions = watchers[CHURNERS:]
        self.assertGreater(sum(w.ops for w in watchers), 20 * SESSIONS)
        self.assertGreater(len(set().union(*(w.fetched_keywords for w in keyword_sessions))), 10,
                           "keywords were set and fetched")
        self.assertGreater(sum(w.expunges_seen for w in keyword_sessions), 0,
                           "other sessions' expunges reached the keyword sessions")
        self.assertTrue(any(w.modseqs for w in keyword_sessions), "MODSEQs were fetched")
        print(f"\nKEYWORD CONCURRENCY: {sum(w.ops for w in watchers)} commands in {DURATION:.0f} s, "
              f"{sum(w.expunges_seen for w in keyword_sessions)} expunges seen, "
              f"{len(set().union(*(w.fetched_keywords for w in keyword_sessions)))} keywords",
              flush=True)


if __name__ == "__main__":
    unittest.main()

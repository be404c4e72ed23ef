"""Load variants of issue 13 items 1 and 4, with figures (run by `scripts/security-load`).

Item 4: N idle TCP connections to the `http` listener, first from one IP, then spread over
many loopback source IPs, while the server runs under a descriptor limit (`--nofile`, as a
small VPS or a default systemd unit would). Printed: the server's peak RSS and descriptor
count, how many connections it kept, and whether SMTP, IMAP and HTTP (from a fresh IP) still
answered at the peak.

Item 1: a JMAP request of K `Core/echo` calls that each reference the previous result twice
(19 and 32 calls, as in the report). Printed: response size, time, peak RSS. A server whose
RSS passes `--rss-cap` MiB is killed (the 32-call chain would otherwise take all memory).

    BULWARK_BIN=target/debug/bulwark python3 tests/e2e/load_security_http.py [--nofile 4096]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import socket
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ALICE, ALICE_PW, LISTENERS, Server, bulwark_bin  # noqa: E402
from jmapclient import CAP_CORE, basic_auth  # noqa: E402


def status_of(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) // 1024
    except OSError:
        pass
    return out


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


class Sampler(threading.Thread):
    """Samples the server's RSS and descriptors; kills it past `rss_cap` MiB."""

    def __init__(self, proc, rss_cap: int):
        super().__init__(daemon=True)
        self.proc, self.rss_cap = proc, rss_cap
        self.peak_fds = 0
        self.peak_rss = 0
        self.killed = False
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and self.proc.poll() is None:
            self.peak_fds = max(self.peak_fds, fd_count(self.proc.pid))
            rss = status_of(self.proc.pid).get("VmRSS", 0)
            self.peak_rss = max(self.peak_rss, rss)
            if rss > self.rss_cap:
                self.killed = True
                self.proc.kill()
                return
            time.sleep(0.05)


def greets(addr, prefix: bytes, source_ip: str | None = None) -> str:
    try:
        s = socket.create_connection(addr, timeout=5,
                                     source_address=(source_ip, 0) if source_ip else None)
        with s:
            data = s.recv(256)
            return "yes" if data.startswith(prefix) else f"no ({data[:40]!r})"
    except OSError as e:
        return f"no ({e.__class__.__name__}: {e})"


def http_status(addr, source_ip: str) -> str:
    try:
        conn = http.client.HTTPConnection(addr[0], addr[1], timeout=5,
                                          source_address=(source_ip, 0))
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        conn.close()
        return str(r.status)
    except (OSError, http.client.HTTPException) as e:
        return f"no ({e.__class__.__name__}: {e})"


def wrapper_bin(real: Path, nofile: int, workdir: Path) -> Path:
    """A launcher that runs the server (and CLI) under `ulimit -n nofile` (soft and hard)."""
    w = workdir / "bulwark-nofile"
    w.write_text(f'#!/bin/sh\nulimit -n {nofile}\nexec "{real}" "$@"\n')
    w.chmod(w.stat().st_mode | stat.S_IXUSR)
    return w


def flood(server: Server, sampler: Sampler, n: int, ips: int) -> dict:
    http_addr = server.addr("http")
    socks, errors = [], {}
    start = time.monotonic()
    for i in range(n):
        ip = f"127.0.{1 + (i % ips) // 250}.{1 + (i % ips) % 250}" if ips > 1 else "127.0.0.1"
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((ip, 0))
            s.connect_ex(http_addr)
            socks.append(s)
        except OSError as e:
            errors[e.__class__.__name__] = errors.get(e.__class__.__name__, 0) + 1
    time.sleep(3)  # load figure: let the accept loop see all of them (not a test wait)
    pid = server.proc.pid
    held = 0
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            port_hex = f"{http_addr[1]:04X}"
            held = sum(1 for line in f if f":{port_hex} " in line.split()[1] + " "
                       and line.split()[3] == "01")
    except OSError:
        pass
    figures = {
        "connections opened": len(socks),
        "client errors": errors,
        "open http connections on the server": held,
        "server fds now": fd_count(pid),
        "smtp answers": greets(server.addr("smtp"), b"220", "127.0.200.1"),
        "imap answers": greets(server.addr("imap"), b"* OK", "127.0.200.1"),
        "http answers from a fresh IP": http_status(http_addr, "127.0.200.2"),
        "seconds": round(time.monotonic() - start, 1),
    }
    for s in socks:
        s.close()
    return figures


def amplification(server: Server, calls: int, sampler: Sampler) -> dict:
    body = [["Core/echo", {"s": "a" * 1024}, "c0"]]
    for i in range(1, calls):
        ref = {"resultOf": f"c{i - 1}", "name": "Core/echo", "path": ""}
        body.append(["Core/echo", {"#l": ref, "#r": ref}, f"c{i}"])
    payload = json.dumps({"using": [CAP_CORE], "methodCalls": body}).encode()
    addr = server.addr("http")
    before = status_of(server.proc.pid).get("VmHWM", 0)
    start = time.monotonic()
    result = {"request bytes": len(payload)}
    try:
        conn = http.client.HTTPConnection(addr[0], addr[1], timeout=600)
        conn.request("POST", "/jmap/api", body=payload, headers={
            "Authorization": basic_auth(ALICE, ALICE_PW), "Content-Type": "application/json"})
        r = conn.getresponse()
        size = 0
        while chunk := r.read(1 << 20):
            size += len(chunk)
        result.update({"status": r.status, "response bytes": size})
    except (OSError, http.client.HTTPException) as e:
        result["error"] = f"{e.__class__.__name__}: {e}"
    result["seconds"] = round(time.monotonic() - start, 1)
    after = status_of(server.proc.pid)
    result["peak RSS MiB (before -> after)"] = f"{before} -> {after.get('VmHWM', sampler.peak_rss)}"
    result["killed at the RSS cap"] = sampler.killed
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nofile", type=int, default=4096, help="server descriptor limit (soft=hard)")
    ap.add_argument("--connections", type=int, default=20000)
    ap.add_argument("--ips", type=int, default=1000, help="source IPs of the spread flood")
    ap.add_argument("--calls", default="19,32", help="Core/echo chain lengths")
    ap.add_argument("--rss-cap", type=int, default=6144, help="MiB; the server is killed past it")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = min(args.connections, hard - 200)
    work = Path(tempfile.mkdtemp(prefix="bulwark-security-load-"))
    os.environ["BULWARK_BIN"] = str(wrapper_bin(bulwark_bin().resolve(), args.nofile, work))
    print(f"binary: {bulwark_bin()}  server nofile: {args.nofile}  client connections: {n}"
          f" (client hard limit {hard})")
    results = {}
    for label, ips in (("one IP", 1), (f"{args.ips} IPs", args.ips)):
        server = Server(name="security-load", listeners=LISTENERS + ("http",))
        try:
            server.standard_fixture()
            server.start()
            sampler = Sampler(server.proc, args.rss_cap)
            sampler.start()
            figures = flood(server, sampler, n, ips)
            sampler.stop.set()
            sampler.join()
            figures["server peak fds"] = sampler.peak_fds
            figures["server peak RSS MiB"] = status_of(server.proc.pid).get("VmHWM", sampler.peak_rss)
            figures["server still running"] = server.proc.poll() is None
            results[f"item 4: {n} idle http connections from {label}"] = figures
        finally:
            server.cleanup()
    for calls in (int(c) for c in args.calls.split(",") if c):
        server = Server(name="security-load", listeners=LISTENERS + ("http",))
        try:
            server.standard_fixture()
            server.start()
            sampler = Sampler(server.proc, args.rss_cap)
            sampler.start()
            figures = amplification(server, calls, sampler)
            sampler.stop.set()
            sampler.join()
            figures["server peak RSS MiB (sampled)"] = sampler.peak_rss
            results[f"item 1: {calls} doubling Core/echo calls"] = figures
        finally:
            server.cleanup()
    print("SECURITY LOAD FIGURES:")
    for name, figures in results.items():
        print(f"  {name}")
        for k, v in figures.items():
            print(f"    {k}: {v}")


if __name__ == "__main__":
    main()

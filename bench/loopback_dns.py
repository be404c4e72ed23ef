#!/usr/bin/env python3
"""A DNS server on loopback (not named dns.py: dkimpy imports dnspython as `dns`) for bench/run's "all checks on" rows: answers the records the
inbound checks ask about the load generator's mail (SPF of client.test, DMARC of the From
domains, reverse DNS of 127.0.0.1), NXDOMAIN otherwise. Prints its address, then serves until
killed. The zone is tests/e2e/test_trust.py's (dnslib); Bulwark's resolver caches the answers,
so this server sees few queries once the run is warm."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
try:
    from test_trust import DnsOnLoopback  # noqa: E402
except ImportError:
    sys.exit("bench/loopback_dns.py needs dnslib: python3 -m pip install -r tests/e2e/requirements.txt")

dns = DnsOnLoopback()
dns.zone.add(
    'client.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
    "client.test. 300 IN A 127.0.0.1\n"
    "1.0.0.127.in-addr.arpa. 300 IN PTR client.test.\n"
    '_dmarc.example.net. 300 IN TXT "v=DMARC1; p=none"\n'
    '_dmarc.example.org. 300 IN TXT "v=DMARC1; p=none"\n'
    'example.net. 300 IN TXT "v=spf1 -all"\n'
    'example.org. 300 IN TXT "v=spf1 -all"\n'
)
print(dns.addr, flush=True)
while True:
    time.sleep(3600)

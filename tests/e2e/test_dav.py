"""CalDAV/CardDAV (issue 15 first part) with raw HTTP requests: discovery, PUT/GET with
ETags, sync-collection, calendar-query by date range, limits and isolation of accounts."""

import base64
import socket
import http.client
import re
import unittest

from harness import ALICE, ALICE_PW, BOB, BOB_PW, LISTENERS, ServerTestCase

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//e2e//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:{summary}\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
QUERY = """<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
<d:prop><d:getetag/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">
<c:time-range start="{start}" end="{end}"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"""
WEEKLY = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//e2e//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260302T100000\r\n"
    "DTEND;TZID=Europe/Berlin:20260302T110000\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\n"
    "EXDATE;TZID=Europe/Berlin:20260316T100000\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)
EXPAND = """<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
<d:prop><c:calendar-data><c:expand start="{start}" end="{end}"/></c:calendar-data></d:prop>
<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">
<c:time-range start="{start}" end="{end}"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"""
FREE_BUSY = """<?xml version="1.0"?><c:free-busy-query xmlns:c="urn:ietf:params:xml:ns:caldav">
<c:time-range start="{start}" end="{end}"/></c:free-busy-query>"""
SYNC = """<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token>
<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"""


class DavTest(ServerTestCase):
    listeners = LISTENERS + ("http",)

    def req(self, method, path, body=None, headers=None, user=ALICE, pw=ALICE_PW):
        h = dict(headers or {})
        if user:
            h["Authorization"] = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
        conn = http.client.HTTPConnection(*self.server.addr("http"), timeout=20)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def cal(self, name=""):
        return f"/dav/calendars/{ALICE}/default/{name}"

    def test_discovery_from_the_well_known_url(self):
        st, h, _ = self.req("PROPFIND", "/.well-known/caldav", headers={"Depth": "0"})
        self.assertIn(st, (301, 302, 307, 308))
        self.assertTrue(h["location"].endswith("/dav/"))
        body = '<d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop></d:propfind>'
        st, _, out = self.req("PROPFIND", "/dav/", body, {"Depth": "0"})
        self.assertEqual(st, 207)
        self.assertIn(f"/dav/principals/{ALICE}/".encode(), out)
        body = ('<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
                "<d:prop><c:calendar-home-set/></d:prop></d:propfind>")
        st, _, out = self.req("PROPFIND", f"/dav/principals/{ALICE}/", body, {"Depth": "0"})
        self.assertIn(f"/dav/calendars/{ALICE}/".encode(), out)
        st, _, out = self.req("PROPFIND", f"/dav/calendars/{ALICE}/", None, {"Depth": "1"})
        self.assertEqual(st, 207)
        self.assertIn(b"/default/", out, "every account has a default calendar")
        st, _, out = self.req("PROPFIND", "/dav/", None, {"Depth": "infinity"})
        self.assertEqual(st, 403)
        self.assertIn(b"propfind-finite-depth", out)

    def test_unauthenticated_gets_401_basic(self):
        st, h, _ = self.req("PROPFIND", "/dav/", None, {"Depth": "0"}, user=None)
        self.assertEqual(st, 401)
        self.assertIn("Basic", h["www-authenticate"])

    def test_put_get_edit_with_etag_delete_and_sync(self):
        st, _, out = self.req("REPORT", self.cal(), SYNC.format(token=""), {"Depth": "1"})
        self.assertEqual(st, 207)
        token = re.search(rb"<d:sync-token>([^<]+)</d:sync-token>", out).group(1).decode()
        ev = EVENT.format(uid="e1", start="20261210T100000Z", end="20261210T110000Z", summary="One")
        st, h, _ = self.req("PUT", self.cal("e1.ics"), ev, {"If-None-Match": "*", "Content-Type": "text/calendar"})
        self.assertEqual(st, 201)
        etag = h["etag"]
        st, _, _ = self.req("PUT", self.cal("e1.ics"), ev, {"If-None-Match": "*"})
        self.assertEqual(st, 412)
        st, h, out = self.req("GET", self.cal("e1.ics"))
        self.assertEqual((st, h["etag"]), (200, etag))
        self.assertIn(b"SUMMARY:One", out)
        ev2 = ev.replace("SUMMARY:One", "SUMMARY:Two")
        st, h, _ = self.req("PUT", self.cal("e1.ics"), ev2, {"If-Match": etag})
        self.assertEqual(st, 204)
        self.assertNotEqual(h["etag"], etag)
        st, _, _ = self.req("PUT", self.cal("e1.ics"), ev2, {"If-Match": etag})
        self.assertEqual(st, 412, "stale ETag")
        st, _, out = self.req("REPORT", self.cal(), SYNC.format(token=token), {"Depth": "1"})
        self.assertIn(b"e1.ics", out)
        token2 = re.search(rb"<d:sync-token>([^<]+)</d:sync-token>", out).group(1).decode()
        self.assertNotEqual(token, token2)
        st, _, _ = self.req("DELETE", self.cal("e1.ics"))
        self.assertEqual(st, 204)
        st, _, out = self.req("REPORT", self.cal(), SYNC.format(token=token2), {"Depth": "1"})
        self.assertIn(b"404 Not Found", out)
        st, _, out = self.req("REPORT", self.cal(), SYNC.format(token="bogus"), {"Depth": "1"})
        self.assertEqual(st, 403)
        self.assertIn(b"valid-sync-token", out)

    def test_search_by_date_range(self):
        for uid, day in (("dec", "20261215"), ("jan", "20270115")):
            ev = EVENT.format(uid=uid, start=f"{day}T090000Z", end=f"{day}T100000Z", summary=uid)
            self.assertEqual(self.req("PUT", self.cal(f"{uid}.ics"), ev)[0], 201)
        st, _, out = self.req("REPORT", self.cal(), QUERY.format(start="20261201T000000Z", end="20270101T000000Z"), {"Depth": "1"})
        self.assertEqual(st, 207)
        self.assertIn(b"dec.ics", out)
        self.assertNotIn(b"jan.ics", out)
        st, _, out = self.req("REPORT", self.cal(), QUERY.format(start="00010101T000000Z", end="99991231T000000Z"), {"Depth": "1"})
        self.assertEqual(st, 403, "a 10,000-year range is refused")

    def test_malformed_and_oversize_calendar_data(self):
        st, _, out = self.req("PUT", self.cal("bad.ics"), "BEGIN:VCALENDAR\r\nnonsense")
        self.assertEqual(st, 403)
        self.assertIn(b"valid-calendar-data", out)
        # Refused by its declared length, before the body is sent: a client sending the 2 MB
        # at once may see the connection closed under it (EPIPE) once the 413 is out.
        sock = socket.create_connection(self.server.addr("http"), timeout=20)
        try:
            auth = base64.b64encode(f"{ALICE}:{ALICE_PW}".encode()).decode()
            sock.sendall((f"PUT {self.cal('big.ics')} HTTP/1.1\r\nHost: localhost\r\n"
                          f"Authorization: Basic {auth}\r\nContent-Type: text/calendar\r\n"
                          f"Content-Length: {2 * 1024 * 1024}\r\n\r\n").encode())
            status = sock.makefile("rb").readline()
        finally:
            sock.close()
        self.assertEqual(status.split()[1], b"413", status)

    def test_mkcalendar_and_proppatch(self):
        body = ('<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop>'
                "<d:displayname>Work</d:displayname></d:prop></d:set></c:mkcalendar>")
        self.assertEqual(self.req("MKCALENDAR", f"/dav/calendars/{ALICE}/work/", body)[0], 201)
        self.assertEqual(self.req("MKCALENDAR", f"/dav/calendars/{ALICE}/work/", body)[0], 405)
        patch = ('<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>Job</d:displayname>'
                 "</d:prop></d:set></d:propertyupdate>")
        st, _, out = self.req("PROPPATCH", f"/dav/calendars/{ALICE}/work/", patch)
        self.assertEqual(st, 207)
        self.assertIn(b"200 OK", out)
        self.assertEqual(self.req("DELETE", f"/dav/calendars/{ALICE}/work/")[0], 204)

    def test_contacts_and_query(self):
        card = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c1\r\nFN:Ann Example\r\nEMAIL:ann@example.test\r\nEND:VCARD\r\n"
        path = f"/dav/addressbooks/{ALICE}/default/c1.vcf"
        self.assertEqual(self.req("PUT", path, card)[0], 201)
        q = ('<card:addressbook-query xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav">'
             '<d:prop><d:getetag/><card:address-data/></d:prop><card:filter><card:prop-filter name="FN">'
             '<card:text-match match-type="contains">ann</card:text-match></card:prop-filter></card:filter>'
             "</card:addressbook-query>")
        st, _, out = self.req("REPORT", f"/dav/addressbooks/{ALICE}/default/", q, {"Depth": "1"})
        self.assertEqual(st, 207)
        self.assertIn(b"c1.vcf", out)
        self.assertIn(b"Ann Example", out)
        st, _, out = self.req("PUT", f"/dav/addressbooks/{ALICE}/default/c2.vcf", card)
        self.assertEqual(st, 403)
        self.assertIn(b"no-uid-conflict", out)

    def test_accounts_cannot_see_each_other(self):
        ev = EVENT.format(uid="secret", start="20261210T100000Z", end="20261210T110000Z", summary="Secret")
        self.assertEqual(self.req("PUT", self.cal("secret.ics"), ev)[0], 201)
        st, _, out = self.req("GET", self.cal("secret.ics"), user=BOB, pw=BOB_PW)
        self.assertIn(st, (403, 404))
        self.assertNotIn(b"Secret", out)
        st, _, out = self.req("PROPFIND", f"/dav/calendars/{ALICE}/default/", None, {"Depth": "1"}, user=BOB, pw=BOB_PW)
        self.assertIn(st, (403, 404))
        self.assertNotIn(b"secret", out)

    def test_caldav_library_discovers_saves_searches_and_deletes(self):
        import datetime
        import caldav
        host, port = self.server.addr("http")
        client = caldav.DAVClient(url=f"http://{host}:{port}/dav/", username=ALICE, password=ALICE_PW)
        principal = client.principal()
        cal = principal.make_calendar(name="Library", cal_id="library")
        ev = cal.save_event(EVENT.format(uid="lib1", start="20261120T100000Z", end="20261120T110000Z", summary="Lib"))
        found = cal.search(start=datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc),
                           end=datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc), event=True)
        self.assertEqual([e.icalendar_component["uid"] for e in found], ["lib1"])
        none = cal.search(start=datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc),
                          end=datetime.datetime(2027, 2, 1, tzinfo=datetime.timezone.utc), event=True)
        self.assertEqual(none, [])
        ev.delete()
        self.assertEqual(cal.events(), [])

    def test_recurring_event_expands_in_range_and_gives_free_busy(self):
        self.assertEqual(self.req("PUT", self.cal("weekly.ics"), WEEKLY.format(uid="wk"))[0], 201)
        # 2 March 10:00 Berlin is 09:00Z; after the DST change (29 March) it is 08:00Z.
        st, _, out = self.req("REPORT", self.cal(), EXPAND.format(start="20260309T000000Z", end="20260406T000000Z"), {"Depth": "1"})
        self.assertEqual(st, 207)
        text = out.decode().replace("&#13;", "").replace("\r", "")
        starts = re.findall(r"^DTSTART:(\w+)$", text, re.M)
        self.assertEqual(starts, ["20260309T090000Z", "20260323T090000Z", "20260330T080000Z"], text)
        self.assertEqual(len(re.findall(r"^RECURRENCE-ID:", text, re.M)), 3)
        self.assertNotIn("RRULE", text)
        st, _, out = self.req("REPORT", self.cal(), QUERY.format(start="20260316T000000Z", end="20260317T000000Z"), {"Depth": "1"})
        self.assertNotIn(b"weekly.ics", out, "the EXDATE instance is not there")
        st, _, out = self.req("REPORT", self.cal(), QUERY.format(start="20260304T000000Z", end="20260306T000000Z"), {"Depth": "1"})
        self.assertNotIn(b"weekly.ics", out, "nothing between instances")
        st, h, out = self.req("REPORT", self.cal(), FREE_BUSY.format(start="20260301T000000Z", end="20260311T000000Z"), {"Depth": "1"})
        self.assertEqual(st, 200)
        self.assertIn("text/calendar", h["content-type"])
        self.assertIn(b"FREEBUSY;FBTYPE=BUSY:20260302T090000Z/20260302T100000Z", out)
        self.assertIn(b"FREEBUSY;FBTYPE=BUSY:20260309T090000Z/20260309T100000Z", out)

    def test_caldav_library_searches_a_weekly_event_with_expand(self):
        import datetime
        import caldav
        host, port = self.server.addr("http")
        client = caldav.DAVClient(url=f"http://{host}:{port}/dav/", username=ALICE, password=ALICE_PW)
        cal = client.principal().make_calendar(name="Recurring", cal_id="recurring")
        cal.save_event(WEEKLY.format(uid="libweekly"))
        utc = datetime.timezone.utc
        found = cal.search(start=datetime.datetime(2026, 3, 9, tzinfo=utc),
                           end=datetime.datetime(2026, 3, 31, tzinfo=utc), event=True, expand=True)
        got = sorted(e.icalendar_component["dtstart"].dt.astimezone(utc) for e in found)
        self.assertEqual(got, [datetime.datetime(2026, 3, 9, 9, tzinfo=utc),
                               datetime.datetime(2026, 3, 23, 9, tzinfo=utc),
                               datetime.datetime(2026, 3, 30, 8, tzinfo=utc)])
        # caldav 3 expands on the client unless asked for the server's CALDAV:expand.
        served = cal.search(start=datetime.datetime(2026, 3, 9, tzinfo=utc),
                            end=datetime.datetime(2026, 3, 31, tzinfo=utc), event=True,
                            expand=True, server_expand=True)
        self.assertEqual(sorted(e.icalendar_component["dtstart"].dt.astimezone(utc) for e in served), got)
        self.assertTrue(all("RECURRENCE-ID" in e.data for e in served))
        between = cal.search(start=datetime.datetime(2026, 3, 10, tzinfo=utc),
                             end=datetime.datetime(2026, 3, 16, tzinfo=utc), event=True, expand=True)
        self.assertEqual(between, [])
        after = cal.search(start=datetime.datetime(2026, 5, 1, tzinfo=utc),
                           end=datetime.datetime(2026, 6, 1, tzinfo=utc), event=True, expand=True)
        self.assertEqual(after, [], "COUNT=6 ended in April")

    def test_cli_imports_and_exports_calendars_and_contacts(self):
        import os
        import tempfile
        ics = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//e2e//EN\r\nMETHOD:PUBLISH\r\n"
            + "".join(
                f"BEGIN:VEVENT\r\nUID:imp-{n}\r\nDTSTAMP:20260101T000000Z\r\n"
                f"DTSTART:202604{10 + n}T090000Z\r\nDTEND:202604{10 + n}T100000Z\r\n"
                + ("RRULE:FREQ=MONTHLY;COUNT=12\r\n" if n == 3 else "")
                + f"SUMMARY:Imported {n}\r\nEND:VEVENT\r\n"
                for n in (1, 2, 3)
            )
            + "END:VCALENDAR\r\n"
        )
        vcf = "".join(
            f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:card-{n}\r\nFN:Person {n}\r\nEND:VCARD\r\n"
            for n in (1, 2)
        )
        with tempfile.TemporaryDirectory() as tmp:
            ics_path, vcf_path = os.path.join(tmp, "in.ics"), os.path.join(tmp, "in.vcf")
            with open(ics_path, "w", newline="") as f:
                f.write(ics)
            with open(vcf_path, "w", newline="") as f:
                f.write(vcf)
            out = self.server.cli("calendar", "import", ALICE, ics_path).stdout
            self.assertIn("3 imported, 0 updated, 0 unchanged", out)
            out = self.server.cli("calendar", "import", ALICE, ics_path).stdout
            self.assertIn("0 imported, 0 updated, 3 unchanged", out, "running again adds nothing")
            out = self.server.cli("contacts", "import", ALICE, vcf_path).stdout
            self.assertIn("2 imported", out)
            missing = self.server.cli("calendar", "import", ALICE, os.path.join(tmp, "nope.ics"), check=False)
            self.assertEqual(missing.returncode, 1)
            self.assertIn("cannot read", missing.stderr)
            with open(ics_path, "w", newline="") as f:
                f.write("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n")
            bad = self.server.cli("calendar", "import", ALICE, ics_path, check=False)
            self.assertEqual(bad.returncode, 1)
            self.assertIn("line 1", bad.stderr)
        # Seen over CalDAV and CardDAV; the recurring one also in its ninth month.
        st, _, out = self.req("PROPFIND", self.cal(), None, {"Depth": "1"})
        self.assertEqual(sorted(set(re.findall(rb"imp-\d\.ics", out))), [b"imp-1.ics", b"imp-2.ics", b"imp-3.ics"])
        st, _, out = self.req("REPORT", self.cal(), QUERY.format(start="20261201T000000Z", end="20261231T000000Z"), {"Depth": "1"})
        self.assertIn(b"imp-3.ics", out)
        self.assertNotIn(b"imp-1.ics", out)
        st, _, out = self.req("GET", f"/dav/addressbooks/{ALICE}/default/card-2.vcf")
        self.assertEqual(st, 200)
        self.assertIn(b"FN:Person 2", out)
        # Exported back: the same events and the same cards.
        exported = self.server.cli("calendar", "export", ALICE, "-")
        self.assertRegex(exported.stderr, r"exported \d+ objects of calendar default")
        self.assertEqual(sorted(re.findall(r"UID:(imp-\d)", exported.stdout)), ["imp-1", "imp-2", "imp-3"])
        self.assertEqual(sorted(re.findall(r"SUMMARY:(Imported.*?)\r?$", exported.stdout, re.M)),
                         ["Imported 1", "Imported 2", "Imported 3"])
        self.assertIn("RRULE:FREQ=MONTHLY;COUNT=12", exported.stdout)
        self.assertNotIn("METHOD", exported.stdout)
        cards = self.server.cli("contacts", "export", ALICE).stdout
        self.assertEqual(cards.replace("\r\n", "\n"), vcf.replace("\r\n", "\n"))

    def test_account_add_creates_the_default_calendar_and_address_book(self):
        # Bob never used DAV: his collections come from `bulwark account add`.
        out = self.server.cli("calendar", "export", BOB, "-")
        self.assertIn("exported 0 objects of calendar default", out.stderr)
        self.assertIn("BEGIN:VCALENDAR", out.stdout)
        out = self.server.cli("contacts", "export", BOB, "-")
        self.assertIn("exported 0 cards of address book default", out.stderr)

    def test_vdirsyncer_syncs_a_local_calendar_and_address_book_both_ways(self):
        import os
        import shutil
        import subprocess
        import tempfile
        vdirsyncer = shutil.which("vdirsyncer")
        if vdirsyncer is None:
            self.skipTest("vdirsyncer is not installed (pip install -r tests/e2e/requirements.txt)")
        host, port = self.server.addr("http")
        self.assertEqual(self.req("MKCALENDAR", f"/dav/calendars/{ALICE}/synced/")[0], 201)
        with tempfile.TemporaryDirectory() as tmp:
            cal_dir, card_dir = os.path.join(tmp, "cal"), os.path.join(tmp, "cards")
            os.makedirs(cal_dir)
            os.makedirs(card_dir)
            config = os.path.join(tmp, "config")
            with open(config, "w") as f:
                f.write(f"""[general]
status_path = "{tmp}/status/"

[pair cal]
a = "local_cal"
b = "bulwark_cal"
collections = null
conflict_resolution = "a wins"

[storage local_cal]
type = "filesystem"
path = "{cal_dir}/"
fileext = ".ics"

[storage bulwark_cal]
type = "caldav"
url = "http://{host}:{port}/dav/calendars/{ALICE}/synced/"
username = "{ALICE}"
password = "{ALICE_PW}"

[pair cards]
a = "local_cards"
b = "bulwark_cards"
collections = null
conflict_resolution = "a wins"

[storage local_cards]
type = "filesystem"
path = "{card_dir}/"
fileext = ".vcf"

[storage bulwark_cards]
type = "carddav"
url = "http://{host}:{port}/dav/addressbooks/{ALICE}/default/"
username = "{ALICE}"
password = "{ALICE_PW}"
""")

            def sync():
                for step in ("discover", "sync"):
                    r = subprocess.run([vdirsyncer, "-c", config, step], capture_output=True, text=True,
                                       timeout=60, stdin=subprocess.DEVNULL)
                    self.assertEqual(r.returncode, 0, f"vdirsyncer {step}:\n{r.stdout}\n{r.stderr}")

            with open(os.path.join(cal_dir, "local-ev.ics"), "w", newline="") as f:
                f.write(EVENT.format(uid="local-ev", start="20260601T100000Z", end="20260601T110000Z", summary="From disk"))
            with open(os.path.join(card_dir, "local-card.vcf"), "w", newline="") as f:
                f.write("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:local-card\r\nFN:Disk Person\r\nN:Person;Disk;;;\r\nEND:VCARD\r\n")
            remote = EVENT.format(uid="remote-ev", start="20260602T100000Z", end="20260602T110000Z", summary="From server")
            self.assertEqual(self.req("PUT", f"/dav/calendars/{ALICE}/synced/remote-ev.ics", remote)[0], 201)
            sync()
            # Disk → server.
            st, _, out = self.req("REPORT", f"/dav/calendars/{ALICE}/synced/",
                                  QUERY.format(start="20260601T000000Z", end="20260602T000000Z"), {"Depth": "1"})
            self.assertEqual(st, 207)
            self.assertIn(b".ics", out, "the disk event is on the server")
            st, _, out = self.req("PROPFIND", f"/dav/addressbooks/{ALICE}/default/", None, {"Depth": "1"})
            hrefs = re.findall(rb"<d:href>([^<]*\.vcf)</d:href>", out)
            bodies = b"".join(self.req("GET", h.decode())[2] for h in hrefs)
            self.assertIn(b"FN:Disk Person", bodies)
            # Server → disk.
            def on_disk(d):
                texts = []
                for name in os.listdir(d):
                    with open(os.path.join(d, name)) as f:
                        texts.append(f.read())
                return "\n".join(texts)
            self.assertIn("SUMMARY:From server", on_disk(cal_dir))
            # A change on disk and a deletion on the server travel too.
            path = os.path.join(cal_dir, "local-ev.ics")
            with open(path) as f:
                text = f.read()
            with open(path, "w", newline="") as f:
                f.write(text.replace("SUMMARY:From disk", "SUMMARY:Edited on disk"))
            self.assertEqual(self.req("DELETE", f"/dav/calendars/{ALICE}/synced/remote-ev.ics")[0], 204)
            sync()
            self.assertNotIn("From server", on_disk(cal_dir))
            st, _, out = self.req("PROPFIND", f"/dav/calendars/{ALICE}/synced/", None, {"Depth": "1"})
            hrefs = re.findall(rb"<d:href>([^<]*\.ics)</d:href>", out)
            self.assertEqual(len(hrefs), 1, out)
            self.assertIn(b"SUMMARY:Edited on disk", self.req("GET", hrefs[0].decode())[2])


if __name__ == "__main__":
    unittest.main()

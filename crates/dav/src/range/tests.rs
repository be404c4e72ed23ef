use super::*;
use std::time::{Duration, Instant};

fn cal(body: &str) -> ICalendar {
    let text = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{}END:VCALENDAR\r\n",
        body.replace('\n', "\r\n")
    );
    parse(&text).expect("test calendar parses")
}

fn t(v: &str) -> i64 {
    parse_date_time(v).unwrap()
}

fn starts(c: &ICalendar, from: &str, to: &str) -> Vec<String> {
    instances_in(c, t(from), t(to))
        .instances
        .iter()
        .map(|i| format_utc(i.start))
        .collect()
}

fn matches(c: &ICalendar, from: &str, to: &str) -> bool {
    object_overlaps(span_of(c), &c.to_string(), t(from), t(to))
}

const WEEKLY_WITH_EXDATE_AND_MOVED: &str = "BEGIN:VEVENT
UID:w@x
DTSTAMP:20260101T000000Z
DTSTART:20260105T100000Z
DTEND:20260105T110000Z
RRULE:FREQ=WEEKLY;COUNT=10
EXDATE:20260112T100000Z
SEQUENCE:0
SUMMARY:Standup
END:VEVENT
BEGIN:VEVENT
UID:w@x
DTSTAMP:20260101T000000Z
RECURRENCE-ID:20260119T100000Z
DTSTART:20260121T150000Z
DTEND:20260121T160000Z
SEQUENCE:1
SUMMARY:Standup (moved)
END:VEVENT
";

#[test]
fn weekly_rrule_skips_its_exdate_and_follows_its_moved_instance() {
    let c = cal(WEEKLY_WITH_EXDATE_AND_MOVED);
    let all = starts(&c, "20260101T000000Z", "20270101T000000Z");
    assert_eq!(all.len(), 9, "10 instances minus one EXDATE: {all:?}");
    assert!(!all.contains(&"20260112T100000Z".to_string()));
    assert!(!all.contains(&"20260119T100000Z".to_string()));
    assert!(all.contains(&"20260121T150000Z".to_string()));
    assert!(
        !matches(&c, "20260112T000000Z", "20260113T000000Z"),
        "EXDATE"
    );
    assert!(
        !matches(&c, "20260119T000000Z", "20260120T000000Z"),
        "moved away"
    );
    assert!(
        matches(&c, "20260121T000000Z", "20260122T000000Z"),
        "moved here"
    );
    assert!(matches(&c, "20260126T100000Z", "20260126T103000Z"));
    assert!(
        !matches(&c, "20260106T000000Z", "20260111T000000Z"),
        "between instances"
    );
    assert!(
        !matches(&c, "20260310T000000Z", "20260320T000000Z"),
        "after COUNT"
    );
    let moved = instances_in(&c, t("20260121T000000Z"), t("20260122T000000Z"));
    assert_eq!(moved.instances.len(), 1);
    assert_eq!(moved.instances[0].end - moved.instances[0].start, 3600);
}

#[test]
fn a_berlin_event_keeps_its_wall_clock_time_across_the_dst_change() {
    // 2026-03-29 02:00 CET → 03:00 CEST: 09:00 Berlin is 08:00Z before, 07:00Z after.
    let iana_only = cal("BEGIN:VEVENT
UID:b@x
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Berlin:20260320T090000
DTEND;TZID=Europe/Berlin:20260320T100000
RRULE:FREQ=WEEKLY;COUNT=3
END:VEVENT
");
    let want = [
        "20260320T080000Z".to_string(),
        "20260327T080000Z".to_string(),
        "20260403T070000Z".to_string(),
    ];
    assert_eq!(
        starts(&iana_only, "20260301T000000Z", "20260501T000000Z"),
        want
    );
    let with_vtimezone = cal("BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:b@x
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Berlin:20260320T090000
DTEND;TZID=Europe/Berlin:20260320T100000
RRULE:FREQ=WEEKLY;COUNT=3
END:VEVENT
");
    assert_eq!(
        starts(&with_vtimezone, "20260301T000000Z", "20260501T000000Z"),
        want
    );
    // A one-hour range at 07:00Z on 2026-04-03 holds the third instance, 08:00Z does not.
    assert!(matches(&iana_only, "20260403T070000Z", "20260403T073000Z"));
    assert!(!matches(&iana_only, "20260403T080000Z", "20260403T083000Z"));
}

#[test]
fn count_and_until_end_the_recurrence_and_its_stored_span() {
    let count = cal("BEGIN:VEVENT
UID:c@x
DTSTAMP:20260101T000000Z
DTSTART:20260105T100000Z
DTEND:20260105T110000Z
RRULE:FREQ=DAILY;COUNT=5
END:VEVENT
");
    let span = span_of(&count).unwrap();
    assert_eq!(span.start, t("20260105T100000Z"));
    assert_eq!(span.end, Some(t("20260109T110000Z")));
    assert!(span.recurring);
    assert!(matches(&count, "20260109T103000Z", "20260109T120000Z"));
    assert!(!matches(&count, "20260110T000000Z", "20260111T000000Z"));
    let until = cal("BEGIN:VEVENT
UID:u@x
DTSTAMP:20260101T000000Z
DTSTART:20260105T100000Z
DTEND:20260105T110000Z
RRULE:FREQ=DAILY;UNTIL=20260110T100000Z
END:VEVENT
");
    assert_eq!(
        starts(&until, "20260101T000000Z", "20260201T000000Z").len(),
        6,
        "UNTIL is inclusive (RFC 5545 §3.3.10)"
    );
    assert_eq!(span_of(&until).unwrap().end, Some(t("20260110T110000Z")));
    assert!(!matches(&until, "20260111T000000Z", "20260112T000000Z"));
}

#[test]
fn an_rrule_without_end_is_found_far_in_the_future_and_stops_at_the_range() {
    let weekly = cal("BEGIN:VEVENT
UID:f@x
DTSTAMP:20260101T000000Z
DTSTART:20260105T100000Z
DTEND:20260105T110000Z
RRULE:FREQ=WEEKLY
END:VEVENT
");
    assert_eq!(span_of(&weekly).unwrap().end, None);
    // 2150-01-05 is a Monday, as 2026-01-05 is.
    assert_eq!(
        starts(&weekly, "20150105T000000Z", "20260106T000000Z"),
        ["20260105T100000Z".to_string()]
    );
    assert_eq!(
        starts(&weekly, "21500105T000000Z", "21500112T000000Z"),
        ["21500105T100000Z".to_string()]
    );
    assert!(!matches(&weekly, "21500107T000000Z", "21500112T000000Z"));
    let exp = expand(&weekly, Some(t("20260301T000000Z")));
    assert!(exp.instances.len() <= 10, "stopped at the range end");
    assert!(!exp.truncated);
}

#[test]
fn a_secondly_rule_stays_bounded() {
    let hostile = cal("BEGIN:VEVENT
UID:s@x
DTSTAMP:20260101T000000Z
DTSTART:20260105T100000Z
RRULE:FREQ=SECONDLY
END:VEVENT
");
    let began = Instant::now();
    let exp = instances_in(&hostile, t("21000101T000000Z"), t("21000102T000000Z"));
    assert!(exp.truncated, "the limit was reached before 2100");
    assert!(exp.instances.is_empty());
    let all = instances_in(&hostile, t("19000101T000000Z"), t("21990101T000000Z"));
    assert_eq!(all.instances.len(), MAX_INSTANCES_PER_OBJECT);
    assert!(
        matches(&hostile, "21000101T000000Z", "21000102T000000Z"),
        "cut short: included rather than lost"
    );
    // What a PUT computes: a huge COUNT is cut at the limit, a rule that never matches
    // stops after calcard's own loop bound.
    let huge_count = cal("BEGIN:VEVENT
UID:s2@x
DTSTAMP:20260101T000000Z
DTSTART:20260105T100000Z
RRULE:FREQ=SECONDLY;COUNT=100000000
END:VEVENT
");
    assert_eq!(
        span_of(&huge_count).unwrap().end,
        None,
        "cut short: no known end"
    );
    let never = cal("BEGIN:VEVENT
UID:s3@x
DTSTAMP:20260101T000000Z
DTSTART:20260105T100000Z
RRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30
END:VEVENT
");
    assert!(
        instances_in(&never, t("19000101T000000Z"), t("21990101T000000Z"))
            .instances
            .is_empty()
    );
    let _ = span_of(&never);
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "bounded work: {:?}",
        began.elapsed()
    );
}

#[test]
fn instants_and_ranges_follow_rfc_4791_9_9() {
    let day = 86_400;
    assert!(instance_overlaps(10 * day, 11 * day, 9 * day, 12 * day));
    assert!(!instance_overlaps(10 * day, 11 * day, 11 * day, 12 * day));
    assert!(!instance_overlaps(10 * day, 11 * day, 5 * day, 10 * day));
    assert!(instance_overlaps(10 * day, 10 * day, 10 * day, 11 * day));
    assert!(!instance_overlaps(10 * day, 10 * day, 9 * day, 10 * day));
    let instant = cal("BEGIN:VEVENT
UID:i@x
DTSTAMP:20260101T000000Z
DTSTART:20260105T100000Z
END:VEVENT
");
    let span = span_of(&instant).unwrap();
    assert_eq!(
        span.end,
        Some(span.start),
        "DATE-TIME start, no end: an instant"
    );
    assert!(!matches(&instant, "20260105T110000Z", "20260105T120000Z"));
    let floating = cal("BEGIN:VEVENT
UID:fl@x
DTSTAMP:20260101T000000Z
DTSTART:20260105T100000
DTEND:20260105T110000
END:VEVENT
");
    assert_eq!(
        span_of(&floating).unwrap().start,
        t("20260105T100000Z"),
        "floating = UTC"
    );
}

#[test]
fn dates_parse_and_format() {
    assert_eq!(parse_date_time("19700101T000000Z"), Some(0));
    assert_eq!(parse_date_time("19700102"), Some(86_400));
    assert_eq!(parse_date_time("20000301T000000Z"), Some(951_868_800));
    assert_eq!(parse_date_time("2000-03-01"), None);
    assert_eq!(parse_date_time("20001301"), None);
    for s in ["19000101T000000Z", "20260329T013000Z", "21991231T235959Z"] {
        assert_eq!(format_utc(parse_date_time(s).unwrap()), s);
    }
}

//! What a REPORT returns of a calendar object's instances: `CALDAV:expand` and
//! `CALDAV:limit-recurrence-set` inside `calendar-data` (RFC 4791 §9.6.5, §9.6.6), and the
//! VFREEBUSY of a `free-busy-query` (RFC 4791 §7.10). Which instances fall in a range is
//! decided by [`crate::range`].

use crate::range::{self, Instance, format_utc, utc_partial};
use calcard::common::timezone::Tz;
use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarEntry, ICalendarProperty,
    ICalendarStatus, ICalendarTransparency,
};

/// How `calendar-data` is to be returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataShape {
    AsStored,
    /// RFC 4791 §9.6.5: the instances overlapping the range, one component each, in UTC.
    Expand(i64, i64),
    /// RFC 4791 §9.6.6: the master and only the overrides that bear on the range.
    LimitRecurrenceSet(i64, i64),
}

/// The calendar-data text in the asked shape (the stored text when it cannot be parsed).
pub fn shape(data: &str, shape: DataShape) -> String {
    let cal = match shape {
        DataShape::AsStored => return data.to_string(),
        _ => match range::parse(data) {
            Some(cal) => cal,
            None => return data.to_string(),
        },
    };
    match shape {
        DataShape::AsStored => data.to_string(),
        DataShape::Expand(start, end) => expanded(&cal, start, end),
        DataShape::LimitRecurrenceSet(start, end) => limited(&cal, start, end),
    }
}

fn is_main(c: &ICalendarComponent) -> bool {
    matches!(
        c.component_type,
        ICalendarComponentType::VEvent
            | ICalendarComponentType::VTodo
            | ICalendarComponentType::VJournal
    )
}

/// RFC 4791 §9.6.5: every instance in the range as its own component with DTSTART (and
/// DTEND / DUE) in UTC and, when the object recurs, a RECURRENCE-ID in UTC; no RRULE,
/// RDATE, EXDATE, and no VTIMEZONE (nothing refers to one any more).
fn expanded(cal: &ICalendar, r_start: i64, r_end: i64) -> String {
    let recurs = cal.components.iter().any(|c| c.is_recurrent_or_override());
    let resolver = cal.build_tz_resolver().with_default(Tz::UTC);
    let mut out = cal.clone();
    let mut ids = Vec::new();
    for inst in range::instances_in(cal, r_start, r_end).instances {
        let Some(orig) = cal.components.get(inst.comp) else {
            continue;
        };
        let recurrence_id = orig
            .property(&ICalendarProperty::RecurrenceId)
            .and_then(|e| {
                let dt = e.values.first()?.as_partial_date_time()?.to_date_time()?;
                let tz = resolver.resolve_or_default(e.tz_id());
                dt.to_date_time_with_tz(tz).map(|d| d.timestamp())
            })
            .unwrap_or(inst.start);
        let comp = instance_component(orig, &inst, recurs.then_some(recurrence_id));
        ids.push(out.components.len() as u32);
        out.components.push(comp);
    }
    if let Some(root) = out.components.first_mut() {
        root.component_ids = ids;
    }
    out.to_string()
}

fn instance_component(
    orig: &ICalendarComponent,
    inst: &Instance,
    recurrence_id: Option<i64>,
) -> ICalendarComponent {
    let had_end = orig.has_property(&ICalendarProperty::Dtend)
        || orig.has_property(&ICalendarProperty::Duration);
    let had_due = orig.has_property(&ICalendarProperty::Due);
    let mut comp = orig.clone();
    comp.entries.retain(|e| {
        !matches!(
            e.name,
            ICalendarProperty::Dtstart
                | ICalendarProperty::Dtend
                | ICalendarProperty::Duration
                | ICalendarProperty::Due
                | ICalendarProperty::Rrule
                | ICalendarProperty::Rdate
                | ICalendarProperty::Exdate
                | ICalendarProperty::Exrule
                | ICalendarProperty::RecurrenceId
        )
    });
    let at = |name, secs| ICalendarEntry::new(name).with_value(utc_partial(secs));
    comp.entries
        .push(at(ICalendarProperty::Dtstart, inst.start));
    if had_due && !had_end {
        comp.entries.push(at(ICalendarProperty::Due, inst.end));
    } else if had_end || inst.end != inst.start {
        comp.entries.push(at(ICalendarProperty::Dtend, inst.end));
    }
    if let Some(rid) = recurrence_id {
        comp.entries.push(at(ICalendarProperty::RecurrenceId, rid));
    }
    comp
}

/// RFC 4791 §9.6.6: the master component(s) and the overrides whose instance overlaps the
/// range or whose RECURRENCE-ID lies in it; other overrides are left out.
fn limited(cal: &ICalendar, r_start: i64, r_end: i64) -> String {
    let in_range: Vec<usize> = range::instances_in(cal, r_start, r_end)
        .instances
        .iter()
        .map(|i| i.comp)
        .collect();
    let resolver = cal.build_tz_resolver().with_default(Tz::UTC);
    let mut out = cal.clone();
    if let Some(root) = out.components.first_mut() {
        root.component_ids.retain(|&id| {
            let Some(c) = cal.components.get(id as usize) else {
                return false;
            };
            if !is_main(c) || !c.is_recurrence_override() {
                return true;
            }
            let rid_in_range = c
                .property(&ICalendarProperty::RecurrenceId)
                .and_then(|e| {
                    let dt = e.values.first()?.as_partial_date_time()?.to_date_time()?;
                    dt.to_date_time_with_tz(resolver.resolve_or_default(e.tz_id()))
                })
                .is_some_and(|d| (r_start..r_end).contains(&d.timestamp()));
            rid_in_range || in_range.contains(&(id as usize))
        });
    }
    out.to_string()
}

/// Busy time of one kind (RFC 5545 §3.2.9 FBTYPE).
#[derive(Debug, Default)]
pub struct FreeBusy {
    pub busy: Vec<(i64, i64)>,
    pub tentative: Vec<(i64, i64)>,
}

impl FreeBusy {
    /// RFC 4791 §7.10: adds the object's instances in the range, clipped to it; transparent
    /// (TRANSP:TRANSPARENT) and cancelled (STATUS:CANCELLED) ones take no time, tentative
    /// ones are BUSY-TENTATIVE. Only VEVENTs take time (VFREEBUSY resources are not
    /// published free-busy here).
    pub fn add(&mut self, data: &str, r_start: i64, r_end: i64) {
        let Some(cal) = range::parse(data) else {
            return;
        };
        for inst in range::instances_in(&cal, r_start, r_end).instances {
            let Some(c) = cal.components.get(inst.comp) else {
                continue;
            };
            if c.component_type != ICalendarComponentType::VEvent
                || c.transparency() == Some(&ICalendarTransparency::Transparent)
                || c.status() == Some(&ICalendarStatus::Cancelled)
            {
                continue;
            }
            let period = (inst.start.max(r_start), inst.end.min(r_end));
            if period.1 <= period.0 {
                continue;
            }
            if c.status() == Some(&ICalendarStatus::Tentative) {
                self.tentative.push(period);
            } else {
                self.busy.push(period);
            }
        }
    }

    /// The VCALENDAR with one VFREEBUSY (RFC 4791 §7.10, RFC 5545 §3.6.4), periods merged
    /// and in UTC.
    pub fn to_ical(&self, r_start: i64, r_end: i64, now: i64) -> String {
        let mut lines = vec![
            "BEGIN:VCALENDAR".to_string(),
            "VERSION:2.0".into(),
            "PRODID:-//Bulwark//CalDAV//EN".into(),
            "BEGIN:VFREEBUSY".into(),
            format!("DTSTAMP:{}", format_utc(now)),
            format!("DTSTART:{}", format_utc(r_start)),
            format!("DTEND:{}", format_utc(r_end)),
        ];
        let busy = merge(self.busy.clone());
        for (kind, periods) in [
            ("BUSY", busy.clone()),
            ("BUSY-TENTATIVE", {
                // Time both busy and tentative is busy.
                let t = merge(self.tentative.clone());
                subtract(t, &busy)
            }),
        ] {
            for (s, e) in periods {
                lines.push(format!(
                    "FREEBUSY;FBTYPE={kind}:{}/{}",
                    format_utc(s),
                    format_utc(e)
                ));
            }
        }
        lines.push("END:VFREEBUSY".into());
        lines.push("END:VCALENDAR".into());
        let mut text = lines.join("\r\n");
        text.push_str("\r\n");
        text
    }
}

fn merge(mut periods: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    periods.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (s, e) in periods {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn subtract(periods: Vec<(i64, i64)>, minus: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for (mut s, e) in periods {
        for &(ms, me) in minus {
            if me <= s || ms >= e {
                continue;
            }
            if ms > s {
                out.push((s, ms));
            }
            s = s.max(me);
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::parse_date_time;

    fn t(v: &str) -> i64 {
        parse_date_time(v).unwrap()
    }

    const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:w@x\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260105T100000\r\nDTEND;TZID=Europe/Berlin:20260105T110000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Weekly\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:w@x\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260119T100000\r\nDTSTART;TZID=Europe/Berlin:20260119T140000\r\nDTEND;TZID=Europe/Berlin:20260119T150000\r\nSUMMARY:Moved\r\nSTATUS:TENTATIVE\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn expand_gives_the_instances_in_the_range_in_utc_with_recurrence_ids() {
        let text = shape(
            WEEKLY,
            DataShape::Expand(t("20260110T000000Z"), t("20260125T000000Z")),
        );
        assert_eq!(text.matches("BEGIN:VEVENT").count(), 2, "{text}");
        assert!(
            !text.contains("RRULE") && !text.contains("VTIMEZONE"),
            "{text}"
        );
        assert!(text.contains("DTSTART:20260112T090000Z"), "{text}");
        assert!(text.contains("RECURRENCE-ID:20260112T090000Z"), "{text}");
        assert!(text.contains("DTSTART:20260119T130000Z"), "{text}");
        assert!(text.contains("RECURRENCE-ID:20260119T090000Z"), "{text}");
        assert!(text.contains("BEGIN:VALARM"), "alarms stay: {text}");
        assert!(range::parse(&text).is_some());
    }

    #[test]
    fn limit_recurrence_set_keeps_the_master_and_the_overrides_in_range() {
        let far = shape(
            WEEKLY,
            DataShape::LimitRecurrenceSet(t("20260126T000000Z"), t("20260201T000000Z")),
        );
        assert_eq!(far.matches("BEGIN:VEVENT").count(), 1, "{far}");
        assert!(far.contains("RRULE"));
        let near = shape(
            WEEKLY,
            DataShape::LimitRecurrenceSet(t("20260119T000000Z"), t("20260120T000000Z")),
        );
        assert_eq!(near.matches("BEGIN:VEVENT").count(), 2, "{near}");
    }

    #[test]
    fn free_busy_merges_and_skips_transparent_and_cancelled() {
        let (s, e) = (t("20260101T000000Z"), t("20260201T000000Z"));
        let mut fb = FreeBusy::default();
        fb.add(WEEKLY, s, e);
        let opaque = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:o@x\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T093000Z\r\nDTEND:20260105T094500Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        fb.add(opaque, s, e);
        fb.add(
            &opaque
                .replace("END:VEVENT", "TRANSP:TRANSPARENT\r\nEND:VEVENT")
                .replace("0105", "0106"),
            s,
            e,
        );
        fb.add(
            &opaque
                .replace("END:VEVENT", "STATUS:CANCELLED\r\nEND:VEVENT")
                .replace("0105", "0107"),
            s,
            e,
        );
        let text = fb.to_ical(s, e, s);
        assert!(
            text.contains("FREEBUSY;FBTYPE=BUSY:20260105T090000Z/20260105T100000Z"),
            "{text}"
        );
        assert!(
            !text.contains("20260106") && !text.contains("20260107"),
            "{text}"
        );
        assert!(
            text.contains("FBTYPE=BUSY-TENTATIVE:20260119T130000Z/20260119T140000Z"),
            "{text}"
        );
        assert_eq!(
            text.matches("FREEBUSY;").count(),
            4,
            "3 busy + 1 tentative: {text}"
        );
    }
}

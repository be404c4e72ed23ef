//! The one place that decides whether a calendar object falls in a time range
//! (RFC 4791 §9.9), with its recurrence expanded (RFC 5545 §3.8.5: RRULE, RDATE, minus
//! EXDATE, RECURRENCE-ID overrides replacing their instance) and its times resolved through
//! the object's VTIMEZONE or the IANA zone its TZID names (RFC 5545 §3.3.5, §3.8.3).
//!
//! Expansion is Stalwart's `calcard` (`ICalendar::expand_dates`, chrono-tz); this module
//! bounds it ([`MAX_INSTANCES_PER_OBJECT`]) and stops an unbounded RRULE at the end of the
//! range asked for. Floating times (no `Z`, no TZID) and TZIDs that resolve to no zone are
//! read as UTC.

use crate::limits::MAX_INSTANCES_PER_OBJECT;
use bulwark_core::civil::{civil_from_days, days_from_civil};
use calcard::common::PartialDateTime;
use calcard::common::timezone::Tz;
use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarProperty, ICalendarValue,
};

/// The span a stored object covers, in unix seconds (UTC): from its earliest instance's
/// start to its latest instance's end (`end == None`: no last instance — an RRULE without
/// COUNT/UNTIL, or more instances than are examined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: Option<i64>,
    /// More than one instance (RRULE, RDATE or overrides): a range inside the span may
    /// fall between instances, so [`object_overlaps`] expands it.
    pub recurring: bool,
}

/// One occurrence of a calendar object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub start: i64,
    pub end: i64,
    /// The component (index into `ICalendar::components`) whose properties it has: the
    /// master or the override that replaced it.
    pub comp: usize,
}

/// The instances of an object, in no particular order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    pub instances: Vec<Instance>,
    /// [`MAX_INSTANCES_PER_OBJECT`] was reached: later instances were not examined.
    pub truncated: bool,
}

/// RFC 4791 §9.9: does the instance `[start, end)` overlap the range `[r_start, r_end)`?
/// An instant (start == end: a DATE-TIME DTSTART without DTEND or DURATION, or a zero
/// DURATION) overlaps when `r_start <= start < r_end`.
pub fn instance_overlaps(start: i64, end: i64, r_start: i64, r_end: i64) -> bool {
    if start == end {
        r_start <= start && start < r_end
    } else {
        r_start < end && r_end > start
    }
}

/// Expands every instance of the object's components (VEVENT, VTODO, VJOURNAL) up to
/// `until` (unix seconds; `None`: to the end, bounded by [`MAX_INSTANCES_PER_OBJECT`]).
pub fn expand(cal: &ICalendar, until: Option<i64>) -> Expansion {
    expand_bounded(cal, until, MAX_INSTANCES_PER_OBJECT)
}

fn expand_bounded(cal: &ICalendar, until: Option<i64>, limit: usize) -> Expansion {
    let mut cal = cal.clone();
    for comp in cal.components.iter_mut() {
        // calcard pairs an override with its master only when their SEQUENCE numbers are
        // equal; RFC 5545 §3.8.4.4 pairs them by UID and RECURRENCE-ID alone.
        comp.entries
            .retain(|e| e.name != ICalendarProperty::Sequence);
        if let Some(until) = until {
            stop_rrule_at(comp, until);
        }
    }
    // RFC 4791 §9.9 reads floating times in the client's time zone; without one, UTC.
    let out = cal.expand_dates(Tz::UTC, limit);
    let truncated = out.events.len() >= limit;
    let instances = out
        .events
        .iter()
        .filter_map(|ev| {
            let comp = ev.comp_id as usize;
            let component = cal.components.get(comp)?;
            let (start, mut end) = ev.timestamps();
            // RFC 5545 §3.6.1 / RFC 4791 §9.9: a VEVENT with a DATE-TIME DTSTART and no
            // DTEND or DURATION is an instant (calcard lets it last to 23:59:59).
            if component.component_type == ICalendarComponentType::VEvent && is_instant(component) {
                end = start;
            }
            Some(Instance {
                start,
                end: end.max(start),
                comp,
            })
        })
        .collect();
    Expansion {
        instances,
        truncated,
    }
}

fn is_instant(c: &ICalendarComponent) -> bool {
    !c.has_property(&ICalendarProperty::Dtend)
        && !c.has_property(&ICalendarProperty::Duration)
        && c.property(&ICalendarProperty::Dtstart)
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_partial_date_time())
            .is_some_and(|dt| dt.has_time())
}

/// Adds (or lowers) the RRULE's UNTIL so the expansion stops past `until`: instances after
/// the range can not overlap it. A day of slack covers calcard comparing UNTIL as a
/// floating time against zoned instances.
fn stop_rrule_at(comp: &mut ICalendarComponent, until: i64) {
    let limit = until + 86_400;
    for entry in comp.entries.iter_mut() {
        if entry.name != ICalendarProperty::Rrule {
            continue;
        }
        if let Some(ICalendarValue::RecurrenceRule(rule)) = entry.values.first_mut() {
            let current = rule
                .until
                .as_ref()
                .and_then(|u| u.to_date_time())
                .map(|u| u.date_time.and_utc().timestamp());
            if current.is_none_or(|c| c > limit) {
                rule.until = Some(utc_partial(limit));
            }
        }
    }
}

/// Unix seconds → an iCalendar UTC date-time (`…Z`).
pub fn utc_partial(secs: i64) -> PartialDateTime {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    PartialDateTime {
        year: u16::try_from(y.clamp(0, 9999)).ok(),
        month: Some(m as u8),
        day: Some(d as u8),
        hour: Some((rem / 3600) as u8),
        minute: Some((rem / 60 % 60) as u8),
        second: Some((rem % 60) as u8),
        tz_hour: Some(0),
        tz_minute: Some(0),
        tz_minus: false,
    }
}

/// Instances a PUT examines to find where an RRULE without end starts (its first instance
/// comes first; RDATEs and overrides are all examined).
const FIRST_INSTANCES: usize = 16;

/// The span a PUT stores with the object (None: no component with a start).
pub fn span_of(cal: &ICalendar) -> Option<Span> {
    let unbounded = cal.components.iter().any(|c| {
        c.entries.iter().any(|e| {
            matches!(e.values.first(), Some(ICalendarValue::RecurrenceRule(r))
                if r.until.is_none() && r.count.is_none())
        })
    });
    let exp = if unbounded {
        expand_bounded(cal, None, FIRST_INSTANCES)
    } else {
        expand(cal, None)
    };
    let start = exp.instances.iter().map(|i| i.start).min()?;
    let end = exp.instances.iter().map(|i| i.end).max()?;
    let recurring =
        exp.instances.len() > 1 || cal.components.iter().any(|c| c.is_recurrent_or_override());
    Some(Span {
        start,
        end: (!unbounded && !exp.truncated).then_some(end),
        recurring,
    })
}

/// RFC 4791 §9.9 for a stored object: a single instance is decided from the stored span; a
/// recurring one when one of its instances overlaps. An object whose expansion reached
/// [`MAX_INSTANCES_PER_OBJECT`] before the range is included: it errs towards returning an
/// event, never towards losing one.
pub fn object_overlaps(span: Option<Span>, data: &str, r_start: i64, r_end: i64) -> bool {
    // RFC 4791 §9.9: a component without DTSTART (a VTODO without dates) matches every range.
    let Some(span) = span else { return true };
    let whole_end = span.end.unwrap_or(i64::MAX);
    if !instance_overlaps(span.start, whole_end, r_start, r_end) {
        return false;
    }
    if !span.recurring {
        return true;
    }
    let Some(cal) = parse(data) else { return true };
    let exp = expand(&cal, Some(r_end));
    exp.instances
        .iter()
        .any(|i| instance_overlaps(i.start, i.end, r_start, r_end))
        || exp.truncated
}

/// The instances of the object that overlap the range (for CALDAV:expand and
/// free-busy-query), and whether the expansion was cut short.
pub fn instances_in(cal: &ICalendar, r_start: i64, r_end: i64) -> Expansion {
    let mut exp = expand(cal, Some(r_end));
    exp.instances
        .retain(|i| instance_overlaps(i.start, i.end, r_start, r_end));
    exp.instances.sort_by_key(|i| (i.start, i.comp));
    exp
}

/// Parses a stored object's iCalendar text.
pub fn parse(data: &str) -> Option<ICalendar> {
    match calcard::Parser::new(data).entry() {
        calcard::Entry::ICalendar(cal) => Some(cal),
        _ => None,
    }
}

/// RFC 5545 §3.3.4/§3.3.5: `YYYYMMDD` or `YYYYMMDDTHHMMSS[Z]` → unix seconds (the time-range
/// bounds of a query, which RFC 4791 §9.9 makes UTC).
pub fn parse_date_time(v: &str) -> Option<i64> {
    let v = v.trim();
    let v = v.strip_suffix('Z').unwrap_or(v);
    let (date, time) = match v.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (v, None),
    };
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |s: &str| s.parse::<i64>().ok();
    let (y, m, d) = (num(&date[..4])?, num(&date[4..6])?, num(&date[6..8])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        if t.len() != 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (h, mi, s) = (num(&t[..2])?, num(&t[2..4])?, num(&t[4..6])?);
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + s;
    }
    Some(secs)
}

/// Unix seconds → `YYYYMMDDTHHMMSSZ`.
pub fn format_utc(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;

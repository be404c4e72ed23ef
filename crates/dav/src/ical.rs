//! Checks of the iCalendar (RFC 5545) and vCard (RFC 6350) bodies a PUT stores, with
//! Stalwart's `calcard` parser, and what the server keeps of them (UID, component type,
//! the span that [`crate::range`] filters on).

use crate::range::{self, Span};
use calcard::icalendar::ICalendarComponentType;
use calcard::{Entry, Parser};

/// Why a body was refused: the precondition element of RFC 4791 §5.3.2.1 / RFC 6352 §6.3.2.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// What a calendar object resource is (RFC 4791 §4.1: one UID, one component type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarObject {
    pub uid: String,
    /// `VEVENT`, `VTODO`, `VJOURNAL` or `VFREEBUSY`.
    pub component: String,
    /// The span of all its instances, `None` when it has no DTSTART.
    pub span: Option<Span>,
}

/// Checks an iCalendar body (RFC 4791 §4.1 and §5.3.2.1 `valid-calendar-data`,
/// `valid-calendar-object-resource`).
pub fn check_calendar(text: &str) -> Result<CalendarObject, Invalid> {
    let mut parser = Parser::new(text);
    let cal = match parser.entry() {
        Entry::ICalendar(cal) => cal,
        Entry::VCard(_) => return Err(Invalid("a vCard is not calendar data".into())),
        other => return Err(Invalid(format!("not iCalendar data: {}", describe(&other)))),
    };
    match parser.entry() {
        Entry::Eof => {}
        _ => return Err(Invalid("more than one VCALENDAR in the body".into())),
    }
    if cal.components.first().map(|c| &c.component_type) != Some(&ICalendarComponentType::VCalendar)
    {
        return Err(Invalid("the body is not a VCALENDAR".into()));
    }
    let mut component: Option<&'static str> = None;
    let mut uid: Option<&str> = None;
    for c in &cal.components[1..] {
        let name = match c.component_type {
            ICalendarComponentType::VEvent => "VEVENT",
            ICalendarComponentType::VTodo => "VTODO",
            ICalendarComponentType::VJournal => "VJOURNAL",
            ICalendarComponentType::VFreebusy => "VFREEBUSY",
            // Time zones, alarms and the parts of a time zone are not resources of their own.
            _ => continue,
        };
        if component.is_some_and(|have| have != name) {
            return Err(Invalid(format!(
                "more than one component type ({} and {name}) in one resource",
                component.unwrap_or_default()
            )));
        }
        component = Some(name);
        let Some(this) = c.uid().map(str::trim).filter(|u| !u.is_empty()) else {
            return Err(Invalid(format!("a {name} has no UID")));
        };
        if uid.is_some_and(|u| u != this) {
            return Err(Invalid("more than one UID in one resource".into()));
        }
        uid = Some(this);
    }
    let (Some(component), Some(uid)) = (component, uid) else {
        return Err(Invalid(
            "no VEVENT, VTODO, VJOURNAL or VFREEBUSY in the calendar".into(),
        ));
    };
    Ok(CalendarObject {
        uid: uid.to_string(),
        component: component.to_string(),
        span: range::span_of(&cal),
    })
}

/// Checks a vCard body (RFC 6352 §6.3.2.1 `valid-address-data`: one vCard, with a UID).
pub fn check_card(text: &str) -> Result<String, Invalid> {
    let mut parser = Parser::new(text);
    let card = match parser.entry() {
        Entry::VCard(card) => card,
        Entry::ICalendar(_) => return Err(Invalid("iCalendar data is not a vCard".into())),
        other => return Err(Invalid(format!("not vCard data: {}", describe(&other)))),
    };
    match parser.entry() {
        Entry::Eof => {}
        _ => return Err(Invalid("more than one vCard in the body".into())),
    }
    match card.uid().map(str::trim).filter(|u| !u.is_empty()) {
        Some(uid) => Ok(uid.to_string()),
        None => Err(Invalid("the vCard has no UID".into())),
    }
}

pub(crate) fn describe(entry: &Entry) -> String {
    match entry {
        Entry::InvalidLine(l) => {
            format!("invalid line {:?}", l.chars().take(80).collect::<String>())
        }
        Entry::UnterminatedComponent(c) => format!("{c} is not terminated"),
        Entry::UnexpectedComponentEnd { .. } => "an END does not match its BEGIN".into(),
        Entry::TooManyComponents => "too many components".into(),
        Entry::Eof => "empty body".into(),
        _ => "unexpected content".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:e1@x\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:Test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn an_event_is_accepted_with_its_uid_and_span() {
        let o = check_calendar(EVENT).unwrap();
        assert_eq!(o.uid, "e1@x");
        assert_eq!(o.component, "VEVENT");
        let s = o.span.unwrap();
        assert_eq!(s.end, Some(s.start + 3600));
        assert!(!s.recurring);
    }

    #[test]
    fn two_uids_are_refused() {
        let two = EVENT.replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:other\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR",
        );
        assert!(check_calendar(&two).unwrap_err().0.contains("UID"));
    }

    #[test]
    fn two_component_types_are_refused() {
        let two = EVENT.replace(
            "END:VCALENDAR",
            "BEGIN:VTODO\r\nUID:e1@x\r\nEND:VTODO\r\nEND:VCALENDAR",
        );
        assert!(check_calendar(&two).is_err());
    }

    #[test]
    fn garbage_and_missing_uid_are_refused() {
        assert!(check_calendar("hello").is_err());
        assert!(check_calendar("").is_err());
        assert!(check_calendar("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n").is_err());
        assert!(check_calendar(&EVENT.replace("UID:e1@x\r\n", "")).is_err());
        assert!(check_calendar("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:x\r\nEND:VCARD\r\n").is_err());
    }

    #[test]
    fn a_card_needs_a_uid() {
        let card = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c1\r\nFN:Ann\r\nEND:VCARD\r\n";
        assert_eq!(check_card(card).unwrap(), "c1");
        assert!(check_card(&card.replace("UID:c1\r\n", "")).is_err());
        assert!(check_card(EVENT).is_err());
        assert!(check_card("BEGIN:VCARD\r\n").is_err());
    }

    #[test]
    fn all_day_event_without_end_lasts_a_day_and_rrule_marks_recurring() {
        let e = EVENT
            .replace(
                "DTSTART:20260105T100000Z",
                "DTSTART;VALUE=DATE:20260105\r\nRRULE:FREQ=DAILY",
            )
            .replace("DTEND:20260105T110000Z\r\n", "");
        let s = check_calendar(&e).unwrap().span.unwrap();
        assert_eq!(s.end, None, "an RRULE without COUNT or UNTIL has no end");
        assert!(s.recurring);
        let once = e.replace("RRULE:FREQ=DAILY\r\n", "");
        let s = check_calendar(&once).unwrap().span.unwrap();
        assert_eq!(s.end, Some(s.start + 86_400), "a DATE start lasts a day");
    }
}

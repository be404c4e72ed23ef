//! The one place that decides whether a calendar object falls in a time range
//! (RFC 4791 §9.9). Recurrence expansion (RRULE/RDATE/EXDATE, overrides, time zones) is the
//! next part of issue 15 and plugs in here.

/// The first instance(s) of a calendar object, in unix seconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: i64,
    /// It has an RRULE or RDATE: instances after the first are not expanded yet.
    pub recurring: bool,
}

/// Times without `Z` (floating, or with a TZID this part does not resolve yet) are read as
/// UTC; widening by the largest UTC offset keeps such an event from being missed.
const FLOATING_SLACK: i64 = 14 * 3600;

/// RFC 4791 §9.9: does the object overlap `[start, end)`? An instant (start == end)
/// overlaps when `start <= instant < end`.
///
/// A recurring object is included when its first instance overlaps the range, or when the
/// range lies after its first instance (its RRULE could put an instance there): without
/// expansion this errs towards including, never towards losing an event.
pub fn overlaps(span: Option<Span>, start: i64, end: i64) -> bool {
    // RFC 4791 §9.9: a component without DTSTART matches every range (VTODO without dates).
    let Some(s) = span else { return true };
    let (s_start, s_end) = (s.start - FLOATING_SLACK, s.end + FLOATING_SLACK);
    if s.recurring {
        return s_start < end;
    }
    if s.start == s.end {
        return s_start < end && s_end >= start;
    }
    s_start < end && s_end > start
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 5545 §3.3.4/§3.3.5: `YYYYMMDD` or `YYYYMMDDTHHMMSS[Z]` → unix seconds.
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

/// RFC 5545 §3.3.6: `[+-]P[nW][nD][T[nH][nM][nS]]` → seconds.
pub fn parse_duration(v: &str) -> Option<i64> {
    let v = v.trim();
    let (sign, v) = match v.as_bytes().first()? {
        b'-' => (-1, &v[1..]),
        b'+' => (1, &v[1..]),
        _ => (1, v),
    };
    let v = v.strip_prefix('P')?;
    let mut total: i64 = 0;
    let mut n: i64 = 0;
    let mut in_time = false;
    let mut any = false;
    for c in v.chars() {
        match c {
            '0'..='9' => {
                n = n.checked_mul(10)?.checked_add(i64::from(c as u8 - b'0'))?;
            }
            'T' => in_time = true,
            'W' | 'D' | 'H' | 'M' | 'S' => {
                let unit = match (c, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
                total = total.checked_add(n.checked_mul(unit)?)?;
                n = 0;
                any = true;
            }
            _ => return None,
        }
    }
    any.then_some(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations_parse() {
        assert_eq!(parse_date_time("19700101T000000Z"), Some(0));
        assert_eq!(parse_date_time("19700102"), Some(86_400));
        assert_eq!(parse_date_time("20000301T000000Z"), Some(951_868_800));
        assert_eq!(parse_date_time("2000-03-01"), None);
        assert_eq!(parse_date_time("20001301"), None);
        assert_eq!(parse_duration("PT1H30M"), Some(5400));
        assert_eq!(parse_duration("-P1W"), Some(-604_800));
        assert_eq!(parse_duration("P"), None);
        assert_eq!(parse_duration("P99999999999999999999D"), None);
    }

    #[test]
    fn overlap_follows_rfc_4791_9_9() {
        let day = 86_400;
        let first = Span {
            start: 10 * day,
            end: 10 * day + 3600,
            recurring: false,
        };
        let ev = Some(first);
        assert!(overlaps(ev, 9 * day, 11 * day));
        assert!(!overlaps(ev, 12 * day, 13 * day));
        assert!(!overlaps(ev, 5 * day, 9 * day));
        let rec = Some(Span {
            recurring: true,
            ..first
        });
        assert!(
            overlaps(rec, 100 * day, 101 * day),
            "an RRULE could fall later"
        );
        assert!(
            !overlaps(rec, day, 2 * day),
            "nothing before the first instance"
        );
        assert!(overlaps(None, 0, 1));
    }
}

//! IMAP dates (RFC 9051 §9 `date-time`, `date`) and civil-calendar arithmetic.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 for a proleptic Gregorian date ([`bulwark_core::civil`]).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    bulwark_core::civil::days_from_civil(year, i64::from(month), i64::from(day))
}

/// (year, month 1-12, day 1-31) for days since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let (y, m, d) = bulwark_core::civil::civil_from_days(days);
    (y, m as u32, d as u32)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// INTERNALDATE text, without the surrounding DQUOTEs: `date-day-fixed "-" date-month "-"
/// date-year SP time SP zone`, always in UTC, e.g. `23-Nov-2026 10:00:00 +0000` or
/// ` 1-Feb-1994 00:00:00 +0000` (RFC 9051 §9: single-digit days are space padded).
pub fn format_internal_date(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(SECS_PER_DAY), unix.rem_euclid(SECS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    let month_name = MONTHS.get(month as usize - 1).copied().unwrap_or("Jan");
    format!(
        "{day:>2}-{month_name}-{year:04} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `date-day "-" date-month "-" date-year` → days since the epoch.
fn parse_day(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let (d, m, y) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || d.is_empty() || d.len() > 2 || y.len() != 4 {
        return None;
    }
    let day: u32 = digits(d)?;
    let year: i64 = i64::from(digits::<u32>(y)?);
    let month = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(m))? as u32 + 1;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
}

/// Parse an APPEND `date-time` (`"dd-Mon-yyyy hh:mm:ss +zzzz"`, quotes optional) into unix
/// seconds (UTC).
pub fn parse_date_time(s: &str) -> Option<i64> {
    let s = unquote(s).trim_start();
    let mut parts = s.split(' ').filter(|p| !p.is_empty());
    let (date, time, zone) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let days = parse_day(date)?;
    let mut t = time.split(':');
    let (h, m, sec) = (t.next()?, t.next()?, t.next()?);
    if t.next().is_some() || h.len() != 2 || m.len() != 2 || sec.len() != 2 {
        return None;
    }
    let (h, m, sec): (i64, i64, i64) = (digits(h)?, digits(m)?, digits(sec)?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let (sign, zone_digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    if zone_digits.len() != 4 {
        return None;
    }
    let z: i64 = digits(zone_digits)?;
    let (zh, zm) = (z / 100, z % 100);
    if zm > 59 {
        return None;
    }
    Some(days * SECS_PER_DAY + h * 3600 + m * 60 + sec - sign * (zh * 3600 + zm * 60))
}

/// Parse a SEARCH `date` (`1-Feb-1994`, quotes optional) into unix seconds at 00:00 UTC of
/// that day.
pub fn parse_date(s: &str) -> Option<i64> {
    Some(parse_day(unquote(s))? * SECS_PER_DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_date_formats_in_utc_with_padded_day() {
        let cases: &[(i64, &str)] = &[
            (0, " 1-Jan-1970 00:00:00 +0000"),
            (1_795_428_000, "23-Nov-2026 10:00:00 +0000"),
            (760_060_800, "1-Feb-1994 00:00:00 +0000"),
            (951_782_400, "29-Feb-2000 00:00:00 +0000"),
            (-1, "31-Dec-1969 23:59:59 +0000"),
        ];
        for (unix, want) in cases {
            assert_eq!(
                format_internal_date(*unix).trim_start(),
                want.trim_start(),
                "{unix}"
            );
        }
        assert_eq!(
            format_internal_date(760_060_800),
            " 1-Feb-1994 00:00:00 +0000"
        );
    }

    #[test]
    fn date_time_parses_zones_and_rejects_garbage() {
        let cases: &[(&str, Option<i64>)] = &[
            ("\"23-Nov-2026 10:00:00 +0000\"", Some(1_795_428_000)),
            ("23-Nov-2026 11:30:00 +0130", Some(1_795_428_000)),
            ("23-Nov-2026 05:00:00 -0500", Some(1_795_428_000)),
            (" 1-Feb-1994 00:00:00 +0000", Some(760_060_800)),
            ("\" 1-Feb-1994 00:00:00 +0000\"", Some(760_060_800)),
            ("1-feb-1994 00:00:00 +0000", Some(760_060_800)),
            ("30-Feb-1994 00:00:00 +0000", None),
            ("1-Feb-1994 24:00:00 +0000", None),
            ("1-Feb-1994 00:00:00 0000", None),
            ("1-Feb-1994 00:00:00 +00", None),
            ("1-Feb-94 00:00:00 +0000", None),
            ("1-Foo-1994 00:00:00 +0000", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_date_time(input), *want, "{input:?}");
        }
    }

    #[test]
    fn search_date_is_midnight_utc() {
        assert_eq!(parse_date("1-Feb-1994"), Some(760_060_800));
        assert_eq!(parse_date("\"01-Feb-1994\""), Some(760_060_800));
        assert_eq!(parse_date("29-Feb-1900"), None);
        assert_eq!(parse_date("29-Feb-2000"), Some(951_782_400));
        assert_eq!(parse_date("1-Feb"), None);
    }

    #[test]
    fn civil_conversion_round_trips() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}

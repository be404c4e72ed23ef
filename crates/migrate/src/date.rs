//! Unix seconds ↔ the asctime form of mbox `From ` lines (`Thu Dec  3 08:11:52 2026`, UTC).

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
use bulwark_core::civil::{civil_from_days, days_from_civil};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// `Thu Dec  3 08:11:52 2026` for unix seconds (UTC).
pub fn asctime(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        y
    )
}

/// The date of a `From ` line's rest (`sender Thu Dec  3 08:11:52 2026`, possibly with a
/// trailing zone like `+0100` or `remote from …`): the first month name followed by a day,
/// a time and a year. `None` when there is none.
pub fn parse_from_line_date(rest: &str) -> Option<i64> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    for i in 0..words.len() {
        let Some(month) = MONTHS.iter().position(|m| *m == words[i]) else {
            continue;
        };
        let (Some(day), Some(time)) = (words.get(i + 1), words.get(i + 2)) else {
            return None;
        };
        let day: i64 = day.parse().ok()?;
        let mut hms = time.split(':').map(|p| p.parse::<i64>());
        let (h, mi) = (hms.next()?.ok()?, hms.next()?.ok()?);
        let s = hms.next().transpose().ok()?.unwrap_or(0);
        // The year follows the time, possibly after a zone (`Thu Dec 3 08:11:52 +0100 2026`).
        let mut year = None;
        let mut zone = 0i64;
        for w in words.iter().skip(i + 3).take(2) {
            if let Ok(y) = w.parse::<i64>()
                && w.len() == 4
                && year.is_none()
            {
                year = Some(y);
            } else if let Some(z) = parse_zone(w) {
                zone = z;
            }
        }
        let year = year?;
        if !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        return Some(
            days_from_civil(year, month as i64 + 1, day) * 86_400 + h * 3600 + mi * 60 + s - zone,
        );
    }
    None
}

fn parse_zone(w: &str) -> Option<i64> {
    let (sign, digits) = match w.as_bytes().first()? {
        b'+' => (1, &w[1..]),
        b'-' => (-1, &w[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    Some(sign * ((n / 100) * 3600 + (n % 100) * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asctime_round_trips() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(1_796_285_512), "Thu Dec  3 08:11:52 2026");
        for t in [0, 951_782_400, 1_700_000_000, 1_796_285_512, 4_102_444_799] {
            assert_eq!(
                parse_from_line_date(&format!("a@b {}", asctime(t))),
                Some(t)
            );
        }
        assert_eq!(
            parse_from_line_date("MAILER-DAEMON Thu Dec  3 09:11:52 2026 +0100"),
            Some(1_796_285_512)
        );
        assert_eq!(parse_from_line_date("someone"), None);
        assert_eq!(parse_from_line_date("x Dec 99 00:00:00 2026"), None);
    }
}

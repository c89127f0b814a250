//! HTTP dates (RFC 9110 §5.6.7), parsed strictly and formatted as IMF-fixdate.
//!
//! A cache's freshness arithmetic rests on `Date`, `Expires`, `Last-Modified` and
//! `If-Modified-Since`. RFC 9110 names exactly three forms a recipient accepts: the preferred
//! IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
//! (`Sunday, 06-Nov-94 08:49:37 GMT`) and C's asctime (`Sun Nov  6 08:49:37 1994`). Anything else
//! is invalid, and an invalid `Expires` means "already expired" (RFC 9111 §5.3), so this parser
//! refuses near misses (a missing comma, a one-digit hour, `UTC` for `GMT`) instead of guessing.
//! Names are matched without regard to case, as many servers and caches do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the Unix epoch of an HTTP date, or `None` when it is not one of the three forms.
///
/// `now` resolves the two-digit year of the RFC 850 form: a year that would be more than 50 years
/// in the future means the most recent past year with the same last two digits.
pub fn parse_http_date(text: &str, now: SystemTime) -> Option<i64> {
    let t = text.trim_matches(|c| c == ' ' || c == '\t');
    parse_imf_fixdate(t)
        .or_else(|| parse_rfc850(t, now))
        .or_else(|| parse_asctime(t))
}

/// Formats seconds since the epoch as an IMF-fixdate.
pub fn format_http_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    let wd = (days + 3).rem_euclid(7) as usize;
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[wd],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since the epoch of a [`SystemTime`] (negative before 1970).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The [`SystemTime`] of seconds since the epoch.
pub fn from_unix_secs(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn parse_imf_fixdate(t: &str) -> Option<i64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT": fixed width, 29 bytes.
    let b = t.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || b[7] != b' ' || b[11] != b' ' || b[16] != b' ' {
        return None;
    }
    if !t[25..].eq_ignore_ascii_case(" GMT") {
        return None;
    }
    day_name(&t[..3], &DAYS)?;
    let day = digits(&t[5..7])?;
    let month = month(&t[8..11])?;
    let year = digits(&t[12..16])?;
    let (h, mi, s) = time_of_day(&t[17..25])?;
    to_epoch(year, month, day, h, mi, s)
}

fn parse_rfc850(t: &str, now: SystemTime) -> Option<i64> {
    // "Sunday, 06-Nov-94 08:49:37 GMT"
    let (name, rest) = t.split_once(", ")?;
    day_name(name, &LONG_DAYS)?;
    let b = rest.as_bytes();
    if b.len() != 22 || b[2] != b'-' || b[6] != b'-' || b[9] != b' ' {
        return None;
    }
    if !rest[18..].eq_ignore_ascii_case(" GMT") {
        return None;
    }
    let day = digits(&rest[..2])?;
    let month = month(&rest[3..6])?;
    let yy = digits(&rest[7..9])?;
    let (h, mi, s) = time_of_day(&rest[10..18])?;
    let (this_year, _, _) = civil_from_days(unix_secs(now).div_euclid(86_400));
    let mut year = this_year - this_year % 100 + i64::from(yy);
    if year > this_year + 50 {
        year -= 100;
    }
    to_epoch(year as u32, month, day, h, mi, s)
}

fn parse_asctime(t: &str) -> Option<i64> {
    // "Sun Nov  6 08:49:37 1994": the day is padded with a space, not a zero.
    let b = t.as_bytes();
    if b.len() != 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
        return None;
    }
    day_name(&t[..3], &DAYS)?;
    let month = month(&t[4..7])?;
    let day = if b[8] == b' ' {
        digits(&t[9..10])?
    } else {
        digits(&t[8..10])?
    };
    let (h, mi, s) = time_of_day(&t[11..19])?;
    let year = digits(&t[20..24])?;
    to_epoch(year, month, day, h, mi, s)
}

fn day_name(text: &str, names: &[&str]) -> Option<usize> {
    names.iter().position(|n| n.eq_ignore_ascii_case(text))
}

fn month(text: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(text))
        .map(|i| i as u32 + 1)
}

fn digits(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn time_of_day(text: &str) -> Option<(u32, u32, u32)> {
    let b = text.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    Some((
        digits(&text[..2])?,
        digits(&text[3..5])?,
        digits(&text[6..])?,
    ))
}

fn to_epoch(year: u32, month: u32, day: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    // 60 seconds admits a leap second; it is counted as the next minute's first.
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    Some(days * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

// Howard Hinnant's days_from_civil / civil_from_days: exact proleptic Gregorian arithmetic
// without tables, valid for every year these headers can carry.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_1994: i64 = 784_111_777;

    fn now() -> SystemTime {
        from_unix_secs(1_795_000_000) // 2026-11-18
    }

    #[test]
    fn the_three_forms_of_rfc_9110() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(text, now()), Some(NOV_1994), "{text}");
        }
    }

    #[test]
    fn names_in_any_case() {
        assert_eq!(
            parse_http_date("SUN, 06 NOV 1994 08:49:37 gmt", now()),
            Some(NOV_1994)
        );
    }

    #[test]
    fn near_misses_are_invalid() {
        for text in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "0",
            "",
            "Thu, 32 Aug 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 24:01:18 GMT",
        ] {
            assert_eq!(parse_http_date(text, now()), None, "{text}");
        }
    }

    #[test]
    fn two_digit_years_stay_within_fifty_years_ahead() {
        let y2050 = parse_http_date("Thu, 18 Aug 2050 02:01:18 GMT", now());
        assert_eq!(
            parse_http_date("Thursday, 18-Aug-50 02:01:18 GMT", now()),
            y2050
        );
        let y1999 = parse_http_date("Fri, 31 Dec 1999 00:00:00 GMT", now());
        assert_eq!(
            parse_http_date("Friday, 31-Dec-99 00:00:00 GMT", now()),
            y1999
        );
    }

    #[test]
    fn format_round_trips() {
        assert_eq!(format_http_date(NOV_1994), "Sun, 06 Nov 1994 08:49:37 GMT");
        for secs in [0, 951_782_400, 2_147_483_648, 9_999_999_999, -86_400] {
            assert_eq!(
                parse_http_date(&format_http_date(secs), now()),
                Some(secs),
                "{secs}"
            );
        }
    }
}

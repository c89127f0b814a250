//! The cookie date parser of RFC 6265 section 5.1.1.
//!
//! Servers write `Expires` in every format HTTP ever had (`Sun, 06 Nov 1994 08:49:37 GMT`,
//! `Sunday, 06-Nov-94 08:49:37 GMT`, `Sun Nov  6 08:49:37 1994`...), so the algorithm does not
//! follow any one grammar: it splits the string into tokens at delimiters and takes the first
//! token that looks like a time, a day of month, a month and a year, in that order of tries.

/// Seconds since 1970-01-01T00:00:00Z of the date in `text`, or `None` when the algorithm fails
/// (a missing part, or a value out of range such as a 31st of February or a year before 1601).
pub fn parse_cookie_date(text: &str) -> Option<i64> {
    let mut time: Option<(u32, u32, u32)> = None;
    let mut day: Option<u32> = None;
    let mut month: Option<u32> = None;
    let mut year: Option<u32> = None;
    for token in text.as_bytes().split(|&b| is_delimiter(b)) {
        if token.is_empty() {
            continue;
        }
        if time.is_none()
            && let Some(t) = hms_time(token)
        {
            time = Some(t);
        } else if day.is_none()
            && let Some(d) = digits_then_non_digit(token, 1, 2)
        {
            day = Some(d);
        } else if month.is_none()
            && let Some(m) = month_of(token)
        {
            month = Some(m);
        } else if year.is_none()
            && let Some(y) = digits_then_non_digit(token, 2, 4)
        {
            year = Some(y);
        }
    }
    let (hour, minute, second) = time?;
    let (day, month, mut year) = (day?, month?, year?);
    // Two-digit years: 70-99 are 1970-1999, 0-69 are 2000-2069.
    if (70..=99).contains(&year) {
        year += 1900;
    } else if year <= 69 {
        year += 2000;
    }
    if !(1..=31).contains(&day) || year < 1601 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    if day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    Some(days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))
}

/// delimiter = %x09 / %x20-2F / %x3B-40 / %x5B-60 / %x7B-7E
fn is_delimiter(b: u8) -> bool {
    matches!(b, 0x09 | 0x20..=0x2f | 0x3b..=0x40 | 0x5b..=0x60 | 0x7b..=0x7e)
}

/// `min` to `max` digits, then either the end or a non-digit followed by anything
/// (`1*2DIGIT ( non-digit *OCTET )`); the digits' value.
fn digits_then_non_digit(token: &[u8], min: usize, max: usize) -> Option<u32> {
    let n = token.iter().take_while(|b| b.is_ascii_digit()).count();
    if n < min || n > max {
        return None;
    }
    Some(
        token[..n]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')),
    )
}

/// `hms-time ( non-digit *OCTET )` where `hms-time = time-field ":" time-field ":" time-field`
/// and `time-field = 1*2DIGIT`.
fn hms_time(token: &[u8]) -> Option<(u32, u32, u32)> {
    let mut fields = [0u32; 3];
    let mut rest = token;
    for (i, field) in fields.iter_mut().enumerate() {
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 2 {
            return None;
        }
        *field = rest[..n]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'));
        rest = &rest[n..];
        if i < 2 {
            rest = rest.strip_prefix(b":")?;
        }
    }
    // After the third field: the end, or a non-digit (which the digit count above ensured).
    Some((fields[0], fields[1], fields[2]))
}

/// `month = ( "jan" / ... / "dec" ) *OCTET`, case-insensitive.
fn month_of(token: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let head = token.get(..3)?;
    MONTHS
        .iter()
        .position(|m| head.eq_ignore_ascii_case(&m[..]))
        .map(|i| i as u32 + 1)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06T08:49:37Z, the date of RFC 7231's examples.
    const T: i64 = 784_111_777;

    #[test]
    fn every_http_date_format() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "06 nov 1994 08:49:37",
            "Sun, 06-Nov-1994 08:49:37 GMT",
            "1994 Nov 6 8:49:37",
            "Sun, 06 November 1994 08:49:37 UTC+5",
            // `:` is not a delimiter, and a time may be followed by a non-digit and anything.
            "Sun, 06 Nov 1994 08:49:37:12",
        ] {
            assert_eq!(parse_cookie_date(text), Some(T), "{text}");
        }
    }

    #[test]
    fn rfc_6265_examples() {
        // Section 3.1's Expires value.
        assert_eq!(
            parse_cookie_date("Wed, 09 Jun 2021 10:18:14 GMT"),
            Some(1_623_233_894)
        );
        assert_eq!(parse_cookie_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    }

    #[test]
    fn failures() {
        for text in [
            "",
            "Sun, 06 Nov 1994",           // no time
            "Sun, 06 1994 08:49:37",      // no month
            "Sun, Nov 1994 08:49:37",     // no day (1994 is not 1*2DIGIT)
            "Sun, 31 Feb 2020 08:49:37",  // no such day
            "Sun, 32 Jan 2020 08:49:37",  // day out of range
            "Sun, 06 Nov 1600 08:49:37",  // before 1601
            "Sun, 06 Nov 1994 24:00:00",  // hour out of range
            "Sun, 06 Nov 1994 08:60:00",  // minute out of range
            "Sun, 06 Nov 19999 08:49:37", // five-digit year
        ] {
            assert_eq!(parse_cookie_date(text), None, "{text}");
        }
    }

    #[test]
    fn two_digit_years_and_leap_days() {
        assert_eq!(
            parse_cookie_date("01 Jan 69 00:00:00"),
            parse_cookie_date("01 Jan 2069 00:00:00")
        );
        assert_eq!(
            parse_cookie_date("01 Jan 70 00:00:00"),
            parse_cookie_date("01 Jan 1970 00:00:00")
        );
        assert!(parse_cookie_date("29 Feb 2000 00:00:00").is_some());
        assert!(parse_cookie_date("29 Feb 1900 00:00:00").is_none());
        assert_eq!(
            parse_cookie_date("01 Jan 1601 00:00:00"),
            Some(-11_644_473_600)
        );
    }
}

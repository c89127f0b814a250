//! The Netscape cookie file: the format curl reads with `-b FILE` and writes with `-c FILE`,
//! and Python's `http.cookiejar.MozillaCookieJar` reads and writes.
//!
//! One cookie per line, seven fields separated by tabs:
//!
//! ```text
//! domain  include-subdomains  path  secure  expiry  name  value
//! .example.com  TRUE  /  FALSE  2145916800  lang  en-US
//! ```
//!
//! `include-subdomains` is `TRUE` for a domain cookie, whose domain is then written with a
//! leading dot, and `FALSE` for a host-only cookie. `expiry` is seconds since the epoch, `0` for
//! a session cookie. An HttpOnly cookie's line starts with `#HttpOnly_` (which older readers
//! skip as a comment); other lines starting with `#` are comments. SameSite, creation and
//! last-access times have no field and are not kept.

use super::jar::{Cookie, CookieJar};

/// The first line: readers such as Python's check for it.
const HEADER: &str = "# Netscape HTTP Cookie File\n\
# Fields: domain, include subdomains, path, secure, expiry (0: session), name, value.\n\n";

const HTTP_ONLY: &str = "#HttpOnly_";

/// A line longer than this is skipped: no cookie within the jar's caps needs it.
const MAX_LINE: usize = 16 * 1024;

/// What loading a file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Cookies added or replacing one already held.
    pub loaded: usize,
    /// Lines that are not a valid cookie line, or cookies the jar refused.
    pub skipped: usize,
    /// Cookies whose expiry had passed.
    pub expired: usize,
}

impl CookieJar {
    /// The jar as a Netscape cookie file, oldest cookie first. Expired cookies are left out;
    /// session cookies are written with expiry 0, as curl does.
    pub fn to_netscape(&self, now: i64) -> String {
        let mut out = String::from(HEADER);
        for c in self.cookies().filter(|c| !c.is_expired(now)) {
            out.push_str(&line(c));
            out.push('\n');
        }
        out
    }

    /// Adds the cookies of a Netscape cookie file, read at `now`. Bad lines are skipped and
    /// counted; the jar's caps apply as for received cookies.
    pub fn load_netscape(&mut self, text: &str, now: i64) -> LoadReport {
        let mut report = LoadReport::default();
        for raw in text.lines() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let (http_only, body) = match raw.strip_prefix(HTTP_ONLY) {
                Some(rest) => (true, rest),
                None => (false, raw),
            };
            if body.trim().is_empty() || body.starts_with('#') {
                continue;
            }
            let Some(mut cookie) = (raw.len() <= MAX_LINE).then(|| parse_line(body)).flatten()
            else {
                report.skipped += 1;
                continue;
            };
            cookie.http_only = http_only;
            if cookie.is_expired(now) {
                report.expired += 1;
                continue;
            }
            match self.insert_loaded(cookie, now) {
                Ok(_) => report.loaded += 1,
                Err(_) => report.skipped += 1,
            }
        }
        report
    }
}

fn line(c: &Cookie) -> String {
    let flag = |b: bool| if b { "TRUE" } else { "FALSE" };
    format!(
        "{}{}{}\t{}\t{}\t{}\t{}\t{}\t{}",
        if c.http_only { HTTP_ONLY } else { "" },
        if c.host_only { "" } else { "." },
        c.domain,
        flag(!c.host_only),
        c.path,
        flag(c.secure),
        // A cookie stored with an expiry before 1970 has expired and is never written.
        c.expires.unwrap_or(0).max(0),
        c.name,
        c.value
    )
}

/// One cookie line (without `#HttpOnly_`).
fn parse_line(line: &str) -> Option<Cookie> {
    let fields: Vec<&str> = line.split('\t').collect();
    // Some writers leave out the last field when the value is empty.
    let (domain, subdomains, path, secure, expiry, name, value) = match fields[..] {
        [d, s, p, sec, e, n, v] => (d, s, p, sec, e, n, v),
        [d, s, p, sec, e, n] => (d, s, p, sec, e, n, ""),
        _ => return None,
    };
    let bool_field = |f: &str| match f {
        "TRUE" => Some(true),
        "FALSE" => Some(false),
        _ => None,
    };
    let include_subdomains = bool_field(subdomains)?;
    let domain = domain
        .strip_prefix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    if domain.is_empty() || name.is_empty() || !path.starts_with('/') {
        return None;
    }
    // Python's MozillaCookieJar writes a session cookie with an empty expiry, curl with 0.
    let expiry: i64 = if expiry.is_empty() {
        0
    } else {
        expiry.parse().ok()?
    };
    Some(Cookie {
        name: name.to_owned(),
        value: value.to_owned(),
        domain,
        path: path.to_owned(),
        expires: (expiry != 0).then_some(expiry),
        host_only: !include_subdomains,
        secure: bool_field(secure)?,
        http_only: false,
        same_site: None,
        creation: 0,
        last_access: 0,
        seq: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn round_trip() {
        let mut jar = CookieJar::default();
        let u: Url = "https://www.example.com/app/x".parse().unwrap();
        for h in [
            "sid=abc; Path=/; HttpOnly",
            "lang=en; Domain=example.com; Path=/; Max-Age=3600",
            "s=1; Secure",
            "empty=",
        ] {
            jar.set_cookie(h, &u, NOW).unwrap();
        }
        let text = jar.to_netscape(NOW);
        let body: Vec<&str> = text.lines().skip(3).collect();
        assert_eq!(
            body,
            [
                "#HttpOnly_www.example.com\tFALSE\t/\tFALSE\t0\tsid\tabc",
                ".example.com\tTRUE\t/\tFALSE\t1700003600\tlang\ten",
                "www.example.com\tFALSE\t/app\tTRUE\t0\ts\t1",
                "www.example.com\tFALSE\t/app\tFALSE\t0\tempty\t",
            ]
        );
        let mut back = CookieJar::default();
        let r = back.load_netscape(&text, NOW);
        assert_eq!(
            r,
            LoadReport {
                loaded: 4,
                skipped: 0,
                expired: 0
            }
        );
        let strip = |j: &CookieJar| {
            j.cookies()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.value.clone(),
                        c.domain.clone(),
                        c.path.clone(),
                        c.expires,
                        c.host_only,
                        c.secure,
                        c.http_only,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&back), strip(&jar));
        assert_eq!(back.to_netscape(NOW), text);
    }

    #[test]
    fn bad_and_expired_lines() {
        let text = "# Netscape HTTP Cookie File\n\
            \n\
            # a comment\n\
            example.com\tMAYBE\t/\tFALSE\t0\ta\t1\n\
            example.com\tFALSE\trel\tFALSE\t0\ta\t1\n\
            example.com\tFALSE\t/\tFALSE\tsoon\ta\t1\n\
            example.com\tFALSE\t/\tFALSE\t0\n\
            example.com\tFALSE\t/\tFALSE\t100\told\t1\n\
            example.com\tFALSE\t/\tFALSE\t0\tnovalue\n\
            .python.example\tTRUE\t/\tFALSE\t\tsession\t1\n\
            #HttpOnly_.example.com\tTRUE\t/\tFALSE\t0\th\t1\r\n";
        let mut jar = CookieJar::default();
        let r = jar.load_netscape(text, NOW);
        assert_eq!(
            r,
            LoadReport {
                loaded: 3,
                skipped: 4,
                expired: 1
            }
        );
        let h = jar.cookies().find(|c| c.name == "h").unwrap();
        assert!(h.http_only && !h.host_only && h.domain == "example.com");
    }
}

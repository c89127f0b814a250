//! Parsing a `Set-Cookie` header value: RFC 6265 section 5.2.
//!
//! The algorithm is lenient on purpose: unknown or malformed attributes are ignored one by one,
//! and only a missing `=` or an empty name makes the whole header ignored.

use super::date::parse_cookie_date;

/// `SameSite`, parsed and stored (RFC 6265bis section 5.4.7); a value other than these three is
/// ignored, as that draft says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    /// The attribute value as servers write it.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// One attribute of the cookie-attribute-list, already interpreted as section 5.2.1-5.2.6 say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    /// An `Expires` date that parsed: seconds since the epoch.
    Expires(i64),
    /// `Max-Age` in seconds; zero or negative means "already expired".
    MaxAge(i64),
    /// `Domain` with a leading dot removed, lower-cased.
    Domain(String),
    /// `Path`, or `None` when the value was empty or did not start with `/` (then the storage
    /// model uses the default path).
    Path(Option<String>),
    Secure,
    HttpOnly,
    SameSite(SameSite),
}

/// A parsed `Set-Cookie` header: the name, the value and the attributes in header order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    pub attrs: Vec<Attr>,
}

/// Why a whole `Set-Cookie` header was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no `=` in the name-value pair")]
    NoEquals,
    #[error("empty cookie name")]
    EmptyName,
}

/// WSP: space and horizontal tab.
fn trim_wsp(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Parses `header` (the field value of one `Set-Cookie` header) as section 5.2 says.
///
/// # Errors
/// [`ParseError`] when the user agent must ignore the header entirely.
pub fn parse_set_cookie(header: &str) -> Result<SetCookie, ParseError> {
    let (pair, unparsed) = match header.find(';') {
        Some(i) => (&header[..i], &header[i..]),
        None => (header, ""),
    };
    let (name, value) = pair.split_once('=').ok_or(ParseError::NoEquals)?;
    let (name, value) = (trim_wsp(name), trim_wsp(value));
    if name.is_empty() {
        return Err(ParseError::EmptyName);
    }
    let mut attrs = Vec::new();
    // `unparsed` starts with ';' when not empty, so the first piece is the empty string before it.
    for av in unparsed.split(';').skip(1) {
        let (n, v) = match av.split_once('=') {
            Some((n, v)) => (trim_wsp(n), trim_wsp(v)),
            None => (trim_wsp(av), ""),
        };
        if let Some(a) = attribute(n, v) {
            attrs.push(a);
        }
    }
    Ok(SetCookie {
        name: name.to_owned(),
        value: value.to_owned(),
        attrs,
    })
}

fn attribute(name: &str, value: &str) -> Option<Attr> {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("expires") {
        parse_cookie_date(value).map(Attr::Expires)
    } else if is("max-age") {
        // A DIGIT or "-" first, then only DIGITs; anything else ignores the attribute.
        let digits = value.strip_prefix('-').unwrap_or(value);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Values too large for i64 are still "a long time from now".
        let n = digits.parse::<i64>().unwrap_or(i64::MAX);
        Some(Attr::MaxAge(if value.starts_with('-') { -n } else { n }))
    } else if is("domain") {
        // An empty Domain is ignored (the RFC leaves it undefined and says SHOULD ignore).
        if value.is_empty() {
            return None;
        }
        let d = value.strip_prefix('.').unwrap_or(value);
        Some(Attr::Domain(d.to_ascii_lowercase()))
    } else if is("path") {
        Some(Attr::Path(value.starts_with('/').then(|| value.to_owned())))
    } else if is("secure") {
        Some(Attr::Secure)
    } else if is("httponly") {
        Some(Attr::HttpOnly)
    } else if is("samesite") {
        let v = |n: &str| value.eq_ignore_ascii_case(n);
        if v("strict") {
            Some(Attr::SameSite(SameSite::Strict))
        } else if v("lax") {
            Some(Attr::SameSite(SameSite::Lax))
        } else if v("none") {
            Some(Attr::SameSite(SameSite::None))
        } else {
            None
        }
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6265_section_3_1_examples() {
        let c = parse_set_cookie("SID=31d4d96e407aad42").unwrap();
        assert_eq!(
            (c.name.as_str(), c.value.as_str()),
            ("SID", "31d4d96e407aad42")
        );
        assert!(c.attrs.is_empty());

        let c = parse_set_cookie("SID=31d4d96e407aad42; Path=/; Secure; HttpOnly").unwrap();
        assert_eq!(
            c.attrs,
            [Attr::Path(Some("/".into())), Attr::Secure, Attr::HttpOnly]
        );

        let c = parse_set_cookie("lang=en-US; Path=/; Domain=example.com").unwrap();
        assert_eq!(
            c.attrs,
            [
                Attr::Path(Some("/".into())),
                Attr::Domain("example.com".into())
            ]
        );

        let c = parse_set_cookie("lang=en-US; Expires=Wed, 09 Jun 2021 10:18:14 GMT").unwrap();
        assert_eq!(c.attrs, [Attr::Expires(1_623_233_894)]);

        let c = parse_set_cookie("lang=; Expires=Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(c.value, "");
        assert_eq!(c.attrs, [Attr::Expires(784_111_777)]);
    }

    #[test]
    fn whitespace_quotes_and_equals_in_values() {
        let c = parse_set_cookie(" a b = c d ;path=/x").unwrap();
        assert_eq!((c.name.as_str(), c.value.as_str()), ("a b", "c d"));
        // Quotes are part of the value; the value runs to the first ';' and may hold '='.
        let c = parse_set_cookie("q=\"quoted=yes\"").unwrap();
        assert_eq!(c.value, "\"quoted=yes\"");
        let c = parse_set_cookie("empty=").unwrap();
        assert_eq!(c.value, "");
    }

    #[test]
    fn whole_header_ignored() {
        assert_eq!(parse_set_cookie("novalue"), Err(ParseError::NoEquals));
        assert_eq!(parse_set_cookie("novalue; a=b"), Err(ParseError::NoEquals));
        assert_eq!(parse_set_cookie("=value"), Err(ParseError::EmptyName));
        assert_eq!(parse_set_cookie(" \t=value"), Err(ParseError::EmptyName));
    }

    #[test]
    fn attributes() {
        let c = parse_set_cookie(
            "a=b; max-age=60; MAX-AGE=-5; Max-Age=1x; Max-Age=; Max-Age=+3; expires=never; \
             Domain=.Example.COM; Domain=; path=relative; PATH=; HttpOnly=whatever; \
             SameSite=lax; SameSite=bogus; Unknown=1; secure",
        )
        .unwrap();
        assert_eq!(
            c.attrs,
            [
                Attr::MaxAge(60),
                Attr::MaxAge(-5),
                Attr::Domain("example.com".into()),
                Attr::Path(None),
                Attr::Path(None),
                Attr::HttpOnly,
                Attr::SameSite(SameSite::Lax),
                Attr::Secure,
            ]
        );
    }
}

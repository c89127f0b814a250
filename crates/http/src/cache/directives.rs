//! Cache directives: `Cache-Control` (RFC 9111 §5.2) and `CDN-Cache-Control` (RFC 9213).
//!
//! `Cache-Control` is a comma-separated list of `token [ "=" ( token / quoted-string ) ]`.
//! Commas inside a quoted string do not separate directives, so
//! `extension="max-age=3600", max-age=1` has a max-age of 1. Names are case-insensitive. When a
//! directive repeats, the first occurrence counts (RFC 9111 §4.2.1); a value that is not a
//! delta-seconds makes the directive invalid, which the freshness rules read as "stale".
//!
//! `CDN-Cache-Control` is a Structured Field Dictionary (RFC 8941): stricter syntax, lowercase
//! keys, integers for seconds. A field that does not parse is ignored as a whole.

/// A delta-seconds value: valid (saturated at 2^31, RFC 9111 §1.2.2) or not a number at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    /// A non-negative number of seconds.
    Secs(u64),
    /// Present but not delta-seconds (negative, quoted, a float, ...).
    Invalid,
}

/// The largest delta-seconds a cache needs to tell apart (RFC 9111 §1.2.2).
pub const DELTA_MAX: u64 = 2_147_483_648;

/// Parsed cache directives, names lowercased, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives(Vec<(String, Option<String>)>);

impl Directives {
    /// Parses every `Cache-Control` line given.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Vec::new();
        for line in lines {
            for element in split_outside_quotes(line) {
                let element = element.trim_matches(|c| c == ' ' || c == '\t');
                if element.is_empty() {
                    continue;
                }
                let (name, value) = match element.split_once('=') {
                    Some((n, v)) => (n, Some(unquote(v))),
                    None => (element, None),
                };
                out.push((name.to_ascii_lowercase(), value));
            }
        }
        Self(out)
    }

    /// True if the directive is present, with or without a value.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// The value of the first occurrence: `Some(None)` for a directive without `=`.
    pub fn value(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// The first occurrence read as delta-seconds.
    pub fn seconds(&self, name: &str) -> Option<Delta> {
        self.value(name).map(|v| match v {
            Some(text) if !text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()) => {
                // Saturate rather than fail: a huge max-age is simply "very fresh".
                let secs = text.trim_start_matches('0').parse::<u64>().unwrap_or(
                    if text.bytes().all(|c| c == b'0') {
                        0
                    } else {
                        DELTA_MAX
                    },
                );
                Delta::Secs(secs.min(DELTA_MAX))
            }
            _ => Delta::Invalid,
        })
    }

    /// The field names a qualified directive lists (`private="Set-Cookie"`), lowercased; empty
    /// for the unqualified form.
    pub fn field_names(&self, name: &str) -> Vec<String> {
        match self.value(name) {
            Some(Some(v)) => v
                .split(',')
                .map(|f| f.trim().to_ascii_lowercase())
                .filter(|f| !f.is_empty())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// True if the directive is present without field names (`no-cache`, not `no-cache="X"`).
    pub fn unqualified(&self, name: &str) -> bool {
        matches!(self.value(name), Some(None))
    }

    /// Parses `CDN-Cache-Control` lines as one Structured Field Dictionary; `None` when absent,
    /// empty, or not a valid dictionary whose known directives have the right types.
    pub fn parse_cdn<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut joined = String::new();
        let mut any = false;
        for line in lines {
            if any {
                joined.push_str(", ");
            }
            joined.push_str(line);
            any = true;
        }
        if !any {
            return None;
        }
        let members = sf_dictionary(&joined)?;
        if members.is_empty() {
            return None;
        }
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        for (key, item) in members {
            let is_seconds = matches!(
                key.as_str(),
                "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error"
            );
            let value = match item {
                SfItem::True if !is_seconds => None,
                SfItem::Integer(i) if i >= 0 => Some(i.to_string()),
                SfItem::Other(s) if !is_seconds => Some(s),
                // Seconds must be non-negative Integers; anything else voids the whole field.
                _ if is_seconds => return None,
                _ => Some(String::new()),
            };
            // A later duplicate key replaces the earlier one (RFC 8941 §4.2.2).
            out.retain(|(k, _)| *k != key);
            out.push((key, value));
        }
        Some(Self(out))
    }
}

fn split_outside_quotes(line: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&line[start..]);
    parts
}

fn unquote(v: &str) -> String {
    let v = v.trim_matches(|c| c == ' ' || c == '\t');
    match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_owned(),
    }
}

enum SfItem {
    True,
    Integer(i64),
    Other(String),
}

/// A strict RFC 8941 dictionary parser: members' keys and bare items; parameters are checked
/// for syntax and dropped, inner lists are accepted as "other".
fn sf_dictionary(input: &str) -> Option<Vec<(String, SfItem)>> {
    let b = input.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    let mut end = b.len();
    while end > i && b[end - 1] == b' ' {
        end -= 1;
    }
    let b = &b[..end];
    let mut out = Vec::new();
    if i == b.len() {
        return Some(out);
    }
    loop {
        let key = sf_key(b, &mut i)?;
        let item = if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && b[i] == b'(' {
                sf_inner_list(b, &mut i)?;
                SfItem::Other(String::new())
            } else {
                sf_bare_item(b, &mut i)?
            }
        } else {
            SfItem::True
        };
        sf_params(b, &mut i)?;
        out.push((key, item));
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i == b.len() {
            return Some(out);
        }
        if b[i] != b',' {
            return None;
        }
        i += 1;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i == b.len() {
            return None; // a trailing comma
        }
    }
}

fn sf_key(b: &[u8], i: &mut usize) -> Option<String> {
    let start = *i;
    if *i >= b.len() || !(b[*i].is_ascii_lowercase() || b[*i] == b'*') {
        return None;
    }
    while *i < b.len()
        && (b[*i].is_ascii_lowercase()
            || b[*i].is_ascii_digit()
            || matches!(b[*i], b'_' | b'-' | b'.' | b'*'))
    {
        *i += 1;
    }
    Some(String::from_utf8_lossy(&b[start..*i]).into_owned())
}

fn sf_bare_item(b: &[u8], i: &mut usize) -> Option<SfItem> {
    let c = *b.get(*i)?;
    if c == b'-' || c.is_ascii_digit() {
        let start = *i;
        *i += 1;
        while *i < b.len() && (b[*i].is_ascii_digit() || b[*i] == b'.') {
            *i += 1;
        }
        let text = std::str::from_utf8(&b[start..*i]).ok()?;
        if text.contains('.') {
            let (int, frac) = text.trim_start_matches('-').split_once('.')?;
            if int.is_empty() || int.len() > 12 || frac.is_empty() || frac.len() > 3 {
                return None;
            }
            return Some(SfItem::Other(text.to_owned()));
        }
        let digits = text.trim_start_matches('-');
        if digits.is_empty() || digits.len() > 15 {
            return None;
        }
        return text.parse().ok().map(SfItem::Integer);
    }
    if c == b'"' {
        *i += 1;
        let mut s = String::new();
        loop {
            let c = *b.get(*i)?;
            *i += 1;
            match c {
                b'\\' => {
                    let n = *b.get(*i)?;
                    if n != b'"' && n != b'\\' {
                        return None;
                    }
                    s.push(n as char);
                    *i += 1;
                }
                b'"' => return Some(SfItem::Other(s)),
                0x20..=0x7e => s.push(c as char),
                _ => return None,
            }
        }
    }
    if c.is_ascii_alphabetic() || c == b'*' {
        let start = *i;
        while *i < b.len() && (is_tchar(b[*i]) || b[*i] == b':' || b[*i] == b'/') {
            *i += 1;
        }
        return Some(SfItem::Other(
            String::from_utf8_lossy(&b[start..*i]).into_owned(),
        ));
    }
    if c == b':' {
        *i += 1;
        let start = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || matches!(b[*i], b'+' | b'/' | b'='))
        {
            *i += 1;
        }
        if b.get(*i) != Some(&b':') {
            return None;
        }
        *i += 1;
        return Some(SfItem::Other(
            String::from_utf8_lossy(&b[start..*i - 1]).into_owned(),
        ));
    }
    if c == b'?' {
        let v = *b.get(*i + 1)?;
        if v != b'0' && v != b'1' {
            return None;
        }
        *i += 2;
        return Some(if v == b'1' {
            SfItem::True
        } else {
            SfItem::Other("?0".into())
        });
    }
    None
}

fn sf_params(b: &[u8], i: &mut usize) -> Option<()> {
    while *i < b.len() && b[*i] == b';' {
        *i += 1;
        while *i < b.len() && b[*i] == b' ' {
            *i += 1;
        }
        sf_key(b, i)?;
        if *i < b.len() && b[*i] == b'=' {
            *i += 1;
            sf_bare_item(b, i)?;
        }
    }
    Some(())
}

fn sf_inner_list(b: &[u8], i: &mut usize) -> Option<()> {
    *i += 1; // '('
    loop {
        while *i < b.len() && b[*i] == b' ' {
            *i += 1;
        }
        match b.get(*i)? {
            b')' => {
                *i += 1;
                return sf_params(b, i);
            }
            _ => {
                sf_bare_item(b, i)?;
                sf_params(b, i)?;
                match b.get(*i)? {
                    b' ' | b')' => {}
                    _ => return None,
                }
            }
        }
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(lines: &[&str]) -> Directives {
        Directives::parse(lines.iter().copied())
    }

    #[test]
    fn names_are_case_insensitive_and_the_first_occurrence_counts() {
        let d = cc(&["MaX-AgE=10, max-age=20", "No-Store"]);
        assert_eq!(d.seconds("max-age"), Some(Delta::Secs(10)));
        assert!(d.has("no-store"));
        assert!(!d.has("no-cache"));
    }

    #[test]
    fn commas_inside_quotes_do_not_split() {
        let d = cc(&[r#"extension="max-age=3600, x", max-age=1"#]);
        assert_eq!(d.seconds("max-age"), Some(Delta::Secs(1)));
        let d = cc(&[r#"max-age=1, extension="max-age=3600""#]);
        assert_eq!(d.seconds("max-age"), Some(Delta::Secs(1)));
    }

    #[test]
    fn delta_seconds() {
        for (text, want) in [
            ("max-age=003600", Delta::Secs(3600)),
            ("max-age=0", Delta::Secs(0)),
            ("max-age=000", Delta::Secs(0)),
            ("max-age=2147483649", Delta::Secs(DELTA_MAX)),
            ("max-age=99999999999999999999999", Delta::Secs(DELTA_MAX)),
            ("max-age=-1", Delta::Invalid),
            ("max-age='3600'", Delta::Invalid),
            ("max-age=1.5", Delta::Invalid),
            ("max-age", Delta::Invalid),
            ("max-age=\"3600\"", Delta::Secs(3600)),
        ] {
            assert_eq!(cc(&[text]).seconds("max-age"), Some(want), "{text}");
        }
    }

    #[test]
    fn qualified_forms() {
        let d = cc(&[r#"private="Set-Cookie, X-Secret", no-cache"#]);
        assert_eq!(d.field_names("private"), ["set-cookie", "x-secret"]);
        assert!(!d.unqualified("private"));
        assert!(d.unqualified("no-cache"));
    }

    #[test]
    fn cdn_cache_control_is_a_strict_dictionary() {
        let d = Directives::parse_cdn(["foobar, max-age=3600"]).unwrap();
        assert_eq!(d.seconds("max-age"), Some(Delta::Secs(3600)));
        assert!(d.has("foobar"));
        let d = Directives::parse_cdn(["max-age=99999999999"]).unwrap();
        assert_eq!(d.seconds("max-age"), Some(Delta::Secs(DELTA_MAX)));
        assert!(Directives::parse_cdn(["no-store"]).unwrap().has("no-store"));
        for bad in [
            "max-age=10000, &&&&&",
            "max-age=\"10000\"",
            "max-age =100",
            "max-age= 100",
            "MaX-aGe=3600",
            "max-age=1,",
        ] {
            assert_eq!(Directives::parse_cdn([bad]), None, "{bad}");
        }
        assert_eq!(Directives::parse_cdn(std::iter::empty::<&str>()), None);
        let d = Directives::parse_cdn(["a;p=1, b=?0, c=(1 2), d=:aGk=:, max-age=5"]).unwrap();
        assert_eq!(d.seconds("max-age"), Some(Delta::Secs(5)));
    }
}

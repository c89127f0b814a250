//! An ordered list of header fields, as the cache stores and forwards them.
//!
//! Field names keep the case they arrived in and lines keep their order, because a cache must
//! hand back what it stored; lookups ignore case. Values are bytes: HTTP allows obs-text, and a
//! cache has no business rewriting it.

/// Header fields in arrival order; names compared without regard to case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, Vec<u8>)>);

/// Hop-by-hop fields (RFC 9110 §7.6.1) and the proxy-addressed ones: they describe one
/// connection or one proxy, so a proxy neither forwards nor stores them.
pub const HOP_BY_HOP: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
    "http2-settings",
];

impl Fields {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one field line.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push((name.into(), value.into()));
    }

    /// Replaces every line of `name` with one line, kept where the first one was.
    pub fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        match self
            .0
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                self.0[i].1 = value;
                let mut j = 0;
                self.0
                    .retain(|(n, _)| !(n.eq_ignore_ascii_case(name) && (j += 1, j > 1).1));
            }
            None => self.0.push((name.to_owned(), value)),
        }
    }

    /// Removes every line of `name`; true if there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.0.len() != before
    }

    /// True if a line of `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The first line of `name`, as text (invalid UTF-8 makes it absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every line of `name` that is valid UTF-8, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// How many lines of `name` there are.
    pub fn count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// All lines of `name` joined by `, `, the way RFC 9110 §5.3 combines a list field.
    pub fn combined(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for v in self.get_all(name) {
            match &mut out {
                Some(s) => {
                    s.push_str(", ");
                    s.push_str(v);
                }
                None => out = Some(v.to_owned()),
            }
        }
        out
    }

    /// The comma-separated elements of every line of `name`, trimmed, empty ones dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect()
    }

    /// Every line, name and raw value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are no lines.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes these fields take on the wire, for byte caps.
    pub fn wire_len(&self) -> usize {
        self.0.iter().map(|(n, v)| n.len() + v.len() + 4).sum()
    }

    /// Drops the hop-by-hop fields and every field the `Connection` lines name.
    pub fn strip_hop_by_hop(&mut self) {
        let named: Vec<String> = self
            .list("connection")
            .into_iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        self.0.retain(|(n, _)| {
            !HOP_BY_HOP.iter().any(|h| n.eq_ignore_ascii_case(h))
                && !named.iter().any(|c| n.eq_ignore_ascii_case(c))
        });
    }
}

impl<N: Into<String>, V: Into<Vec<u8>>> FromIterator<(N, V)> for Fields {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_and_keep_order() {
        let mut f: Fields = [("Vary", "A"), ("X", "1"), ("vary", "B, ,C")]
            .into_iter()
            .collect();
        assert_eq!(f.get("VARY"), Some("A"));
        assert_eq!(f.combined("vary").as_deref(), Some("A, B, ,C"));
        assert_eq!(f.list("Vary"), ["A", "B", "C"]);
        assert_eq!(f.count("vary"), 2);
        f.set("vary", "D");
        assert_eq!(f.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["Vary", "X"]);
        assert_eq!(f.get("vary"), Some("D"));
        assert!(f.remove("x"));
        assert!(!f.remove("x"));
        f.set("New", "1");
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn hop_by_hop_and_connection_named_fields_go() {
        let mut f: Fields = [
            ("Connection", "close, X-Conn-Only"),
            ("Keep-Alive", "timeout=5"),
            ("X-Conn-Only", "1"),
            ("Proxy-Authenticate", "Basic"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Type", "text/plain"),
        ]
        .into_iter()
        .collect();
        f.strip_hop_by_hop();
        assert_eq!(
            f.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["Content-Type"]
        );
    }
}

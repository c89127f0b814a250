//! Which cookies belong to which request: canonical host names, domain matching (RFC 6265
//! section 5.1.3), the default path and path matching (section 5.1.4), and public suffixes.

use url::{Host, Url};

/// What the storage model and the Cookie header need from a request URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    /// The canonicalized host name (section 5.1.2): lower case, A-labels; an IP address in its
    /// usual text form (no brackets for IPv6).
    pub host: String,
    /// Whether the host is an IP address (which only ever matches itself).
    pub host_is_ip: bool,
    /// The URI's path (`/` when empty).
    pub path: String,
    /// Whether the scheme is one the user agent calls secure (https, wss).
    pub secure: bool,
}

impl RequestTarget {
    /// The parts of `url` that cookies care about; `None` for a URL without a host.
    pub fn from_url(url: &Url) -> Option<RequestTarget> {
        // The url crate already lower-cases and converts to A-labels (IDNA) for http and https.
        let (host, host_is_ip) = match url.host()? {
            Host::Domain(d) => (d.trim_end_matches('.').to_ascii_lowercase(), false),
            Host::Ipv4(a) => (a.to_string(), true),
            Host::Ipv6(a) => (a.to_string(), true),
        };
        let path = match url.path() {
            "" => "/".to_owned(),
            p => p.to_owned(),
        };
        Some(RequestTarget {
            host,
            host_is_ip,
            path,
            secure: matches!(url.scheme(), "https" | "wss"),
        })
    }
}

/// Section 5.1.3: does `host` (canonicalized) domain-match `domain`?
pub fn domain_match(host: &str, host_is_ip: bool, domain: &str) -> bool {
    if host == domain {
        return true;
    }
    !host_is_ip
        && host.len() > domain.len()
        && host.ends_with(domain)
        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
}

/// Section 5.1.4: the default path of a request path (its "directory").
pub fn default_path(uri_path: &str) -> String {
    if !uri_path.starts_with('/') {
        return "/".to_owned();
    }
    match uri_path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => uri_path[..i].to_owned(),
    }
}

/// Section 5.1.4: does `request_path` path-match `cookie_path`?
pub fn path_match(request_path: &str, cookie_path: &str) -> bool {
    if request_path == cookie_path {
        return true;
    }
    request_path.starts_with(cookie_path)
        && (cookie_path.ends_with('/') || request_path.as_bytes()[cookie_path.len()] == b'/')
}

/// Whether `domain` is a public suffix (`com`, `co.uk`, `github.io`) in the public suffix list.
///
/// Only rules that the list states count: a name the list does not know (like `localhost` or a
/// lab's `.test` names) falls under the list's implicit `*` rule, which exists to find the
/// registrable domain of unknown top-level domains, not to forbid cookies on them (libpsl's
/// `PSL_TYPE_NO_STAR_RULE`, which curl uses, makes the same choice).
pub fn is_public_suffix(domain: &str) -> bool {
    match psl::suffix(domain.as_bytes()) {
        Some(s) => s.is_known() && s.as_bytes() == domain.as_bytes(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_matching() {
        assert!(domain_match("example.com", false, "example.com"));
        assert!(domain_match("www.example.com", false, "example.com"));
        assert!(!domain_match("wwwexample.com", false, "example.com"));
        assert!(!domain_match("example.com", false, "www.example.com"));
        // IP addresses match only themselves: 1.2.3.4 is not "inside" 2.3.4.
        assert!(!domain_match("1.2.3.4", true, "2.3.4"));
        assert!(domain_match("1.2.3.4", true, "1.2.3.4"));
    }

    #[test]
    fn default_paths() {
        assert_eq!(default_path(""), "/");
        assert_eq!(default_path("/"), "/");
        assert_eq!(default_path("/login"), "/");
        assert_eq!(default_path("/app/login"), "/app");
        assert_eq!(default_path("/app/settings/"), "/app/settings");
        assert_eq!(default_path("relative/x"), "/");
    }

    #[test]
    fn path_matching() {
        assert!(path_match("/app", "/app"));
        assert!(path_match("/app/x", "/app"));
        assert!(path_match("/app/x", "/app/"));
        assert!(path_match("/anything", "/"));
        assert!(!path_match("/application", "/app"));
        assert!(!path_match("/ap", "/app"));
        assert!(!path_match("/App", "/app"));
    }

    #[test]
    fn public_suffixes() {
        for s in ["com", "co.uk", "github.io", "org"] {
            assert!(is_public_suffix(s), "{s}");
        }
        for s in [
            "example.com",
            "example.co.uk",
            "localhost",
            "example.test",
            "127.0.0.1",
        ] {
            assert!(!is_public_suffix(s), "{s}");
        }
    }

    #[test]
    fn targets() {
        let t =
            RequestTarget::from_url(&"https://WWW.Example.COM./a/b?q=1".parse().unwrap()).unwrap();
        assert_eq!(t.host, "www.example.com");
        assert_eq!(t.path, "/a/b");
        assert!(t.secure && !t.host_is_ip);
        let t = RequestTarget::from_url(&"http://[::1]:8080".parse().unwrap()).unwrap();
        assert_eq!(
            (t.host.as_str(), t.host_is_ip, t.path.as_str()),
            ("::1", true, "/")
        );
        let t = RequestTarget::from_url(&"http://bücher.example/".parse().unwrap()).unwrap();
        assert_eq!(t.host, "xn--bcher-kva.example");
    }
}

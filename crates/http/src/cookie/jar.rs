//! The storage model (RFC 6265 section 5.3), the Cookie header (section 5.4) and eviction.

use url::Url;

use super::matching::{RequestTarget, default_path, domain_match, is_public_suffix, path_match};
use super::parse::{Attr, ParseError, SameSite, parse_set_cookie};

/// One stored cookie: the fields of section 5.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    /// The request host (host-only) or the Domain attribute, without a leading dot.
    pub domain: String,
    pub path: String,
    /// Seconds since the epoch; `None` for a session cookie (persistent-flag false), which
    /// lives until the jar is dropped (and is written with expiry 0 in a cookie file).
    pub expires: Option<i64>,
    /// Sent only to exactly `domain`, not to its subdomains (no Domain attribute was given).
    pub host_only: bool,
    /// Sent only over secure schemes.
    pub secure: bool,
    /// Hidden from non-HTTP APIs (scripts); always sent on HTTP requests.
    pub http_only: bool,
    /// Parsed and stored; a command-line client has no "site" to compare, so it sends every
    /// cookie that matches.
    pub same_site: Option<SameSite>,
    /// Seconds since the epoch; kept when a newer cookie replaces this one.
    pub creation: i64,
    /// Seconds since the epoch of the last request that carried this cookie.
    pub last_access: i64,
    /// Order of creation within the jar: the tie-breaker for cookies created in the same second.
    pub(crate) seq: u64,
}

impl Cookie {
    /// Whether the cookie has expired at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// The bytes this cookie takes, as the caps count them.
    pub fn size(&self) -> usize {
        self.name.len() + self.value.len() + self.domain.len() + self.path.len()
    }
}

/// The caps on what the jar holds. Defaults are RFC 6265 section 6.1's minimums for what a user
/// agent should hold (4096 bytes per cookie, 50 per domain, 3000 in all), with byte caps beside
/// the counts so that memory stays bounded whatever the servers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A larger cookie (name, value, domain and path together) is refused.
    pub max_cookie_bytes: usize,
    pub max_per_domain: usize,
    pub max_domain_bytes: usize,
    pub max_cookies: usize,
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_cookie_bytes: 4096,
            max_per_domain: 50,
            max_domain_bytes: 64 * 1024,
            max_cookies: 3000,
            max_bytes: 1024 * 1024,
        }
    }
}

/// Why a `Set-Cookie` header stored nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("set-cookie ignored: {0}")]
    Parse(#[from] ParseError),
    #[error("set-cookie ignored: the request URL has no host")]
    NoHost,
    #[error("cookie {name}: {bytes} bytes, more than the {max} a cookie may take")]
    TooLarge {
        name: String,
        bytes: usize,
        max: usize,
    },
    #[error(
        "cookie {name}: a control character in its name, value or attributes (a tab would also break the cookie file)"
    )]
    ControlCharacter { name: String },
    #[error("cookie {name}: domain {domain} is a public suffix")]
    PublicSuffix { name: String, domain: String },
    #[error("cookie {name}: domain {domain} does not domain-match the request host {host}")]
    DomainMismatch {
        name: String,
        domain: String,
        host: String,
    },
}

/// What a stored `Set-Cookie` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new cookie.
    Added,
    /// A cookie with the same name, domain and path was replaced (its creation time kept).
    Replaced,
    /// The cookie had already expired (`Max-Age=0`, a past `Expires`): it removed the cookie it
    /// would have replaced, if any, and was not stored. This is how servers delete cookies.
    Deleted { removed: bool },
}

/// The cookie store: every operation takes the current time, in seconds since the epoch.
#[derive(Debug, Clone, Default)]
pub struct CookieJar {
    cookies: Vec<Cookie>,
    limits: Limits,
    next_seq: u64,
    evicted: u64,
}

impl CookieJar {
    /// An empty jar with these caps.
    pub fn new(limits: Limits) -> CookieJar {
        CookieJar {
            limits,
            ..CookieJar::default()
        }
    }

    /// The stored cookies in creation order.
    pub fn cookies(&self) -> impl Iterator<Item = &Cookie> {
        self.cookies.iter()
    }

    /// How many cookies the caps have evicted so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Receives one `Set-Cookie` header value from a response to `url` (section 5.3, from an
    /// HTTP API: HttpOnly cookies are accepted).
    ///
    /// # Errors
    /// [`Refused`] when the header is ignored entirely.
    pub fn set_cookie(&mut self, header: &str, url: &Url, now: i64) -> Result<Stored, Refused> {
        let target = RequestTarget::from_url(url).ok_or(Refused::NoHost)?;
        self.set_cookie_for(header, &target, now)
    }

    /// As [`CookieJar::set_cookie`], for a request target already taken apart.
    ///
    /// # Errors
    /// [`Refused`] when the header is ignored entirely.
    pub fn set_cookie_for(
        &mut self,
        header: &str,
        target: &RequestTarget,
        now: i64,
    ) -> Result<Stored, Refused> {
        let sc = parse_set_cookie(header)?;
        // Step 3: the last Max-Age wins over any Expires; else the last Expires.
        let max_age = sc.attrs.iter().rev().find_map(|a| match a {
            Attr::MaxAge(n) => Some(*n),
            _ => None,
        });
        let expires = match max_age {
            Some(n) if n <= 0 => Some(i64::MIN),
            Some(n) => Some(now.saturating_add(n)),
            None => sc.attrs.iter().rev().find_map(|a| match a {
                Attr::Expires(t) => Some(*t),
                _ => None,
            }),
        };
        // Step 4: the last Domain attribute.
        let mut domain_attr = sc
            .attrs
            .iter()
            .rev()
            .find_map(|a| match a {
                Attr::Domain(d) => Some(d.clone()),
                _ => None,
            })
            .unwrap_or_default();
        // Step 5: a public suffix is refused, unless it is the request host itself, which then
        // gets a host-only cookie.
        if !domain_attr.is_empty() && is_public_suffix(&domain_attr) {
            if domain_attr == target.host {
                domain_attr.clear();
            } else {
                return Err(Refused::PublicSuffix {
                    name: sc.name,
                    domain: domain_attr,
                });
            }
        }
        // Step 6.
        let (domain, host_only) = if domain_attr.is_empty() {
            (target.host.clone(), true)
        } else if domain_match(&target.host, target.host_is_ip, &domain_attr) {
            (domain_attr, false)
        } else {
            return Err(Refused::DomainMismatch {
                name: sc.name,
                domain: domain_attr,
                host: target.host.clone(),
            });
        };
        // Step 7: the last Path attribute; a missing or relative one means the default path.
        let path = match sc.attrs.iter().rev().find_map(|a| match a {
            Attr::Path(p) => Some(p.clone()),
            _ => None,
        }) {
            Some(Some(p)) => p,
            _ => default_path(&target.path),
        };
        let has = |want: &Attr| sc.attrs.iter().any(|a| a == want);
        let same_site = sc.attrs.iter().rev().find_map(|a| match a {
            Attr::SameSite(s) => Some(*s),
            _ => None,
        });
        let cookie = Cookie {
            secure: has(&Attr::Secure),
            http_only: has(&Attr::HttpOnly),
            name: sc.name,
            value: sc.value,
            domain,
            path,
            expires,
            host_only,
            same_site,
            creation: now,
            last_access: now,
            seq: 0,
        };
        self.insert(cookie, now)
    }

    /// Steps 1, 11 and 12 of section 5.3, then eviction: used for received and loaded cookies.
    fn insert(&mut self, mut cookie: Cookie, now: i64) -> Result<Stored, Refused> {
        // Step 1: the user agent may ignore a cookie entirely; these are the cookies it refuses.
        let size = cookie.size();
        if size > self.limits.max_cookie_bytes {
            return Err(Refused::TooLarge {
                name: cookie.name,
                bytes: size,
                max: self.limits.max_cookie_bytes,
            });
        }
        let control = |s: &str| s.bytes().any(|b| b < 0x20 || b == 0x7f);
        if control(&cookie.name)
            || control(&cookie.value)
            || control(&cookie.path)
            || control(&cookie.domain)
        {
            return Err(Refused::ControlCharacter { name: cookie.name });
        }
        // Step 11: the same name, domain and path replaces the old cookie, keeping its
        // creation time (and so its place in the Cookie header).
        let old = self.cookies.iter().position(|c| {
            c.name == cookie.name && c.domain == cookie.domain && c.path == cookie.path
        });
        let replaced = old.map(|i| self.cookies.remove(i));
        if cookie.is_expired(now) {
            return Ok(Stored::Deleted {
                removed: replaced.is_some(),
            });
        }
        match &replaced {
            Some(old) => {
                cookie.creation = old.creation;
                cookie.seq = old.seq;
            }
            None => {
                cookie.seq = self.next_seq;
                self.next_seq += 1;
            }
        }
        let domain = cookie.domain.clone();
        // Keep the list in creation order, so files and listings read oldest first.
        let at = self
            .cookies
            .partition_point(|c| (c.creation, c.seq) < (cookie.creation, cookie.seq));
        self.cookies.insert(at, cookie);
        self.evict(&domain, now);
        Ok(if replaced.is_some() {
            Stored::Replaced
        } else {
            Stored::Added
        })
    }

    /// The end of section 5.3: expired cookies go first, then the least recently used cookies
    /// of a domain over its caps, then the least recently used cookies of the whole jar.
    fn evict(&mut self, domain: &str, now: i64) {
        let before = self.cookies.len();
        self.cookies.retain(|c| !c.is_expired(now));
        let mut evicted = (before - self.cookies.len()) as u64;
        loop {
            let (count, bytes) = self
                .cookies
                .iter()
                .filter(|c| c.domain == domain)
                .fold((0, 0), |(n, b), c| (n + 1, b + c.size()));
            if count <= self.limits.max_per_domain && bytes <= self.limits.max_domain_bytes {
                break;
            }
            self.remove_least_recent(|c| c.domain == domain);
            evicted += 1;
        }
        loop {
            let bytes: usize = self.cookies.iter().map(Cookie::size).sum();
            if self.cookies.len() <= self.limits.max_cookies && bytes <= self.limits.max_bytes {
                break;
            }
            self.remove_least_recent(|_| true);
            evicted += 1;
        }
        self.evicted += evicted;
    }

    fn remove_least_recent(&mut self, pick: impl Fn(&Cookie) -> bool) {
        if let Some(i) = self
            .cookies
            .iter()
            .enumerate()
            .filter(|(_, c)| pick(c))
            .min_by_key(|(_, c)| (c.last_access, c.seq))
            .map(|(i, _)| i)
        {
            self.cookies.remove(i);
        }
    }

    /// Removes expired cookies; returns how many.
    pub fn remove_expired(&mut self, now: i64) -> usize {
        let before = self.cookies.len();
        self.cookies.retain(|c| !c.is_expired(now));
        before - self.cookies.len()
    }

    /// The `Cookie` header value for a request to `url` (section 5.4), or `None` when no cookie
    /// applies. Marks the cookies sent as accessed at `now`.
    pub fn cookie_header(&mut self, url: &Url, now: i64) -> Option<String> {
        let target = RequestTarget::from_url(url)?;
        self.cookie_header_for(&target, now)
    }

    /// As [`CookieJar::cookie_header`], for a request target already taken apart.
    pub fn cookie_header_for(&mut self, target: &RequestTarget, now: i64) -> Option<String> {
        let mut chosen: Vec<usize> = self
            .cookies
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                !c.is_expired(now)
                    && if c.host_only {
                        c.domain == target.host
                    } else {
                        domain_match(&target.host, target.host_is_ip, &c.domain)
                    }
                    && path_match(&target.path, &c.path)
                    && (!c.secure || target.secure)
            })
            .map(|(i, _)| i)
            .collect();
        if chosen.is_empty() {
            return None;
        }
        // Longer paths first; among equal lengths, earlier creation first.
        chosen.sort_by_key(|&i| {
            let c = &self.cookies[i];
            (std::cmp::Reverse(c.path.len()), c.creation, c.seq)
        });
        let mut header = String::new();
        for (n, &i) in chosen.iter().enumerate() {
            let c = &mut self.cookies[i];
            c.last_access = now;
            if n > 0 {
                header.push_str("; ");
            }
            header.push_str(&c.name);
            header.push('=');
            header.push_str(&c.value);
        }
        Some(header)
    }

    /// Adds a cookie read from a file (see `netscape`): caps and replacement as for received
    /// cookies, creation time `now` in file order.
    pub(crate) fn insert_loaded(
        &mut self,
        mut cookie: Cookie,
        now: i64,
    ) -> Result<Stored, Refused> {
        cookie.creation = now;
        cookie.last_access = now;
        self.insert(cookie, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn url(s: &str) -> Url {
        s.parse().unwrap()
    }

    fn names(jar: &CookieJar) -> Vec<(&str, &str, &str, bool)> {
        jar.cookies()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.domain.as_str(),
                    c.path.as_str(),
                    c.host_only,
                )
            })
            .collect()
    }

    #[test]
    fn rfc_6265_section_3_1_sequence() {
        let mut jar = CookieJar::default();
        let origin = url("https://www.example.com/");
        // The server sets a session id, then a language cookie for the whole domain.
        jar.set_cookie(
            "SID=31d4d96e407aad42; Path=/; Secure; HttpOnly",
            &origin,
            NOW,
        )
        .unwrap();
        jar.set_cookie("lang=en-US; Path=/; Domain=example.com", &origin, NOW + 1)
            .unwrap();
        assert_eq!(
            jar.cookie_header(&url("https://www.example.com/"), NOW + 2)
                .as_deref(),
            Some("SID=31d4d96e407aad42; lang=en-US")
        );
        // Secure keeps SID off plain HTTP; host-only keeps it off other hosts of the domain.
        assert_eq!(
            jar.cookie_header(&url("http://www.example.com/"), NOW + 2)
                .as_deref(),
            Some("lang=en-US")
        );
        assert_eq!(
            jar.cookie_header(&url("https://docs.example.com/"), NOW + 2)
                .as_deref(),
            Some("lang=en-US")
        );
        // Expires in the past deletes; Max-Age later expires.
        assert_eq!(
            jar.set_cookie(
                "lang=; Path=/; Domain=example.com; Expires=Sun, 06 Nov 1994 08:49:37 GMT",
                &origin,
                NOW + 3
            ),
            Ok(Stored::Deleted { removed: true })
        );
        assert_eq!(
            jar.cookie_header(&url("https://www.example.com/"), NOW + 4)
                .as_deref(),
            Some("SID=31d4d96e407aad42")
        );
    }

    #[test]
    fn max_age_wins_over_expires_whatever_the_order() {
        let mut jar = CookieJar::default();
        let u = url("http://example.com/");
        jar.set_cookie(
            "a=1; Max-Age=100; Expires=Thu, 01 Jan 1970 00:00:01 GMT",
            &u,
            NOW,
        )
        .unwrap();
        jar.set_cookie(
            "b=1; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=100",
            &u,
            NOW,
        )
        .unwrap();
        assert!(jar.cookies().all(|c| c.expires == Some(NOW + 100)));
        assert_eq!(
            jar.set_cookie(
                "a=1; Max-Age=0; Expires=Wed, 09 Jun 2038 10:18:14 GMT",
                &u,
                NOW
            ),
            Ok(Stored::Deleted { removed: true })
        );
        assert_eq!(jar.cookie_header(&u, NOW + 99).as_deref(), Some("b=1"));
        assert_eq!(jar.cookie_header(&u, NOW + 100), None);
    }

    #[test]
    fn domains_host_only_and_public_suffixes() {
        let mut jar = CookieJar::default();
        let u = url("http://www.example.co.uk/app/login");
        jar.set_cookie("host=1", &u, NOW).unwrap();
        jar.set_cookie("dom=1; Domain=.EXAMPLE.co.uk", &u, NOW)
            .unwrap();
        assert!(matches!(
            jar.set_cookie("psl=1; Domain=co.uk", &u, NOW),
            Err(Refused::PublicSuffix { .. })
        ));
        assert!(matches!(
            jar.set_cookie("other=1; Domain=example.org", &u, NOW),
            Err(Refused::DomainMismatch { .. })
        ));
        assert!(matches!(
            jar.set_cookie("sub=1; Domain=deeper.www.example.co.uk", &u, NOW),
            Err(Refused::DomainMismatch { .. })
        ));
        assert_eq!(
            names(&jar),
            [
                ("host", "www.example.co.uk", "/app", true),
                ("dom", "example.co.uk", "/app", false)
            ]
        );
        // A public suffix that is the request host itself gives a host-only cookie.
        let mut jar = CookieJar::default();
        let u = url("http://github.io/");
        jar.set_cookie("x=1; Domain=github.io", &u, NOW).unwrap();
        assert_eq!(names(&jar), [("x", "github.io", "/", true)]);
        // IP addresses: host-only only; a Domain attribute must be the address itself.
        let mut jar = CookieJar::default();
        let u = url("http://127.0.0.1:8080/");
        jar.set_cookie("ip=1; Domain=127.0.0.1", &u, NOW).unwrap();
        assert!(jar.set_cookie("ip=2; Domain=0.0.1", &u, NOW).is_err());
        assert_eq!(jar.cookie_header(&u, NOW).as_deref(), Some("ip=1"));
    }

    #[test]
    fn header_order_is_path_length_then_creation() {
        let mut jar = CookieJar::default();
        let u = url("http://example.com/a/b/c");
        jar.set_cookie("zlong=1; Path=/", &u, NOW).unwrap();
        jar.set_cookie("mid=2; Path=/a", &u, NOW).unwrap();
        jar.set_cookie("a=3; Path=/", &u, NOW).unwrap();
        jar.set_cookie("deep=4; Path=/a/b", &u, NOW + 1).unwrap();
        // Replacing zlong keeps its creation time and so its place.
        assert_eq!(
            jar.set_cookie("zlong=5; Path=/", &u, NOW + 2),
            Ok(Stored::Replaced)
        );
        assert_eq!(
            jar.cookie_header(&u, NOW + 3).as_deref(),
            Some("deep=4; mid=2; zlong=5; a=3")
        );
        assert_eq!(
            jar.cookie_header(&url("http://example.com/ab"), NOW + 3)
                .as_deref(),
            Some("zlong=5; a=3")
        );
    }

    #[test]
    fn caps_evict_least_recently_used() {
        let limits = Limits {
            max_per_domain: 3,
            max_cookies: 5,
            ..Limits::default()
        };
        let mut jar = CookieJar::new(limits);
        let a = url("http://a.example/");
        for i in 0..3 {
            jar.set_cookie(&format!("c{i}=x"), &a, NOW + i).unwrap();
        }
        // Replacing c1 makes it recently used, so c0 is the least recently used when c3 comes.
        jar.set_cookie("c1=again", &a, NOW + 11).unwrap();
        jar.set_cookie("c3=x", &a, NOW + 12).unwrap();
        let left: Vec<&str> = jar.cookies().map(|c| c.name.as_str()).collect();
        assert_eq!(left, ["c1", "c2", "c3"]);
        // The whole jar: 3 + 3 > 5 evicts the least recently used overall.
        let b = url("http://b.example/");
        for i in 0..3 {
            jar.set_cookie(&format!("b{i}=x"), &b, NOW + 20 + i)
                .unwrap();
        }
        assert_eq!(jar.cookies().count(), 5);
        assert_eq!(jar.evicted(), 2);
        assert!(jar.cookies().all(|c| c.name != "c2"));
        // Bytes: a cookie over the per-cookie cap is refused.
        assert!(matches!(
            jar.set_cookie(&format!("big={}", "x".repeat(5000)), &a, NOW),
            Err(Refused::TooLarge { .. })
        ));
        let mut jar = CookieJar::new(Limits {
            max_domain_bytes: 100,
            ..Limits::default()
        });
        for i in 0..5 {
            jar.set_cookie(&format!("k{i}={}", "v".repeat(30)), &a, NOW + i)
                .unwrap();
        }
        let bytes: usize = jar.cookies().map(Cookie::size).sum();
        assert!(bytes <= 100, "{bytes}");
        assert_eq!(jar.cookies().last().unwrap().name, "k4");
    }

    #[test]
    fn attributes_are_stored() {
        let mut jar = CookieJar::default();
        let u = url("https://example.com/x/y");
        jar.set_cookie(
            "s=1; Secure; HttpOnly; SameSite=Strict; Path=relative",
            &u,
            NOW,
        )
        .unwrap();
        let c = jar.cookies().next().unwrap();
        assert!(c.secure && c.http_only && c.host_only);
        assert_eq!(c.same_site, Some(SameSite::Strict));
        assert_eq!(c.path, "/x");
        assert_eq!(c.expires, None);
        assert!(matches!(
            jar.set_cookie("t=a\tb", &u, NOW),
            Err(Refused::ControlCharacter { .. })
        ));
    }
}

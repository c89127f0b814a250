//! Exact tests of the cache's decisions: time is passed in, so every age is known.

use super::date::from_unix_secs;
use super::*;

const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> SystemTime {
    from_unix_secs(T0 + secs)
}

fn date(secs: i64) -> String {
    format_http_date(T0 + secs)
}

fn get(path: &str, fields: &[(&str, &str)]) -> Request {
    req("GET", path, fields)
}

fn req(method: &str, path: &str, fields: &[(&str, &str)]) -> Request {
    Request {
        method: method.to_owned(),
        uri: format!("http://origin.test{path}"),
        fields: fields.iter().map(|(n, v)| (*n, *v)).collect(),
    }
}

fn resp(status: u16, fields: &[(&str, &str)], body: &str) -> Response {
    Response {
        status,
        reason: "X".to_owned(),
        fields: fields.iter().map(|(n, v)| (*n, *v)).collect(),
        body: Bytes::from(body.to_owned()),
    }
}

fn cache() -> Cache {
    Cache::new(CacheConfig::default())
}

/// Runs `req` at `t`; when it goes forward, the origin answers `origin` (received at `t`).
fn exchange(
    c: &mut Cache,
    req: &Request,
    t: i64,
    origin: Option<Response>,
) -> (Response, Option<Forward>) {
    match c.lookup(req, at(t)) {
        Lookup::Hit(r) => (r, None),
        Lookup::StaleWhileRevalidate {
            response,
            revalidate,
        } => (response, Some(revalidate)),
        Lookup::Forward(f) => {
            let origin = origin.expect("the test expected a hit");
            (c.complete(f, origin, at(t)), None)
        }
    }
}

fn forwarded(c: &mut Cache, req: &Request, t: i64) -> Forward {
    match c.lookup(req, at(t)) {
        Lookup::Forward(f) => f,
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn hit(c: &mut Cache, req: &Request, t: i64) -> Response {
    match c.lookup(req, at(t)) {
        Lookup::Hit(r) => r,
        other => panic!("expected a hit, got {other:?}"),
    }
}

fn status_of(r: &Response) -> &str {
    r.fields.get("cache-status").unwrap()
}

#[test]
fn miss_then_hit_with_age_and_cache_status() {
    let mut c = cache();
    let f = forwarded(&mut c, &get("/a", &[]), 0);
    assert_eq!(f.reason, "uri-miss");
    let r = c.complete(
        f,
        resp(
            200,
            &[("Cache-Control", "max-age=60"), ("Date", &date(0))],
            "hello",
        ),
        at(0),
    );
    assert_eq!(
        status_of(&r),
        "protolab; fwd=uri-miss; fwd-status=200; stored"
    );
    assert_eq!(r.fields.get("age"), Some("0"));
    let r = hit(&mut c, &get("/a", &[]), 10);
    assert_eq!(&r.body[..], b"hello");
    assert_eq!(r.fields.get("age"), Some("10"));
    assert_eq!(status_of(&r), "protolab; hit; ttl=50");
    assert_eq!(
        r.fields.get("date"),
        Some(date(0).as_str()),
        "Date is never rewritten"
    );
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.stored, s.entries), (1, 1, 1, 1));
}

#[test]
fn stale_after_max_age_is_revalidated_and_a_304_updates_the_stored_fields() {
    let mut c = cache();
    let first = resp(
        200,
        &[
            ("Cache-Control", "max-age=2"),
            ("ETag", "\"v1\""),
            ("Last-Modified", &date(-100)),
            ("Content-Length", "5"),
            ("Test-Header", "old"),
        ],
        "hello",
    );
    exchange(&mut c, &get("/a", &[]), 0, Some(first));
    assert!(matches!(c.lookup(&get("/a", &[]), at(1)), Lookup::Hit(_)));
    let f = forwarded(&mut c, &get("/a", &[]), 3);
    assert_eq!(f.reason, "stale");
    assert_eq!(f.fields.get("if-none-match"), Some("\"v1\""));
    assert_eq!(f.fields.get("if-modified-since"), Some(date(-100).as_str()));
    let r = c.complete(
        f,
        resp(
            304,
            &[
                ("Cache-Control", "max-age=100"),
                ("ETag", "\"v1\""),
                ("Test-Header", "new"),
                ("Content-Length", "99"),
            ],
            "",
        ),
        at(3),
    );
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"hello");
    assert_eq!(r.fields.get("test-header"), Some("new"));
    assert_eq!(
        r.fields.get("content-length"),
        Some("5"),
        "a 304 never changes Content-Length"
    );
    assert_eq!(status_of(&r), "protolab; fwd=stale; fwd-status=304");
    // Fresh again for 100 s from the 304.
    let r = hit(&mut c, &get("/a", &[]), 50);
    assert_eq!(r.fields.get("age"), Some("47"));
    assert_eq!(c.stats().revalidated, 1);
}

#[test]
fn what_is_not_stored_and_why() {
    for (fields, auth, why) in [
        (
            vec![("Cache-Control", "no-store, max-age=60")],
            false,
            "no-store",
        ),
        (vec![("Cache-Control", "nO-StOrE")], false, "no-store"),
        (
            vec![("Cache-Control", "private, max-age=60")],
            false,
            "private",
        ),
        (vec![("Cache-Control", "max-age=60")], true, "authorization"),
        (
            vec![("Vary", "*"), ("Cache-Control", "max-age=60")],
            false,
            "vary-star",
        ),
    ] {
        let mut c = cache();
        let mut r = get("/a", &[]);
        if auth {
            r.fields.append("Authorization", "Basic eDp5");
        }
        let (out, _) = exchange(&mut c, &r, 0, Some(resp(200, &fields, "x")));
        assert!(
            status_of(&out).ends_with(&format!("detail=\"{why}\"")),
            "{why}: {}",
            status_of(&out)
        );
        assert!(matches!(c.lookup(&r, at(1)), Lookup::Forward(_)), "{why}");
    }
    // Without explicit freshness, only heuristically cacheable statuses are stored.
    let mut c = cache();
    let (out, _) = exchange(
        &mut c,
        &get("/a", &[]),
        0,
        Some(resp(302, &[("Location", "/b")], "")),
    );
    assert!(status_of(&out).contains("no explicit freshness"));
    // Authorization is fine when the origin says public, must-revalidate or s-maxage.
    for cc in [
        "public, max-age=60",
        "max-age=60, must-revalidate",
        "s-maxage=60",
    ] {
        let mut c = cache();
        let r = get("/a", &[("Authorization", "Basic eDp5")]);
        exchange(
            &mut c,
            &r,
            0,
            Some(resp(200, &[("Cache-Control", cc)], "x")),
        );
        hit(&mut c, &r, 1);
    }
    // A request with no-store keeps the response out of the store.
    let mut c = cache();
    let r = get("/a", &[("Cache-Control", "no-store")]);
    exchange(
        &mut c,
        &r,
        0,
        Some(resp(200, &[("Cache-Control", "max-age=60")], "x")),
    );
    assert_eq!(c.stats().entries, 0);
}

#[test]
fn freshness_lifetime_sources_in_order() {
    let fresh_at = |fields: Vec<(&str, String)>, t: i64| {
        let mut c = cache();
        let f: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        exchange(&mut c, &get("/a", &[]), 0, Some(resp(200, &f, "x")));
        matches!(c.lookup(&get("/a", &[]), at(t)), Lookup::Hit(_))
    };
    let s = |v: &str| v.to_owned();
    // s-maxage wins over max-age in a shared cache, both ways.
    assert!(!fresh_at(
        vec![("Cache-Control", s("max-age=100, s-maxage=1"))],
        2
    ));
    assert!(fresh_at(
        vec![("Cache-Control", s("max-age=1, s-maxage=100"))],
        2
    ));
    // max-age wins over Expires.
    assert!(fresh_at(
        vec![("Cache-Control", s("max-age=100")), ("Expires", date(-10))],
        50
    ));
    assert!(!fresh_at(
        vec![("Cache-Control", s("max-age=0")), ("Expires", date(100))],
        0
    ));
    // Expires minus Date, Date from the origin's clock.
    assert!(fresh_at(
        vec![("Expires", date(100)), ("Date", date(0))],
        50
    ));
    assert!(!fresh_at(
        vec![("Expires", date(100)), ("Date", date(0))],
        101
    ));
    assert!(!fresh_at(vec![("Expires", s("0"))], 0));
    assert!(!fresh_at(
        vec![("Expires", date(10)), ("Expires", date(20))],
        1
    ));
    assert!(!fresh_at(
        vec![("Expires", s("Thu, 18 Aug 2050 02:01:18 UTC"))],
        0
    ));
    // Negative, quoted or bare max-age means stale.
    assert!(!fresh_at(vec![("Cache-Control", s("max-age=-1"))], 0));
    assert!(!fresh_at(vec![("Cache-Control", s("max-age='3600'"))], 0));
    assert!(fresh_at(vec![("Cache-Control", s("max-age=003600"))], 3000));
    assert!(fresh_at(
        vec![("Cache-Control", s("max-age=99999999999"))],
        1_000_000
    ));
    // Heuristic: 10% of the time since Last-Modified.
    assert!(fresh_at(
        vec![("Last-Modified", date(-1000)), ("Date", date(0))],
        99
    ));
    assert!(!fresh_at(
        vec![("Last-Modified", date(-1000)), ("Date", date(0))],
        100
    ));
    // Nothing to go on: stored (it could be validated) but never fresh.
    assert!(!fresh_at(vec![("ETag", s("\"x\""))], 0));
}

#[test]
fn age_header_and_clock_skew_count_against_freshness() {
    let age_at_1 = |fields: &[(&str, &str)]| {
        let mut c = cache();
        exchange(&mut c, &get("/a", &[]), 0, Some(resp(200, fields, "x")));
        match c.lookup(&get("/a", &[]), at(1)) {
            Lookup::Hit(r) => Some(r.fields.get("age").unwrap().to_owned()),
            _ => None,
        }
    };
    assert_eq!(
        age_at_1(&[("Cache-Control", "max-age=3600"), ("Age", "12000")]),
        None
    );
    assert_eq!(
        age_at_1(&[("Cache-Control", "max-age=3600"), ("Age", "100")]).as_deref(),
        Some("101")
    );
    for ignored in ["abc", "-100", "3000.0"] {
        assert_eq!(
            age_at_1(&[("Cache-Control", "max-age=3600"), ("Age", ignored)]).as_deref(),
            Some("1"),
            "{ignored}"
        );
    }
    assert_eq!(
        age_at_1(&[("Cache-Control", "max-age=3600"), ("Age", "7200, 0")]),
        None
    );
    assert_eq!(
        age_at_1(&[("Cache-Control", "max-age=3600"), ("Age", "0, 7200")]).as_deref(),
        Some("1")
    );
    assert_eq!(
        age_at_1(&[("Cache-Control", "max-age=3600"), ("Age", "2147483648")]),
        None
    );
    // A Date in the past (a slow origin clock, or a long trip) is apparent age.
    assert_eq!(
        age_at_1(&[("Cache-Control", "max-age=3600"), ("Date", &date(-3000))]).as_deref(),
        Some("3001")
    );
}

#[test]
fn vary_selects_variants_and_star_never_matches() {
    let mut c = cache();
    let en = get("/v", &[("Accept-Language", "en")]);
    let fr = get("/v", &[("Accept-Language", "fr")]);
    let r = resp(
        200,
        &[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
        "en",
    );
    exchange(&mut c, &en, 0, Some(r));
    hit(&mut c, &get("/v", &[("Accept-Language", "EN")]), 1);
    let f = forwarded(&mut c, &fr, 1);
    assert_eq!(f.reason, "vary-miss");
    c.complete(
        f,
        resp(
            200,
            &[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
            "fr",
        ),
        at(1),
    );
    assert_eq!(&hit(&mut c, &en, 2).body[..], b"en");
    assert_eq!(&hit(&mut c, &fr, 2).body[..], b"fr");
    // Languages of equal weight in another order, or another case, are the same preference.
    hit(&mut c, &get("/v", &[("Accept-Language", "en")]), 2);
    let mut c2 = cache();
    let r = resp(
        200,
        &[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
        "x",
    );
    exchange(
        &mut c2,
        &get("/l", &[("Accept-Language", "en, de;q=0.5, fr")]),
        0,
        Some(r),
    );
    hit(
        &mut c2,
        &get("/l", &[("Accept-Language", "FR,en , de;q=0.50")]),
        1,
    );
    forwarded(
        &mut c2,
        &get("/l", &[("Accept-Language", "en, de, fr;q=0.5")]),
        1,
    );
    // A request without the header does not match a variant made with it, and vice versa.
    forwarded(&mut c, &get("/v", &[]), 2);
    // Whitespace and line splits do not make a different variant.
    let mut c = cache();
    let r = resp(
        200,
        &[("Cache-Control", "max-age=60"), ("Vary", "X-A")],
        "1",
    );
    exchange(&mut c, &get("/w", &[("X-A", "a,  b")]), 0, Some(r));
    hit(&mut c, &get("/w", &[("X-A", "a"), ("X-A", "b")]), 1);
}

#[test]
fn unsafe_methods_invalidate_on_success_only() {
    let fill = |c: &mut Cache| {
        exchange(
            c,
            &get("/a", &[]),
            0,
            Some(resp(200, &[("Cache-Control", "max-age=600")], "x")),
        );
        exchange(
            c,
            &get("/b", &[]),
            0,
            Some(resp(200, &[("Cache-Control", "max-age=600")], "x")),
        );
    };
    for method in ["POST", "PUT", "DELETE", "M-SEARCH"] {
        let mut c = cache();
        fill(&mut c);
        let f = forwarded(&mut c, &req(method, "/a", &[]), 1);
        assert_eq!(f.reason, "method");
        c.complete(f, resp(500, &[], ""), at(1));
        hit(&mut c, &get("/a", &[]), 2);
        let f = forwarded(&mut c, &req(method, "/a", &[]), 2);
        c.complete(f, resp(200, &[("Location", "/b")], ""), at(2));
        forwarded(&mut c, &get("/a", &[]), 3);
        forwarded(&mut c, &get("/b", &[]), 3);
    }
}

#[test]
fn no_cache_and_must_revalidate() {
    let mut c = cache();
    exchange(
        &mut c,
        &get("/a", &[]),
        0,
        Some(resp(
            200,
            &[
                ("Cache-Control", "max-age=600, no-cache"),
                ("ETag", "\"e\""),
            ],
            "x",
        )),
    );
    let f = forwarded(&mut c, &get("/a", &[]), 1);
    assert!(f.is_validation());
    // The origin being down never excuses a response that forbids stale use.
    for cc in [
        "max-age=2, must-revalidate",
        "max-age=2, proxy-revalidate",
        "max-age=2, no-cache",
        "s-maxage=2",
    ] {
        let mut c = cache();
        exchange(
            &mut c,
            &get("/a", &[]),
            0,
            Some(resp(200, &[("Cache-Control", cc)], "x")),
        );
        let f = forwarded(&mut c, &get("/a", &[]), 5);
        let r = c.failed(f, at(5), "connection refused");
        assert_eq!(r.status, 502, "{cc}");
        assert!(status_of(&r).contains("connection refused"), "{cc}");
    }
    // Otherwise a disconnected cache may serve stale (RFC 9111 §4.2.4).
    let mut c = cache();
    exchange(
        &mut c,
        &get("/a", &[]),
        0,
        Some(resp(200, &[("Cache-Control", "max-age=2")], "x")),
    );
    let f = forwarded(&mut c, &get("/a", &[]), 5);
    let r = c.failed(f, at(5), "connection reset");
    assert_eq!((r.status, &r.body[..]), (200, &b"x"[..]));
    assert_eq!(r.fields.get("age"), Some("5"));
}

#[test]
fn stale_if_error_and_stale_while_revalidate() {
    let mut c = cache();
    exchange(
        &mut c,
        &get("/a", &[]),
        0,
        Some(resp(
            200,
            &[("Cache-Control", "max-age=2, stale-if-error=60")],
            "x",
        )),
    );
    let f = forwarded(&mut c, &get("/a", &[]), 5);
    let r = c.complete(f, resp(503, &[], "down"), at(5));
    assert_eq!(r.status, 200);
    assert!(status_of(&r).contains("stale-if-error"));
    let f = forwarded(&mut c, &get("/a", &[]), 100);
    assert_eq!(c.complete(f, resp(503, &[], "down"), at(100)).status, 503);

    let mut c = cache();
    exchange(
        &mut c,
        &get("/s", &[]),
        0,
        Some(resp(
            200,
            &[
                ("Cache-Control", "max-age=1, stale-while-revalidate=4"),
                ("ETag", "\"a\""),
            ],
            "old",
        )),
    );
    let Lookup::StaleWhileRevalidate {
        response,
        revalidate,
    } = c.lookup(&get("/s", &[]), at(3))
    else {
        panic!("expected stale-while-revalidate");
    };
    assert_eq!(&response.body[..], b"old");
    assert_eq!(revalidate.fields.get("if-none-match"), Some("\"a\""));
    c.complete(
        revalidate,
        resp(
            200,
            &[("Cache-Control", "max-age=100"), ("ETag", "\"b\"")],
            "new",
        ),
        at(3),
    );
    assert_eq!(&hit(&mut c, &get("/s", &[]), 4).body[..], b"new");
    // While one background revalidation is out, others get the stale response without another.
    let mut c = cache();
    exchange(
        &mut c,
        &get("/s", &[]),
        0,
        Some(resp(
            200,
            &[("Cache-Control", "max-age=1, stale-while-revalidate=60")],
            "old",
        )),
    );
    let Lookup::StaleWhileRevalidate { revalidate, .. } = c.lookup(&get("/s", &[]), at(3)) else {
        panic!("expected stale-while-revalidate");
    };
    assert!(matches!(c.lookup(&get("/s", &[]), at(3)), Lookup::Hit(_)));
    let r = c.failed(revalidate, at(4), "connection refused");
    assert_eq!(&r.body[..], b"old");
    assert!(matches!(
        c.lookup(&get("/s", &[]), at(5)),
        Lookup::StaleWhileRevalidate { .. }
    ));
    // Past the window, it is an ordinary revalidation.
    let mut c = cache();
    exchange(
        &mut c,
        &get("/s", &[]),
        0,
        Some(resp(
            200,
            &[("Cache-Control", "max-age=1, stale-while-revalidate=4")],
            "old",
        )),
    );
    forwarded(&mut c, &get("/s", &[]), 6);
}

#[test]
fn request_directives() {
    let mut c = cache();
    exchange(
        &mut c,
        &get("/a", &[]),
        0,
        Some(resp(
            200,
            &[("Cache-Control", "max-age=100"), ("ETag", "\"e\"")],
            "x",
        )),
    );
    assert_eq!(
        forwarded(&mut c, &get("/a", &[("Cache-Control", "no-cache")]), 10).reason,
        "request"
    );
    assert_eq!(
        forwarded(&mut c, &get("/a", &[("Cache-Control", "max-age=5")]), 10).reason,
        "request"
    );
    hit(&mut c, &get("/a", &[("Cache-Control", "max-age=50")]), 10);
    forwarded(&mut c, &get("/a", &[("Cache-Control", "min-fresh=95")]), 10);
    forwarded(&mut c, &get("/a", &[("Pragma", "no-cache")]), 10);
    hit(
        &mut c,
        &get("/a", &[("Pragma", "no-cache"), ("Cache-Control", "x")]),
        10,
    );
    let r = hit(
        &mut c,
        &get("/a", &[("Cache-Control", "max-stale=60")]),
        150,
    );
    assert_eq!(status_of(&r), "protolab; hit; ttl=-50");
    forwarded(
        &mut c,
        &get("/a", &[("Cache-Control", "max-stale=10")]),
        150,
    );
    let r = hit(
        &mut c,
        &get("/nothing", &[("Cache-Control", "only-if-cached")]),
        0,
    );
    assert_eq!(r.status, 504);
}

#[test]
fn client_conditionals_are_answered_from_the_store() {
    let mut c = cache();
    let lm = date(-500);
    exchange(
        &mut c,
        &get("/a", &[]),
        0,
        Some(resp(
            200,
            &[
                ("Cache-Control", "max-age=100"),
                ("ETag", "W/\"e\""),
                ("Last-Modified", &lm),
                ("Content-Type", "text/plain"),
            ],
            "x",
        )),
    );
    let r = hit(&mut c, &get("/a", &[("If-None-Match", "\"zz\", \"e\"")]), 1);
    assert_eq!(r.status, 304);
    assert_eq!(r.fields.get("etag"), Some("W/\"e\""));
    assert!(r.body.is_empty());
    assert_eq!(
        hit(&mut c, &get("/a", &[("If-None-Match", "\"zz\"")]), 1).status,
        200
    );
    assert_eq!(
        hit(&mut c, &get("/a", &[("If-Modified-Since", &lm)]), 1).status,
        304
    );
    assert_eq!(
        hit(&mut c, &get("/a", &[("If-Modified-Since", &date(-600))]), 1).status,
        200
    );
    // If-None-Match wins over If-Modified-Since.
    assert_eq!(
        hit(
            &mut c,
            &get(
                "/a",
                &[("If-None-Match", "\"zz\""), ("If-Modified-Since", &lm)]
            ),
            1
        )
        .status,
        200
    );
    // The client's own conditionals never reach the origin on a miss.
    let f = forwarded(&mut c, &get("/b", &[("If-None-Match", "\"q\"")]), 1);
    assert!(!f.fields.contains("if-none-match"));
}

#[test]
fn ranges_and_head_from_a_complete_response() {
    let mut c = cache();
    exchange(
        &mut c,
        &get("/r", &[]),
        0,
        Some(resp(
            200,
            &[("Cache-Control", "max-age=100"), ("Content-Length", "11")],
            "01234567890",
        )),
    );
    for (range, body, content_range) in [
        ("bytes=0-1", "01", "bytes 0-1/11"),
        ("bytes=5-", "567890", "bytes 5-10/11"),
        ("bytes=-3", "890", "bytes 8-10/11"),
        ("bytes=9-100", "90", "bytes 9-10/11"),
    ] {
        let r = hit(&mut c, &get("/r", &[("Range", range)]), 1);
        assert_eq!(
            (r.status, std::str::from_utf8(&r.body).unwrap()),
            (206, body),
            "{range}"
        );
        assert_eq!(r.fields.get("content-range"), Some(content_range));
    }
    assert_eq!(
        hit(&mut c, &get("/r", &[("Range", "bytes=20-")]), 1).status,
        416
    );
    assert_eq!(
        hit(&mut c, &get("/r", &[("Range", "bytes=0-1,3-4")]), 1).status,
        200
    );
    let r = hit(&mut c, &req("HEAD", "/r", &[]), 1);
    assert!(r.body.is_empty());
    assert_eq!(r.fields.get("content-length"), Some("11"));
}

#[test]
fn the_store_stays_under_its_byte_cap_least_recently_used_first() {
    let mut c = Cache::new(CacheConfig {
        max_bytes: 4100,
        max_object_bytes: 2000,
        ..CacheConfig::default()
    });
    let body = "x".repeat(1000);
    for i in 0..3 {
        exchange(
            &mut c,
            &get(&format!("/{i}"), &[]),
            0,
            Some(resp(200, &[("Cache-Control", "max-age=100")], &body)),
        );
    }
    hit(&mut c, &get("/0", &[]), 1); // /0 is now more recent than /1
    exchange(
        &mut c,
        &get("/3", &[]),
        1,
        Some(resp(200, &[("Cache-Control", "max-age=100")], &body)),
    );
    let s = c.stats();
    assert!(s.bytes <= 4100 && s.peak_bytes <= 4100, "{s:?}");
    assert_eq!(s.evicted, 1);
    hit(&mut c, &get("/0", &[]), 2);
    forwarded(&mut c, &get("/1", &[]), 2);
    let (r, _) = exchange(
        &mut c,
        &get("/big", &[]),
        2,
        Some(resp(
            200,
            &[("Cache-Control", "max-age=100")],
            &"y".repeat(3000),
        )),
    );
    assert!(status_of(&r).contains("too-large"));
}

#[test]
fn cdn_cache_control_overrides_cache_control() {
    let cached = |fields: &[(&str, &str)], t: i64| {
        let mut c = cache();
        exchange(&mut c, &get("/a", &[]), 0, Some(resp(200, fields, "x")));
        matches!(c.lookup(&get("/a", &[]), at(t)), Lookup::Hit(_))
    };
    assert!(cached(
        &[
            ("Cache-Control", "no-store"),
            ("CDN-Cache-Control", "max-age=100")
        ],
        5
    ));
    assert!(!cached(
        &[
            ("Cache-Control", "max-age=100"),
            ("CDN-Cache-Control", "no-store")
        ],
        5
    ));
    assert!(!cached(
        &[
            ("Cache-Control", "max-age=100"),
            ("CDN-Cache-Control", "private")
        ],
        5
    ));
    assert!(!cached(
        &[
            ("Cache-Control", "max-age=100"),
            ("CDN-Cache-Control", "no-cache")
        ],
        5
    ));
    assert!(!cached(
        &[
            ("Cache-Control", "max-age=100"),
            ("CDN-Cache-Control", "max-age=1")
        ],
        5
    ));
    assert!(cached(
        &[
            ("Cache-Control", "max-age=1"),
            ("CDN-Cache-Control", "max-age=100")
        ],
        5
    ));
    // An invalid CDN-Cache-Control is ignored as a whole.
    assert!(!cached(
        &[
            ("Cache-Control", "no-store"),
            ("CDN-Cache-Control", "max-age=100, &&&")
        ],
        5
    ));
}

#[test]
fn must_understand_and_status_codes() {
    let cached = |status: u16, cc: &str| {
        let mut c = cache();
        exchange(
            &mut c,
            &get("/a", &[]),
            0,
            Some(resp(status, &[("Cache-Control", cc)], "")),
        );
        matches!(c.lookup(&get("/a", &[]), at(1)), Lookup::Hit(_))
    };
    assert!(cached(200, "max-age=100, no-store, must-understand"));
    assert!(!cached(599, "max-age=100, no-store, must-understand"));
    assert!(cached(599, "max-age=100"));
    assert!(!cached(206, "max-age=100"));
    assert!(!cached(103, "max-age=100"));
    for status in [200, 203, 204, 404, 405, 410, 414, 501] {
        let mut c = cache();
        exchange(
            &mut c,
            &get("/a", &[]),
            0,
            Some(resp(
                status,
                &[("Last-Modified", &date(-10_000)), ("Date", &date(0))],
                "",
            )),
        );
        hit(&mut c, &get("/a", &[]), 1);
    }
    for status in [201, 202, 403, 502, 503, 504, 599] {
        let mut c = cache();
        exchange(
            &mut c,
            &get("/a", &[]),
            0,
            Some(resp(
                status,
                &[("Last-Modified", &date(-10_000)), ("Date", &date(0))],
                "",
            )),
        );
        forwarded(&mut c, &get("/a", &[]), 1);
    }
}

#[test]
fn hop_by_hop_and_connection_listed_fields_are_not_stored() {
    let mut c = cache();
    let r = resp(
        200,
        &[
            ("Cache-Control", "max-age=100"),
            ("Connection", "a, b"),
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authenticate", "Basic"),
        ],
        "x",
    );
    exchange(&mut c, &get("/a", &[]), 0, Some(r));
    let r = hit(&mut c, &get("/a", &[]), 1);
    assert_eq!(r.fields.get("c"), Some("3"));
    for gone in ["a", "b", "connection", "keep-alive", "proxy-authenticate"] {
        assert!(!r.fields.contains(gone), "{gone}");
    }
}

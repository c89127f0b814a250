//! The cookie jar cross-checked against real peers: curl (`-b jar -c jar`) and Python's
//! `http.cookiejar` (urllib with a `MozillaCookieJar`).
//!
//! A tiny origin on 127.0.0.1:0 answers scripted `Set-Cookie` sequences. The peers reach it as
//! an HTTP proxy, so that their requests name real-looking hosts (`www.example.com`,
//! `www.example.co.uk`) while every byte stays on loopback. The same sequences go into our jar;
//! then the stored cookies and the `Cookie` header of the next requests are compared, the jar
//! files are exchanged both ways, and every place where a peer differs from RFC 6265 is listed
//! with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use protolab_http::cookie::{Cookie, CookieJar, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

/// The scripted responses: each request URL and the `Set-Cookie` headers it answers with.
const STEPS: &[(&str, &[&str])] = &[
    (
        "http://www.example.com/app/login",
        &[
            "sid=abc123; Path=/; HttpOnly",
            "lang=en-US; Domain=example.com; Path=/",
            "pref=dark; Max-Age=3600",
            "theme=blue; Expires=Wed, 09 Jun 2038 10:18:14 GMT; Path=/app",
            "old=1; Expires=Thu, 01 Jan 1970 00:00:01 GMT",
            "both=max; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=7200",
            "evil=1; Domain=com",
            "other=1; Domain=other.org",
            "q=\"quoted value\"; Path=/",
            "  spaced = x y ; path=/app/",
        ],
    ),
    (
        "http://www.example.com/app/settings/page",
        &[
            "lang=fr; Domain=.example.com; Path=/",
            "pref=; Max-Age=0; Path=/app",
            "a=1; Path=/app/settings",
            "zzzz=2; Path=/app/settings",
            "rel=1; Path=relative",
        ],
    ),
    (
        "http://api.example.com/v1/items",
        &["api=1; Path=/", "sub=1; Domain=www.example.com"],
    ),
    (
        "http://www.example.co.uk/",
        &["uk=1; Domain=co.uk", "ok=1; Domain=example.co.uk"],
    ),
    (
        "http://foo.github.io/login",
        &["gh=1; Domain=github.io", "ghhost=1"],
    ),
    ("http://www.example.com/secure", &["sec=1; Secure; Path=/"]),
];

/// The requests after the script, whose `Cookie` headers are compared. None is a step's URL,
/// so the origin sets no cookie on them.
const PROBES: &[&str] = &[
    "http://www.example.com/app/settings/other",
    "http://www.example.com/application",
    "http://api.example.com/",
    "http://example.com/",
    "http://shop.example.co.uk/",
    "http://foo.github.io/",
];

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn peer(command: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(command);
        if p.exists() {
            return p;
        }
    }
    panic!("real peer `{command}` is missing: install it with `apt-get install -y {command}`");
}

/// A request the origin saw: which peer sent it, for which URL, with which Cookie header.
#[derive(Debug, Clone)]
struct Seen {
    peer: String,
    url: String,
    cookie: Option<String>,
}

/// The scripted origin, serving on its own thread and runtime until the test ends.
struct Origin {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Origin {
    fn start() -> Origin {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                tx.send(listener.local_addr().unwrap().port()).unwrap();
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(serve(sock, log.clone()));
                }
            });
        });
        let port = rx.recv().expect("origin port");
        Origin { port, seen }
    }

    fn proxy(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The Cookie header `peer` sent for `url` the last time.
    fn cookie_sent(&self, peer: &str, url: &str) -> Option<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s.peer == peer && s.url == url)
            .unwrap_or_else(|| panic!("{peer} never requested {url}"))
            .cookie
            .clone()
    }
}

/// One request, one response, then close. Requests come in absolute form (through a proxy).
async fn serve(mut sock: tokio::net::TcpStream, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let mut host = String::new();
    let mut cookie = None;
    let mut peer = String::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim().to_owned();
            match k.to_ascii_lowercase().as_str() {
                "host" => host = v,
                "cookie" => cookie = Some(v),
                "x-peer" => peer = v,
                _ => {}
            }
        }
    }
    let url = if target.starts_with("http://") {
        target
    } else {
        format!("http://{host}{target}")
    };
    let mut response =
        String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n");
    if let Some((_, headers)) = STEPS.iter().find(|(u, _)| *u == url) {
        for h in *headers {
            response.push_str(&format!("Set-Cookie: {h}\r\n"));
        }
    }
    response.push_str("\r\nok");
    seen.lock().unwrap().push(Seen { peer, url, cookie });
    let _ = sock.write_all(response.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// A cookie as every side can state it, for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct View {
    name: String,
    value: String,
    domain: String,
    path: String,
    host_only: bool,
    secure: bool,
    http_only: bool,
    /// `None` for a session cookie.
    expires: Option<i64>,
}

impl View {
    fn key(&self) -> (String, String, String) {
        (self.domain.clone(), self.path.clone(), self.name.clone())
    }
}

fn view(c: &Cookie) -> View {
    View {
        name: c.name.clone(),
        value: c.value.clone(),
        domain: c.domain.clone(),
        path: c.path.clone(),
        host_only: c.host_only,
        secure: c.secure,
        http_only: c.http_only,
        expires: c.expires,
    }
}

/// Reads a Netscape cookie file independently of the code under test.
fn read_jar_file(text: &str) -> Vec<View> {
    let mut out = Vec::new();
    for line in text.lines() {
        let (http_only, line) = match line.strip_prefix("#HttpOnly_") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 7, "cookie line {line:?}");
        let expiry: i64 = f[4].parse().expect("expiry");
        out.push(View {
            domain: f[0].trim_start_matches('.').to_owned(),
            host_only: f[1] == "FALSE",
            path: f[2].to_owned(),
            secure: f[3] == "TRUE",
            expires: (expiry != 0).then_some(expiry),
            name: f[5].to_owned(),
            value: f[6].to_owned(),
            http_only,
        });
    }
    out
}

/// Our jar fed the script at time `t`.
fn our_jar(t: i64) -> CookieJar {
    let mut jar = CookieJar::new(Limits::default());
    for (url, headers) in STEPS {
        let url: Url = url.parse().unwrap();
        for h in *headers {
            // Refusals are part of the script (public suffixes, foreign domains).
            let _ = jar.set_cookie(h, &url, t);
        }
    }
    jar
}

fn curl(origin: &Origin, peer_name: &str, args: &[&str], url: &str) {
    let status = Command::new(peer("curl"))
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--noproxy",
            "",
            "-x",
            &origin.proxy(),
        ])
        .args(["-H", &format!("X-Peer: {peer_name}")])
        .args(args)
        .arg(url)
        .status()
        .expect("run curl");
    assert!(status.success(), "curl {args:?} {url}: {status}");
}

const PYTHON: &str = r#"
import http.cookiejar, json, sys, urllib.request
cfg = json.load(sys.stdin)
jar = http.cookiejar.MozillaCookieJar(cfg["jar"])
if cfg["load"]:
    # Session cookies are kept; expired ones dropped, as a browser would.
    jar.load(ignore_discard=True)
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({"http": cfg["proxy"]}),
    urllib.request.HTTPCookieProcessor(jar),
)
for url in cfg["urls"]:
    opener.open(urllib.request.Request(url, headers={"X-Peer": cfg["peer"]})).read()
if cfg["save"]:
    jar.save(ignore_discard=True)
print(json.dumps([{
    "name": c.name, "value": c.value or "", "domain": c.domain.lstrip("."), "path": c.path,
    "host_only": not c.domain_specified, "secure": c.secure,
    "http_only": c.has_nonstandard_attr("HttpOnly"), "expires": c.expires,
} for c in jar]))
"#;

/// Runs the Python client over `urls`, optionally loading and saving `jar` first and after.
fn python(origin: &Origin, peer_name: &str, urls: &[&str], jar: &Path, load: bool) -> Vec<View> {
    let cfg = serde_json::json!({
        "proxy": origin.proxy(), "urls": urls, "jar": jar, "load": load, "save": !load,
        "peer": peer_name,
    });
    let mut child = Command::new(peer("python3"))
        .args(["-c", PYTHON])
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cfg.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("python3");
    assert!(out.status.success(), "python3 failed: {}", out.status);
    let cookies: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    cookies
        .iter()
        .map(|c| View {
            name: c["name"].as_str().unwrap().to_owned(),
            value: c["value"].as_str().unwrap().to_owned(),
            domain: c["domain"].as_str().unwrap().to_owned(),
            path: c["path"].as_str().unwrap().to_owned(),
            host_only: c["host_only"].as_bool().unwrap(),
            secure: c["secure"].as_bool().unwrap(),
            http_only: c["http_only"].as_bool().unwrap(),
            expires: c["expires"].as_i64(),
        })
        .collect()
}

/// Compares two cookie lists by (domain, path, name); expiry times may differ by `slack`
/// seconds (the peers read the clock when each response arrives). Returns the names of the
/// cookies only in `a`, only in `b`, and the keys whose fields differ.
fn diff(
    a: &[View],
    b: &[View],
    slack: i64,
) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let am: BTreeMap<_, _> = a.iter().map(|v| (v.key(), v)).collect();
    let bm: BTreeMap<_, _> = b.iter().map(|v| (v.key(), v)).collect();
    let only_a = am
        .keys()
        .filter(|k| !bm.contains_key(*k))
        .map(|k| k.2.clone())
        .collect();
    let only_b = bm
        .keys()
        .filter(|k| !am.contains_key(*k))
        .map(|k| k.2.clone())
        .collect();
    let mut differ = BTreeSet::new();
    for (k, x) in &am {
        let Some(y) = bm.get(k) else { continue };
        let expiry_ok = match (x.expires, y.expires) {
            (None, None) => true,
            (Some(p), Some(q)) => (p - q).abs() <= slack,
            _ => false,
        };
        let same = x.value == y.value
            && x.host_only == y.host_only
            && x.secure == y.secure
            && x.http_only == y.http_only
            && expiry_ok;
        if !same {
            differ.insert(format!("{}: {x:?} vs {y:?}", k.2));
        }
    }
    (only_a, only_b, differ)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The cookies in a Cookie header value.
fn header_set(h: Option<&str>) -> BTreeSet<String> {
    h.map(|h| h.split("; ").map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Both peers run through the script and the probes, each with its own jar file.
struct PeerRun {
    origin: Origin,
    dir: tempfile::TempDir,
    /// The clock before the first and after the last request: Max-Age expiries fall in between.
    t0: i64,
    t1: i64,
    curl: Vec<View>,
    python: Vec<View>,
}

impl PeerRun {
    fn go() -> PeerRun {
        let origin = Origin::start();
        let dir = tempfile::tempdir().unwrap();
        let curl_jar = dir.path().join("curl.txt");
        let jar_arg = curl_jar.to_str().unwrap();
        let t0 = now();
        for url in STEPS.iter().map(|(u, _)| *u).chain(PROBES.iter().copied()) {
            curl(&origin, "curl", &["-b", jar_arg, "-c", jar_arg], url);
        }
        let urls: Vec<&str> = STEPS
            .iter()
            .map(|(u, _)| *u)
            .chain(PROBES.iter().copied())
            .collect();
        let python = python(
            &origin,
            "python",
            &urls,
            &dir.path().join("python.txt"),
            false,
        );
        let t1 = now();
        let curl = read_jar_file(&std::fs::read_to_string(&curl_jar).unwrap());
        PeerRun {
            origin,
            dir,
            t0,
            t1,
            curl,
            python,
        }
    }

    fn slack(&self) -> i64 {
        self.t1 - self.t0 + 1
    }
}

#[test]
fn stored_cookies_and_headers_agree_with_curl_and_python() {
    assert!(PROBES.iter().all(|p| STEPS.iter().all(|(u, _)| u != p)));
    let run = PeerRun::go();
    let mut ours = our_jar(run.t0);
    let our_views: Vec<View> = ours.cookies().map(view).collect();
    let names = |v: &[View]| v.iter().map(|c| c.name.clone()).collect::<BTreeSet<_>>();
    // Refused: `old` (expired), `evil` (Domain=com, a public suffix), `other` (another
    // domain), `sub` (a host that is not inside the request host), `uk` and `gh` (public
    // suffixes); `pref` was set and then deleted with Max-Age=0.
    assert_eq!(
        names(&our_views),
        set(&[
            "sid", "lang", "theme", "both", "q", "spaced", "a", "zzzz", "rel", "api", "ok",
            "ghhost", "sec"
        ]),
        "{our_views:#?}"
    );

    // Against curl 7.88, compared by (domain, path, name) and then every other field.
    let (only_ours, only_curl, differ) = diff(&our_views, &run.curl, run.slack());
    // - `sec`: curl follows the cookie draft that became RFC 6265bis, where a plain-HTTP origin
    //   may not set a Secure cookie. RFC 6265 stores it and sends it over https only.
    // - `both`, `pref`: curl's default path keeps the trailing slash ("/app/" for a request to
    //   /app/login); RFC 6265 section 5.1.4 stops before the right-most '/' ("/app"). So in
    //   curl the deletion `pref=; Max-Age=0; Path=/app` names another cookie and `pref` stays.
    // - `rel`: curl keeps `Path=relative` verbatim; section 5.2.4 says default-path
    //   ("/app/settings" for /app/settings/page).
    assert_eq!(only_ours, set(&["sec", "both", "rel"]), "{:#?}", run.curl);
    assert_eq!(only_curl, set(&["both", "pref", "rel"]), "{:#?}", run.curl);
    assert!(differ.is_empty(), "{differ:#?}");

    // Against Python 3.11's http.cookiejar.
    let (only_ours, only_py, differ) = diff(&our_views, &run.python, run.slack());
    // - `uk` (Domain=co.uk) and `gh` (Domain=github.io): Python has no public suffix list;
    //   section 5.3 step 5 refuses public suffixes, as we and curl (through libpsl) do.
    // - `rel`: Python keeps `Path=relative` verbatim too.
    assert_eq!(only_py, set(&["uk", "gh", "rel"]), "{:#?}", run.python);
    assert_eq!(only_ours, set(&["rel"]), "{:#?}", run.python);
    assert!(differ.is_empty(), "{differ:#?}");

    // The Cookie header of the next requests: ours exactly (section 5.4 order: longer paths
    // first, then earlier creation), and each peer's as a set, with the cookies the
    // differences above add. The order differs too: curl sorts equal path lengths by domain
    // length and name length before creation time (`zzzz=2; a=1`, `api=1; lang=fr`), and
    // Python groups cookies by domain (`q` before `lang`, which was created earlier).
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "http://www.example.com/app/settings/other",
            "a=1; zzzz=2; rel=1; spaced=x y; theme=blue; both=max; sid=abc123; lang=fr; q=\"quoted value\"",
            // curl: `pref` (not deleted); Python: no `rel` (its path "relative" never matches).
            &["pref=dark"],
            &["-rel=1"],
        ),
        (
            // /app does not path-match /application; curl sends its "relative" `rel` anyway.
            "http://www.example.com/application",
            "sid=abc123; lang=fr; q=\"quoted value\"",
            &["rel=1"],
            &[],
        ),
        ("http://api.example.com/", "lang=fr; api=1", &[], &[]),
        ("http://example.com/", "lang=fr", &[], &[]),
        ("http://shop.example.co.uk/", "ok=1", &[], &["uk=1"]),
        ("http://foo.github.io/", "ghhost=1", &[], &["gh=1"]),
    ];
    assert_eq!(cases.len(), PROBES.len());
    for (probe, expected, curl_delta, python_delta) in cases {
        let mine = ours.cookie_header(&probe.parse().unwrap(), run.t1);
        assert_eq!(mine.as_deref(), Some(*expected), "{probe}");
        for (peer, delta) in [("curl", curl_delta), ("python", python_delta)] {
            let mut want = header_set(mine.as_deref());
            for d in delta.iter() {
                match d.strip_prefix('-') {
                    Some(gone) => want.remove(gone),
                    None => want.insert(d.to_string()),
                };
            }
            let got = header_set(run.origin.cookie_sent(peer, probe).as_deref());
            assert_eq!(got, want, "{peer} on {probe}");
        }
    }
}

#[test]
fn jar_files_go_both_ways() {
    let run = PeerRun::go();
    let t = run.t1;

    // curl's file, read by our loader, holds what an independent reading of it holds, less
    // the `rel` cookie whose path "relative" (see above) our loader refuses.
    let curl_text = std::fs::read_to_string(run.dir.path().join("curl.txt")).unwrap();
    let mut from_curl = CookieJar::default();
    let report = from_curl.load_netscape(&curl_text, t);
    assert_eq!(
        (report.loaded, report.skipped),
        (run.curl.len() - 1, 1),
        "{report:?}"
    );
    let loaded: Vec<View> = from_curl.cookies().map(view).collect();
    let (only_ours, only_curl, differ) = diff(&loaded, &run.curl, 0);
    assert!(
        only_ours.is_empty() && differ.is_empty(),
        "{only_ours:?} {differ:?}"
    );
    assert_eq!(only_curl, set(&["rel"]));
    assert!(loaded.iter().any(|c| c.name == "sid" && c.http_only));

    // Python's file: it writes session cookies with an empty expiry (read as session cookies
    // here too). Its `rel` cookie has the path "relative", which our loader refuses. And
    // Python 3.11 loses HttpOnly when it saves: it checks for the attribute "HTTPOnly" while
    // the attribute it parsed from `Set-Cookie` is "HttpOnly", so `sid` is written without the
    // `#HttpOnly_` prefix.
    let py_text = std::fs::read_to_string(run.dir.path().join("python.txt")).unwrap();
    assert!(py_text.contains("\tsid\tabc123") && !py_text.contains("#HttpOnly_"));
    let mut from_py = CookieJar::default();
    let report = from_py.load_netscape(&py_text, t);
    assert_eq!(
        (report.loaded, report.skipped),
        (run.python.len() - 1, 1),
        "{report:?}"
    );
    let mut loaded: Vec<View> = from_py.cookies().map(view).collect();
    assert!(loaded.iter().any(|c| c.name == "sid" && !c.http_only));
    for c in loaded.iter_mut().filter(|c| c.name == "sid") {
        c.http_only = true;
    }
    let (only_ours, only_py, differ) = diff(&loaded, &run.python, 0);
    assert!(
        only_ours.is_empty() && differ.is_empty(),
        "{only_ours:?} {differ:?}"
    );
    assert_eq!(only_py, set(&["rel"]));

    // Our file, read by curl and by Python: the Cookie headers they send from it.
    let mut ours = our_jar(run.t0);
    let our_file = run.dir.path().join("ours.txt");
    std::fs::write(&our_file, ours.to_netscape(t)).unwrap();
    for probe in PROBES {
        curl(
            &run.origin,
            "curl-reads-ours",
            &["-b", our_file.to_str().unwrap()],
            probe,
        );
    }
    python(&run.origin, "python-reads-ours", PROBES, &our_file, true);
    let session: BTreeSet<String> = ours
        .cookies()
        .filter(|c| c.expires.is_none())
        .map(|c| format!("{}={}", c.name, c.value))
        .collect();
    let mut persistent_seen = 0;
    for probe in PROBES {
        let mine = header_set(ours.cookie_header(&probe.parse().unwrap(), t).as_deref());
        let by_curl = header_set(run.origin.cookie_sent("curl-reads-ours", probe).as_deref());
        assert_eq!(by_curl, mine, "curl reading our file, {probe}");
        // Python 3.11 reads expiry 0 (curl's and our mark of a session cookie) as 1970 and
        // drops those cookies as expired; the persistent ones it reads like curl.
        let by_python = header_set(
            run.origin
                .cookie_sent("python-reads-ours", probe)
                .as_deref(),
        );
        let want: BTreeSet<String> = mine.difference(&session).cloned().collect();
        persistent_seen += want.len();
        assert_eq!(by_python, want, "python reading our file, {probe}");
    }
    assert!(persistent_seen > 0, "no persistent cookie was compared");
}

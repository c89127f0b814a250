//! The HTTP desync corpus (159 requests classed Compliant, Acceptable, Ambiguous, Severe) sent
//! to `http serve` over real sockets.
//!
//! Each case is sent as its head, a body that fits its declared framing, and then a second,
//! harmless request (`GET /status/202` with `Connection: close`). A server that refuses the case
//! must answer 400 (or another refusal) and close without ever answering the second request; a
//! server that accepts it must answer the second request too, which shows it found the end of
//! the first message exactly where the framing says.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::{Http, Outcome, exchange};

/// Status codes that mean "refused before the application saw the request".
pub const REFUSALS: &[u16] = &[400, 408, 411, 413, 414, 417, 431, 501, 505];

/// Compliant cases that a strict HTTP/1.1 server cannot accept as sent, with the reason; each is
/// asserted to be refused with 400 rather than silently skipped.
pub const COMPLIANT_BUT_REFUSED: &[(&str, &str)] = &[
    (
        "Empty URI",
        "the request line `GET  HTTP/1.1` has no request-target, which RFC 9112 section 3.2 requires",
    ),
    (
        "TE with custom parameters OK",
        "chunked defines no parameters; RFC 9112 section 7.1: their presence SHOULD be treated as an error",
    ),
    (
        "Transfer-Encoding with a param: chunked;custom_param",
        "chunked defines no parameters; RFC 9112 section 7.1: their presence SHOULD be treated as an error",
    ),
];

#[derive(Debug, Clone)]
pub struct Case {
    pub file: String,
    pub name: String,
    pub tier: String,
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

fn text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Null => String::new(),
        other => serde_yaml::to_string(other).unwrap_or_default(),
    }
}

/// Where the corpus is: `$PROTOLAB_SUITES/http-desync-guardian/tests`, by default
/// `../shared/suites` from the workspace root. A missing corpus fails the test.
pub fn corpus_dir() -> PathBuf {
    let base = std::env::var_os("PROTOLAB_SUITES")
        .map(PathBuf::from)
        .unwrap_or_else(|| protolab_tests::workspace_root().join("../shared/suites"));
    let dir = base.join("http-desync-guardian").join("tests");
    if !dir.is_dir() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "CI: the HTTP desync corpus is missing at {}: CI must provide the suites folder \
                 (set PROTOLAB_SUITES)",
                dir.display()
            );
        }
        panic!(
            "the HTTP desync corpus is missing at {}: copy the tests/ folder of the \
             http-desync-guardian repository (Apache-2.0) to \
             $PROTOLAB_SUITES/http-desync-guardian/tests, or set PROTOLAB_SUITES to a folder \
             that has it (default ../shared/suites from the workspace root)",
            dir.display()
        );
    }
    dir
}

/// Every case of the corpus, file by file.
pub fn corpus() -> Vec<Case> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read the corpus folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let text_of = std::fs::read_to_string(&path).expect("read a corpus file");
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&text_of).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let Some(list) = doc.as_sequence() else {
            continue;
        };
        for item in list {
            let headers = item["headers"]
                .as_sequence()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (text(&h["name"]), text(&h["value"])))
                        .collect()
                })
                .unwrap_or_default();
            cases.push(Case {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                name: text(&item["name"]),
                tier: text(&item["expected"]["tier"]),
                method: text(&item["method"]),
                uri: text(&item["uri"]),
                version: text(&item["version"]),
                headers,
            });
        }
    }
    cases
}

/// The case on the wire, followed by a body fitting its framing and the follow-up request.
///
/// The corpus judges framing only and leaves Host out; RFC 9112 section 3.2 requires it of every
/// HTTP/1.1 request, so `Host: 127.0.0.1` is added when the case has none.
pub fn case_bytes(case: &Case) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(case.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(case.uri.as_bytes());
    if !case.version.is_empty() {
        out.push(b' ');
        out.extend_from_slice(case.version.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if !case
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("host"))
    {
        out.extend_from_slice(b"Host: 127.0.0.1\r\n");
    }
    for (n, v) in &case.headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b":");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let te = case
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    let cl = case.headers.iter().find_map(|(n, v)| {
        n.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    if te {
        out.extend_from_slice(b"0\r\n\r\n");
    } else if let Some(n) = cl {
        out.extend(std::iter::repeat_n(b'x', n.min(8 * 1024 * 1024)));
    }
    out.extend_from_slice(
        b"GET /status/202 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    out
}

/// How a server treated a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Answered with a refusal status and closed, never reading the follow-up.
    Refused(u16),
    /// Answered the case and then the follow-up: the framing was read exactly.
    Accepted,
    /// Answered the case and closed (an HTTP/1.0 request without keep-alive).
    AcceptedThenClosed,
    /// Anything else: no answer, a refusal left open, or the follow-up lost or misread.
    Broken,
}

pub fn verdict(o: &Outcome) -> Verdict {
    let Some(first) = o.responses.first() else {
        return Verdict::Broken;
    };
    if REFUSALS.contains(&first.status) {
        return if o.closed && o.responses.len() == 1 {
            Verdict::Refused(first.status)
        } else {
            Verdict::Broken
        };
    }
    match o.responses.get(1) {
        Some(second) if second.status == 202 && o.responses.len() == 2 => Verdict::Accepted,
        None if o.closed => Verdict::AcceptedThenClosed,
        _ => Verdict::Broken,
    }
}

/// Sends every case to `addr` and returns the verdicts.
pub fn run_corpus(addr: std::net::SocketAddr, cases: &[Case]) -> Vec<Verdict> {
    cases
        .iter()
        .map(|c| verdict(&exchange(addr, &case_bytes(c), Duration::from_secs(10))))
        .collect()
}

#[test]
fn desync_corpus_severe_refused_compliant_accepted() {
    let cases = corpus();
    assert_eq!(cases.len(), 159, "the corpus has 159 cases");
    let http = Http::start(&[]);
    let verdicts = run_corpus(http.addr, &cases);
    let mut table: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (case, v) in cases.iter().zip(&verdicts) {
        let outcome = match v {
            Verdict::Refused(s) => format!("refused {s}"),
            Verdict::Accepted | Verdict::AcceptedThenClosed => "accepted".into(),
            Verdict::Broken => "BROKEN".into(),
        };
        *table
            .entry((case.tier.clone(), outcome.clone()))
            .or_default() += 1;
        println!(
            "{:<10} {:<16} {:<60} {outcome}",
            case.tier,
            case.file,
            case.name.escape_debug().to_string()
        );
        let exception = COMPLIANT_BUT_REFUSED.iter().find(|(n, _)| *n == case.name);
        let ok = match (case.tier.as_str(), v) {
            (_, Verdict::Broken) => false,
            ("Severe", v) => *v == Verdict::Refused(400),
            ("Compliant", v) if exception.is_some() => *v == Verdict::Refused(400),
            ("Compliant", v) => matches!(v, Verdict::Accepted | Verdict::AcceptedThenClosed),
            // Acceptable and Ambiguous: refused and closed, or accepted with the follow-up
            // answered in step; never out of step.
            _ => true,
        };
        if !ok {
            failures.push(format!(
                "{} / {} ({}): {v:?}",
                case.file,
                case.name.escape_debug(),
                case.tier
            ));
        }
    }
    println!("\ntier       outcome      cases");
    for ((tier, outcome), n) in &table {
        println!("{tier:<10} {outcome:<12} {n}");
    }
    assert!(
        failures.is_empty(),
        "cases not handled as required:\n{}",
        failures.join("\n")
    );

    // Refused or accepted, the same case gets the same answer every time.
    let again = run_corpus(http.addr, &cases);
    assert_eq!(verdicts, again, "verdicts changed between two runs");
}

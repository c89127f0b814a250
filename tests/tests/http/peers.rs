//! `http get` against real servers: nginx and Python's http.server; and through a proxy and
//! `--resolve`, against `http serve`.

use std::process::Command;

use protolab_tests::http_peers::{start_nginx, start_python_http};
use protolab_tests::run_ok;

use crate::common::{Http, file_body, write_site};

fn http_get(args: &[&str]) -> serde_json::Value {
    let out = run_ok(
        Command::new(protolab_tests::bin("http"))
            .args(["get", "--json"])
            .args(args),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn http_get_against_nginx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = tempfile::tempdir().expect("tempdir");
    write_site(site.path());
    let nginx = start_nginx(dir.path(), site.path(), 1);
    let base = format!("http://{}", nginx.addr);
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let path = out.path().to_str().expect("utf-8").to_owned();
    let v = http_get(&[
        &format!("{base}/index.html"),
        &format!("{base}/file.txt"),
        "-o",
        &path,
    ]);
    let ex = v.as_array().expect("exchanges");
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0]["status"], 200);
    assert_eq!(ex[0]["reused"], false);
    // nginx keeps the connection: the second exchange reused it.
    assert_eq!(ex[1]["reused"], true);
    assert_eq!(ex[1]["framing"]["kind"], "length");
    assert_eq!(ex[1]["body_bytes"], 1000);
    assert_eq!(std::fs::read(out.path()).expect("read -o"), file_body());
    // The request went out exactly as shown: the seed's five fields, in order.
    let request: Vec<&str> = ex[0]["request"]
        .as_array()
        .expect("request")
        .iter()
        .map(|l| l.as_str().unwrap_or_default())
        .collect();
    assert_eq!(request[0], "GET /index.html HTTP/1.1");
    let names: Vec<&str> = request[1..]
        .iter()
        .map(|l| l.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "Host",
            "Connection",
            "User-Agent",
            "Accept-Language",
            "Accept"
        ]
    );
    assert!(
        ex[0]["response"][0]
            .as_str()
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    // nginx answers a range and a conditional request like our server does.
    let etag = ex[1]["response"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|l| l.as_str()?.strip_prefix("ETag: ").map(str::to_owned))
        .expect("an ETag from nginx");
    let v = http_get(&[
        "-H",
        &format!("If-None-Match: {etag}"),
        &format!("{base}/file.txt"),
    ]);
    assert_eq!(v[0]["status"], 304);
    assert_eq!(v[0]["framing"]["kind"], "none");
    let v = http_get(&["-H", "Range: bytes=0-9", &format!("{base}/file.txt")]);
    assert_eq!(v[0]["status"], 206);
    assert_eq!(v[0]["body_bytes"], 10);
    let v = http_get(&["-X", "HEAD", &format!("{base}/file.txt")]);
    assert_eq!(v[0]["body_bytes"], 0);
}

#[test]
fn http_get_against_python_http_server() {
    let site = tempfile::tempdir().expect("tempdir");
    write_site(site.path());
    let (_python, addr) = start_python_http(site.path());
    let base = format!("http://{addr}");
    let v = http_get(&[&format!("{base}/file.txt"), &format!("{base}/index.html")]);
    let ex = v.as_array().expect("exchanges");
    // http.server speaks HTTP/1.0 and closes after each response: no reuse.
    assert!(
        ex[0]["response"][0]
            .as_str()
            .unwrap()
            .starts_with("HTTP/1.0 200")
    );
    assert_eq!(ex[0]["body_bytes"], 1000);
    assert_eq!(ex[1]["reused"], false);
    assert_eq!(ex[1]["status"], 200);
}

#[test]
fn http_get_through_a_proxy_and_with_resolve() {
    let http = Http::start(&[]);
    let port = http.addr.port();
    // --resolve: the URL names example.test, the connection goes to 127.0.0.1.
    let url = format!("http://example.test:{port}/echo");
    let v = http_get(&[
        "--resolve",
        &format!("example.test:{port}:127.0.0.1"),
        "-H",
        "Accept: application/json",
        &url,
    ]);
    assert_eq!(v[0]["status"], 200);
    assert_eq!(v[0]["request"][1], format!("Host: example.test:{port}"));
    // --proxy: the request-target is in absolute form.
    let v = http_get(&[
        "--proxy",
        &format!("http://{}", http.addr),
        "http://origin.example.test/status/203",
    ]);
    assert_eq!(
        v[0]["request"][0],
        "GET http://origin.example.test/status/203 HTTP/1.1"
    );
    assert_eq!(v[0]["status"], 203);
}

#[test]
fn http_get_pipelines_nothing_but_reuses_and_reports_phases() {
    let http = Http::start(&[]);
    let v = http_get(&[
        &http.url("/stream/3"),
        &http.url("/status/204"),
        &http.url("/bytes/5000"),
    ]);
    let ex = v.as_array().expect("exchanges");
    assert_eq!(ex[0]["framing"]["kind"], "chunked");
    assert_eq!(ex[0]["trailers"][0], "X-Chunks: 3");
    assert_eq!(ex[1]["status"], 204);
    assert_eq!(ex[1]["reused"], true);
    assert_eq!(ex[2]["body_bytes"], 5000);
    assert_eq!(ex[2]["reused"], true);
    for e in ex {
        let t = &e["timing"];
        let phases = [
            "name_lookup_us",
            "connect_us",
            "request_sent_us",
            "first_byte_us",
            "done_us",
        ];
        let values: Vec<u64> = phases
            .iter()
            .map(|p| t[p].as_u64().expect("a time in whole microseconds"))
            .collect();
        assert!(
            values.windows(2).all(|w| w[0] <= w[1]),
            "phases in order: {t}"
        );
    }
}

#[test]
fn http_get_cookie_jar_remembers_and_curl_reads_it() {
    let http = Http::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let jar = dir.path().join("jar.txt");
    let jar_s = jar.to_str().expect("utf-8").to_owned();
    // Without a jar, every visit is the first, even on one connection: the server keeps no
    // state, and the client sends no Cookie it was not asked to keep.
    let v = http_get(&[&http.url("/cookies"), &http.url("/cookies")]);
    for ex in v.as_array().expect("exchanges") {
        assert!(ex["response"].to_string().contains("visits=1;"), "{v}");
        assert!(!ex["request"].to_string().contains("Cookie:"), "{v}");
    }
    // With one, the Set-Cookie of each response comes back in the next request's Cookie.
    http_get(&[
        "-c",
        &jar_s,
        &http.url("/cookies/set?flavour=oat"),
        &http.url("/cookies"),
    ]);
    let v = http_get(&["-c", &jar_s, &http.url("/cookies")]);
    let cookie = v[0]["request"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|l| l.as_str()?.strip_prefix("Cookie: ").map(str::to_owned))
        .expect("a Cookie field from the jar");
    assert!(
        cookie.contains("flavour=oat") && cookie.contains("visits=1"),
        "{cookie}"
    );
    assert!(v[0]["response"].to_string().contains("visits=2;"), "{v}");
    // curl reads the same file (Netscape format) and sends the same cookies.
    let out = run_ok(
        Command::new(protolab_tests::require_peer("curl", "curl"))
            .args(["-sS", "-H", "Accept: application/json", "-b", &jar_s])
            .arg(http.url("/cookies")),
    );
    let seen: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(seen["cookies"]["flavour"], "oat");
    assert_eq!(seen["visit"], 3);
}

//! Real clients of `http serve`: curl, wget, Python's urllib and requests, ab and wrk.

use std::process::Command;

use protolab_tests::{require_peer, run_ok};

use crate::common::{Http, file_body};

fn curl(args: &[&str]) -> String {
    run_ok(Command::new(require_peer("curl", "curl")).args(args))
}

#[test]
fn curl_get_head_and_keep_alive() {
    let http = Http::start(&[]);
    let body = curl(&["-sS", &http.url("/file.txt")]);
    assert_eq!(body.as_bytes(), file_body());
    // Two URLs on one curl command line: the second request reuses the connection.
    let out = Command::new(require_peer("curl", "curl"))
        .args(["-sv", "-o", "/dev/null", "-o", "/dev/null"])
        .args([http.url("/file.txt"), http.url("/index.html")])
        .output()
        .expect("curl");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Re-using existing connection"), "{log}");
    // HEAD: the same fields, no body.
    let head = curl(&["-sS", "-I", &http.url("/file.txt")]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 1000\r\n"), "{head}");
    assert!(head.contains("ETag: \""), "{head}");
    // HTTP/1.0 gets an HTTP/1.0 response.
    let old = curl(&["-sS", "-i", "--http1.0", &http.url("/status/204")]);
    assert!(old.starts_with("HTTP/1.0 204 No Content\r\n"), "{old}");
}

#[test]
fn conditional_get_and_ranges_as_curl_sees_them() {
    let http = Http::start(&[]);
    let url = http.url("/file.txt");
    let head = curl(&["-sS", "-I", &url]);
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .expect("an ETag")
        .trim()
        .to_owned();
    let code = |extra: &[&str]| {
        let mut args = vec![
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    };
    let inm = format!("If-None-Match: {etag}");
    assert_eq!(code(&["-H", &inm]), "304 0");
    assert_eq!(code(&["-H", "If-None-Match: \"other\""]), "200 1000");
    // curl -z sends If-Modified-Since; a date in the future means "not modified since".
    assert_eq!(code(&["-z", "Jan 1 2100"]), "304 0");
    assert_eq!(code(&["-z", "Jan 1 2000"]), "200 1000");
    // One range: 206 with exactly those bytes.
    let part = curl(&["-sS", "-r", "10-19", &url]);
    assert_eq!(part.as_bytes(), &file_body()[10..20]);
    assert_eq!(code(&["-r", "990-"]), "206 10");
    assert_eq!(code(&["-r", "5000-"]), "416 0");
    // If-Range with a stale validator: the whole file instead.
    assert_eq!(
        code(&["-r", "0-9", "-H", "If-Range: \"stale\""]),
        "200 1000"
    );
    assert_eq!(
        code(&["-r", "0-9", "-H", &format!("If-Range: {etag}")]),
        "206 10"
    );
    // A file too large for the cache is streamed, ranges included.
    let big = http.url("/big.bin");
    let out = curl(&[
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        "-r",
        "1048576-1048675",
        &big,
    ]);
    assert_eq!(out, "206 100");
    let out = curl(&[
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        &big,
    ]);
    assert_eq!(out, "200 2097152");
}

#[test]
fn curl_expect_continue_and_chunked_upload() {
    let http = Http::start(&[]);
    let out = Command::new(require_peer("curl", "curl"))
        .args([
            "-sv",
            "-H",
            "Expect: 100-continue",
            "-H",
            "Accept: application/json",
        ])
        .args(["--data-binary", "hello there", &http.url("/echo")])
        .output()
        .expect("curl");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("< HTTP/1.1 100 Continue"), "{log}");
    let echo: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(echo["body"], "hello there");
    let chunked = curl(&[
        "-sS",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Accept: application/json",
        "--data-binary",
        "0123456789",
        &http.url("/echo"),
    ]);
    let echo: serde_json::Value = serde_json::from_str(&chunked).expect("json");
    assert_eq!(echo["body_bytes"], 10);
    // Over the body limit: 413 before any of the body is read.
    let small = Http::start(&["--max-body", "100"]);
    let code = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-binary",
        &"x".repeat(200),
        &small.url("/echo"),
    ]);
    assert_eq!(code, "413");
}

#[test]
fn wget_downloads_and_resumes() {
    let http = Http::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("file.txt");
    // A partial download to resume: wget -c asks for the rest with Range.
    std::fs::write(&out, &file_body()[..300]).expect("write part");
    run_ok(
        Command::new(require_peer("wget", "wget"))
            .args(["-q", "-c", "-O"])
            .arg(&out)
            .arg(http.url("/file.txt")),
    );
    assert_eq!(std::fs::read(&out).expect("read"), file_body());
}

const PY_URLLIB: &str = r#"
import http.cookiejar, json, sys, urllib.request
base = sys.argv[1]
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
opener.open(base + "/cookies/set?flavour=oat").read()
first = json.loads(opener.open(urllib.request.Request(base + "/cookies", headers={"Accept": "application/json"})).read())
second = json.loads(opener.open(urllib.request.Request(base + "/cookies", headers={"Accept": "application/json"})).read())
plain = json.loads(urllib.request.urlopen(urllib.request.Request(base + "/cookies", headers={"Accept": "application/json"})).read())
print(json.dumps({"first": first, "second": second, "plain": plain}))
"#;

#[test]
fn python_urllib_with_a_cookie_jar() {
    let http = Http::start(&[]);
    let out = run_ok(
        Command::new(require_peer("python3", "python3"))
            .args(["-c", PY_URLLIB])
            .arg(format!("http://{}", http.addr)),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["first"]["cookies"]["flavour"], "oat");
    assert_eq!(v["first"]["visit"], 1);
    // The counter went up only because the jar sent the cookie back.
    assert_eq!(v["second"]["visit"], 2);
    assert_eq!(
        v["plain"]["visit"], 1,
        "without a jar the server knows nothing"
    );
}

const PY_REQUESTS: &str = r#"
import json, sys, requests
base = sys.argv[1]
s = requests.Session()
def gen():
    for i in range(5):
        yield b"piece%d;" % i
r = s.post(base + "/echo", data=gen(), headers={"Accept": "application/json"})
echo = r.json()
r2 = s.get(base + "/status/418")
r3 = s.get(base + "/stream/4")
print(json.dumps({"echo": echo, "teapot": r2.status_code, "stream": r3.text.count("id"), "te": r3.headers.get("Transfer-Encoding")}))
"#;

#[test]
fn python_requests_chunked_upload_and_stream() {
    let http = Http::start(&[]);
    let out = run_ok(
        Command::new(require_peer("python3", "python3"))
            .args(["-c", PY_REQUESTS])
            .arg(format!("http://{}", http.addr)),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["echo"]["body"], "piece0;piece1;piece2;piece3;piece4;");
    let sent_chunked = v["echo"]["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .any(|h| h[0] == "Transfer-Encoding" && h[1] == "chunked");
    assert!(sent_chunked, "requests sends a generator body chunked: {v}");
    assert_eq!(v["teapot"], 418);
    assert_eq!(v["stream"], 4);
    assert_eq!(v["te"], "chunked");
}

#[test]
fn ab_keep_alive_http10_load() {
    let http = Http::start(&[]);
    let out = run_ok(
        Command::new(require_peer("ab", "apache2-utils"))
            .args(["-q", "-k", "-n", "2000", "-c", "20"])
            .arg(http.url("/file.txt")),
    );
    let field = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("Complete requests:"), "2000", "{out}");
    assert_eq!(field("Failed requests:"), "0", "{out}");
    // ab speaks HTTP/1.0 with Connection: keep-alive: every request rode a kept connection.
    assert_eq!(field("Keep-Alive requests:"), "2000", "{out}");
}

#[test]
fn wrk_short_keep_alive_run_without_errors() {
    let http = Http::start(&[]);
    let out = run_ok(
        Command::new(require_peer("wrk", "wrk"))
            .args(["-t1", "-c16", "-d1s"])
            .arg(http.url("/file.txt")),
    );
    assert!(out.contains("requests in"), "{out}");
    assert!(!out.contains("Socket errors"), "{out}");
    assert!(!out.contains("Non-2xx"), "{out}");
}

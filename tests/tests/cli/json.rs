//! Every `--json` output, checked against its documented keys and types in
//! tests/test-data/cli/schemas.json, and every `--json` stream pure JSON lines.

use std::io::Read;
use std::path::PathBuf;

use protolab_tests::{Server, workspace_root};
use serde_json::Value;

use crate::{run, stderr, stdout};

fn schemas() -> Value {
    let path = workspace_root().join("tests/test-data/cli/schemas.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read schemas.json"))
        .expect("schemas.json is JSON")
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `v` against the schema named `name`: every required key present with its type.
fn check(name: &str, v: &Value) {
    let schemas = schemas();
    let schema = schemas[name]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name:?} in schemas.json"));
    for (path, types) in schema {
        let mut at = v;
        for part in path.split('.') {
            at = match part.parse::<usize>() {
                Ok(i) if at.is_array() => &at[i],
                _ => &at[part],
            };
        }
        let allowed: Vec<&str> = types.as_str().expect("type text").split('|').collect();
        // "number" admits integers too: a rate that happens to be whole is still a number.
        let got = type_of(at);
        let ok = allowed.contains(&got) || (got == "integer" && allowed.contains(&"number"));
        let present = !at.is_null() || allowed.contains(&"null");
        assert!(
            ok && present,
            "{name}: {path} is {got}, documented as {types}: {v}"
        );
    }
}

/// Every line of `text` is a JSON object; returns them.
fn json_lines(what: &str, text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("{what}: not a JSON line ({e}): {l:?}\n{text}"))
        })
        .collect()
}

/// Starts a server with `--json`, lets `client` use it, stops it with SIGTERM and returns its
/// whole standard output, every line of which must be JSON.
fn server_stream(
    bin: &str,
    args: &[&str],
    sockets: usize,
    client: impl FnOnce(&Server),
) -> Vec<Value> {
    let mut all = vec![args[0], "--json"];
    all.extend_from_slice(&args[1..]);
    let mut srv = Server::start(bin, &all, sockets);
    client(&srv);
    for (proto, addr) in &srv.listening {
        let line =
            serde_json::json!({"event": "listening", "proto": proto, "addr": addr.to_string()});
        check("listening", &line);
    }
    srv.proc.signal(libc::SIGTERM);
    let status = srv.proc.wait_for(std::time::Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{bin}: {status:?}");
    let mut rest = String::new();
    srv.stdout.read_to_string(&mut rest).expect("read stdout");
    json_lines(bin, &rest)
}

#[test]
fn greet_reports() {
    let srv = Server::start("greet", &["serve", "--json", "--listen", "127.0.0.1:0"], 1);
    let addr = srv.addr("tcp").to_string();
    let out = run("greet", &["hello", "--server", &addr, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines("greet hello", &stdout(&out));
    assert_eq!(lines.len(), 1);
    check("greet hello", &lines[0]);
    let out = run(
        "greet",
        &[
            "--json",
            "bench",
            "--server",
            &addr,
            "--connections",
            "2",
            "--duration",
            "300ms",
            "--skip-banner",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines("greet bench", &stdout(&out));
    check("greet bench", &lines[0]);
}

/// `greet serve --json` ends its stream with the counters of what it served.
#[test]
fn greet_serve_reports() {
    for udp in [false, true] {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        if udp {
            args.push("--udp");
        }
        let lines = server_stream("greet", &args, 1, |srv| {
            let (proto, addr) = &srv.listening[0];
            let mut hello = vec!["hello", "--server"];
            let addr = addr.to_string();
            hello.push(&addr);
            if proto == "udp" {
                hello.push("--udp");
            }
            let out = run("greet", &hello);
            assert!(out.status.success(), "{}", stderr(&out));
        });
        let report = lines.last().expect("the report line");
        check("greet serve", report);
        // greet hello says Michael, Tracy and Sarah.
        assert_eq!(report["greeted"], 3, "udp {udp}: {report}");
        if udp {
            assert_eq!(report["udp_received"], 3, "{report}");
            assert_eq!(report["udp_replied"], 3, "{report}");
        } else {
            assert_eq!(report["accepted"], 1, "{report}");
        }
    }
}

#[test]
fn udpecho_reports() {
    let lines = server_stream(
        "udpecho",
        &["serve", "--listen", "127.0.0.1:0", "--no-tcp"],
        1,
        |srv| {
            let out = run(
                "udpecho",
                &[
                    "probe",
                    &srv.addr("udp").to_string(),
                    "--count",
                    "20",
                    "--interval",
                    "1ms",
                    "--json",
                    "--seed",
                    "18446744073709551615",
                ],
            );
            assert!(out.status.success(), "{}", stderr(&out));
            let lines = json_lines("udpecho probe", &stdout(&out));
            assert_eq!(lines.len(), 1);
            check("udpecho probe", &lines[0]);
            // A seed above 2^53 survives as a string.
            assert_eq!(lines[0]["seed"], "18446744073709551615");
        },
    );
    check("udpecho serve", lines.last().expect("the report line"));
}

#[test]
fn bulk_and_sink_reports() {
    use std::io::BufRead;
    let mut sink = Server::start("udpecho", &["--json", "sink", "--listen", "127.0.0.1:0"], 1);
    let out = run(
        "udpecho",
        &[
            "bulk",
            &sink.addr("tcp").to_string(),
            "--duration",
            "300ms",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines("udpecho bulk", &stdout(&out));
    assert_eq!(lines.len(), 1);
    check("udpecho bulk", &lines[0]);
    // The sink writes one line when the transfer's connection closes.
    let mut line = String::new();
    sink.stdout.read_line(&mut line).expect("read the sink");
    let received = json_lines("udpecho sink", &line);
    check("udpecho sink", &received[0]);
}

#[test]
fn impair_reports() {
    let lines = server_stream(
        "impair",
        &[
            "udp",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:9",
            "--delay",
            "1ms",
            "--seed",
            "7",
        ],
        1,
        |_| {},
    );
    let truth = lines.last().expect("the ground truth line");
    check("impair udp", truth);
    assert_eq!(truth["upstream_config"]["delay_ns"], 1_000_000);
}

fn lab_zone() -> PathBuf {
    workspace_root().join("examples/dns/example.test.zone")
}

#[test]
fn dns_reports() {
    let zone = lab_zone();
    let zone = zone.to_str().expect("utf-8 path");
    let mut server_addr = String::new();
    let lines = server_stream(
        "dns",
        &["zone", "--listen", "127.0.0.1:0", "--zone", zone],
        2,
        |srv| {
            server_addr = srv.addr("udp").to_string();
            let out = run(
                "dns",
                &[
                    "query",
                    "www.example.test",
                    "A",
                    &format!("@{server_addr}"),
                    "--json",
                ],
            );
            assert!(out.status.success(), "{}", stderr(&out));
            let lines = json_lines("dns query", &stdout(&out));
            assert_eq!(lines.len(), 1);
            check("dns query", &lines[0]);
        },
    );
    let stats = lines.last().expect("the stats line");
    assert_eq!(stats["event"], "stats");
    check("dns zone", stats);
    assert!(stats["queries"].as_u64() >= Some(1), "{stats}");

    // Without --json the counters are text, not `stats {...}`.
    let mut srv = Server::start(
        "dns",
        &["zone", "--listen", "127.0.0.1:0", "--zone", zone],
        2,
    );
    srv.proc.signal(libc::SIGTERM);
    srv.proc.wait_for(std::time::Duration::from_secs(15));
    let mut rest = String::new();
    srv.stdout.read_to_string(&mut rest).expect("read");
    assert!(rest.starts_with("counters:\n"), "{rest}");
    assert!(!rest.contains('{'), "{rest}");
}

#[test]
fn dns_resolver_reports() {
    let lines = server_stream(
        "dns",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:9",
        ],
        2,
        |_| {},
    );
    let stats = lines.last().expect("the stats line");
    check("dns serve", stats);
}

#[test]
fn subnet_report() {
    let out = run("subnet", &["192.168.1.77/26", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines("subnet", &stdout(&out));
    assert_eq!(lines.len(), 1);
    check("subnet", &lines[0]);
}

/// Reads `stdout` line by line until `sockets` listening lines have come, checking that every
/// line is JSON (the lab CA's line included); returns the addresses by proto and every line.
fn read_until_listening(
    what: &str,
    stdout: &mut impl std::io::BufRead,
    sockets: usize,
) -> (Vec<(String, String)>, Vec<Value>) {
    let mut addrs = Vec::new();
    let mut lines = Vec::new();
    while addrs.len() < sockets {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).expect("read stdout");
        assert!(n > 0, "{what} exited before listening: {lines:?}");
        let v = json_lines(what, &line).remove(0);
        match v["event"].as_str() {
            Some("listening") => {
                check("listening", &v);
                addrs.push((
                    v["proto"].as_str().expect("proto").to_owned(),
                    v["addr"].as_str().expect("addr").to_owned(),
                ));
            }
            Some("lab_ca") => check("lab_ca", &v),
            _ => panic!("{what}: unexpected line before listening: {v}"),
        }
        lines.push(v);
    }
    (addrs, lines)
}

/// `smtp serve --json` is JSON lines from its first line (the lab CA, SMTP, implicit TLS and
/// the web inbox), and every smtp report matches its documentation.
#[test]
fn smtp_reports() {
    use protolab_tests::{Proc, bin};
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("maildir");
    let md_text = md.to_str().expect("utf-8").to_owned();
    let ca = dir.path().join("ca.pem");
    let mut cmd = std::process::Command::new(bin("smtp"));
    cmd.args([
        "serve",
        "--json",
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--hostname",
        "mx.test",
        "--maildir",
        &md_text,
        "--tls-self-signed",
    ])
    .arg(&ca)
    .env("RUST_LOG", "warn");
    let mut proc = Proc::spawn("smtp serve", &mut cmd);
    let mut stdout = proc.stdout();
    let (addrs, lines) = read_until_listening("smtp serve", &mut stdout, 3);
    assert_eq!(lines[0]["event"], "lab_ca", "{lines:?}");
    let protos: Vec<&str> = addrs.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(protos, ["tcp", "tls", "http"]);
    let smtp_addr = &addrs[0].1;

    let out = run(
        "smtp",
        &[
            "send",
            "--server",
            smtp_addr,
            "--from",
            "a@example.test",
            "--to",
            "b@example.test",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = json_lines("smtp send", &stdout_of(&out));
    assert_eq!(sent.len(), 1);
    check("smtp send", &sent[0]);

    let out = run("smtp", &["--json", "list", &md_text]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = json_lines("smtp list", &stdout_of(&out));
    assert_eq!(listed.len(), 1, "one line");
    check("smtp list", &listed[0]);
    let id = listed[0][0]["id"].as_str().expect("id").to_owned();

    let out = run("smtp", &["show", &md_text, &id, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = json_lines("smtp show", &stdout_of(&out));
    assert_eq!(shown.len(), 1, "one line");
    check("smtp show", &shown[0]);

    proc.signal(libc::SIGTERM);
    let status = proc.wait_for(std::time::Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "smtp serve: {status:?}"
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read stdout");
    let rest = json_lines("smtp serve", &rest);
    assert_eq!(rest.len(), 1, "one report line: {rest:?}");
    check("smtp serve", &rest[0]);
    assert_eq!(rest[0]["stats"]["messages_stored"], 1);
    assert_eq!(rest[0]["listen"], smtp_addr.as_str());

    // `smtp web` alone: the listening line, then its report.
    let lines = server_stream(
        "smtp",
        &["web", "--maildir", &md_text, "--http", "127.0.0.1:0"],
        1,
        |srv| {
            let out = run(
                "http",
                &[
                    "get",
                    &format!("http://{}/api/v1/messages", srv.addr("http")),
                ],
            );
            assert!(out.status.success(), "{}", stderr(&out));
        },
    );
    let report = lines.last().expect("the report line");
    check("smtp web", report);
    assert!(report["http"]["requests"].as_u64() >= Some(1), "{report}");
}

fn stdout_of(o: &std::process::Output) -> String {
    stdout(o)
}

/// http's three reports: `http get --json` (one line, an array of exchanges), and the `serve`
/// and `proxy` streams.
#[test]
fn http_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    let ca_text = ca.to_str().expect("utf-8").to_owned();
    // Under --json the lab CA's line is JSON too.
    let mut cmd = std::process::Command::new(protolab_tests::bin("http"));
    cmd.args([
        "serve",
        "--json",
        "--listen",
        "127.0.0.1:0",
        "--tls-self-signed",
        &ca_text,
    ])
    .env("RUST_LOG", "warn");
    let mut tls = protolab_tests::Proc::spawn("http serve", &mut cmd);
    let mut tls_out = tls.stdout();
    let (_, lines) = read_until_listening("http serve --tls-self-signed", &mut tls_out, 1);
    assert_eq!(lines[0]["event"], "lab_ca", "{lines:?}");
    tls.signal(libc::SIGTERM);
    tls.wait_for(std::time::Duration::from_secs(15));

    let mut origin = String::new();
    let served = server_stream("http", &["serve", "--listen", "127.0.0.1:0"], 1, |srv| {
        origin = srv.addr("tcp").to_string();
        let proxied = server_stream("http", &["proxy", "--listen", "127.0.0.1:0"], 1, |proxy| {
            let out = run(
                "http",
                &[
                    "get",
                    "--json",
                    "--proxy",
                    &proxy.addr("tcp").to_string(),
                    &format!("http://{origin}/bytes/100"),
                    &format!("http://{origin}/status/404"),
                ],
            );
            assert!(out.status.success(), "{}", stderr(&out));
            let got = json_lines("http get", &stdout(&out));
            assert_eq!(got.len(), 1, "one line");
            check("http get", &got[0]);
            assert_eq!(got[0][1]["status"], 404);
        });
        let report = proxied.last().expect("the proxy's report");
        check("http proxy", report);
        assert_eq!(report["requests"], 2, "{report}");
    });
    let report = served.last().expect("the server's report");
    check("http serve", report);
    assert_eq!(report["responses"][1], 1, "one 2xx: {report}");
}

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

//! The files under examples/ that the README's commands use: the lab hierarchy answers a
//! `dns query --trace` from its root hints, and dig's spellings work in `dns query`.

use protolab_tests::fixtures::{lab_dns_dir, start_lab_dns};
use protolab_tests::{Server, bin, free_port};

use crate::{run, stderr, stdout};

/// The three lab servers of examples/dns on 127.0.0.1-3 at one port free on all three.
fn hierarchy() -> (Vec<Server>, u16) {
    start_lab_dns(&bin("dns"))
}

#[test]
fn the_lab_hierarchy_resolves_from_its_root_hints() {
    let (_servers, port) = hierarchy();
    let port = port.to_string();
    let hints = lab_dns_dir().join("root.hints");
    let out = run(
        "dns",
        &[
            "query",
            "www.example.test",
            "--trace",
            "--root-hints",
            hints.to_str().expect("utf-8"),
            "--port",
            &port,
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("192.0.2.10"), "{text}");
    assert!(
        text.contains("127.0.0.2") && text.contains("127.0.0.3"),
        "walked the delegations: {text}"
    );
}

#[test]
fn dig_habits_work_in_dns_query() {
    let (_servers, port) = hierarchy();
    let port = port.to_string();
    let at = "@127.0.0.3";
    // @SERVER before the name, -p, +short; CAA by name and by number; DS; TYPE15 is MX.
    for (args, want) in [
        (
            vec![at, "-p", &port, "www.example.test", "+short"],
            "192.0.2.10",
        ),
        (
            vec!["example.test", "CAA", at, "-p", &port, "+short"],
            "0 issue \"ca.example.test\"",
        ),
        (
            vec!["example.test", "TYPE257", at, "-p", &port, "+short"],
            "0 issue \"ca.example.test\"",
        ),
        (
            vec!["example.test", "TYPE15", at, "-p", &port, "+short"],
            "10 mail.example.test.",
        ),
        (
            vec!["example.test", "MX", at, "-p", &port, "+tcp", "+short"],
            "10 mail.example.test.",
        ),
        (
            vec!["www.example.test", at, "-p", &port, "+norecurse", "+short"],
            "192.0.2.10",
        ),
    ] {
        let mut all = vec!["query"];
        all.extend(args.iter().copied());
        let out = run("dns", &all);
        assert!(out.status.success(), "{all:?}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), want, "{all:?}");
    }
    let out = run("dns", &["query", "example.test", "DS", at, "-p", &port]);
    assert!(out.status.success(), "DS: {}", stderr(&out));
}

/// `dns serve --root-hints` whose root servers do not answer says so in its log at start,
/// instead of leaving every query to fail with SERVFAIL seconds later.
#[test]
fn unreachable_root_hints_are_logged() {
    use std::io::BufRead;
    let hints = lab_dns_dir().join("root.hints");
    let port = free_port().to_string();
    let mut cmd = std::process::Command::new(protolab_tests::bin("dns"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "300ms",
        "--port",
        &port,
    ])
    .arg("--root-hints")
    .arg(&hints)
    .env("RUST_LOG", "warn")
    .stderr(std::process::Stdio::piped());
    let mut proc = protolab_tests::Proc::spawn("dns serve", &mut cmd);
    let stderr = proc.child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a log line about the root hints");
    assert!(line.contains("WARN"), "{line}");
    // Standard error is a pipe here: no colour escape codes in the log.
    assert!(
        !line.contains('\x1b'),
        "escape codes in a log file: {line:?}"
    );
    assert!(
        line.contains("no root server from --root-hints answers"),
        "{line}"
    );
    assert!(
        line.contains(&format!("127.0.0.1:{port}")),
        "names where it asked: {line}"
    );
    assert!(line.contains("--port"), "names the fix: {line}");
}

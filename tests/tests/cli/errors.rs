//! One test per error class of docs/cli.md: usage errors exit 2 when the command line is read;
//! runtime failures exit 1 with one line (and a hint) and never a backtrace; a target that does
//! not answer exits 9 and the message names the transport that was tried.

use std::net::{TcpListener, UdpSocket};

use protolab_tests::Server;

use crate::{run, stderr, stdout};

/// Asserts the one-line form: `error: ...`, an optional `hint: ...`, nothing else.
fn one_line(what: &str, err: &str) {
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        !lines.is_empty() && lines[0].starts_with("error: "),
        "{what}: {err}"
    );
    assert!(lines.len() <= 2, "{what}: more than error and hint: {err}");
    if let Some(hint) = lines.get(1) {
        assert!(hint.starts_with("hint: "), "{what}: {err}");
    }
    assert!(!err.contains("Stack backtrace"), "{what}: {err}");
    assert!(!err.contains("Caused by"), "{what}: {err}");
}

#[test]
fn nonsense_is_refused_when_the_command_line_is_read() {
    let cases: &[(&str, &[&str])] = &[
        (
            "greet",
            &["bench", "--server", "127.0.0.1:9", "--connections", "0"],
        ),
        ("greet", &["serve", "--max-connections", "0"]),
        ("udpecho", &["probe", "127.0.0.1:9", "--count", "0"]),
        ("udpecho", &["serve", "--max-connections", "0"]),
        ("udpecho", &["serve", "--workers", "0"]),
        // A bare number would be 10 bit/s to impair and 10 packets/s to udpecho.
        (
            "impair",
            &["udp", "--forward", "127.0.0.1:9", "--rate", "10"],
        ),
        (
            "impair",
            &["udp", "--forward", "127.0.0.1:9", "--rate", "1000pps"],
        ),
        (
            "dns",
            &["query", "example.test", "+nocrypto", "@127.0.0.1:9"],
        ),
        ("dns", &["query", "example.test", "BOGUS", "@127.0.0.1:9"]),
        ("subnet", &["10.0.0.1/33"]),
        // A Maildir that cannot exist: were the refusal lost, the server would fail there
        // instead of writing into the working folder.
        (
            "smtp",
            &[
                "serve",
                "--maildir",
                "/proc/none/md",
                "--max-connections",
                "0",
            ],
        ),
        (
            "smtp",
            &[
                "serve",
                "--maildir",
                "/proc/none/md",
                "--max-recipients",
                "0",
            ],
        ),
        (
            "smtp",
            &["serve", "--maildir", "/proc/none/md", "--require-tls"],
        ),
        (
            "smtp",
            &[
                "send", "--from", "a@x.test", "--to", "b@x.test", "--cacert", "ca.pem",
            ],
        ),
        ("http", &["serve", "--max-connections", "0"]),
    ];
    for (bin, args) in cases {
        let out = run(bin, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bin} {args:?}: {err}");
        assert!(err.starts_with("error: "), "{bin} {args:?}: {err}");
        assert!(stdout(&out).is_empty(), "{bin} {args:?}: nothing on stdout");
    }
    // Where a dig form has no equivalent, the error names the flags there are.
    let err = stderr(&run("dns", &["query", "example.test", "+nocrypto"]));
    assert!(err.contains("+short") && err.contains("--help"), "{err}");
    let err = stderr(&run(
        "impair",
        &["udp", "--forward", "127.0.0.1:9", "--rate", "1000pps"],
    ));
    assert!(err.contains("udpecho probe"), "{err}");
}

/// "Port in use" said one way by every server: the port, the usual cause, the fix.
#[test]
fn a_port_in_use_is_one_line_in_one_wording() {
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let port = tcp.local_addr().expect("addr").port();
    let udp = UdpSocket::bind(("127.0.0.1", port)).ok();
    let busy = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir
        .path()
        .join("maildir")
        .to_str()
        .expect("utf-8")
        .to_owned();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("greet", vec!["serve", "--listen", &busy]),
        ("udpecho", vec!["serve", "--listen", &busy]),
        (
            "impair",
            vec!["udp", "--forward", "127.0.0.1:9", "--listen", &busy],
        ),
        (
            "dns",
            vec![
                "zone",
                "--listen",
                &busy,
                "--zone",
                "examples/dns/example.test.zone",
            ],
        ),
        (
            "smtp",
            vec!["serve", "--listen", &busy, "--maildir", &maildir],
        ),
        ("http", vec!["serve", "--listen", &busy]),
        ("http", vec!["proxy", "--listen", &busy]),
        ("udpecho", vec!["sink", "--listen", &busy]),
    ];
    for (bin, args) in cases {
        if bin == "impair" && udp.is_none() {
            continue;
        }
        let out = std::process::Command::new(protolab_tests::bin(bin))
            .args(&args)
            .current_dir(protolab_tests::workspace_root())
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LOG", "error")
            .output()
            .expect("run");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{bin}: {err}");
        one_line(bin, &err);
        assert!(
            err.contains(&format!("port {port} is already in use")),
            "{bin}: {err}"
        );
        assert!(
            err.contains("hint: another program holds it"),
            "{bin}: {err}"
        );
    }
}

/// `greet hello` against a TCP server that never speaks: exit 9, and the error says TCP (it
/// used to suggest `greet serve --udp`).
#[test]
fn a_silent_server_is_no_answer_over_the_transport_used() {
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let out = run("greet", &["hello", "--server", &addr, "--timeout", "300ms"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(9), "{err}");
    one_line("greet hello", &err);
    assert!(
        err.starts_with(&format!("error: no reply from tcp {addr}")),
        "{err}"
    );
    assert!(!err.contains("over UDP"), "{err}");

    // Over UDP, to a port where nothing listens: the host says so at once.
    let free = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let udp_addr = free.local_addr().expect("addr").to_string();
    drop(free);
    let out = run(
        "greet",
        &["hello", "--udp", "--server", &udp_addr, "--timeout", "2s"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(9), "{err}");
    one_line("greet hello --udp", &err);
    assert!(err.contains(&format!("udp {udp_addr}")), "{err}");
    assert!(err.contains("greet serve --udp"), "{err}");

    // udpecho probe and dns query: the same status for the same situation.
    let out = run("udpecho", &["probe", &udp_addr, "--count", "3", "--quiet"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    one_line("udpecho probe", &stderr(&out));
    let out = run(
        "dns",
        &[
            "query",
            "example.test",
            &format!("@{udp_addr}"),
            "+time=1",
            "+tries=1",
        ],
    );
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    one_line("dns query", &stderr(&out));
}

/// `greet hello` talks to `greet serve --framing raw` too, as the README puts them side by side.
#[test]
fn hello_works_against_raw_framing() {
    let srv = Server::start(
        "greet",
        &["serve", "--listen", "127.0.0.1:0", "--framing", "raw"],
        1,
    );
    let addr = srv.addr("tcp").to_string();
    let out = run("greet", &["hello", "--server", &addr, "Ada", "Linus"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Welcome!\nHello, Ada!\nHello, Linus!\n");
}

/// A zone file with mistakes: every one named as FILE:LINE, in one line, exit 1.
#[test]
fn zone_file_problems_name_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad1.zone");
    std::fs::write(
        &path,
        "$ORIGIN bad.test.\nwww A 192.0.2.1\n@ 3600 IN SOA ns admin 1 2 3 4 5\nfoo 3600 IN BOGUS x\n",
    )
    .expect("write zone");
    let out = std::process::Command::new(protolab_tests::bin("dns"))
        .args(["zone", "--listen", "127.0.0.1:0", "--zone", "bad1.zone"])
        .current_dir(dir.path())
        .env("RUST_LOG", "error")
        .output()
        .expect("run dns zone");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    one_line("dns zone", &err);
    assert!(
        err.starts_with("error: bad1.zone:2: record has no TTL and no $TTL is set; bad1.zone:4: unknown record type BOGUS"),
        "{err}"
    );
}

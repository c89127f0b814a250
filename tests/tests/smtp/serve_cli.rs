//! `smtp serve` as an operator runs it: shutdown by signals, a Maildir it cannot write, and its
//! help.

use std::io::{BufRead, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use protolab_tests::{Proc, run_ok};

use crate::common::{Raw, Smtp, Tmpfs};

/// Waits until the server has stopped accepting (its listener is closed), which it does as soon
/// as it has seen the first signal.
fn wait_until_refused(addr: SocketAddr) {
    for _ in 0..500 {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("smtp serve still accepts connections on {addr} after SIGINT");
}

#[test]
fn first_sigint_lets_a_message_in_progress_finish() {
    // A drain far longer than the test: the server can only exit because the session ended.
    let mut smtp = Smtp::start(&["--drain-timeout", "10m"]);
    let mut c = Raw::greeted(smtp.addr);
    c.begin("a@b.test", "c@d.test");
    c.send(b"Subject: drained\r\n\r\nfirst half\r\n");
    smtp.server.proc.signal(libc::SIGINT);
    wait_until_refused(smtp.addr);
    c.send(b"second half\r\n.\r\n");
    let stored = c.reply();
    assert!(
        stored.starts_with("250 2.0.0 OK: queued as "),
        "a message finished while draining: {stored:?}"
    );
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 mx.test closing connection\r\n");
    let status = smtp.server.proc.wait_for(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "smtp serve did not exit once its last session ended: {status:?}"
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].message,
        b"Subject: drained\r\n\r\nfirst half\r\nsecond half\r\n"
    );
}

#[test]
fn second_sigint_exits_at_once() {
    let mut smtp = Smtp::start(&["--drain-timeout", "10m"]);
    let mut c = Raw::greeted(smtp.addr);
    c.begin("a@b.test", "c@d.test");
    c.send(b"Subject: cut\r\n\r\nnever finished\r\n");
    smtp.server.proc.signal(libc::SIGINT);
    wait_until_refused(smtp.addr);
    smtp.server.proc.signal(libc::SIGINT);
    // Without the second signal the server would wait ten minutes for this session.
    let status = smtp.server.proc.wait_for(Duration::from_secs(60));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(130),
        "a second SIGINT must exit at once with 130"
    );
    assert!(c.closed(), "the session outlived the process");
    assert!(
        smtp.messages().is_empty(),
        "an unfinished message was stored"
    );
}

/// Starts `smtp serve --maildir path` with `extra` arguments and returns its exit code and
/// standard error, failing at once if it starts listening.
fn serve_must_not_start(maildir: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(protolab_tests::bin("smtp"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--maildir"])
        .arg(maildir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped());
    let mut proc = Proc::spawn("smtp serve", &mut cmd);
    let mut line = String::new();
    proc.stdout().read_line(&mut line).expect("read stdout");
    assert_eq!(
        line,
        "",
        "smtp serve started although it must refuse --maildir {} {extra:?}",
        maildir.display()
    );
    let status = proc.wait_for(Duration::from_secs(30));
    let mut stderr = String::new();
    proc.child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status.and_then(|s| s.code()), stderr)
}

#[test]
fn serve_fails_at_start_when_the_maildir_cannot_be_written() {
    // Root writes through permissions, so the folders are made unwritable for everyone: a
    // read-only mount, and a path under a regular file.
    let disk = Tmpfs::mount("1m");
    let read_only = disk.path.join("maildir");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(read_only.join(sub)).unwrap();
    }
    disk.remount_read_only();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let under_file = file.join("maildir");
    for (maildir, why) in [
        (&read_only, "Read-only file system"),
        (&under_file, "Not a directory"),
    ] {
        let (code, stderr) = serve_must_not_start(maildir, &[]);
        assert_eq!(
            code,
            Some(1),
            "exit code for {}: {stderr}",
            maildir.display()
        );
        assert_eq!(stderr.lines().count(), 1, "one line of error: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: cannot use --maildir {}: ",
                maildir.display()
            )) && stderr.contains(why),
            "{stderr}"
        );
    }
}

#[test]
fn serve_refuses_a_hostname_that_would_break_received_headers() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["mx.test\r\nX-Evil: 1", "mx\x1btest", "two words"] {
        let (code, stderr) = serve_must_not_start(&dir.path().join("md"), &["--hostname", name]);
        assert_eq!(code, Some(2), "--hostname {name:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line of error: {stderr}");
        assert!(stderr.starts_with("error: --hostname: "), "{stderr}");
    }
}

#[test]
fn serve_help_names_the_timeouts_and_has_examples() {
    let help = run_ok(Command::new(protolab_tests::bin("smtp")).args(["serve", "--help"]));
    for want in ["--idle-timeout", "--drain-timeout", "Examples:"] {
        assert!(help.contains(want), "{want} missing from:\n{help}");
    }
    // The old name still works (limits::idle_timeout_is_421_and_other_clients_carry_on) but is
    // not advertised.
    assert!(!help.contains("--timeout"), "{help}");
}

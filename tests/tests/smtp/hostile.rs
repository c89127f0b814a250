//! Hostile input over real sockets: a full disk, control characters meant to forge stored
//! headers, header injection through `smtp send`'s arguments, and a reader that closes stdout.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use crate::common::{Raw, Smtp, Tmpfs, files_in};

/// True when `bytes` hold a CR not followed by LF, or a NUL: what a forged header needs.
fn has_bare_cr_or_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
        || bytes
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
}

#[test]
fn full_disk_gets_452_leaves_tmp_empty_and_the_next_message_is_stored() {
    // Declared first, so it is unmounted last, after the server has been stopped.
    let disk = Tmpfs::mount("2m");
    let smtp = Smtp::start_in(disk.path.join("maildir"), &[]);
    let mut c = Raw::greeted(smtp.addr);
    c.begin("a@b.test", "c@d.test");
    // 3.12 MB into 2 MiB: a write fails part of the way through.
    let line = [b'x'; 78];
    let mut chunk = Vec::new();
    for _ in 0..1000 {
        chunk.extend_from_slice(&line);
        chunk.extend_from_slice(b"\r\n");
    }
    for _ in 0..39 {
        c.send(&chunk);
    }
    c.send(b".\r\n");
    let full = c.reply();
    assert!(
        full.starts_with("451 ") || full.starts_with("452 "),
        "a message the disk cannot hold: {full:?}"
    );
    let left = files_in(&smtp.maildir.join("tmp"));
    assert!(
        left.is_empty(),
        "the failed message was left in tmp/ (name, octets): {left:?}"
    );
    // Space is free again at once: the next message is stored without a restart.
    c.begin("a@b.test", "c@d.test");
    c.send(b"Subject: small\r\n\r\nfits\r\n.\r\n");
    let next = c.reply();
    assert!(
        next.starts_with("250 2.0.0 OK: queued as "),
        "the message after a full disk: {next:?}"
    );
    let stored = smtp.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message, b"Subject: small\r\n\r\nfits\r\n");
    assert_eq!(smtp.tmp_files(), 0);
    assert_eq!(
        full,
        "452 4.3.1 insufficient system storage; try again later\r\n"
    );
}

#[test]
fn control_characters_in_addresses_and_helo_are_refused_and_never_stored() {
    let smtp = Smtp::start(&[]);
    let mut c = Raw::greeted(smtp.addr);
    let mut replies = Vec::new();
    replies.push(c.cmd("EHLO c\0X-Evil: 1"));
    replies.push(c.cmd("HELO c\0X-Evil: 1"));
    assert!(c.cmd("EHLO client.test").starts_with("250-mx.test"));
    // Each envelope in its own transaction; whatever the server accepts is sent a message.
    let envelopes: [(&str, &str); 4] = [
        ("a@x.test", "\"v\rX-Injected: yes\"@y.test"),
        ("a@x.test", "v@[1.2.3.4\rX-Evil: 1]"),
        ("\"a\0b\"@x.test", "ok@y.test"),
        ("a@x.test", "\"tab\there\"@y.test"),
    ];
    for (from, to) in envelopes {
        // One command at a time: a refused one ends the transaction (and counts one error).
        let mail = c.cmd(&format!("MAIL FROM:<{from}>"));
        let rcpt = if mail.starts_with("250") {
            c.cmd(&format!("RCPT TO:<{to}>"))
        } else {
            "-".to_owned()
        };
        if rcpt.starts_with("250") {
            assert!(c.cmd("DATA").starts_with("354"));
            c.send(b"Subject: hostile\r\n\r\nx\r\n.\r\n");
            c.reply();
        }
        assert_eq!(c.cmd("RSET"), "250 2.0.0 OK\r\n");
        replies.push(mail);
        replies.push(rcpt);
    }
    for name in std::fs::read_dir(smtp.maildir.join("new")).unwrap() {
        let path = name.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !has_bare_cr_or_nul(&bytes),
            "{} holds a bare CR or a NUL: {:?}",
            path.display(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
    }
    assert_eq!(
        replies,
        [
            "501 5.5.4 syntax: EHLO your.host.name (no control characters)\r\n",
            "501 5.5.4 syntax: HELO your.host.name (no control characters)\r\n",
            "250 2.1.0 sender OK\r\n",
            "501 5.1.3 bad address: CR, LF, NUL and other control characters are not allowed\r\n",
            "250 2.1.0 sender OK\r\n",
            "501 5.1.3 bad address: CR, LF, NUL and other control characters are not allowed\r\n",
            "501 5.1.7 bad address: CR, LF, NUL and other control characters are not allowed\r\n",
            "-",
            "250 2.1.0 sender OK\r\n",
            "501 5.1.3 bad address: CR, LF, NUL and other control characters are not allowed\r\n",
        ]
    );
    // The session is still usable, and a clean message is stored.
    c.begin("a@x.test", "ok@y.test");
    c.send(b"Subject: clean\r\n\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 OK"));
    let stored = smtp.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].delivered_to, ["ok@y.test"]);
    assert!(
        stored[0]
            .received
            .starts_with("Received: from client.test ")
    );
}

#[test]
fn smtp_send_refuses_cr_and_lf_in_headers_and_addresses_and_sends_nothing() {
    let smtp = Smtp::start(&[]);
    let server = smtp.addr.to_string();
    let cases: [(&str, &str); 5] = [
        ("--subject", "hi\r\nBcc: evil@x.test"),
        ("--subject", "hi\nBcc: evil@x.test"),
        ("--from", "a@x.test>\r\nRCPT TO:<evil@x.test"),
        ("--to", "b@x.test\r\nBcc: evil@x.test"),
        ("--helo", "c.test\r\nX-Evil: 1"),
    ];
    for (option, value) in cases {
        let mut args = vec!["send", "--server", &server, option, value];
        for (default, v) in [("--from", "a@x.test"), ("--to", "b@x.test")] {
            if default != option {
                args.extend([default, v]);
            }
        }
        let out = Command::new(protolab_tests::bin("smtp"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{option} {value:?} must be refused as a usage error; stderr: {stderr}"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "one line of error for {option}: {stderr}"
        );
        assert!(
            stderr.starts_with(&format!("error: {option}: ")) && stderr.contains("CR"),
            "{stderr}"
        );
    }
    assert!(
        smtp.messages().is_empty(),
        "a message was sent with injected headers: {:?}",
        smtp.messages()
    );
}

/// Runs `smtp` with `args` and its standard output a pipe whose reading end is already closed.
fn run_with_closed_stdout(args: &[&str]) -> std::process::Output {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) writes two descriptors into the array of two it is given.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are fresh from pipe(2) and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Command::new(protolab_tests::bin("smtp"))
        .args(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_is_no_panic() {
    let smtp = Smtp::start(&[]);
    let mut c = Raw::greeted(smtp.addr);
    c.begin("a@x.test", "b@y.test");
    c.send(b"Subject: one\r\n\r\n.\r\n");
    assert!(c.reply().starts_with("250 "));
    let id = smtp.messages()[0].name.clone();
    let md = smtp.maildir.to_str().unwrap();
    let server = smtp.addr.to_string();
    let runs: [&[&str]; 4] = [
        &["list", md],
        &["list", md, "--json"],
        &["show", md, &id],
        &[
            "send", "--server", &server, "--from", "a@x.test", "--to", "b@y.test",
        ],
    ];
    for args in runs {
        let out = run_with_closed_stdout(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "smtp {args:?} with stdout closed: {:?} {stderr}",
            out.status
        );
    }
}

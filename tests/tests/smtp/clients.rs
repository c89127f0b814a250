//! Real SMTP clients against `smtp serve`: every message lands in new/ byte-exact after
//! unstuffing, with its envelope kept in Return-Path: and Delivered-To:.

use std::io::Write;
use std::process::{Command, Stdio};

use protolab_tests::{require_peer, run_ok};

use crate::common::{Smtp, crlf};

/// A message whose lines starting with dots must survive stuffing and unstuffing.
fn dotted_message(subject: &str) -> Vec<u8> {
    crlf(&format!(
        "From: <a@example.test>\nTo: <b@example.test>\nSubject: {subject}\nDate: Wed, 25 Nov 2026 04:00:00 +0000\n\
         Message-ID: <{subject}@example.test>\n\n.leading dot\n..two dots\n.\n. \nplain line\n"
    ))
}

/// Sends `msg` through swaks from a@example.test to `to` (comma-separated), with `extra`
/// options, and returns swaks's transcript.
fn swaks(smtp: &Smtp, to: &str, extra: &[&str], msg: &[u8]) -> String {
    let swaks = require_peer("swaks", "swaks");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, msg).unwrap();
    let port = smtp.port();
    let data = format!("@{}", file.display());
    let mut args = vec![
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "a@example.test",
        "--to",
        to,
        "--data",
        &data,
    ];
    args.extend_from_slice(extra);
    run_ok(Command::new(swaks).args(args))
}

#[test]
fn swaks_plain() {
    let smtp = Smtp::start(&[]);
    let msg = dotted_message("swaks-plain");
    let out = swaks(&smtp, "b@example.test", &[], &msg);
    assert!(out.contains("<-  250 2.0.0 OK: queued as "), "{out}");
    let stored = smtp.messages();
    assert_eq!(stored.len(), 1);
    // swaks always sends CRLF before its final ".", which adds one empty line to what it read.
    let mut expected = msg.clone();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(
        String::from_utf8_lossy(&stored[0].message),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(stored[0].return_path, "<a@example.test>");
    assert_eq!(stored[0].delivered_to, vec!["b@example.test"]);
    assert!(
        stored[0].received.contains("with ESMTP id"),
        "{}",
        stored[0].received
    );
}

#[test]
fn swaks_pipeline_with_two_recipients() {
    let smtp = Smtp::start(&[]);
    let msg = dotted_message("swaks-pipeline");
    let out = swaks(
        &smtp,
        "b@example.test,c@example.test",
        &["--pipeline"],
        &msg,
    );
    assert!(out.contains("PIPELINING"), "{out}");
    assert!(out.contains("250 2.0.0 OK: queued as "), "{out}");
    let stored = smtp.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].delivered_to,
        vec!["b@example.test", "c@example.test"]
    );
    let mut expected = msg;
    expected.extend_from_slice(b"\r\n");
    assert_eq!(
        String::from_utf8_lossy(&stored[0].message),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn swaks_ten_megabyte_body_streams_to_disk() {
    let smtp = Smtp::start(&[]);
    let mut msg = crlf("From: <a@example.test>\nSubject: big\n\n");
    let mut i = 0u64;
    while msg.len() < 10 * 1000 * 1000 {
        // Every seventh line starts with a dot, so stuffing runs all through the message.
        let lead = if i % 7 == 0 { "." } else { "" };
        msg.extend_from_slice(
            format!("{lead}line {i:08} the quick brown fox jumps over the lazy dog\r\n").as_bytes(),
        );
        i += 1;
    }
    swaks(&smtp, "b@example.test", &["--silent", "2"], &msg);
    let stored = smtp.messages();
    assert_eq!(stored.len(), 1, "the 10 MB message was not stored");
    let mut expected = msg;
    expected.extend_from_slice(b"\r\n");
    assert_eq!(stored[0].message.len(), expected.len());
    assert!(
        stored[0].message == expected,
        "the 10 MB message differs from what was sent"
    );
    assert_eq!(smtp.tmp_files(), 0);
}

const SMTPLIB: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
with smtplib.SMTP("127.0.0.1", port) as s:
    s.ehlo("python.example.test")
    assert s.has_extn("smtputf8") and s.has_extn("8bitmime") and s.has_extn("pipelining")
    body8 = "From: <a@example.test>\r\nSubject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln\r\n.dot\r\n".encode()
    refused = s.sendmail("a@example.test", ["b@example.test"], body8, mail_options=["BODY=8BITMIME"])
    assert refused == {}, refused
    bodyu = "From: <jörg@exämple.test>\r\nSubject: utf8\r\n\r\nsmtputf8 body\r\n".encode()
    refused = s.sendmail("jörg@exämple.test", ["zoë@exämple.test"], bodyu, mail_options=["SMTPUTF8"])
    assert refused == {}, refused
    # smtplib sends lowercase verbs: "mail FROM:", "rcpt TO:", "data", and "size=" when SIZE is offered.
    code, _ = s.docmd("noop")
    assert code == 250
    code, msg = s.docmd("vrfy", "someone")
    assert code == 252, (code, msg)
    code, msg = s.docmd("help")
    assert code == 214, (code, msg)
print("ok")
"#;

#[test]
fn python_smtplib_8bitmime_smtputf8_lowercase() {
    let python = require_peer("python3", "python3");
    let smtp = Smtp::start(&[]);
    let out = run_ok(Command::new(python).args(["-c", SMTPLIB, &smtp.port()]));
    assert_eq!(out.trim(), "ok");
    let mut stored = smtp.messages();
    assert_eq!(stored.len(), 2);
    // Two messages in one session: order them by their sender rather than trust file names.
    stored.sort_by_key(|m| m.return_path != "<a@example.test>");
    assert_eq!(
        stored[0].message,
        "From: <a@example.test>\r\nSubject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln\r\n.dot\r\n".as_bytes()
    );
    assert_eq!(stored[1].return_path, "<jörg@exämple.test>");
    assert_eq!(stored[1].delivered_to, vec!["zoë@exämple.test"]);
    assert!(
        stored[1].received.contains("with UTF8SMTP"),
        "{}",
        stored[1].received
    );
    assert_eq!(
        stored[1].message,
        "From: <jörg@exämple.test>\r\nSubject: utf8\r\n\r\nsmtputf8 body\r\n".as_bytes()
    );
}

#[test]
fn curl_upload() {
    let curl = require_peer("curl", "curl");
    let smtp = Smtp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    let msg = dotted_message("curl");
    std::fs::write(&file, &msg).unwrap();
    run_ok(Command::new(curl).args([
        "-sS",
        &format!("smtp://127.0.0.1:{}/client.example.test", smtp.port()),
        "--mail-from",
        "a@example.test",
        "--mail-rcpt",
        "b@example.test",
        "--mail-rcpt",
        "c@example.test",
        "--upload-file",
        file.to_str().unwrap(),
    ]));
    let stored = smtp.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&stored[0].message),
        String::from_utf8_lossy(&msg)
    );
    assert_eq!(
        stored[0].delivered_to,
        vec!["b@example.test", "c@example.test"]
    );
}

#[test]
fn msmtp_from_stdin() {
    let msmtp = require_peer("msmtp", "msmtp");
    let smtp = Smtp::start(&[]);
    let msg = dotted_message("msmtp");
    let mut child = Command::new(msmtp)
        .args([
            "--host=127.0.0.1",
            &format!("--port={}", smtp.port()),
            "--auth=off",
            "--tls=off",
            "--from=a@example.test",
            "b@example.test",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    // msmtp reads LF line endings and sends CRLF, stuffing dots itself.
    let lf = String::from_utf8(msg.clone())
        .unwrap()
        .replace("\r\n", "\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lf.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "msmtp failed");
    let stored = smtp.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&stored[0].message),
        String::from_utf8_lossy(&msg)
    );
    assert_eq!(stored[0].return_path, "<a@example.test>");
}

#[test]
fn smtp_source_100_messages_over_10_sessions() {
    let source = require_peer("smtp-source", "postfix");
    let smtp = Smtp::start(&[]);
    run_ok(Command::new(source).args([
        "-s",
        "10",
        "-m",
        "100",
        "-l",
        "1024",
        "-f",
        "src@example.test",
        "-t",
        "dst@example.test",
        &format!("127.0.0.1:{}", smtp.port()),
    ]));
    let stored = smtp.messages();
    assert_eq!(stored.len(), 100);
    let body_of = |m: &[u8]| {
        let at = m
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header/body split")
            + 4;
        m[at..].to_vec()
    };
    let first_body = body_of(&stored[0].message);
    assert!(
        first_body.len() >= 1024,
        "body of {} octets",
        first_body.len()
    );
    for m in &stored {
        assert_eq!(m.return_path, "<src@example.test>");
        assert_eq!(m.delivered_to, vec!["dst@example.test"]);
        assert!(
            m.message
                .starts_with(b"From: <src@example.test>\r\nTo: <dst@example.test>\r\n")
        );
        assert_eq!(body_of(&m.message), first_body, "{} differs", m.name);
    }
    assert_eq!(smtp.tmp_files(), 0);
}

#[test]
fn smtp_send_list_show() {
    let smtp = Smtp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.txt");
    std::fs::write(&body, "first line\n.dotted\n").unwrap();
    let out = run_ok(Command::new(protolab_tests::bin("smtp")).args([
        "send",
        "--server",
        &smtp.addr.to_string(),
        "--from",
        "a@example.test",
        "--to",
        "b@example.test",
        "--subject",
        "via smtp send",
        "--body-file",
        body.to_str().unwrap(),
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let id = report["id"].as_str().expect("id in the report").to_owned();
    let md = smtp.maildir.to_str().unwrap();
    let list = run_ok(Command::new(protolab_tests::bin("smtp")).args(["list", md, "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["subject"], "via smtp send");
    assert_eq!(list[0]["delivered_to"][0], "b@example.test");
    let shown = run_ok(Command::new(protolab_tests::bin("smtp")).args(["show", md, &id[..12]]));
    assert!(
        shown.ends_with("\r\n\r\nfirst line\r\n.dotted\r\n"),
        "{shown:?}"
    );
}

#[test]
fn serve_reports_its_counters_as_json_at_shutdown() {
    use std::io::BufRead;
    let mut smtp = Smtp::start(&["--json"]);
    run_ok(Command::new(protolab_tests::bin("smtp")).args([
        "send",
        "--server",
        &smtp.addr.to_string(),
        "--from",
        "a@example.test",
        "--to",
        "b@example.test",
    ]));
    let mut c = crate::common::Raw::greeted(smtp.addr);
    assert!(c.cmd("FROB").starts_with("500 "));
    drop(c);
    smtp.server.proc.signal(libc::SIGTERM);
    let mut line = String::new();
    smtp.server.stdout.read_line(&mut line).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(report["stats"]["messages_stored"], 1);
    assert_eq!(report["stats"]["protocol_errors"], 1);
    assert_eq!(report["sessions"], 2);
    let status = smtp
        .server
        .proc
        .wait_for(std::time::Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "smtp serve did not exit cleanly: {status:?}"
    );
}

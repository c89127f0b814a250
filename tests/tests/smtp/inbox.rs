//! The web inbox over real sockets: `smtp serve --http` with swaks delivering, and `smtp web`
//! over a Maildir written beforehand. Each endpoint of the Mailpit-compatible API, the event
//! stream, the HTML part's confinement and basic authentication.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use protolab_tests::{Server, require_peer, run_ok};
use serde_json::Value;

/// `smtp serve --http` on loopback ports chosen by the kernel, with a fresh Maildir.
struct Inbox {
    server: Server,
    smtp: SocketAddr,
    http: SocketAddr,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(extra: &[&str]) -> Inbox {
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("maildir");
    let mut cmd = Command::new(protolab_tests::bin("smtp"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--maildir",
        maildir.to_str().expect("utf-8"),
        "--hostname",
        "mx.test",
        "--http",
        "127.0.0.1:0",
    ])
    .args(extra)
    .env("RUST_LOG", "warn");
    let server = Server::start_cmd("smtp serve --http", cmd, 2);
    Inbox {
        smtp: server.addr("tcp"),
        http: server.addr("http"),
        server,
        maildir,
        _dir: dir,
    }
}

/// One HTTP/1.1 exchange on a fresh connection: (status, head, body).
fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
    extra: &str,
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect to the inbox");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    s.write_all(body).expect("send body");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the response");
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let status = head[9..12].parse().expect("status code");
    (status, head, out[end + 4..].to_vec())
}

fn get_json(addr: SocketAddr, target: &str) -> Value {
    let (status, head, body) = http(addr, "GET", target, b"", "");
    assert_eq!(status, 200, "GET {target}: {head}");
    serde_json::from_slice(&body).expect("JSON")
}

fn swaks(smtp: SocketAddr, from: &str, extra: &[&str]) {
    let swaks = require_peer("swaks", "swaks");
    let port = smtp.port().to_string();
    let mut args = vec![
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        from,
        "--to",
        "bob@example.test",
        "--helo",
        "client.example.test",
        "--pipeline",
    ];
    args.extend_from_slice(extra);
    run_ok(Command::new(swaks).args(args));
}

/// Polls the list until it holds `n` messages (the index follows deliveries through a watch).
fn wait_total(addr: SocketAddr, n: u64) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(addr, "/api/v1/messages");
        if v["total"] == n {
            return v;
        }
        assert!(Instant::now() < until, "the list never reached {n}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn files(dir: &Path, folder: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(folder))
        .expect("read folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn api_lists_gets_searches_marks_and_deletes() {
    let inbox = start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let attachment = dir.path().join("report.bin");
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&attachment, &payload).expect("write attachment");
    swaks(
        inbox.smtp,
        "alice@example.test",
        &["--header", "Subject: the invoice", "--body", "Please pay."],
    );
    swaks(
        inbox.smtp,
        "carol@example.test",
        &[
            "--header",
            "Subject: =?utf-8?q?r=C3=A9sum=C3=A9?=",
            "--attach-type",
            "application/octet-stream",
            "--attach-name",
            "report.bin",
            "--attach",
            &format!("@{}", attachment.display()),
        ],
    );
    let list = wait_total(inbox.http, 2);
    assert_eq!(list["unread"], 2);
    assert_eq!(list["count"], 2);
    let msgs = list["messages"].as_array().expect("messages");
    // Newest first, headers decoded, the attachment counted.
    assert_eq!(msgs[0]["Subject"], "résumé");
    assert_eq!(msgs[0]["From"]["Address"], "carol@example.test");
    assert_eq!(msgs[0]["Attachments"], 1);
    assert_eq!(msgs[1]["Subject"], "the invoice");
    assert_eq!(msgs[1]["To"][0]["Address"], "bob@example.test");
    assert_eq!(msgs[1]["Snippet"], "Please pay.");
    assert_eq!(msgs[1]["Read"], false);
    let on_disk = files(&inbox.maildir, "new");
    assert_eq!(on_disk.len(), 2);
    let size = std::fs::metadata(inbox.maildir.join("new").join(&on_disk[0]))
        .expect("stat")
        .len();
    assert_eq!(msgs[1]["Size"], size);
    assert_eq!(msgs[1]["ID"], on_disk[0]);
    let (first, second) = (
        msgs[1]["ID"].as_str().expect("id").to_owned(),
        msgs[0]["ID"].as_str().expect("id").to_owned(),
    );

    // Paging.
    let page = get_json(inbox.http, "/api/v1/messages?start=1&limit=1");
    assert_eq!(page["count"], 1);
    assert_eq!(page["start"], 1);
    assert_eq!(page["messages"][0]["ID"], first);

    // Search: fields and free text, all terms must match.
    let hits = get_json(
        inbox.http,
        "/api/v1/search?query=from%3Aalice+subject%3A%22invoice%22",
    );
    assert_eq!(hits["messages_count"], 1);
    assert_eq!(hits["messages"][0]["ID"], first);
    let none = get_json(
        inbox.http,
        "/api/v1/search?query=from%3Aalice+r%C3%A9sum%C3%A9",
    );
    assert_eq!(none["messages_count"], 0);
    let free = get_json(inbox.http, "/api/v1/search?query=RESUME+OR");
    assert_eq!(free["messages_count"], 0);
    let free = get_json(inbox.http, "/api/v1/search?query=r%C3%A9sum");
    assert_eq!(free["messages"][0]["ID"], second);

    // One message, `latest`, its attachment byte for byte, raw and headers.
    let m = get_json(inbox.http, "/api/v1/message/latest");
    assert_eq!(m["ID"], second);
    assert_eq!(m["Envelope"]["ReturnPath"], "carol@example.test");
    assert_eq!(m["Envelope"]["DeliveredTo"][0], "bob@example.test");
    assert!(
        m["Received"][0]
            .as_str()
            .expect("received")
            .contains("by mx.test (protolab-smtp)")
    );
    let att = &m["Attachments"][0];
    assert_eq!(att["FileName"], "report.bin");
    assert_eq!(att["Size"], payload.len());
    let part = att["PartID"].as_str().expect("part id");
    let (status, head, bytes) = http(
        inbox.http,
        "GET",
        &format!("/api/v1/message/{second}/part/{part}"),
        b"",
        "",
    );
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Disposition: attachment"), "{head}");
    assert_eq!(bytes, payload);
    // Opening a message marks it read: moved to cur/ with the S flag.
    assert_eq!(files(&inbox.maildir, "cur"), vec![format!("{second}:2,S")]);

    let m = get_json(inbox.http, &format!("/api/v1/message/{first}"));
    assert_eq!(m["Text"].as_str().expect("text").trim_end(), "Please pay.");
    assert_eq!(m["HTML"], "");
    assert_eq!(m["Attachments"].as_array().expect("array").len(), 0);
    let (status, _, raw) = http(
        inbox.http,
        "GET",
        &format!("/api/v1/message/{first}/raw"),
        b"",
        "",
    );
    assert_eq!(status, 200);
    let stored =
        std::fs::read(inbox.maildir.join("cur").join(format!("{first}:2,S"))).expect("read");
    assert_eq!(raw, stored);
    let h = get_json(inbox.http, &format!("/api/v1/message/{first}/headers"));
    assert_eq!(h["Subject"][0], "the invoice");
    assert_eq!(h["Return-Path"][0], "<alice@example.test>");

    // Unread again, then read through PUT.
    let (status, _, _) = http(
        inbox.http,
        "PUT",
        "/api/v1/messages",
        format!(r#"{{"IDs":["{first}"],"Read":false}}"#).as_bytes(),
        "Content-Type: application/json\r\n",
    );
    assert_eq!(status, 200);
    assert!(files(&inbox.maildir, "cur").contains(&format!("{first}:2,")));
    let list = get_json(inbox.http, "/api/v1/messages");
    assert_eq!(list["unread"], 1);

    // Unknown IDs and parts.
    assert_eq!(
        http(inbox.http, "GET", "/api/v1/message/nope", b"", "").0,
        404
    );
    assert_eq!(
        http(
            inbox.http,
            "GET",
            &format!("/api/v1/message/{first}/part/99"),
            b"",
            ""
        )
        .0,
        404
    );
    assert_eq!(
        http(inbox.http, "DELETE", "/api/v1/messages", b"{not json", "").0,
        400
    );

    // Delete one, then all: the files go.
    let (status, _, _) = http(
        inbox.http,
        "DELETE",
        "/api/v1/messages",
        format!(r#"{{"IDs":["{first}"]}}"#).as_bytes(),
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(files(&inbox.maildir, "cur"), vec![format!("{second}:2,S")]);
    assert_eq!(get_json(inbox.http, "/api/v1/messages")["total"], 1);
    let (status, _, _) = http(inbox.http, "DELETE", "/api/v1/messages", b"", "");
    assert_eq!(status, 200);
    assert!(files(&inbox.maildir, "cur").is_empty() && files(&inbox.maildir, "new").is_empty());
    assert_eq!(get_json(inbox.http, "/api/v1/messages")["total"], 0);
    drop(inbox.server);
}

#[test]
fn events_announce_new_mail_as_it_arrives() {
    let inbox = start(&[]);
    let mut s = TcpStream::connect(inbox.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut head = String::new();
    while line != "\r\n" {
        line.clear();
        r.read_line(&mut line).expect("head");
        head.push_str(&line);
    }
    assert!(head.contains("Content-Type: text/event-stream"), "{head}");
    // The stream is live once its first comment arrived.
    line.clear();
    r.read_line(&mut line).expect("first event");
    assert_eq!(line, ": connected\n");
    swaks(
        inbox.smtp,
        "alice@example.test",
        &["--header", "Subject: live one"],
    );
    let mut seen = String::new();
    while !seen.contains("live one") {
        line.clear();
        let n = r.read_line(&mut line).expect("an event before the timeout");
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&line);
    }
    assert!(seen.contains("event: new\ndata: {"), "{seen}");
    let name = files(&inbox.maildir, "new").remove(0);
    assert!(seen.contains(&format!("\"ID\":\"{name}\"")), "{seen}");
}

/// A message with a script, an event handler and a remote image, as a hostile sender writes it.
const HOSTILE: &str = "Return-Path: <mallory@example.test>\r\nDelivered-To: bob@example.test\r\n\
From: Mallory <mallory@example.test>\r\nTo: bob@example.test\r\n\
Subject: <script>alert(1)</script>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain words\r\n\
--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>hi</p><script>window.parent.marker=1</script><img src=x onerror=\"window.parent.marker=2\">\
<img src=\"http://198.18.0.9/x.png\">\r\n--b1--\r\n";

#[test]
fn web_serves_an_existing_maildir_and_confines_html() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("md");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(md.join(sub)).expect("mkdir");
    }
    let id = "1700000000.M000001P1Q0.test";
    std::fs::write(md.join("cur").join(format!("{id}:2,S")), HOSTILE).expect("write");
    let server = Server::start(
        "smtp",
        &[
            "web",
            "--maildir",
            md.to_str().expect("utf-8"),
            "--http",
            "127.0.0.1:0",
        ],
        1,
    );
    let addr = server.addr("http");
    let list = get_json(addr, "/api/v1/messages");
    assert_eq!(list["total"], 1);
    assert_eq!(list["unread"], 0);
    assert_eq!(list["messages"][0]["Subject"], "<script>alert(1)</script>");
    assert_eq!(list["messages"][0]["Read"], true);
    assert_eq!(list["messages"][0]["Created"], "2023-11-14T22:13:20Z");
    let m = get_json(addr, "/api/v1/message/latest");
    assert_eq!(m["RemoteResources"], 1);
    assert_eq!(m["Text"].as_str().expect("text").trim_end(), "plain words");
    assert!(m["HTML"].as_str().expect("html").contains("198.18.0.9"));

    let (status, head, body) = http(addr, "GET", &format!("/view/{id}.html"), b"", "");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Security-Policy: default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; sandbox"),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("<script>"));
    let (_, head, _) = http(addr, "GET", &format!("/view/{id}.html?images=1"), b"", "");
    assert!(head.contains("img-src data: cid: http: https:"), "{head}");

    // The page and its assets: no remote resource, no inline script, a policy of its own.
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let (status, head, body) = http(addr, "GET", path, b"", "");
        assert_eq!(status, 200, "{path}");
        assert!(head.contains(&format!("Content-Type: {kind}")), "{head}");
        assert!(
            head.contains("Content-Security-Policy: default-src 'self'"),
            "{head}"
        );
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path} names a remote resource"
        );
        assert!(!text.contains("innerHTML"), "{path} writes HTML");
    }
    let (_, _, page) = http(addr, "GET", "/", b"", "");
    assert!(String::from_utf8_lossy(&page).contains("sandbox=\"\""));

    // A file delivered by someone else appears (the watch of new/).
    std::fs::write(
        md.join("tmp").join("1700000001.M1P1Q1.test"),
        "Subject: late\r\n\r\nx\r\n",
    )
    .expect("write");
    std::fs::rename(
        md.join("tmp").join("1700000001.M1P1Q1.test"),
        md.join("new").join("1700000001.M1P1Q1.test"),
    )
    .expect("rename");
    let list = wait_total(addr, 2);
    assert_eq!(list["messages"][0]["Subject"], "late");
    // And one removed by someone else goes.
    std::fs::remove_file(md.join("new").join("1700000001.M1P1Q1.test")).expect("remove");
    wait_total(addr, 1);
    // `smtp list` agrees with the API.
    let listed = run_ok(Command::new(protolab_tests::bin("smtp")).args([
        "list",
        md.to_str().expect("utf-8"),
        "--json",
    ]));
    let listed: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed.as_array().expect("array").len(), 1);
    assert_eq!(listed[0]["subject"], "<script>alert(1)</script>");
}

#[test]
fn basic_auth_guards_the_inbox_and_is_required_off_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("md");
    let creds = dir.path().join("creds");
    std::fs::write(&creds, "user:s3cret\n").expect("write");
    let out = Command::new(protolab_tests::bin("smtp"))
        .args([
            "web",
            "--maildir",
            md.to_str().expect("utf-8"),
            "--http",
            "0.0.0.0:0",
        ])
        .output()
        .expect("run smtp web");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: --http 0.0.0.0:0") && err.contains("--http-auth"),
        "{err}"
    );

    let server = Server::start(
        "smtp",
        &[
            "web",
            "--maildir",
            md.to_str().expect("utf-8"),
            "--http",
            "127.0.0.1:0",
            "--http-auth",
            creds.to_str().expect("utf-8"),
        ],
        1,
    );
    let addr = server.addr("http");
    let (status, head, _) = http(addr, "GET", "/api/v1/messages", b"", "");
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate: Basic"), "{head}");
    let (status, _, _) = http(
        addr,
        "GET",
        "/api/v1/messages",
        b"",
        "Authorization: Basic dXNlcjp3cm9uZw==\r\n",
    );
    assert_eq!(status, 401);
    // base64("user:s3cret")
    let (status, _, _) = http(
        addr,
        "GET",
        "/api/v1/messages",
        b"",
        "Authorization: Basic dXNlcjpzM2NyZXQ=\r\n",
    );
    assert_eq!(status, 200);
}

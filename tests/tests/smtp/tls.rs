//! SMTP over TLS: STARTTLS (RFC 3207) and implicit TLS (RFC 8314) against real clients (swaks,
//! openssl s_client, curl, Python's smtplib, msmtp), testssl.sh's verdict, the STARTTLS command
//! injection defence, and `smtp send` refusing bad certificates in words.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use protolab_tests::{require_peer, run_ok, testssl};
use protolab_transport::tls::{self, LabCa, TlsConnector, Validity};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::common::{Smtp, Stored, crlf};

/// `smtp serve` with a lab CA made at start (`--tls-self-signed`), in a temporary folder.
struct TlsSmtp {
    smtp: Smtp,
    ca: PathBuf,
    dir: tempfile::TempDir,
}

impl TlsSmtp {
    fn start(extra: &[&str]) -> TlsSmtp {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        let mut args = vec!["--tls-self-signed", ca.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        let smtp = Smtp::start_in(dir.path().join("maildir"), &args);
        assert!(ca.exists(), "smtp serve did not write its lab CA");
        TlsSmtp { smtp, ca, dir }
    }

    fn ca(&self) -> &str {
        self.ca.to_str().expect("utf-8 path")
    }

    /// The one message stored, checked to have come over TLS.
    fn one_message_over_tls(&self) -> Stored {
        let stored = self.smtp.messages();
        assert_eq!(stored.len(), 1, "expected one message in new/");
        assert_received_over_tls(&stored[0]);
        stored.into_iter().next().expect("one message")
    }
}

fn assert_received_over_tls(m: &Stored) {
    assert!(m.received.contains(" with ESMTPS id "), "{}", m.received);
    assert!(
        m.received.contains("(using TLSv1.3 with cipher TLS13_")
            || m.received.contains("(using TLSv1.2 with cipher TLS_"),
        "{}",
        m.received
    );
}

fn message(subject: &str) -> Vec<u8> {
    crlf(&format!(
        "From: <a@example.test>\nTo: <b@example.test>\nSubject: {subject}\n\
         Message-ID: <{subject}@example.test>\n\nsent over TLS\n"
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Reads one whole reply (all its lines) from a buffered stream; empty at end of stream.
async fn reply<R: tokio::io::AsyncBufRead + Unpin>(rd: &mut R) -> String {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(20), rd.read_line(&mut line))
            .await
            .expect("a reply within 20 s")
            .expect("read reply");
        if n == 0 {
            return text;
        }
        text.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return text;
        }
    }
}

/// Connects to the plaintext port, says EHLO and STARTTLS (sending `after` in the same write as
/// STARTTLS), checks the 220 and runs the TLS handshake trusting `ca`.
async fn starttls(
    addr: std::net::SocketAddr,
    ca: &Path,
    after: &[u8],
) -> BufReader<tls::ClientStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut rd = BufReader::new(tcp);
    assert!(reply(&mut rd).await.starts_with("220 mx.test ESMTP"));
    rd.get_mut()
        .write_all(b"EHLO client.test\r\n")
        .await
        .unwrap();
    let ehlo = reply(&mut rd).await;
    assert!(ehlo.contains("\r\n250-STARTTLS\r\n"), "{ehlo}");
    let mut one_write = b"STARTTLS\r\n".to_vec();
    one_write.extend_from_slice(after);
    rd.get_mut().write_all(&one_write).await.unwrap();
    assert_eq!(reply(&mut rd).await, "220 2.0.0 ready to start TLS\r\n");
    assert!(
        rd.buffer().is_empty(),
        "the server sent more after its 220: {:?}",
        String::from_utf8_lossy(rd.buffer())
    );
    let connector = TlsConnector::from(tls::client_config(Some(ca)).expect("client config"));
    let name = tls::server_name("127.0.0.1").unwrap();
    let stream = tls::connect(&connector, name, rd.into_inner(), Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("TLS handshake: {}", tls::describe_error(&e)));
    BufReader::new(stream)
}

async fn say<S: tokio::io::AsyncWrite + tokio::io::AsyncRead + Unpin>(
    io: &mut BufReader<S>,
    line: &str,
) -> String {
    io.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    io.get_mut().flush().await.unwrap();
    reply(io).await
}

/// CVE-2011-0411: a man in the middle appends a command to the client's STARTTLS packet. Read
/// after the handshake, it would pass for a command the client sent over TLS. Here it is
/// thrown away: the first reply over TLS answers the client's own first command, and the
/// session starts over (MAIL needs a new EHLO).
#[test]
fn plaintext_pipelined_after_starttls_never_reaches_the_tls_session() {
    let s = TlsSmtp::start(&[]);
    runtime().block_on(async {
        let mut io = starttls(
            s.smtp.addr,
            &s.ca,
            b"EHLO injected.test\r\nMAIL FROM:<x@evil.test>\r\n",
        )
        .await;
        assert_eq!(
            say(&mut io, "NOOP").await,
            "250 2.0.0 OK\r\n",
            "the first reply over TLS must answer NOOP, not the injected EHLO"
        );
        assert_eq!(
            say(&mut io, "MAIL FROM:<a@example.test>").await,
            "503 5.5.1 say EHLO or HELO first\r\n",
            "no state from before STARTTLS survives it"
        );
        let ehlo = say(&mut io, "EHLO client.test").await;
        assert!(
            ehlo.starts_with("250-mx.test greets client.test\r\n"),
            "{ehlo}"
        );
        assert_eq!(
            say(&mut io, "QUIT").await,
            "221 2.0.0 mx.test closing connection\r\n"
        );
        let mut rest = Vec::new();
        let _ = io.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    });
}

/// Over TLS, STARTTLS is neither advertised nor accepted again.
#[test]
fn starttls_inside_tls_is_503_and_not_advertised() {
    let s = TlsSmtp::start(&[]);
    runtime().block_on(async {
        let mut io = starttls(s.smtp.addr, &s.ca, b"").await;
        let ehlo = say(&mut io, "EHLO client.test").await;
        assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
        assert_eq!(
            say(&mut io, "STARTTLS").await,
            "503 5.5.1 already in TLS\r\n"
        );
    });
}

/// Without a certificate, STARTTLS is not advertised and is answered 502.
#[test]
fn without_a_certificate_starttls_is_not_offered() {
    let smtp = Smtp::start(&[]);
    let mut raw = crate::common::Raw::greeted(smtp.addr);
    let ehlo = raw.cmd("EHLO client.test");
    assert!(ehlo.starts_with("250-mx.test"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(
        raw.cmd("STARTTLS"),
        "502 5.5.1 STARTTLS is not offered: this server has no certificate\r\n"
    );
}

/// `--require-tls`: MAIL before STARTTLS is 530 5.7.0 (RFC 3207 section 4); after STARTTLS the
/// same client's message is stored.
#[test]
fn require_tls_refuses_mail_before_starttls_with_530() {
    let s = TlsSmtp::start(&["--require-tls"]);
    let mut raw = crate::common::Raw::greeted(s.smtp.addr);
    assert!(raw.cmd("EHLO client.test").contains("250-STARTTLS\r\n"));
    assert_eq!(
        raw.cmd("MAIL FROM:<a@example.test>"),
        "530 5.7.0 must issue a STARTTLS command first\r\n"
    );
    assert_eq!(raw.cmd("QUIT"), "221 2.0.0 mx.test closing connection\r\n");
    assert!(s.smtp.messages().is_empty());
    let out = smtp_send(&s.smtp, &["--starttls", "--cacert", s.ca()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.one_message_over_tls();
}

fn smtp_send(smtp: &Smtp, extra: &[&str]) -> std::process::Output {
    let server = smtp.addr.to_string();
    Command::new(protolab_tests::bin("smtp"))
        .args(["send", "--server", &server, "--from", "a@example.test"])
        .args(["--to", "b@example.test", "--timeout", "20s"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run smtp send")
}

#[test]
fn smtp_send_starttls_and_implicit_tls() {
    let s = TlsSmtp::start(&["--tls-listen", "127.0.0.1:0"]);
    let out = smtp_send(&s.smtp, &["--starttls", "--cacert", s.ca()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(" over TLSv1.3 with cipher TLS13_"),
        "{stdout}"
    );
    s.one_message_over_tls();

    let tls_addr = s.smtp.server.addr("tls").to_string();
    let out = Command::new(protolab_tests::bin("smtp"))
        .args(["send", "--server", &tls_addr, "--tls", "--cacert", s.ca()])
        .args(["--from", "a@example.test", "--to", "c@example.test"])
        .output()
        .expect("run smtp send");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = s.smtp.messages();
    assert_eq!(stored.len(), 2);
    for m in &stored {
        assert_received_over_tls(m);
    }
}

// ---- Certificates refused, each over a real socket ----

/// Starts `smtp serve` with a certificate issued by `ca` for `names` within `validity`.
fn serve_with_cert(ca: &LabCa, names: &[&str], validity: Validity) -> (Smtp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let id = ca.issue(names, validity).unwrap();
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key");
    std::fs::write(&cert, id.cert_pem).unwrap();
    std::fs::write(&key, id.key_pem).unwrap();
    let smtp = Smtp::start_in(
        dir.path().join("maildir"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    (smtp, dir)
}

fn write_ca(ca: &LabCa, dir: &Path) -> String {
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.cert_pem()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs `smtp send --starttls --cacert CA` and returns its one-line error, checking it failed
/// with exit code 1 and stored nothing.
fn refused(smtp: &Smtp, ca: &str) -> String {
    let out = smtp_send(smtp, &["--starttls", "--cacert", ca]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(smtp.messages().is_empty());
    stderr
}

#[test]
fn smtp_send_refuses_a_certificate_from_an_unknown_issuer() {
    let server_ca = LabCa::new("server CA").unwrap();
    let (smtp, dir) = serve_with_cert(&server_ca, &["127.0.0.1"], Validity::days_from_now(1));
    let other_ca = LabCa::new("another CA").unwrap();
    let err = refused(&smtp, &write_ca(&other_ca, dir.path()));
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("certificate refused: unknown issuer"), "{err}");
}

#[test]
fn smtp_send_refuses_a_certificate_for_another_name() {
    let ca = LabCa::new("lab CA").unwrap();
    let (smtp, dir) = serve_with_cert(&ca, &["mx.other.test"], Validity::days_from_now(1));
    let err = refused(&smtp, &write_ca(&ca, dir.path()));
    assert!(
        err.contains("certificate refused: name mismatch: it is for mx.other.test, not 127.0.0.1"),
        "{err}"
    );
}

#[test]
fn smtp_send_refuses_an_expired_certificate() {
    let ca = LabCa::new("lab CA").unwrap();
    let day = Duration::from_secs(86_400);
    let past = Validity {
        not_before: SystemTime::now() - 30 * day,
        not_after: SystemTime::now() - day,
    };
    let (smtp, dir) = serve_with_cert(&ca, &["127.0.0.1"], past);
    let err = refused(&smtp, &write_ca(&ca, dir.path()));
    assert!(err.contains("certificate refused: expired"), "{err}");
}

// ---- Real clients ----

#[test]
fn swaks_starttls_and_tls_on_connect() {
    let swaks = require_peer("swaks", "swaks");
    require_peer("/usr/share/perl5/IO/Socket/SSL.pm", "libio-socket-ssl-perl");
    let s = TlsSmtp::start(&["--tls-listen", "127.0.0.1:0"]);
    let file = s.dir.path().join("m.eml");
    std::fs::write(&file, message("swaks-tls")).unwrap();
    let data = format!("@{}", file.display());
    let run = |port: String, mode: &str, to: &str| {
        run_ok(Command::new(&swaks).args([
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            mode,
            "--tls-verify",
            "--tls-ca-path",
            s.ca(),
            "--from",
            "a@example.test",
            "--to",
            to,
            "--data",
            &data,
        ]))
    };
    let out = run(s.smtp.port(), "--tls", "b@example.test");
    assert!(out.contains("-> STARTTLS"), "{out}");
    assert!(out.contains("=== TLS started with cipher TLSv1.3"), "{out}");
    assert!(out.contains("<~  250 2.0.0 OK: queued as "), "{out}");
    let m = s.one_message_over_tls();
    assert_eq!(
        m.message,
        message("swaks-tls")
            .into_iter()
            .chain(*b"\r\n")
            .collect::<Vec<_>>()
    );

    let tls_port = s.smtp.server.addr("tls").port().to_string();
    let out = run(tls_port, "--tls-on-connect", "c@example.test");
    assert!(out.contains("<~  250 2.0.0 OK: queued as "), "{out}");
    let stored = s.smtp.messages();
    assert_eq!(stored.len(), 2);
    for m in &stored {
        assert_received_over_tls(m);
    }
}

#[test]
fn openssl_s_client_starttls_smtp() {
    let openssl = require_peer("openssl", "openssl");
    let s = TlsSmtp::start(&[]);
    let connect = s.smtp.addr.to_string();
    let mut child = Command::new(openssl)
        .args([
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            &connect,
            "-CAfile",
            s.ca(),
        ])
        .args([
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
            "-crlf",
            "-quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openssl s_client");
    // s_client reads these after the handshake; -quiet keeps it open until the server closes.
    let script = "EHLO openssl.test\nMAIL FROM:<a@example.test>\nRCPT TO:<b@example.test>\nDATA\n\
                  Subject: openssl\n\nsent by s_client\n.\nQUIT\n";
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    let out = child.wait_with_output().expect("openssl s_client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("verify return:1"), "{stderr}");
    assert!(
        stdout.contains("250 2.0.0 OK: queued as "),
        "{stdout}\n{stderr}"
    );
    let m = s.one_message_over_tls();
    assert_eq!(m.message, b"Subject: openssl\r\n\r\nsent by s_client\r\n");
}

#[test]
fn curl_ssl_reqd_with_cacert() {
    let curl = require_peer("curl", "curl");
    let s = TlsSmtp::start(&[]);
    let file = s.dir.path().join("m.eml");
    std::fs::write(&file, message("curl-tls")).unwrap();
    run_ok(Command::new(curl).args([
        "--silent",
        "--show-error",
        "--ssl-reqd",
        "--cacert",
        s.ca(),
        &format!("smtp://127.0.0.1:{}/client.example.test", s.smtp.port()),
        "--mail-from",
        "a@example.test",
        "--mail-rcpt",
        "b@example.test",
        "--upload-file",
        file.to_str().unwrap(),
    ]));
    let m = s.one_message_over_tls();
    assert_eq!(m.message, message("curl-tls"));
}

const SMTPLIB_STARTTLS: &str = r#"
import smtplib, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=ca)
with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    s.ehlo("python.test")
    code, _ = s.starttls(context=context)
    assert code == 220, code
    s.ehlo("python.test")
    assert not s.has_extn("starttls"), "STARTTLS advertised again over TLS"
    s.sendmail("a@example.test", ["b@example.test"], b"Subject: smtplib\r\n\r\nsent by smtplib\r\n")
print(s.sock is None and "ok" or "ok")
"#;

#[test]
fn python_smtplib_starttls() {
    let python = require_peer("python3", "python3");
    let s = TlsSmtp::start(&[]);
    let out = run_ok(Command::new(python).args(["-c", SMTPLIB_STARTTLS, &s.smtp.port(), s.ca()]));
    assert_eq!(out.trim(), "ok");
    let m = s.one_message_over_tls();
    assert_eq!(m.message, b"Subject: smtplib\r\n\r\nsent by smtplib\r\n");
}

#[test]
fn msmtp_starttls() {
    let msmtp = require_peer("msmtp", "msmtp");
    let s = TlsSmtp::start(&[]);
    let mut child = Command::new(msmtp)
        .args([
            "--host=127.0.0.1",
            &format!("--port={}", s.smtp.port()),
            "--auth=off",
            "--tls=on",
            "--tls-starttls=on",
            &format!("--tls-trust-file={}", s.ca()),
            "--from=a@example.test",
            "b@example.test",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start msmtp");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"Subject: msmtp\n\nsent by msmtp\n",
    )
    .unwrap();
    let out = child.wait_with_output().expect("msmtp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = s.one_message_over_tls();
    // msmtp adds From:, Date: and Message-ID: headers before the message it was given.
    assert!(
        m.message
            .ends_with(b"\r\nSubject: msmtp\r\n\r\nsent by msmtp\r\n"),
        "{}",
        String::from_utf8_lossy(&m.message)
    );
}

/// testssl.sh against the STARTTLS port (`protolab_tests::testssl::scan`), with no finding
/// rated HIGH or CRITICAL (but `cert_revocation`, see `testssl::severe`).
#[test]
fn testssl_finds_nothing_high_or_critical_on_the_starttls_port() {
    let s = TlsSmtp::start(&[]);
    let target = s.smtp.addr.to_string();
    let findings = testssl::scan(
        &["--starttls", "smtp"],
        Path::new(s.ca()),
        &target,
        s.dir.path(),
    );
    let severe = testssl::severe(&findings);
    assert!(severe.is_empty(), "{severe:#?}");
    // The scan reached TLS: it saw TLS 1.3 offered and SSLv3 not.
    assert!(
        testssl::finding(&findings, "TLS1_3").starts_with("offered"),
        "{findings:#?}"
    );
    assert_eq!(testssl::finding(&findings, "SSLv3"), "not offered");
}

//! `cargo xtask demo tls`: the same SMTP dialog and the same HTTP GET, once in clear and once
//! over TLS, as the wire carries them.
//!
//! As root, `impair link --trace --pcap` joins two network namespaces (198.18.0.1 on the left,
//! 198.18.0.2 on the right) and captures every packet. `smtp serve`, two `http serve` (port 80
//! and, with the lab certificate, 443) and `http proxy` run on the right; the clients on the
//! left. The demo then reads the capture back and prints, connection by connection, what each
//! TCP segment carried: the text of the clear runs, and after STARTTLS (or from the first octet
//! of HTTPS) only TLS records, their headers readable and their contents not. tshark decodes
//! the same capture (the ClientHello's SNI, the record types). A client holding another CA
//! refuses the server and says why, and a CONNECT tunnel through `http proxy` shows that the
//! proxy carries TLS without reading (or caching) any of it.
//!
//! Without root there are no namespaces: the demo says so and runs the TLS half on loopback
//! (certificates, the STARTTLS dialog, the HTTPS GET, the refusal, the tunnel), with no capture.

use std::io::BufRead;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use etherparse::{Ipv4HeaderSlice, TcpHeaderSlice};
use protolab_lab::{Server, is_root, require_peer};
use serde_json::{Value, json};

use super::compare::{DemoLink, Link, Side, start_link};
use crate::util;

/// Set (to anything) to take the path the demo takes without root even when run as root: the
/// test of that path runs as root like the other link tests, and `setpriv` to an unprivileged
/// user cannot run `cargo build` in a root-owned target folder.
const AS_USER_ENV: &str = "PROTOLAB_DEMO_TLS_AS_USER";

/// The names the clients ask for: in the certificate, and sent as SNI in the ClientHello.
const MAIL_NAME: &str = "mail.lab.test";
const WEB_NAME: &str = "www.lab.test";
/// The message body; its second line is what the capture is searched for.
const BODY: &str = "Meet me at the north gate at noon.\nThe vault code is 4711-2209.\n";
/// A secret of the HTTP request: the cookie a site would use to know the user.
const COOKIE: &str = "Cookie: session=alice-7f3a9c";

const SERVER: &str = "198.18.0.2";

struct Options {
    out: PathBuf,
    json: bool,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        out: util::root().join("target/demo/tls"),
        json: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--out" => o.out = PathBuf::from(it.next().context("--out needs a folder")?),
            "--json" => o.json = true,
            other => {
                return Err(protolab_transport::cli::Failure::usage(format!(
                    "unknown option {other:?} for demo tls"
                ))
                .hint("demo tls takes --out DIR and --json")
                .into());
            }
        }
    }
    Ok(o)
}

/// A path as shown: relative to the workspace root (where `cargo xtask` runs) when inside it.
fn shown(p: &Path) -> String {
    let root = util::root();
    p.strip_prefix(&root)
        .map_or_else(|_| p.display().to_string(), |r| r.display().to_string())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

fn note(text: &str) {
    for line in text.lines() {
        println!("    | {line}");
    }
}

/// Runs a client, printing its command line first; a step that takes a while shows progress.
fn run_client(cmd: &mut Command, line: &str) -> Result<Output> {
    println!("$ {line}");
    util::with_progress("waiting for the client", || cmd.output())
        .with_context(|| format!("run {line}"))
}

fn fail(out: &Output, what: &str) -> Result<()> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The files of a run: the lab CA and certificate, a second CA, the body, the Maildir.
struct Files {
    out: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_ca: PathBuf,
    body: PathBuf,
    maildir: PathBuf,
}

fn certificates(out: &Path) -> Result<Files> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let other = out.join("other-ca");
    println!("-- 1. Certificates from a lab CA --\n");
    let args: Vec<String> = [
        "--out",
        path_str(out)?,
        "--name",
        MAIL_NAME,
        "--name",
        WEB_NAME,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    println!("$ cargo xtask lab-ca {}", shown_args(&args));
    crate::lab_ca::run(&args)?;
    let other_args = vec!["--out".to_owned(), path_str(&other)?.to_owned()];
    println!(
        "\n$ cargo xtask lab-ca {}   # a second, unrelated CA: the wrong one, for step 4",
        shown_args(&other_args)
    );
    crate::lab_ca::run(&other_args)?;
    let body = out.join("body.txt");
    std::fs::write(&body, BODY).with_context(|| format!("write {}", body.display()))?;
    println!();
    Ok(Files {
        out: out.to_owned(),
        ca: out.join("ca.pem"),
        cert: out.join("server.pem"),
        key: out.join("server.key"),
        other_ca: other.join("ca.pem"),
        body,
        maildir: out.join("maildir"),
    })
}

/// Arguments as shown, with paths inside the workspace made relative and quoted where a shell
/// would need it, so that a line can be pasted.
fn shown_args(args: &[String]) -> String {
    let root = util::root();
    let words: Vec<String> = args
        .iter()
        .map(|a| {
            Path::new(a)
                .strip_prefix(&root)
                .map_or_else(|_| a.clone(), |r| r.display().to_string())
        })
        .collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    quote(&refs)
}

/// A command and the line that shows it (with `ip netns exec NS` when it runs in one).
struct Shown {
    cmd: Command,
    line: String,
}

/// Builds `program args` to run in `side`'s namespace of `link`, or on loopback without one.
fn command(link: Option<&Link>, side: Side, program: &Path, name: &str, args: &[String]) -> Shown {
    let mut cmd = match link {
        Some(l) => l.run_in(side, program),
        None => {
            let mut c = Command::new(program);
            c.env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            );
            c
        }
    };
    cmd.args(args);
    let prefix = link.map_or_else(String::new, |l| format!("ip netns exec {} ", l.ns(side)));
    Shown {
        cmd,
        line: format!("{prefix}{name} {}", shown_args(args)),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

pub fn run(args: &[String]) -> Result<()> {
    let opts = options(args)?;
    let as_user = std::env::var_os(AS_USER_ENV).is_some();
    let root = is_root() && !as_user;
    let packages: &[&str] = if root {
        &["protolab-impair", "protolab-smtp", "protolab-http"]
    } else {
        &["protolab-smtp", "protolab-http"]
    };
    let bins = util::build_bins_of(false, packages)?;
    println!("== TLS: the same dialogs in clear and encrypted ==\n");
    if !root {
        println!(
            "Not root{}: the wire view needs two network namespaces joined by `impair link`, and \
             only root may make namespaces. Here is the TLS half on loopback, without a capture.\n",
            if as_user {
                format!(" ({AS_USER_ENV} is set)")
            } else {
                String::new()
            }
        );
    }
    println!(
        "Paths are relative to the workspace root, {}.\n",
        util::root().display()
    );
    let files = certificates(&opts.out)?;
    let mut report = if root {
        with_link(&bins, &files)?
    } else {
        on_loopback(&bins, &files)?
    };
    if opts.json {
        let path = opts.out.join("tls.json");
        report["root"] = json!(root);
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    println!("\nLeft in {}/:", shown(&files.out));
    let mut left = vec![
        "ca.pem, server.pem, server.key   the lab CA and the servers' certificate and key",
        "other-ca/                        the unrelated CA of step 4",
        "body.txt                         the message body",
        "maildir/                         the messages smtp serve stored",
    ];
    if root {
        left.push("tls.pcap                         the capture (tshark -r, wireshark)");
    }
    if opts.json {
        left.push("tls.json                         what the demo read, as JSON");
    }
    for l in left {
        println!("  {l}");
    }
    Ok(())
}

/// What each client run was, in the order the runs opened their connections.
struct Expected {
    label: &'static str,
    port: u16,
}

fn with_link(bins: &Path, f: &Files) -> Result<Value> {
    let pcap = f.out.join("tls.pcap");
    let link = start_link(
        bins,
        "tls",
        &strings(&["--trace", "--json", "--pcap", path_str(&pcap)?]),
    )?;
    println!("-- 2. A link, and servers behind it --\n");
    println!(
        "$ impair link --left {} --right {} --trace --json --pcap {}",
        link.left,
        link.right,
        shown(&pcap)
    );
    note(&format!(
        "Two network namespaces, {} (198.18.0.1, the clients) and {} (198.18.0.2, the servers),\n\
         joined by TUN devices through the link process, which captures every packet.",
        link.left, link.right
    ));
    let (cert, key) = (path_str(&f.cert)?, path_str(&f.key)?);
    let servers: Vec<(&str, Vec<String>)> = vec![
        (
            "smtp",
            strings(&[
                "serve",
                "--listen",
                "198.18.0.2:25",
                "--maildir",
                path_str(&f.maildir)?,
                "--hostname",
                MAIL_NAME,
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ]),
        ),
        (
            "http",
            strings(&["serve", "--listen", "198.18.0.2:80", "--threads", "1"]),
        ),
        (
            "http",
            strings(&[
                "serve",
                "--listen",
                "198.18.0.2:443",
                "--threads",
                "1",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ]),
        ),
    ];
    let mut running = Vec::new();
    for (name, args) in &servers {
        let s = command(Some(&link), Side::Right, &bins.join(name), name, args);
        println!("$ {}", s.line);
        running.push(Server::start_cmd(name, s.cmd, 1));
    }
    let proxy_cmd = command(
        Some(&link),
        Side::Right,
        &bins.join("http"),
        "http",
        &strings(&[
            "proxy",
            "--listen",
            "198.18.0.2:3128",
            "--allow-connect",
            "198.18.0.2:443",
            "--threads",
            "1",
            "--json",
        ]),
    );
    println!("$ {}", proxy_cmd.line);
    let mut proxy = Server::start_cmd("http proxy", proxy_cmd.cmd, 1);
    note(
        "smtp serve offers STARTTLS with the lab certificate; one http serve speaks HTTP on 80,\n\
         the other HTTPS on 443; http proxy may open CONNECT tunnels to 198.18.0.2:443.",
    );

    println!("\n-- 3. The same dialogs, in clear and over TLS --\n");
    let mut expected = Vec::new();
    let smtp = bins.join("smtp");
    let send = |extra: &[&str]| -> Vec<String> {
        let mut a = strings(&[
            "send",
            "--server",
            "198.18.0.2:25",
            "--from",
            "alice@lab.test",
            "--to",
            "bob@lab.test",
            "--subject",
            "Tomorrow",
            "--body-file",
            f.body.to_str().unwrap_or("body.txt"),
        ]);
        a.extend(strings(extra));
        a
    };
    let s = command(Some(&link), Side::Left, &smtp, "smtp", &send(&[]));
    let out = run_client(&mut { s.cmd }, &s.line)?;
    fail(&out, "smtp send")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    expected.push(Expected {
        label: "SMTP in clear",
        port: 25,
    });
    let s = command(
        Some(&link),
        Side::Left,
        &smtp,
        "smtp",
        &send(&[
            "--starttls",
            "--cacert",
            path_str(&f.ca)?,
            "--tls-name",
            MAIL_NAME,
        ]),
    );
    let out = run_client(&mut { s.cmd }, &s.line)?;
    fail(&out, "smtp send --starttls")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    expected.push(Expected {
        label: "SMTP with STARTTLS",
        port: 25,
    });

    let http = bins.join("http");
    let get = |scheme: &str, port: u16, cacert: Option<&Path>| -> Vec<String> {
        let mut a = strings(&[
            "get",
            "--resolve",
            &format!("{WEB_NAME}:{port}:{SERVER}"),
            "-H",
            COOKIE,
            "-o",
            "/dev/null",
        ]);
        if let Some(ca) = cacert {
            a.push("--cacert".to_owned());
            a.push(ca.to_str().unwrap_or("ca.pem").to_owned());
        }
        a.push(format!("{scheme}://{WEB_NAME}/echo"));
        a
    };
    for (scheme, port, label) in [
        ("http", 80, "HTTP GET in clear"),
        ("https", 443, "HTTPS GET"),
    ] {
        let ca = (scheme == "https").then_some(f.ca.as_path());
        let s = command(
            Some(&link),
            Side::Left,
            &http,
            "http",
            &get(scheme, port, ca),
        );
        let out = run_client(&mut { s.cmd }, &s.line)?;
        fail(&out, "http get")?;
        show_status(&out);
        expected.push(Expected { label, port });
    }

    println!("\n-- 4. A client that trusts another CA --\n");
    let s = command(
        Some(&link),
        Side::Left,
        &http,
        "http",
        &get("https", 443, Some(&f.other_ca)),
    );
    let refusal = refused(s)?;
    expected.push(Expected {
        label: "HTTPS GET with the wrong CA",
        port: 443,
    });

    println!("\n-- 5. HTTPS through a proxy: a CONNECT tunnel --\n");
    curl_through_proxy(
        Some(&link),
        f,
        "http://198.18.0.2:3128",
        "https://198.18.0.2/echo",
    )?;
    expected.push(Expected {
        label: "HTTPS through the proxy (CONNECT)",
        port: 3128,
    });
    // The last ACKs of the closes cross just after the clients return.
    std::thread::sleep(Duration::from_millis(500));
    let counters = proxy_counters(&mut proxy)?;
    drop(running);
    let (_, trace) = link.stop_clean()?;

    println!("\n-- 6. What each TCP segment carried --\n");
    let packets = read_pcap(&pcap)?;
    note(&format!(
        "The link's trace saw {} packets; the capture {} holds {}.\n\
         Read back per connection, in the order they opened; only segments that carried bytes\n\
         are shown (time from the SYN, direction C>S client to server, payload size, then what\n\
         the payload was).",
        trace
            .iter()
            .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.get("packet").is_some()))
            .count(),
        shown(&pcap),
        packets.len()
    ));
    let conns = connections(&packets);
    let mut runs = Vec::new();
    for (i, conn) in conns.iter().enumerate() {
        let label = expected
            .get(i)
            .filter(|e| e.port == conn.server.port())
            .map_or("another connection", |e| e.label);
        let view = analyse(conn, &packets);
        print_conn(i + 1, label, conn, &view);
        runs.push(conn_json(label, conn, &view));
        if let Some(text) = run_note(label, &runs) {
            note(&text);
            println!();
        }
    }

    println!("-- 7. tshark reads the same capture --\n");
    let sni = tshark_view(&pcap, &conns, &expected)?;

    println!("\n-- 8. What the proxy saw --\n");
    print_counters(&counters);
    println!("\n-- What TLS protects, and what it does not --\n");
    note(
        "Protected: the contents. In runs 1 and 3 anyone on the path reads the envelope, the\n\
         message, the cookie; in runs 2 and 4 the same bytes are application-data records.\n\
         Not protected: the addresses and ports (every segment above shows them), the SMTP\n\
         dialog before STARTTLS, the SNI name in the ClientHello, the sizes of the records and\n\
         the timing of each one. And only a client that checks the certificate gets any of it:\n\
         run 5 refused a server its CA did not vouch for.",
    );
    Ok(json!({
        "runs": runs,
        "sni": sni,
        "refusal": refusal,
        "proxy": counters,
    }))
}

/// The status line of an `http get` (which prints the exchange on standard output).
fn show_status(out: &Output) {
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        if line.starts_with("< HTTP/") {
            println!("{line}");
        }
    }
}

/// Runs a client expected to refuse the server, and prints and returns its reason.
fn refused(s: Shown) -> Result<String> {
    let out = run_client(&mut { s.cmd }, &s.line)?;
    if out.status.success() {
        bail!("a client holding another CA accepted the server's certificate");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or(err.trim())
        .to_owned();
    println!("{line}");
    println!("(exit code {})", out.status.code().unwrap_or(-1));
    note(
        "The server sent the same certificate as before; this client checks it against\n\
         other-ca/ca.pem, which never signed it, and ends the handshake before sending a byte of\n\
         its request. Without a check, anyone on the path could have answered in the server's\n\
         place: encryption to the wrong party protects nothing.",
    );
    Ok(line)
}

/// Stops `http proxy` (SIGTERM) and returns the counters it prints as JSON at exit.
fn proxy_counters(proxy: &mut Server) -> Result<Value> {
    proxy.proc.signal(libc::SIGTERM);
    let mut report = None;
    let mut line = String::new();
    while proxy.stdout.read_line(&mut line)? > 0 {
        if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
            if v.get("tunnels").is_some() {
                report = Some(v);
            }
        }
        line.clear();
    }
    let status = proxy.proc.wait_for(Duration::from_secs(20));
    if !status.is_some_and(|s| s.success()) {
        bail!("http proxy did not stop cleanly: {status:?}");
    }
    report.context("http proxy printed no report at exit")
}

fn print_counters(c: &Value) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    println!(
        "http proxy at exit: {} request, {} tunnel carrying {} bytes; cache: {} stored, {} hits, \
         {} misses, {} entries",
        n(&c["requests"]),
        n(&c["tunnels"]),
        n(&c["tunnel_bytes"]),
        n(&c["cache"]["stored"]),
        n(&c["cache"]["hits"]),
        n(&c["cache"]["misses"]),
        n(&c["cache"]["entries"]),
    );
    note(
        "The one request the proxy read was CONNECT host:port (in clear: the proxy, like anyone\n\
         on the path, learns where the client goes). Everything after its 200 was TLS between\n\
         the client and the origin: the proxy copied the bytes both ways and could read no\n\
         request, no response and no Cache-Control, so it tunnelled and cached nothing.",
    );
}

fn on_loopback(bins: &Path, f: &Files) -> Result<Value> {
    let (cert, key) = (path_str(&f.cert)?, path_str(&f.key)?);
    println!("-- 2. STARTTLS: the SMTP dialog, then TLS, then the dialog again --\n");
    let s = command(
        None,
        Side::Right,
        &bins.join("smtp"),
        "smtp",
        &strings(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--maildir",
            path_str(&f.maildir)?,
            "--hostname",
            MAIL_NAME,
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ]),
    );
    println!("$ {}", s.line);
    let smtp_server = Server::start_cmd("smtp serve", s.cmd, 1);
    let addr = smtp_server.addr("tcp");
    println!("listening tcp {addr}");
    let s = command(
        None,
        Side::Left,
        &bins.join("smtp"),
        "smtp",
        &strings(&[
            "send",
            "-v",
            "--server",
            &addr.to_string(),
            "--starttls",
            "--cacert",
            path_str(&f.ca)?,
            "--tls-name",
            MAIL_NAME,
            "--from",
            "alice@lab.test",
            "--to",
            "bob@lab.test",
            "--subject",
            "Tomorrow",
            "--body-file",
            path_str(&f.body)?,
        ]),
    );
    let out = run_client(&mut { s.cmd }, &s.line)?;
    print!("{}", String::from_utf8_lossy(&out.stderr));
    fail(&out, "smtp send --starttls")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    note(
        "Up to `220 2.0.0 ready to start TLS` the dialog crossed in clear. Then the handshake,\n\
         and the session started over: EHLO again, and no STARTTLS offered now.",
    );
    drop(smtp_server);

    println!("\n-- 3. HTTPS: the same GET inside TLS --\n");
    let s = command(
        None,
        Side::Right,
        &bins.join("http"),
        "http",
        &strings(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ]),
    );
    println!("$ {}", s.line);
    let web = Server::start_cmd("http serve", s.cmd, 1);
    let web_addr = web.addr("tls");
    println!("listening tls {web_addr}");
    let get = |cacert: &Path| -> Result<Vec<String>> {
        Ok(strings(&[
            "get",
            "--resolve",
            &format!("{WEB_NAME}:{}:127.0.0.1", web_addr.port()),
            "-H",
            COOKIE,
            "-o",
            "/dev/null",
            "--cacert",
            path_str(cacert)?,
            &format!("https://{WEB_NAME}:{}/echo", web_addr.port()),
        ]))
    };
    let s = command(None, Side::Left, &bins.join("http"), "http", &get(&f.ca)?);
    let out = run_client(&mut { s.cmd }, &s.line)?;
    // The exchange as the client saw it, after decryption (the body went to /dev/null).
    print!("{}", String::from_utf8_lossy(&out.stdout));
    fail(&out, "http get")?;
    note(
        "The client verified the certificate (the lab CA signed it, for www.lab.test) before it\n\
         sent a byte of the request: the Cookie field went only inside TLS.",
    );

    println!("\n-- 4. A client that trusts another CA --\n");
    let s = command(
        None,
        Side::Left,
        &bins.join("http"),
        "http",
        &get(&f.other_ca)?,
    );
    let refusal = refused(s)?;

    println!("\n-- 5. HTTPS through a proxy: a CONNECT tunnel --\n");
    let s = command(
        None,
        Side::Right,
        &bins.join("http"),
        "http",
        &strings(&[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--json",
        ]),
    );
    println!("$ {}", s.line);
    let mut proxy = Server::start_cmd("http proxy", s.cmd, 1);
    let proxy_addr = proxy.addr("tcp");
    println!("listening tcp {proxy_addr}");
    curl_through_proxy(
        None,
        f,
        &format!("http://{proxy_addr}"),
        &format!("https://127.0.0.1:{}/echo", web_addr.port()),
    )?;
    let counters = proxy_counters(&mut proxy)?;
    drop(web);
    print_counters(&counters);
    println!(
        "\nAs root, the demo also runs the same dialogs in clear and over TLS across a captured \
         link, and shows what each segment carried."
    );
    Ok(json!({
        "runs": [],
        "sni": [],
        "refusal": refusal,
        "proxy": counters,
    }))
}

// ---- the capture, read back ----

struct Packet {
    t: Duration,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    syn: bool,
    ack: bool,
    seq: u32,
    payload: Vec<u8>,
}

fn read_pcap(path: &Path) -> Result<Vec<Packet>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut reader = pcap_file::pcap::PcapReader::new(file).context("read the capture header")?;
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet() {
        let p = p.context("read a capture record")?;
        if let Some(packet) = decode(p.timestamp, &p.data) {
            out.push(packet);
        }
    }
    Ok(out)
}

/// An IPv4 TCP packet's addresses, flags and payload; None for anything else.
fn decode(t: Duration, p: &[u8]) -> Option<Packet> {
    let ip = Ipv4HeaderSlice::from_slice(p).ok()?;
    if ip.protocol() != etherparse::IpNumber::TCP {
        return None;
    }
    let rest = p.get(ip.slice().len()..usize::from(ip.total_len()))?;
    let tcp = TcpHeaderSlice::from_slice(rest).ok()?;
    Some(Packet {
        t,
        src: SocketAddrV4::new(ip.source_addr(), tcp.source_port()),
        dst: SocketAddrV4::new(ip.destination_addr(), tcp.destination_port()),
        syn: tcp.syn(),
        ack: tcp.ack(),
        seq: tcp.sequence_number(),
        payload: rest.get(tcp.slice().len()..)?.to_vec(),
    })
}

/// One TCP connection of the capture: who opened it, and its packets (indexes).
struct Conn {
    client: SocketAddrV4,
    server: SocketAddrV4,
    packets: Vec<usize>,
}

/// The capture's connections in the order their SYNs crossed (tshark's tcp.stream order).
fn connections(packets: &[Packet]) -> Vec<Conn> {
    let mut conns: Vec<Conn> = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let known = conns.iter().rposition(|c| {
            (c.client == p.src && c.server == p.dst) || (c.client == p.dst && c.server == p.src)
        });
        match known {
            Some(k) if !(p.syn && !p.ack && conns[k].packets.len() > 2) => {
                conns[k].packets.push(i);
            }
            _ if p.syn && !p.ack => conns.push(Conn {
                client: p.src,
                server: p.dst,
                packets: vec![i],
            }),
            // Packets of a connection whose SYN the capture did not see.
            _ => {}
        }
    }
    conns
}

/// A TLS record's header, where it starts in its direction's byte stream.
struct Record {
    offset: usize,
    kind: u8,
    version: u16,
    len: usize,
    /// The handshake message type, for a handshake record (type 22, never encrypted).
    handshake: Option<u8>,
}

/// One segment that carried bytes.
struct Seg {
    t_ms: f64,
    from_client: bool,
    /// Where its bytes start in its direction's stream, and how many.
    start: usize,
    len: usize,
    /// The bytes were sent before (a retransmission).
    again: bool,
}

struct View {
    segs: Vec<Seg>,
    /// Client to server, server to client.
    streams: [Vec<u8>; 2],
    tls_start: [Option<usize>; 2],
    records: [Vec<Record>; 2],
    empty: usize,
}

fn analyse(conn: &Conn, packets: &[Packet]) -> View {
    let mut isn: [Option<u32>; 2] = [None, None];
    let mut streams: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut segs = Vec::new();
    let mut empty = 0;
    let t0 = packets[conn.packets[0]].t;
    for &i in &conn.packets {
        let p = &packets[i];
        let d = usize::from(p.src != conn.client);
        if p.syn {
            isn[d] = Some(p.seq);
        }
        if p.payload.is_empty() {
            empty += 1;
            continue;
        }
        let Some(base) = isn[d] else { continue };
        // The SYN takes one sequence number: data starts at ISN + 1.
        let start = p.seq.wrapping_sub(base).wrapping_sub(1) as usize;
        let stream = &mut streams[d];
        let end = start + p.payload.len();
        let again = end <= stream.len();
        if start <= stream.len() && end > stream.len() {
            let from = stream.len() - start;
            stream.extend_from_slice(&p.payload[from..]);
        }
        segs.push(Seg {
            t_ms: p.t.saturating_sub(t0).as_secs_f64() * 1e3,
            from_client: d == 0,
            start,
            len: p.payload.len(),
            again,
        });
    }
    let tls_start = [tls_start(&streams[0]), tls_start(&streams[1])];
    let records = [
        records(&streams[0], tls_start[0]),
        records(&streams[1], tls_start[1]),
    ];
    View {
        segs,
        streams,
        tls_start,
        records,
        empty,
    }
}

/// Where TLS begins in a stream: at a line's start, a handshake record header (0x16 0x03).
/// Text protocols never put the byte 0x16 there.
fn tls_start(s: &[u8]) -> Option<usize> {
    (0..s.len().saturating_sub(1))
        .find(|&p| (p == 0 || s[p - 1] == b'\n') && s[p] == 0x16 && s[p + 1] == 0x03)
}

fn records(s: &[u8], start: Option<usize>) -> Vec<Record> {
    let mut out = Vec::new();
    let Some(mut o) = start else { return out };
    while o + 5 <= s.len() {
        let kind = s[o];
        let len = usize::from(u16::from_be_bytes([s[o + 3], s[o + 4]]));
        out.push(Record {
            offset: o,
            kind,
            version: u16::from_be_bytes([s[o + 1], s[o + 2]]),
            len,
            handshake: (kind == 22).then(|| s.get(o + 5).copied()).flatten(),
        });
        o += 5 + len;
    }
    out
}

fn record_kind(kind: u8) -> &'static str {
    match kind {
        20 => "change_cipher_spec",
        21 => "alert",
        22 => "handshake",
        23 => "application_data",
        _ => "unknown",
    }
}

fn handshake_name(t: u8) -> &'static str {
    match t {
        1 => "ClientHello",
        2 => "ServerHello",
        4 => "NewSessionTicket",
        8 => "EncryptedExtensions",
        11 => "Certificate",
        12 => "ServerKeyExchange",
        13 => "CertificateRequest",
        14 => "ServerHelloDone",
        15 => "CertificateVerify",
        16 => "ClientKeyExchange",
        20 => "Finished",
        _ => "another message",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line of text as shown: printable ASCII as is, anything else escaped.
fn printable(line: &[u8]) -> String {
    let mut s = String::new();
    for &b in line {
        match b {
            b' '..=b'~' => s.push(char::from(b)),
            b'\t' => s.push_str("\\t"),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// What one segment's bytes were: lines of text, then the TLS records that begin in it.
fn describe<'v>(seg: &Seg, view: &'v View) -> (Vec<String>, Vec<&'v Record>, Option<usize>) {
    let d = usize::from(!seg.from_client);
    let stream = &view.streams[d];
    let (a, b) = (seg.start, (seg.start + seg.len).min(stream.len()));
    let tls = view.tls_start[d].unwrap_or(usize::MAX);
    let mut lines = Vec::new();
    if a < tls {
        let text = &stream[a..b.min(tls)];
        for line in text.split_inclusive(|&c| c == b'\n') {
            let trimmed = line
                .strip_suffix(b"\n")
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .unwrap_or(line);
            lines.push(printable(trimmed));
        }
    }
    let from = a.max(tls);
    let recs: Vec<&Record> = view.records[d]
        .iter()
        .filter(|r| r.offset >= from && r.offset < b)
        .collect();
    // Bytes at the segment's start that belong to a record begun in an earlier segment.
    let carried = if b > from {
        let first = recs.first().map_or(b, |r| r.offset);
        (first > from).then_some(first - from)
    } else {
        None
    };
    (lines, recs, carried)
}

fn record_line(r: &Record, stream: &[u8]) -> String {
    let head = format!(
        "TLS record: {} ({}), version 0x{:04x}, {} byte{}",
        record_kind(r.kind),
        r.kind,
        r.version,
        r.len,
        if r.len == 1 { "" } else { "s" }
    );
    match r.kind {
        22 => format!(
            "{head}: {}, readable",
            r.handshake.map_or("(truncated)", handshake_name)
        ),
        20 => format!("{head}: a no-op kept for middleboxes"),
        _ => {
            let body = stream
                .get(r.offset + 5..(r.offset + 5 + 8).min(stream.len()))
                .unwrap_or_default();
            format!("{head}: {} ... (encrypted)", hex(body))
        }
    }
}

const MAX_LINES: usize = 14;

fn print_conn(n: usize, label: &str, conn: &Conn, view: &View) {
    println!(
        "== run {n}: {label}: {} > {}, {} segments with data, {} without (handshake, ACKs, close) ==",
        conn.client,
        conn.server,
        view.segs.len(),
        view.empty
    );
    for seg in &view.segs {
        let dir = if seg.from_client { "C>S" } else { "S>C" };
        let lead = format!("{:>9.3} ms  {dir} {:>5} B  ", seg.t_ms, seg.len);
        let pad = " ".repeat(lead.len());
        let mut out: Vec<String> = Vec::new();
        if seg.again {
            out.push("(a retransmission of bytes sent before)".to_owned());
        } else {
            let (lines, recs, carried) = describe(seg, view);
            let more = lines.len().saturating_sub(MAX_LINES);
            out.extend(lines.into_iter().take(MAX_LINES));
            if more > 0 {
                out.push(format!("... and {more} more lines"));
            }
            if let Some(c) = carried {
                out.push(format!(
                    "{c} bytes: the rest of a record begun in an earlier segment"
                ));
            }
            let d = usize::from(!seg.from_client);
            out.extend(recs.iter().map(|r| record_line(r, &view.streams[d])));
        }
        for (i, line) in out.iter().enumerate() {
            println!("{}{line}", if i == 0 { &lead } else { &pad });
        }
    }
    println!();
}

fn conn_json(label: &str, conn: &Conn, view: &View) -> Value {
    let segs: Vec<Value> = view
        .segs
        .iter()
        .map(|seg| {
            let d = usize::from(!seg.from_client);
            let stream = &view.streams[d];
            let bytes = stream
                .get(seg.start..(seg.start + seg.len).min(stream.len()))
                .unwrap_or_default();
            let (lines, recs, _) = describe(seg, view);
            json!({
                "t_ms": seg.t_ms,
                "from": if seg.from_client { "client" } else { "server" },
                "len": seg.len,
                "text": lines.join("\n"),
                "records": recs.iter().map(|r| json!({
                    "type": record_kind(r.kind), "version": r.version, "len": r.len,
                    "handshake": r.handshake.map(handshake_name),
                })).collect::<Vec<_>>(),
                "payload_hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            })
        })
        .collect();
    json!({
        "label": label,
        "client": conn.client.to_string(),
        "server": conn.server.to_string(),
        "tls": view.tls_start.iter().any(Option::is_some),
        "segments": segs,
    })
}

/// The bytes a client sent in clear (its largest segment, when `largest`, else all of them)
/// and the application-data records it sent in the TLS run.
fn sizes(runs: &[Value], clear: &str, tls: &str, largest: bool) -> Option<(u64, Vec<u64>)> {
    let find = |label: &str| runs.iter().find(|r| r["label"] == label);
    let client = |run: &Value| -> Vec<Value> {
        run["segments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["from"] == "client")
            .cloned()
            .collect()
    };
    let lens = client(find(clear)?)
        .iter()
        .filter_map(|s| s["len"].as_u64())
        .collect::<Vec<_>>();
    let sent = if largest {
        lens.into_iter().max()?
    } else {
        lens.into_iter().sum()
    };
    let records = client(find(tls)?)
        .iter()
        .flat_map(|s| s["records"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["type"] == "application_data")
        .filter_map(|r| r["len"].as_u64())
        .collect();
    Some((sent, records))
}

/// A sentence on the run just shown, from what it carried.
fn run_note(label: &str, runs: &[Value]) -> Option<String> {
    // TLS 1.3 adds one byte of content type and a 16-byte authentication tag to each record.
    let grown = |what: &str, sent: u64, records: &[u64], clear_run: usize, tls_run: usize| {
        if records.contains(&(sent + 17)) {
            format!(
                "Sizes show through: {what} was {sent} bytes in clear (run {clear_run}) and here a record\n\
                 of {} bytes: the same bytes plus one of content type and a 16-byte authentication\n\
                 tag. An observer cannot read it, but can count it.",
                sent + 17
            )
        } else {
            format!(
                "{what} was {sent} bytes in clear (run {clear_run}); the client's application-data \
                 records here (run {tls_run}) were {records:?} bytes."
            )
        }
    };
    match label {
        "SMTP in clear" => Some(
            "All readable by anyone on the path: the envelope (MAIL FROM, RCPT TO), every header\n\
             and the body, and the server's replies."
                .to_owned(),
        ),
        "SMTP with STARTTLS" => {
            let (sent, records) = sizes(runs, "SMTP in clear", label, true)?;
            Some(format!(
                "The same dialog up to `220 2.0.0 ready to start TLS`; then the handshake, and from\n\
                 the second EHLO on only application data.\n{}",
                grown("the message", sent, &records, 1, 2)
            ))
        }
        "HTTPS GET" => {
            let (sent, records) = sizes(runs, "HTTP GET in clear", label, false)?;
            Some(grown("the GET", sent, &records, 3, 4))
        }
        "HTTPS GET with the wrong CA" => Some(
            "The same hellos; the client's last record is its alert (unknown CA), already under the\n\
             handshake's keys. It refused the certificate and sent no request."
                .to_owned(),
        ),
        "HTTPS through the proxy (CONNECT)" => Some(
            "The CONNECT request and the proxy's 200 are in clear (the proxy learns host and port);\n\
             then a TLS session between curl and the origin, which the proxy only copies."
                .to_owned(),
        ),
        _ => None,
    }
}

/// curl asks `proxy` for a CONNECT tunnel to `url` and runs TLS with the origin through it,
/// verifying the origin against the lab CA; prints the status code it got.
fn curl_through_proxy(link: Option<&Link>, f: &Files, proxy: &str, url: &str) -> Result<()> {
    let curl = require_peer("curl", "curl");
    let s = command(
        link,
        Side::Left,
        &curl,
        "curl",
        &strings(&[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}\\n",
            "--proxy",
            proxy,
            "--cacert",
            path_str(&f.ca)?,
            "-H",
            COOKIE,
            url,
        ]),
    );
    let out = run_client(&mut { s.cmd }, &s.line)?;
    fail(&out, "curl through the proxy")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// Shows and runs `tshark -r PCAP ARGS`, returning what it printed.
fn run_tshark(tshark: &Path, pcap: &Path, args: &[&str]) -> Result<String> {
    println!("$ tshark -r {} {}", shown(pcap), quote(args));
    let out = Command::new(tshark)
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
        .context("run tshark")?;
    fail(&out, "tshark")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// tshark's view of the capture: the SNI of each ClientHello, and the HTTPS run's records.
fn tshark_view(pcap: &Path, conns: &[Conn], expected: &[Expected]) -> Result<Vec<Value>> {
    let tshark = require_peer("tshark", "tshark");
    let fields = [
        "-Y",
        "tls.handshake.type == 1",
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "tcp.dstport",
        "-e",
        "tls.handshake.extensions_server_name",
    ];
    let out = run_tshark(&tshark, pcap, &fields)?;
    let mut sni = Vec::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        println!("{line}");
        if let [stream, port, name] = cols[..] {
            sni.push(json!({ "stream": stream, "port": port, "server_name": name }));
        }
    }
    note(
        "One ClientHello per TLS connection (tcp.stream counts connections from 0): the name the\n\
         client asked for is in clear. A client that connects by address sends none (the\n\
         CONNECT run asked for https://198.18.0.2/).",
    );
    if let Some(stream) = expected
        .iter()
        .zip(conns)
        .position(|(e, c)| e.label == "HTTPS GET" && c.server.port() == 443)
    {
        let args = [
            "-Y",
            &format!("tls && tcp.stream == {stream}"),
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "ip.src",
            "-e",
            "tls.record.content_type",
            "-e",
            "tls.record.length",
            "-e",
            "_ws.col.Info",
        ];
        println!();
        print!("{}", run_tshark(&tshark, pcap, &args)?);
        note(
            "Content types 22 (handshake), 20 (change_cipher_spec) and 23 (application data).\n\
             With TLS 1.3 only the two hellos are readable: after the ServerHello even the\n\
             certificate travels as application data, and tshark, without the keys, can say no\n\
             more of those records than their length.",
        );
    }
    Ok(sni)
}

/// Arguments as a shell would need them: quoted when they hold spaces or shell characters.
fn quote(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.chars().any(|c| " =&|<>(){}\\'\"$*?;".contains(c)) {
                format!("'{a}'")
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_starts_after_the_starttls_reply_and_records_are_split() {
        let mut s = b"220 ready\r\n".to_vec();
        s.extend([0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00]);
        s.extend([0x17, 0x03, 0x03, 0x00, 0x03, 0xaa, 0xbb, 0xcc]);
        assert_eq!(tls_start(&s), Some(11));
        let r = records(&s, tls_start(&s));
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].kind, r[0].len, r[0].handshake), (22, 2, Some(1)));
        assert_eq!((r[1].offset, r[1].kind, r[1].len), (18, 23, 3));
        assert_eq!(tls_start(b"EHLO x\r\nMAIL FROM:<a@b>\r\n"), None);
    }
}

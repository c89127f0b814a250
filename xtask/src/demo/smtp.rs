//! `cargo xtask demo smtp`: a message from `smtp send` to `smtp serve`, dialog line by line, then
//! read back from the Maildir; and the SMTP smuggling trap, refused.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protolab_tests::Server;

use super::{note, run_shown};
use crate::util;

pub fn run(args: &[String]) -> Result<()> {
    let mut no_wait = false;
    for a in args {
        match a.as_str() {
            // Tests and CI: stop at the end instead of leaving the inbox up.
            "--no-wait" => no_wait = true,
            other => bail!("unknown option {other:?}: demo smtp takes only --no-wait"),
        }
    }
    let bins = util::build_bins(false)?;
    let smtp = bins.join("smtp");
    let maildir = util::root()
        .join("target")
        .join("demo")
        .join("smtp-maildir");
    let _ = std::fs::remove_dir_all(&maildir);
    let md = maildir
        .to_str()
        .context("the Maildir path is not UTF-8")?
        .to_owned();

    println!("== SMTP into a Maildir, step by step ==\n");
    let mut server = Server::start_cmd(
        "smtp serve",
        {
            let mut c = Command::new(&smtp);
            c.args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--maildir",
                &md,
                "--hostname",
                "mx.demo.test",
                "--http",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "warn");
            c
        },
        2,
    );
    let inbox = server.addr("http");
    let addr = server.addr("tcp");
    println!(
        "$ smtp serve --listen 127.0.0.1:0 --maildir {md} --hostname mx.demo.test --http 127.0.0.1:0"
    );
    println!("listening tcp {addr}");
    println!("listening http {inbox}");
    note(
        "The server made tmp/, new/ and cur/ in the Maildir. A message is written in tmp/,\n\
         fsynced, renamed into new/, and new/ is fsynced: only then does the client hear 250.",
    );

    println!();
    // The body stays next to the Maildir, so the command line below can be run again as shown.
    let body = maildir.with_file_name("demo-body.txt");
    let body_text = "Hello from the demo.\n.This line starts with a dot.\nBye.\n";
    std::fs::write(&body, body_text)?;
    let body_path = body.to_str().context("the body's path is not UTF-8")?;
    println!("$ cat {body_path}");
    print!("{body_text}");
    let out = run_shown(
        Command::new(&smtp).args([
            "send",
            "-v",
            "--server",
            &addr.to_string(),
            "--from",
            "alice@demo.test",
            "--to",
            "bob@demo.test",
            "--subject",
            "Lunch?",
            "--body-file",
            body_path,
        ]),
        &format!(
            "smtp send -v --server {addr} --from alice@demo.test --to bob@demo.test --subject Lunch? --body-file {body_path}"
        ),
        true,
    )?;
    note(
        "C: lines are the client's, S: lines the server's. EHLO lists the extensions; MAIL FROM and\n\
         RCPT TO are the envelope, which decides delivery; the From:/To: headers inside DATA are\n\
         only part of the message. The line \".This line...\" went out as \"..This line...\"\n\
         (dot-stuffing), so it cannot be taken for the end of the data; the server removed the\n\
         extra dot. The 250 after the final \".\" came once the message was on disk for good.",
    );
    let id = out
        .split("queued as ")
        .nth(1)
        .map(|s| s.trim().to_owned())
        .context("smtp send did not report a queue id")?;

    println!();
    run_shown(
        Command::new(&smtp).args(["list", &md]),
        &format!("smtp list {md}"),
        true,
    )?;
    println!();
    run_shown(
        Command::new(&smtp).args(["show", &md, &id]),
        &format!("smtp show {md} {id}"),
        true,
    )?;
    note(
        "Return-Path: keeps MAIL FROM, Delivered-To: each RCPT TO (one copy for all recipients),\n\
         and Received: says who handed the message over, from where, and when (RFC 5321 4.4).",
    );

    println!();
    println!("== The smuggling trap ==");
    let stream = util::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut reply = || -> Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(all);
            }
            print!("S: {line}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(all);
            }
        }
    };
    reply()?;
    for cmd in [
        "EHLO attacker.demo.test",
        "MAIL FROM:<mallory@demo.test>",
        "RCPT TO:<bob@demo.test>",
        "DATA",
    ] {
        println!("C: {cmd}");
        writer.write_all(format!("{cmd}\r\n").as_bytes())?;
        reply()?;
    }
    let smuggle = "Subject: harmless\r\n\r\nhi\n.\nMAIL FROM:<ceo@demo.test>\r\nRCPT TO:<bob@demo.test>\r\nDATA\r\nSubject: wire the money\r\n\r\n.\r\n";
    for line in smuggle.split_inclusive('\n') {
        println!("C: {}", line.escape_debug());
    }
    writer.write_all(smuggle.as_bytes())?;
    let verdict = reply()?;
    println!("C: QUIT");
    writer.write_all(b"QUIT\r\n")?;
    reply()?;
    note(
        "\"hi\\n.\\n\" ends a message for a server that accepts a bare LF as a line end: such a\n\
         server would then run the smuggled MAIL FROM:<ceo@...> as a second, forged message.\n\
         Here only CRLF.CRLF ends the data, so everything up to the real end is one message,\n\
         and because it holds bare LFs it is refused whole: one reply, nothing stored.",
    );
    if !verdict.starts_with("550 ") {
        bail!("the smuggling attempt was not refused: {verdict}");
    }

    println!();
    let count = std::fs::read_dir(maildir.join("new"))?.count();
    note(&format!(
        "new/ holds {count} message(s): the smuggled one never existed."
    ));
    if count != 1 {
        bail!("expected exactly one message in new/, found {count}");
    }
    println!();
    println!("The web inbox shows what arrived: http://{inbox}/");
    println!("The Maildir stays in {md} and the body in {body_path}, until the next run.");
    if !no_wait {
        println!("(it stays up until Ctrl-C)");
        // Ctrl-C reaches the server too (one process group): it drains and exits.
        let _ = server.proc.wait_for(Duration::from_secs(365 * 24 * 3600));
        return Ok(());
    }
    server.proc.signal(libc::SIGTERM);
    let status = server
        .proc
        .wait_for(Duration::from_secs(15))
        .context("smtp serve did not stop within 15 s of SIGTERM")?;
    println!("$ kill -TERM <smtp serve>   ({status})");
    Ok(())
}

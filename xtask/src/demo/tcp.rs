//! `cargo xtask demo tcp`: the seed's greeting conversation on loopback, narrated.
//!
//! The demo plays the client itself (rather than running `greet hello`) so that it can stop
//! between steps and show what the kernel holds for each socket, read with `ss`.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protolab_tests::Server;

use super::note;
use crate::util;

/// Prints the kernel's view of the sockets on `port`, when `ss` is installed.
fn sockets(port: u16) {
    let filter = format!("( sport = :{port} or dport = :{port} )");
    let Ok(out) = Command::new("ss").args(["-tanH", &filter]).output() else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    for line in lines {
        println!(
            "    |   ss: {}",
            line.split_whitespace().collect::<Vec<_>>().join("  ")
        );
    }
}

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "--trace") {
        return super::tcp_trace::run(args);
    }
    if let Some(other) = args.first() {
        return Err(protolab_transport::cli::Failure::usage(format!(
            "unknown option {other:?} for demo tcp"
        ))
        .hint("try --trace, as root")
        .into());
    }
    let bins = util::build_bins_of(false, &["protolab-greet"])?;
    let greet = bins.join("greet");

    println!("== The TCP greeting service, step by step ==\n");
    let mut server = Server::start_cmd(
        "greet serve",
        {
            let mut c = Command::new(&greet);
            c.args(["serve", "--listen", "127.0.0.1:0"])
                .env("RUST_LOG", "warn");
            c
        },
        1,
    );
    let addr = server.addr("tcp");
    println!("$ greet serve --listen 127.0.0.1:0");
    println!("listening tcp {addr}");
    note(&format!(
        "The server made a socket, bound it to {addr} (port 0 asks the kernel for a free port)\n\
         and called listen(): this is the listening socket. It never carries data; it only\n\
         queues finished handshakes until the server calls accept()."
    ));
    sockets(addr.port());

    println!();
    let stream = util::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let local = stream.local_addr()?;
    println!("client: connect({addr}) from {local}");
    note(
        "connect() made the kernel run the three-way handshake: SYN seq=x, SYN+ACK seq=y ack=x+1,\n\
         ACK ack=y+1. The server's accept() then returned a NEW socket, connected to exactly this\n\
         client; the listening socket goes on listening for others.",
    );
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    print!("server: {line}");
    note("The server wrote its greeting on the connected socket.");
    note("ss shows both ends of the connection, and the listening socket still there.");
    sockets(addr.port());

    println!();
    for name in ["Michael", "Tracy", "Sarah"] {
        writer.write_all(format!("{name}\n").as_bytes())?;
        println!("client: {name}");
        line.clear();
        reader.read_line(&mut line)?;
        print!("server: {line}");
    }
    note(
        "Each name went out as bytes ending in a newline. TCP carries a byte stream, not\n\
         messages: the newline is what tells the server where a name ends.",
    );

    println!();
    writer.write_all(b"exit\n")?;
    println!("client: exit");
    line.clear();
    let n = reader.read_line(&mut line)?;
    if n != 0 {
        bail!("expected the server to close after exit, got {line:?}");
    }
    println!("server: (closes the connection)");
    note(
        "On exit the server closed its connected socket: it sent FIN, the client's kernel\n\
         ACKed it and read() returned 0 (end of stream). The client closes too: its FIN and the\n\
         last ACK make the four-way close. The side that closed first waits in TIME-WAIT so a\n\
         late segment cannot be mistaken for part of a new connection.",
    );
    drop(reader);
    drop(writer);
    std::thread::sleep(Duration::from_millis(50));
    sockets(addr.port());

    println!();
    server.proc.signal(libc::SIGTERM);
    let status = server
        .proc
        .wait_for(Duration::from_secs(15))
        .context("greet serve did not stop within 15 s of SIGTERM")?;
    println!("$ kill -TERM <greet serve>   ({status})");
    note("SIGTERM: the server closed its listening socket, drained, and exited.");
    if !status.success() {
        bail!("greet serve exited with {status}");
    }
    Ok(())
}

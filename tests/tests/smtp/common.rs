//! What the SMTP tests share: a server on a temporary Maildir, reading back what it stored, and a
//! raw-socket client that records the transcript.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use protolab_tests::Server;

/// `smtp serve` on 127.0.0.1:0 delivering into a fresh temporary Maildir.
pub struct Smtp {
    pub server: Server,
    pub addr: SocketAddr,
    pub maildir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Smtp {
    pub fn start(extra: &[&str]) -> Smtp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut smtp = Smtp::start_in(dir.path().join("maildir"), extra);
        smtp._dir = Some(dir);
        smtp
    }

    /// `smtp serve` delivering into `maildir`, which the caller owns.
    pub fn start_in(maildir: PathBuf, extra: &[&str]) -> Smtp {
        // With --tls-listen the server binds a second socket and prints a second line.
        let sockets = if extra.contains(&"--tls-listen") {
            2
        } else {
            1
        };
        Smtp::start_in_with(maildir, extra, sockets)
    }

    fn start_in_with(maildir: PathBuf, extra: &[&str], sockets: usize) -> Smtp {
        let md = maildir.to_str().expect("utf-8 path").to_owned();
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--maildir",
            &md,
            "--hostname",
            "mx.test",
        ];
        args.extend_from_slice(extra);
        let mut cmd = std::process::Command::new(protolab_tests::bin("smtp"));
        // Warnings only: a test's output should show its own failures, not every session.
        cmd.args(&args).env("RUST_LOG", "warn");
        let server = Server::start_cmd("smtp serve", cmd, sockets);
        let addr = server.addr("tcp");
        Smtp {
            server,
            addr,
            maildir,
            _dir: None,
        }
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// The messages in new/, sorted by name (arrival order within this process).
    pub fn messages(&self) -> Vec<Stored> {
        stored_messages(&self.maildir)
    }

    /// The files in tmp/.
    pub fn tmp_files(&self) -> usize {
        std::fs::read_dir(self.maildir.join("tmp"))
            .expect("read tmp/")
            .count()
    }
}

/// A tmpfs of a fixed size mounted by the test, unmounted when dropped (also when the test
/// fails), so that a full disk can be made without touching the machine's own filesystems.
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g. `2m`). Needs root, and fails
    /// loudly without it: CI runs as root, and a skipped test would prove nothing.
    pub fn mount(size: &str) -> Tmpfs {
        assert!(
            protolab_tests::is_root(),
            "this test mounts a small tmpfs to fill it and needs root; run it as root \
             (cargo xtask test does in CI)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        protolab_tests::run_ok(std::process::Command::new("mount").args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0755"),
            "tmpfs",
            path.to_str().expect("utf-8 path"),
        ]));
        Tmpfs { path, _dir: dir }
    }
}

impl Tmpfs {
    /// Makes the filesystem read-only: writing fails even for root, with EROFS.
    pub fn remount_read_only(&self) {
        protolab_tests::run_ok(std::process::Command::new("mount").args([
            "-o",
            "remount,ro",
            self.path.to_str().expect("utf-8 path"),
        ]));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // A lazy unmount succeeds even if a server that still holds a folder open outlives us.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// Every file in a folder, with its size, for messages that say what was left behind.
pub fn files_in(dir: &Path) -> Vec<(String, u64)> {
    std::fs::read_dir(dir)
        .expect("read folder")
        .map(|e| {
            let e = e.expect("dir entry");
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            (e.file_name().to_string_lossy().into_owned(), size)
        })
        .collect()
}

/// A message as stored: our trace headers taken apart from the message as the client sent it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub name: String,
    pub return_path: String,
    pub delivered_to: Vec<String>,
    pub received: String,
    /// The message exactly as received, dot-stuffing undone.
    pub message: Vec<u8>,
}

pub fn stored_messages(maildir: &Path) -> Vec<Stored> {
    let mut names: Vec<_> = std::fs::read_dir(maildir.join("new"))
        .expect("read new/")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(maildir.join("new").join(&name)).expect("read message");
            parse_stored(name, &bytes)
        })
        .collect()
}

/// Splits a stored file: `Return-Path:`, one `Delivered-To:` per recipient, one folded
/// `Received:`, then the client's message.
pub fn parse_stored(name: String, bytes: &[u8]) -> Stored {
    fn take_line(rest: &mut &[u8]) -> String {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("CRLF-terminated trace header");
        let l = String::from_utf8(rest[..end].to_vec()).expect("utf-8 trace header");
        *rest = &rest[end + 2..];
        l
    }
    let mut rest = bytes;
    let mut line = || take_line(&mut rest);
    let return_path = line();
    let return_path = return_path
        .strip_prefix("Return-Path: ")
        .expect("Return-Path first")
        .to_owned();
    let mut delivered_to = Vec::new();
    let mut received;
    loop {
        let l = line();
        if let Some(r) = l.strip_prefix("Delivered-To: ") {
            delivered_to.push(r.to_owned());
        } else {
            received = l;
            break;
        }
    }
    assert!(
        received.starts_with("Received: "),
        "{name}: expected Received:, got {received:?}"
    );
    while rest.starts_with(b"\t") {
        received.push_str(&take_line(&mut rest));
    }
    Stored {
        name,
        return_path,
        delivered_to,
        received,
        message: rest.to_vec(),
    }
}

/// A client on a raw socket, for exact transcripts.
pub struct Raw {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Raw { stream, reader }
    }

    /// Connects and reads the greeting.
    pub fn greeted(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr);
        let g = raw.reply();
        assert!(g.starts_with("220 mx.test ESMTP"), "greeting {g:?}");
        raw
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one whole reply (all its lines); empty at end of stream.
    pub fn reply(&mut self) -> String {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            if n == 0 {
                return text;
            }
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return text;
            }
        }
    }

    /// Reads `n` replies and joins them.
    pub fn replies(&mut self, n: usize) -> String {
        (0..n).map(|_| self.reply()).collect()
    }

    /// Sends a command and returns its reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// EHLO, MAIL, RCPT and DATA, checking each reply; ready for content.
    pub fn begin(&mut self, from: &str, to: &str) {
        assert!(self.cmd("EHLO client.test").starts_with("250-mx.test"));
        assert_eq!(
            self.cmd(&format!("MAIL FROM:<{from}>")),
            "250 2.1.0 sender OK\r\n"
        );
        assert_eq!(
            self.cmd(&format!("RCPT TO:<{to}>")),
            "250 2.1.5 recipient OK\r\n"
        );
        assert!(self.cmd("DATA").starts_with("354 "));
    }

    /// True when the server has closed the connection (reads end of stream).
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(self.reader.read(&mut buf), Ok(0))
    }
}

/// Turns LF line endings into CRLF.
pub fn crlf(text: &str) -> Vec<u8> {
    text.replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

//! Child processes stopped by their own PID, and protolab servers started on port 0.
//!
//! Every server binary of protolab prints one line per bound socket on standard output once it
//! listens, `listening tcp 127.0.0.1:43210` or `listening udp 127.0.0.1:43210` (under `--json`
//! `{"event":"listening","proto":"tcp","addr":"127.0.0.1:43210"}`), so the lab binds port 0
//! and reads the real port from there instead of guessing a free one.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::bin;

/// A child process that is killed (by its own PID) and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Starts `cmd` with piped stdout and inherited stderr.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        Proc::try_spawn(name, cmd).unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
    }

    /// As [`Proc::spawn`], returning the error instead of panicking.
    ///
    /// # Errors
    /// The program cannot be started.
    pub fn try_spawn(name: &str, cmd: &mut Command) -> std::io::Result<Proc> {
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
        Ok(Proc {
            child,
            name: name.to_owned(),
        })
    }

    /// Starts `cmd` with stdout and stderr written to the file `log` (created or truncated),
    /// for a peer whose output is only worth reading when it fails.
    ///
    /// # Errors
    /// The log cannot be created or the program cannot be started.
    pub fn spawn_logged(name: &str, cmd: &mut Command, log: &Path) -> std::io::Result<Proc> {
        let out = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Proc {
            child,
            name: name.to_owned(),
        })
    }

    /// The PID, for signals.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal to this process only.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the PID of a child we started and have not reaped yet.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for the process to exit, at most `limit`; kills it past that. Returns the status.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// Stops the process with SIGTERM and waits at most `limit` (killing it past that).
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.wait_for(limit)
    }

    /// Takes the stdout pipe, to read it line by line.
    pub fn stdout(&mut self) -> BufReader<ChildStdout> {
        BufReader::new(
            self.child
                .stdout
                .take()
                .expect("stdout is piped and not taken yet"),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `out` to its end on a thread of its own, so that a chatty process never blocks on a
/// full pipe that nobody reads.
pub fn drain(mut out: impl std::io::Read + Send + 'static) {
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
}

/// Reads one line of a server's stdout as a `listening` announcement, text or JSON:
/// `(proto, address)`, or `None` for any other line.
pub fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let line = line.trim();
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v["event"] != "listening" {
            return None;
        }
        return Some((
            v["proto"].as_str()?.to_owned(),
            v["addr"].as_str()?.parse().ok()?,
        ));
    }
    let mut words = line.split_whitespace();
    if words.next() != Some("listening") {
        return None;
    }
    let proto = words.next()?.to_owned();
    Some((proto, words.next()?.parse().ok()?))
}

/// A protolab server started by the lab, with the addresses it reported.
#[derive(Debug)]
pub struct Server {
    pub proc: Proc,
    /// (`tcp` or `udp`, address) for each socket the server bound.
    pub listening: Vec<(String, SocketAddr)>,
    /// The rest of its stdout, for callers that read what it prints later.
    pub stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `bin_name` (built by [`bin`]) with `args` and waits until it has printed
    /// `sockets` listening lines.
    pub fn start(bin_name: &str, args: &[&str], sockets: usize) -> Server {
        let mut cmd = Command::new(bin(bin_name));
        cmd.args(args);
        // Servers log at info by default; in tests only warnings are worth the noise.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        Server::start_cmd(bin_name, cmd, sockets)
    }

    /// As [`Server::start`], from a prepared command (for extra environment, a namespace, or
    /// a binary from another build folder).
    pub fn start_cmd(name: &str, mut cmd: Command, sockets: usize) -> Server {
        let mut proc = Proc::spawn(name, &mut cmd);
        let mut stdout = proc.stdout();
        let mut listening = Vec::new();
        let mut line = String::new();
        while listening.len() < sockets {
            line.clear();
            let n = stdout.read_line(&mut line).expect("read server stdout");
            assert!(n > 0, "{name} exited before listening (args {cmd:?})");
            if let Some(found) = parse_listening(&line) {
                listening.push(found);
            } else {
                // A listening line that does not parse is a broken announcement, not noise.
                assert!(
                    !line.starts_with("listening") && !line.contains(r#""event":"listening""#),
                    "{name} printed a listening line the lab cannot read: {line:?}"
                );
            }
        }
        Server {
            proc,
            listening,
            stdout,
        }
    }

    /// The address of the first socket of `proto` (`tcp` or `udp`).
    pub fn addr(&self, proto: &str) -> SocketAddr {
        self.listening
            .iter()
            .find(|(p, _)| p == proto)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("{} has no {proto} socket", self.proc.name))
    }

    /// Stops the server with `signal`, waits at most `limit`, and returns its exit status and
    /// everything it printed after its listening lines.
    pub fn stop_with(mut self, signal: i32, limit: Duration) -> (Option<ExitStatus>, String) {
        use std::io::Read;
        self.proc.signal(signal);
        let status = self.proc.wait_for(limit);
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        (status, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines_are_read_as_text_and_as_json() {
        let addr: SocketAddr = "127.0.0.1:43210".parse().unwrap();
        assert_eq!(
            parse_listening("listening tcp 127.0.0.1:43210\n"),
            Some(("tcp".to_owned(), addr))
        );
        assert_eq!(
            parse_listening(r#"{"event":"listening","proto":"udp","addr":"127.0.0.1:43210"}"#),
            Some(("udp".to_owned(), addr))
        );
        assert_eq!(
            parse_listening("listening udp [::1]:53"),
            Some(("udp".to_owned(), "[::1]:53".parse().unwrap()))
        );
        for other in [
            "",
            "ready",
            "listening",
            "listening tcp",
            "listening tcp nowhere",
            r#"{"event":"stats"}"#,
            r#"{"event":"listening","proto":"tcp"}"#,
            "{not json",
        ] {
            assert_eq!(parse_listening(other), None, "{other:?}");
        }
    }
}

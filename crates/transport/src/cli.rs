//! What every protolab binary shares on its command line: exit codes, one-line errors, value
//! parsers, logging, `listening` lines, output that survives a closed pipe, and the generation
//! of shell completions and man pages. The conventions are written down in `docs/cli.md`.

use std::error::Error;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status of a run that failed while running: I/O, a peer that broke the protocol.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a command line that cannot be run as written (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit status of a probe or query that ran, but whose target did not answer (dig's 9).
pub const EXIT_NO_ANSWER: u8 = 9;

/// An error that carries its exit status and, where there is one, the fix.
///
/// Put it anywhere in an error chain as an error (not as an `anyhow` context, which hides its
/// type): [`exit_with`] finds it, exits with its status and prints its hint.
#[derive(Debug)]
pub struct Failure {
    what: String,
    hint: Option<String>,
    code: u8,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl Failure {
    /// A runtime failure (exit 1).
    pub fn new(what: impl Into<String>) -> Self {
        Failure {
            what: what.into(),
            hint: None,
            code: EXIT_FAILURE,
            source: None,
        }
    }

    /// A command line that cannot be run as written, found after parsing (exit 2).
    pub fn usage(what: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            ..Failure::new(what)
        }
    }

    /// The target did not answer (exit 9).
    pub fn no_answer(what: impl Into<String>) -> Self {
        Failure {
            code: EXIT_NO_ANSWER,
            ..Failure::new(what)
        }
    }

    /// The fix, printed on a `hint:` line below the error.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The error underneath, printed after this one.
    #[must_use]
    pub fn caused_by(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The exit status this failure asks for.
    pub fn code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl Error for Failure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// A socket that could not be bound: names the protocol and address, and lets [`report`] give
/// every binary the same words for a port in use.
#[derive(Debug)]
pub struct ListenError {
    pub proto: &'static str,
    pub addr: SocketAddr,
    pub source: io::Error,
}

impl ListenError {
    pub fn new(proto: &'static str, addr: SocketAddr, source: io::Error) -> Self {
        ListenError {
            proto,
            addr,
            source,
        }
    }
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot listen on {} {}", self.proto, self.addr)
    }
}

impl Error for ListenError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// An error as the user sees it: one line, an optional hint, an exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `error: <what>: <why>`, the causes joined by `: `, none repeated.
    pub line: String,
    pub hint: Option<String>,
    pub code: u8,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// Formats an error chain the one way every binary prints errors.
///
/// A cause whose text an outer message already quotes is left out (a context written as
/// `"cannot bind {addr}: {e}"` over `e` says it once); a port in use gets the same words and
/// hint whichever binary hit it; no backtrace is ever printed, whatever `RUST_BACKTRACE` says.
pub fn report(err: &(dyn Error + 'static)) -> Report {
    let mut parts: Vec<String> = Vec::new();
    let mut hint = None;
    let mut code = None;
    let mut listen: Option<&ListenError> = None;
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(f) = e.downcast_ref::<Failure>() {
            code = code.or(Some(f.code));
            hint = hint.or_else(|| f.hint.clone());
        }
        if let Some(l) = e.downcast_ref::<ListenError>() {
            listen = listen.or(Some(l));
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some((why, fix)) = explain_io(io, listen)
        {
            parts.push(why);
            hint = hint.or(Some(fix));
            break;
        }
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    Report {
        line: format!("error: {}", parts.join(": ")),
        hint,
        code: code.unwrap_or(EXIT_FAILURE),
    }
}

/// The usual cause of the OS errors people meet on a command line, and their fix.
fn explain_io(e: &io::Error, listen: Option<&ListenError>) -> Option<(String, String)> {
    let port = listen.map(|l| l.addr.port());
    match (e.kind(), port) {
        (io::ErrorKind::AddrInUse, port) => Some((
            port.map_or_else(
                || "the address is already in use".to_owned(),
                |port| format!("port {port} is already in use"),
            ),
            "another program holds it, most often an earlier server still running: stop it, \
             or choose another port with --listen (port 0 picks a free one)"
                .to_owned(),
        )),
        (io::ErrorKind::PermissionDenied, Some(port)) if port < 1024 => Some((
            format!("port {port} needs privileges"),
            "ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a port above 1023 with --listen"
                .to_owned(),
        )),
        (io::ErrorKind::AddrNotAvailable, Some(_)) => Some((
            "no interface of this machine has that address".to_owned(),
            "listen on 127.0.0.1, ::1 or an address that `ip addr` shows".to_owned(),
        )),
        _ => None,
    }
}

/// Ends `main`: exit 0 on success; otherwise prints [`report`]'s line (and hint) on standard
/// error and exits with its status.
pub fn exit_with<E: AsRef<dyn Error + 'static>>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let r = report(e.as_ref());
            let _ = writeln!(io::stderr(), "{r}");
            ExitCode::from(r.code)
        }
    }
}

/// Parses a duration such as `1s`, `250ms`, `25us` or `1m30s` for clap.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}: write a duration like 1s, 250ms, 25us or 1m30s"))
}

/// Parses a count that must be at least 1 (`--count`, `--connections`, `--max-connections`),
/// so that nonsense is refused when the command line is read, with exit status 2.
///
/// # Errors
/// A message saying that 0 (or what is not a number) is refused.
pub fn parse_at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("0 would do nothing: write a number from 1 up".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "{text:?} is not a number: write a whole number from 1 up"
        )),
    }
}

/// Sets up `tracing` on standard error.
///
/// `RUST_LOG` wins when set; otherwise `base` is the level for protolab's own crates, raised one
/// step per `-v`. Reports go to standard output, so logs never mix with `--json`. Colours only
/// when standard error is a terminal, so log files hold no escape codes.
pub fn init_tracing(base: tracing::Level, verbose: u8) {
    use tracing::Level;
    let level = match (base, verbose) {
        (l, 0) => l,
        (Level::ERROR, 1) => Level::WARN,
        (Level::WARN, 1) => Level::INFO,
        (Level::INFO, 1) => Level::DEBUG,
        _ => Level::TRACE,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // rustls warns about every client that sends an IP address as SNI (wrk, openssl
        // s_time and curl do): a client's harmless habit, not the server's problem, so it is
        // heard only from -vv on.
        let rustls = if verbose >= 2 { "debug" } else { "error" };
        tracing_subscriber::EnvFilter::new(format!(
            "warn,rustls={rustls},protolab={level},{}",
            crates(level)
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records the binary's `--json` flag, for code that announces sockets deep in a library's
/// driver (see [`json`]).
pub fn set_json(on: bool) {
    JSON.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The `--json` flag given to [`set_json`].
pub fn json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Announces a bound socket on standard output: `listening tcp 127.0.0.1:9999`, or under
/// `--json` the line `{"event":"listening","proto":"tcp","addr":"127.0.0.1:9999"}`, so that a
/// `--json` stream is JSON from its first line.
pub fn listening(proto: &str, addr: SocketAddr, json: bool) {
    if json {
        let line =
            serde_json::json!({"event": "listening", "proto": proto, "addr": addr.to_string()});
        write_stdout(format_args!("{line}\n"));
    } else {
        write_stdout(format_args!("listening {proto} {addr}\n"));
    }
}

/// Says where `--tls-self-signed FILE` wrote the lab CA's certificate: `tls lab CA written to
/// FILE: give it to clients with --cacert`, or under `--json` the line
/// `{"event":"lab_ca","path":"FILE"}`, so that a `--json` stream stays JSON lines.
pub fn lab_ca_written(path: &std::path::Path, json: bool) {
    if json {
        let line = serde_json::json!({"event": "lab_ca", "path": path.display().to_string()});
        write_stdout(format_args!("{line}\n"));
    } else {
        write_stdout(format_args!(
            "tls lab CA written to {}: give it to clients with --cacert\n",
            path.display()
        ));
    }
}

/// Writes to standard output like `print!`, except that a reader that went away is not fatal.
///
/// `println!` panics when standard output is a closed pipe (`dns serve | head -1`, a test that
/// stopped reading): the report has nowhere to go, but a server must still shut down cleanly and a
/// client must still exit with its own status. Other write errors are logged at debug level.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush())
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        tracing::debug!("standard output: {e}");
    }
}

/// `println!` that never panics on a closed standard output; see [`write_stdout`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that never panics on a closed standard output; see [`write_stdout`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

/// What the hidden `generate` subcommand of every binary writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generated {
    Bash,
    Zsh,
    Fish,
    /// Man pages: `NAME.1` and one `NAME-SUBCOMMAND.1` per subcommand.
    Man,
}

/// The hidden `generate` subcommand: `cargo xtask install` runs it to write completions and man
/// pages from the binary's own clap definition, so no crate depends on xtask.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// What to write.
    #[arg(value_enum)]
    pub what: Generated,
    /// The folder to write into.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// Writes completions or man pages for `cmd` into `args.out`; returns the files written.
///
/// # Errors
/// Creating or writing the files.
pub fn generate(mut cmd: clap::Command, args: &GenerateArgs) -> io::Result<Vec<PathBuf>> {
    use clap_complete::Shell;
    std::fs::create_dir_all(&args.out)?;
    cmd.build();
    let name = cmd.get_name().to_owned();
    let shell = match args.what {
        Generated::Bash => Some(Shell::Bash),
        Generated::Zsh => Some(Shell::Zsh),
        Generated::Fish => Some(Shell::Fish),
        Generated::Man => None,
    };
    if let Some(shell) = shell {
        let path = clap_complete::generate_to(shell, &mut cmd, &name, &args.out)?;
        return Ok(vec![path]);
    }
    let mut written = Vec::new();
    let page = |cmd: clap::Command, file: String| -> io::Result<PathBuf> {
        let path = args.out.join(file);
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf)?;
        std::fs::write(&path, buf)?;
        Ok(path)
    };
    written.push(page(cmd.clone(), format!("{name}.1"))?);
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let full = format!("{name}-{}", sub.get_name());
        written.push(page(sub.clone().name(full.clone()), format!("{full}.1"))?);
    }
    Ok(written)
}

fn crates(level: tracing::Level) -> String {
    [
        "protolab_transport",
        "protolab_greet",
        "protolab_udpecho",
        "protolab_dns",
        "protolab_smtp",
        "protolab_impair",
        "protolab_http",
        "protolab_subnet",
        "greet",
        "udpecho",
        "dns",
        "smtp",
        "impair",
        "http",
        "subnet",
    ]
    .iter()
    .map(|c| format!("{c}={level}"))
    .collect::<Vec<_>>()
    .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("25us").unwrap(), Duration::from_micros(25));
        assert!(parse_duration("soon").unwrap_err().contains("250ms"));
    }

    #[test]
    fn counts_refuse_zero() {
        assert_eq!(parse_at_least_one("3"), Ok(3));
        assert!(parse_at_least_one("0").unwrap_err().contains("from 1"));
        assert!(parse_at_least_one("-1").is_err());
    }

    fn in_use() -> io::Error {
        io::ErrorKind::AddrInUse.into()
    }

    #[test]
    fn a_cause_quoted_by_its_context_is_said_once() {
        let e = Err::<(), _>(io::Error::other("connection refused"))
            .context("cannot reach 127.0.0.1:1: connection refused")
            .unwrap_err();
        let r = report(e.as_ref());
        assert_eq!(
            r.line,
            "error: cannot reach 127.0.0.1:1: connection refused"
        );
        assert_eq!(r.code, EXIT_FAILURE);
    }

    #[test]
    fn a_port_in_use_has_one_wording() {
        let addr: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let e = anyhow::Error::new(ListenError::new("tcp", addr, in_use()));
        let r = report(e.as_ref());
        assert_eq!(
            r.line,
            "error: cannot listen on tcp 127.0.0.1:9999: port 9999 is already in use"
        );
        assert!(r.hint.unwrap().contains("--listen"));
        // Under a context the same words come out.
        let e = anyhow::Error::new(ListenError::new("udp", addr, in_use())).context("start");
        assert!(
            report(e.as_ref())
                .line
                .ends_with("port 9999 is already in use")
        );
    }

    #[test]
    fn failures_carry_their_status_and_hint() {
        let e =
            anyhow::Error::new(Failure::no_answer("no reply from 127.0.0.1:9").hint("start it"))
                .context("greet hello");
        let r = report(e.as_ref());
        assert_eq!(r.code, EXIT_NO_ANSWER);
        assert_eq!(
            r.to_string(),
            "error: greet hello: no reply from 127.0.0.1:9\nhint: start it"
        );
    }
}

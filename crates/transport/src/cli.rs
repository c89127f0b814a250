//! What every protolab binary shares on its command line: durations, logging, and output that
//! survives a closed pipe.

use std::time::Duration;

/// Parses a duration such as `1s`, `250ms`, `25us` or `1m30s` for clap.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}: write a duration like 1s, 250ms, 25us or 1m30s"))
}

/// Sets up `tracing` on standard error.
///
/// `RUST_LOG` wins when set; otherwise `base` is the level for protolab's own crates, raised one
/// step per `-v`. Reports go to standard output, so logs never mix with `--json`.
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
        tracing_subscriber::EnvFilter::new(format!("warn,protolab={level},{}", crates(level)))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Writes to standard output like `print!`, except that a reader that went away is not fatal.
///
/// `println!` panics when standard output is a closed pipe (`dns serve | head -1`, a test that
/// stopped reading): the report has nowhere to go, but a server must still shut down cleanly and a
/// client must still exit with its own status. Other write errors are logged at debug level.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("25us").unwrap(), Duration::from_micros(25));
        assert!(parse_duration("soon").unwrap_err().contains("250ms"));
    }
}

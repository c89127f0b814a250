//! protolab's task runner, run as `cargo xtask <task>`.
//!
//! - `demo <tcp|udp|dns|smtp|http|compare|congestion|layers>`: a protocol end to end on loopback
//!   (or through the lab link, as root), narrated.
//! - `test`: installs the real peers (as root), then fmt, clippy and the whole test suite.
//! - `bench <tcp|udp|dns|smtp|http|inbox|link>`: this project and its peers measured in one run.
//! - `install`: the binaries, their shell completions and man pages, onto PATH.
//! - `lab-ca`: a lab CA and server certificate under target/lab-ca/.
//! - `fuzz [TARGET]`: the cargo-fuzz targets of fuzz/, with a report per target.
//! - `conformance http-cache`: the HTTP cache test suite against `http proxy` and Debian's caches.

mod bench;
mod conformance;
mod demo;
mod fuzz;
mod install;
mod lab_ca;
mod peers;
mod test;
mod util;

use std::process::ExitCode;

use anyhow::Result;
use protolab_transport::cli::Failure;

const HELP: &str = "\
cargo xtask: protolab's tasks

Usage:
  cargo xtask demo <tcp|udp|dns|smtp|http|compare|congestion|layers|tls> [OPTIONS]
  cargo xtask test
  cargo xtask bench <tcp|udp|dns|smtp|http|inbox|link> [OPTIONS]   (bench link --rate-only: the iperf3 TCP row)
  cargo xtask fuzz [TARGET...] [--time 60s] [--json]
  cargo xtask conformance http-cache [--only NAME,...] [--json] [--keep DIR]
  cargo xtask install [--prefix DIR]
  cargo xtask lab-ca [--out DIR] [--name NAME]...

Tasks:
  demo      run a protocol end to end on loopback and narrate what happens on the wire
            (demo tcp needs no setup; demo tcp --trace, compare, congestion and layers
            need root)
  test      install the Debian peers the tests use (when root), then cargo fmt --check,
            cargo clippy -D warnings and every test; with CI=true a missing peer is fatal
  bench     measure protolab against its real peers in one run; prints a table with ratios
            and writes it as JSON under target/bench/
  fuzz      run the coverage-guided fuzz targets (cargo-fuzz, nightly) and report executions,
            exec/s, coverage and crashes per target; `cargo xtask fuzz --help` for more
  conformance
            run the HTTP cache test suite through `http proxy` and through trafficserver,
            squid, varnish, nginx and apache2 (as configured in the suite's docker/ folder);
            prints required, optimal and check results per cache
  install   build the binaries (release) and copy them, their shell completions (bash, zsh,
            fish) and man pages under a prefix (default ~/.cargo, so ~/.cargo/bin)
  lab-ca    make a lab CA and a server certificate (ECDSA P-256) for localhost, 127.0.0.1,
            ::1, 198.18.0.1, 198.18.0.2 and each --name NAME:
            target/lab-ca/{ca.pem,server.pem,server.key}

Each task takes --help.

Examples:
  cargo xtask demo tcp
  cargo xtask demo compare --loss 5% --reorder 10% --delay 20ms --seed 7
  cargo xtask demo congestion --cc reno,cubic,bbr --rate 10mbit --queue 100kB
  cargo xtask demo http
  cargo xtask test
  cargo xtask bench tcp
  cargo xtask bench http --duration 10s
  cargo xtask fuzz smtp_session --time 10m
  cargo xtask install --prefix ~/.local
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    protolab_transport::cli::exit_with(run(&args))
}

fn run(args: &[String]) -> Result<()> {
    let Some((task, rest)) = args.split_first() else {
        print!("{HELP}");
        return Ok(());
    };
    match task.as_str() {
        "demo" => demo::run(rest),
        "test" | "ci" => test::run(rest),
        "bench" => bench::run(rest),
        "install" => install::run(rest),
        "lab-ca" => lab_ca::run(rest),
        "conformance" => conformance::run(rest),
        "fuzz" => fuzz::run(rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(Failure::usage(format!("unknown task {other:?}"))
            .hint("run `cargo xtask --help` for the list")
            .into()),
    }
}

/// True when `args` asks for help (`-h`, `--help` or `help` first).
pub fn wants_help(args: &[String]) -> bool {
    args.first()
        .is_some_and(|a| matches!(a.as_str(), "-h" | "--help" | "help"))
}

//! `cargo xtask fuzz [TARGET]`: runs the cargo-fuzz targets of fuzz/ and reports per target the
//! executions, executions per second, coverage and crashes libFuzzer found.
//!
//! The targets are the files of `fuzz/fuzz_targets/`; each calls the check of the same name in
//! crates/fuzzing. A run starts from the committed corpus `fuzz/corpus/<target>/` (libFuzzer
//! adds what it finds there: minimise with `cargo fuzz cmin` before committing) and a crash's
//! input lands in `fuzz/artifacts/<target>/`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util;

const HELP: &str = "\
cargo xtask fuzz: run the coverage-guided fuzz targets of fuzz/ with cargo-fuzz (nightly)

USAGE:
    cargo xtask fuzz [TARGET...] [--time DURATION] [--sanitizer address|none] [--json] [-v]
    cargo xtask fuzz --list

Runs each TARGET (all of them when none is named) one after another for DURATION (default
60s), starting from fuzz/corpus/<target>/, and prints per target the executions, executions
per second, coverage (libFuzzer's cov and ft of its last status line), corpus size and the
crashes found. A crash's input is written to fuzz/artifacts/<target>/; minimise it with
`cargo +nightly fuzz tmin <target> <file>` and commit it under fuzz/regressions/<target>/, where
`cargo test -p protolab-fuzzing` replays it for good. Installs cargo-fuzz with
`cargo install cargo-fuzz` when it is missing; needs the nightly toolchain.

OPTIONS:
    --time DURATION     how long each target runs: 90s, 10m, 1h or seconds (default 60s)
    --sanitizer S       address (default) or none, when the sanitizer build fails
    --json              print the report as JSON
    -v                  show libFuzzer's own output
    --list              list the targets and exit

EXIT STATUS:
    0 no crash, 1 a crash or a failed run, 2 a usage error

EXAMPLES:
    cargo xtask fuzz --list
    cargo xtask fuzz smtp_session --time 10m
    cargo xtask fuzz --time 30s --json
    nice -n 10 cargo xtask fuzz dns_cache zone_file --time 600s --sanitizer none
";

/// What one target's run found.
#[derive(Debug, Default, serde::Serialize)]
struct Outcome {
    target: String,
    seconds: f64,
    executions: u64,
    execs_per_sec: u64,
    /// Coverage: code edges (`cov`) and features (`ft`) from libFuzzer's last status line.
    cov: u64,
    ft: u64,
    corpus: u64,
    crashes: Vec<String>,
    /// Why the run ended badly without a crash (a build failure, a fuzzer error).
    error: Option<String>,
}

struct Options {
    targets: Vec<String>,
    time: Duration,
    sanitizer: String,
    json: bool,
    verbose: bool,
    list: bool,
}

/// A usage error: printed as `error: ...` and exits with status 2.
fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\nhint: cargo xtask fuzz --help");
    std::process::exit(2);
}

fn parse_time(s: &str) -> Option<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn parse(args: &[String]) -> Options {
    let mut o = Options {
        targets: Vec::new(),
        time: Duration::from_secs(60),
        sanitizer: "address".into(),
        json: false,
        verbose: false,
        list: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            "--time" => {
                let v = it
                    .next()
                    .unwrap_or_else(|| usage("--time needs a duration"));
                o.time = parse_time(v).unwrap_or_else(|| {
                    usage(&format!("--time {v:?}: not a duration like 90s or 10m"))
                });
            }
            "--sanitizer" => {
                let v = it
                    .next()
                    .unwrap_or_else(|| usage("--sanitizer needs address or none"));
                if v != "address" && v != "none" {
                    usage(&format!("--sanitizer {v:?}: choose address or none"));
                }
                o.sanitizer.clone_from(v);
            }
            "--json" => o.json = true,
            "-v" | "--verbose" => o.verbose = true,
            "--list" => o.list = true,
            flag if flag.starts_with('-') => usage(&format!("unknown option {flag:?}")),
            target => o.targets.push(target.to_owned()),
        }
    }
    o
}

fn fuzz_dir() -> PathBuf {
    util::root().join("fuzz")
}

/// The targets: the files of fuzz/fuzz_targets/, sorted.
fn all_targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Makes sure `cargo fuzz` runs, installing cargo-fuzz when it is missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let works = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Ok(());
    }
    println!("cargo-fuzz is missing: installing it with `cargo install cargo-fuzz`");
    let status = Command::new("cargo")
        .args(["install", "cargo-fuzz"])
        .status()
        .context("run cargo install cargo-fuzz")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status}); install it by hand and retry");
    }
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !nightly {
        bail!("cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly");
    }
    Ok(())
}

/// The number after `key` in a libFuzzer line such as `#4096 pulse cov: 812 ft: 1740 ...`.
fn field(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Reads one line of libFuzzer's output into `o`.
fn absorb(o: &mut Outcome, line: &str) {
    if line.starts_with('#') && line.contains("cov: ") {
        o.executions = line[1..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(o.executions);
        o.cov = field(line, "cov: ").unwrap_or(o.cov);
        o.ft = field(line, "ft: ").unwrap_or(o.ft);
        o.corpus = line
            .find("corp: ")
            .and_then(|i| line[i + 6..].split('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(o.corpus);
        o.execs_per_sec = field(line, "exec/s: ").unwrap_or(o.execs_per_sec);
    } else if let Some(n) = line.strip_prefix("stat::number_of_executed_units: ") {
        o.executions = n.trim().parse().unwrap_or(o.executions);
    } else if let Some(n) = line.strip_prefix("stat::average_exec_per_sec: ") {
        o.execs_per_sec = n.trim().parse().unwrap_or(o.execs_per_sec);
    } else if let Some(i) = line.find("Test unit written to ") {
        o.crashes.push(line[i + 21..].trim().to_owned());
    }
}

fn run_target(target: &str, opts: &Options) -> Outcome {
    let mut o = Outcome {
        target: target.to_owned(),
        ..Outcome::default()
    };
    let corpus = fuzz_dir().join("corpus").join(target);
    if let Err(e) = std::fs::create_dir_all(&corpus) {
        o.error = Some(format!("create {}: {e}", corpus.display()));
        return o;
    }
    let started = Instant::now();
    let child = Command::new("cargo")
        .current_dir(fuzz_dir())
        .args([
            "+nightly",
            "fuzz",
            "run",
            "--sanitizer",
            &opts.sanitizer,
            target,
        ])
        .arg(&corpus)
        .args([
            "--",
            &format!("-max_total_time={}", opts.time.as_secs()),
            "-print_final_stats=1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            o.error = Some(format!("start cargo fuzz: {e}"));
            return o;
        }
    };
    // libFuzzer reports on stderr; cargo's build output goes there too.
    let stdout = child.stdout.take();
    let echo = opts.verbose;
    let out_thread = std::thread::spawn(move || {
        let mut lines = Vec::new();
        if let Some(s) = stdout {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("{line}");
                }
                lines.push(line);
            }
        }
        lines
    });
    let mut tail: Vec<String> = Vec::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if opts.verbose {
                eprintln!("{line}");
            }
            absorb(&mut o, &line);
            tail.push(line);
            if tail.len() > 40 {
                tail.remove(0);
            }
        }
    }
    for line in out_thread.join().unwrap_or_default() {
        absorb(&mut o, &line);
    }
    let status = child.wait();
    o.seconds = started.elapsed().as_secs_f64();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) if o.crashes.is_empty() => {
            o.error = Some(format!(
                "cargo fuzz run {target} failed ({s}); last output:\n{}",
                tail.join("\n")
            ));
        }
        Ok(_) => {}
        Err(e) => o.error = Some(format!("wait for cargo fuzz: {e}")),
    }
    o
}

pub fn run(args: &[String]) -> Result<()> {
    let opts = parse(args);
    let known = all_targets()?;
    if opts.list {
        for t in &known {
            println!("{t}");
        }
        return Ok(());
    }
    for t in &opts.targets {
        if !known.contains(t) {
            usage(&format!(
                "no fuzz target {t:?}: run `cargo xtask fuzz --list`"
            ));
        }
    }
    let targets = if opts.targets.is_empty() {
        known
    } else {
        opts.targets.clone()
    };
    ensure_cargo_fuzz()?;
    let mut outcomes = Vec::new();
    for t in &targets {
        if !opts.json {
            println!("fuzzing {t} for {}s ...", opts.time.as_secs());
        }
        let o = run_target(t, &opts);
        if !opts.json {
            print_one(&o);
        }
        outcomes.push(o);
    }
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        print_table(&outcomes);
    }
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.crashes.is_empty())
        .map(|o| o.target.as_str())
        .collect();
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .map(|o| o.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!(
            "crashes in {}: minimise each with `cargo +nightly fuzz tmin <target> <file>` and \
             commit it under fuzz/regressions/<target>/",
            crashed.join(", ")
        );
    }
    if !failed.is_empty() {
        bail!(
            "fuzzing failed for {}; if the sanitizer build is the problem, retry with --sanitizer none",
            failed.join(", ")
        );
    }
    Ok(())
}

fn print_one(o: &Outcome) {
    for c in &o.crashes {
        println!("  crash: {c}");
    }
    if let Some(e) = &o.error {
        println!("  error: {e}");
    }
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "\n{:<22} {:>8} {:>12} {:>9} {:>7} {:>8} {:>7} {:>7}",
        "target", "seconds", "executions", "exec/s", "cov", "ft", "corpus", "crashes"
    );
    for o in outcomes {
        println!(
            "{:<22} {:>8.0} {:>12} {:>9} {:>7} {:>8} {:>7} {:>7}",
            o.target,
            o.seconds,
            o.executions,
            o.execs_per_sec,
            o.cov,
            o.ft,
            o.corpus,
            if o.error.is_some() && o.crashes.is_empty() {
                "error".to_owned()
            } else {
                o.crashes.len().to_string()
            }
        );
    }
}

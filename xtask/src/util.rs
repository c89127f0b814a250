//! What the tasks share: building, printing benchmark tables, and (from the lab harness,
//! `crates/lab`) a server's CPU time from /proc for the CPU-per-request column every
//! benchmark table has.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace's root folder.
pub fn root() -> PathBuf {
    protolab_lab::workspace_root()
}

/// Runs cargo with `args` in the workspace root.
///
/// # Errors
/// cargo failing to start or exiting non-zero.
pub fn cargo(args: &[&str]) -> Result<()> {
    println!("$ cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .status()
        .context("run cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Builds the workspace's binaries (release for benchmarks) and returns their folder.
///
/// # Errors
/// The build failing.
pub fn build_bins(release: bool) -> Result<PathBuf> {
    build_bins_of(release, &[])
}

/// Builds the binaries of the given packages only (all of the workspace's when empty), so a
/// demo needs no more than it runs.
///
/// # Errors
/// The build failing.
pub fn build_bins_of(release: bool, packages: &[&str]) -> Result<PathBuf> {
    let mut args = vec!["build", "--quiet", "--bins"];
    if packages.is_empty() {
        args.extend(["--workspace", "--exclude", "xtask"]);
    }
    for p in packages {
        args.extend(["--package", p]);
    }
    if release {
        args.push("--release");
    }
    cargo(&args)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let dir = target.join(if release { "release" } else { "debug" });
    println!(
        "binaries in {} (`cargo xtask install` puts them on PATH)\n",
        dir.display()
    );
    Ok(dir)
}

/// Runs `f` while printing on standard error how long it has run, every few seconds, so that a
/// long step whose output comes only at its end is not taken for a hang.
pub fn with_progress<T>(label: &str, f: impl FnOnce() -> T) -> T {
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let ticker = {
        let done = done.clone();
        let label = label.to_owned();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let tty = std::io::stderr().is_terminal();
            let mut shown = false;
            let mut next = 2;
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let secs = start.elapsed().as_secs();
                if secs >= next {
                    if tty {
                        eprint!("\r    ... {label}: {secs} s");
                    } else {
                        eprintln!("    ... {label}: {secs} s");
                    }
                    shown = true;
                    next = secs + if tty { 1 } else { 5 };
                }
            }
            if shown && tty {
                eprintln!();
            }
        })
    };
    let out = f();
    done.store(true, Ordering::Release);
    let _ = ticker.join();
    out
}

/// A benchmark's result table: printed aligned and written as JSON under target/bench/.
#[derive(Debug, serde::Serialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines under the table: ratios, targets and notes.
    pub notes: Vec<String>,
    /// Machine-readable figures for scripts.
    pub figures: serde_json::Map<String, serde_json::Value>,
}

impl Table {
    pub fn new(name: &str, columns: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
            figures: serde_json::Map::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn figure(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.figures.insert(key.to_owned(), value.into());
    }

    /// A ratio line under the table, both ways of comparing: throughput (higher is better) and
    /// CPU per request (lower is better; the steadier figure when the load generator shares
    /// the cores). Also stored as figures `ratio_<key>` and `cpu_ratio_<key>`.
    pub fn ratios(&mut self, key: &str, label: &str, ours: Side, peer: Side, targets: &str) {
        let rate = ours.per_sec / peer.per_sec;
        let cpu = ours.cpu_ms_per_thousand / peer.cpu_ms_per_thousand;
        let cpu_text = if cpu.is_finite() {
            format!("{cpu:.2}x")
        } else {
            "-".into()
        };
        let targets = if targets.is_empty() {
            String::new()
        } else {
            format!("  ({targets})")
        };
        self.note(format!(
            "{label}: {rate:.2}x throughput, {cpu_text} CPU per request{targets}"
        ));
        self.figure(&format!("ratio_{key}"), rate);
        if cpu.is_finite() {
            self.figure(&format!("cpu_ratio_{key}"), cpu);
        }
    }

    /// As [`Table::finish`], or with `json` the table as one JSON document on standard output
    /// instead of the text (the file and any drawing are written all the same).
    ///
    /// # Errors
    /// Writing the JSON file or the drawing.
    pub fn finish_as(&self, json: bool) -> Result<()> {
        if !json {
            return self.finish();
        }
        println!("{}", serde_json::to_string_pretty(self)?);
        self.save(false)
    }

    /// Prints the table and writes target/bench/<name>.json.
    ///
    /// # Errors
    /// Writing the JSON file.
    pub fn finish(&self) -> Result<()> {
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .chain(std::iter::once(&self.columns[i]))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        };
        println!();
        println!("{}", line(&self.columns));
        println!(
            "{}",
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  ")
        );
        for r in &self.rows {
            println!("{}", line(r));
        }
        for n in &self.notes {
            println!("{n}");
        }
        self.save(true)
    }

    /// Writes target/bench/<name>.json and, with `--svg`, the drawing; `say` prints where.
    fn save(&self, say: bool) -> Result<()> {
        let dir = root().join("target").join("bench");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.json", self.name));
        std::fs::write(&path, serde_json::to_string_pretty(self)?)?;
        if say {
            println!("(written to {})", path.display());
        }
        if let Some(svg) = BENCH_SVG.get() {
            // One run may print several tables: each gets its own file beside the one named.
            let svg = if self.name == svg.file_stem().and_then(|s| s.to_str()).unwrap_or("") {
                svg.clone()
            } else {
                svg.with_file_name(format!(
                    "{}-{}.svg",
                    svg.file_stem().and_then(|s| s.to_str()).unwrap_or("bench"),
                    self.name
                ))
            };
            protolab_udpecho::plot::bench_bars(
                &svg,
                &format!("bench {}", self.name),
                &self.panels(),
            )?;
            if say {
                println!("(drawn in {})", svg.display());
            }
        }
        Ok(())
    }

    /// The table as bar-chart panels: the first rate column (its header has `/s`) and the CPU
    /// column, each over the rows whose cell is a number.
    pub fn panels(&self) -> Vec<protolab_udpecho::plot::Panel> {
        let rate = self.columns.iter().skip(1).position(|c| c.contains("/s"));
        let cpu = self.columns.iter().position(|c| c == CPU_COLUMN);
        [(rate.map(|i| i + 1), true), (cpu, false)]
            .into_iter()
            .filter_map(|(col, higher_is_better)| {
                let col = col?;
                let bars: Vec<(String, f64)> = self
                    .rows
                    .iter()
                    .filter_map(|r| Some((r.first()?.clone(), r.get(col)?.trim().parse().ok()?)))
                    .collect();
                (!bars.is_empty()).then(|| protolab_udpecho::plot::Panel {
                    measure: self.columns[col].clone(),
                    higher_is_better,
                    bars,
                })
            })
            .collect()
    }
}

/// Where `cargo xtask bench ... --svg FILE` asked for the tables to be drawn.
static BENCH_SVG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Draws every table this run finishes as a bar chart at `path` (see [`Table::panels`]).
pub fn draw_tables_to(path: PathBuf) {
    let _ = BENCH_SVG.set(path);
}

// CPU time and memory from /proc live in the lab harness, shared with the tests. All of its
// readers stay reachable here under the names the benchmarks have used, used or not yet.
#[allow(unused_imports)]
pub use protolab_lab::sample::{
    CpuClock, CpuUse, Memory, ProcCpu, memory, process_cpu, processes_cpu,
};

/// Runs `f` with the CPU time of `of` measured around it: the lab's `sample::with_cpu`, with
/// the error type fixed to anyhow's so that a closure's `?` needs no annotation.
///
/// # Errors
/// `f` failing, or the process not being readable before or after.
pub fn with_cpu<T>(of: ProcCpu, f: impl FnOnce() -> Result<T>) -> Result<(T, CpuUse)> {
    protolab_lab::sample::with_cpu(of, f)
}

/// The heading of the CPU column every benchmark table has.
pub const CPU_COLUMN: &str = "server CPU ms/1k";

/// A CPU-per-1,000-requests cell: three significant figures, `-` when not measured.
pub fn cpu_cell(ms_per_thousand: f64) -> String {
    if !ms_per_thousand.is_finite() {
        "-".into()
    } else if ms_per_thousand >= 100.0 {
        format!("{ms_per_thousand:.0}")
    } else if ms_per_thousand >= 10.0 {
        format!("{ms_per_thousand:.1}")
    } else {
        format!("{ms_per_thousand:.2}")
    }
}

/// One server's side of a comparison: its rate and its CPU per 1,000 requests.
#[derive(Debug, Clone, Copy)]
pub struct Side {
    pub per_sec: f64,
    pub cpu_ms_per_thousand: f64,
}

/// A blocking TCP connection for demos and benches, opened through transport (the one layer
/// that opens sockets) with Nagle off and a 10 s limit on the handshake.
pub fn connect(addr: std::net::SocketAddr) -> Result<std::net::TcpStream> {
    let options = protolab_transport::tcp::BlockingConnect {
        nodelay: true,
        ..Default::default()
    };
    protolab_transport::tcp::connect_tcp_blocking(
        addr,
        std::time::Duration::from_secs(10),
        &options,
    )
    .with_context(|| format!("connect to {addr}"))
}

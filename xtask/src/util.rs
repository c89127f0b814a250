//! What the tasks share: building, starting servers, printing benchmark tables, and reading
//! a server's CPU time from /proc for the CPU-per-request column every benchmark table has.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The workspace's root folder.
pub fn root() -> PathBuf {
    protolab_tests::workspace_root()
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

/// The kernel's clock tick (`USER_HZ`): `/proc/PID/stat` counts CPU time in these.
fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The fields of `/proc/PID/stat` from field 3 (state) on, as numbers where they are numbers.
/// The command name (field 2) sits in parentheses and may itself hold spaces and parentheses,
/// so the split starts after the last `)`.
fn stat_fields(pid: i32) -> Result<Vec<i64>> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_stat(&text).with_context(|| format!("no command name in {path}"))
}

fn parse_stat(text: &str) -> Option<Vec<i64>> {
    let (_, rest) = text.rsplit_once(')')?;
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// Field `n` (numbered from 1, as in proc(5)) out of what [`stat_fields`] returned.
fn stat_field(fields: &[i64], n: usize) -> u64 {
    fields
        .get(n - 3)
        .and_then(|v| u64::try_from(*v).ok())
        .unwrap_or(0)
}

fn ticks(t: u64) -> Duration {
    let hz = clock_ticks_per_sec();
    Duration::from_secs(t / hz) + Duration::from_nanos((t % hz) * 1_000_000_000 / hz)
}

/// The CPU time a process has used so far, all its threads together: user plus system time,
/// fields 14 and 15 of `/proc/PID/stat`.
///
/// # Errors
/// The process does not exist (any more) or its stat file cannot be read.
pub fn process_cpu(pid: i32) -> Result<Duration> {
    let f = stat_fields(pid)?;
    Ok(ticks(stat_field(&f, 14) + stat_field(&f, 15)))
}

/// The CPU time of a set of processes: fields 14 and 15 summed over `pids`, and with
/// `reaped_children` also fields 16 and 17 (the time of their children that have exited and
/// been waited for). A process that is gone by the time it is read counts nothing: a server's
/// daemon may exit between listing and reading, and its time is then in its parent's fields
/// 16 and 17.
pub fn processes_cpu(pids: &[i32], reaped_children: bool) -> Duration {
    let last = if reaped_children { 17 } else { 15 };
    let total = pids
        .iter()
        .filter_map(|p| stat_fields(*p).ok())
        .map(|f| (14..=last).map(|n| stat_field(&f, n)).sum::<u64>())
        .sum();
    ticks(total)
}

/// Every live process whose chain of parents leads to `root`, `root` included.
fn process_tree(root: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(f) = stat_fields(pid) {
            parent_of.push((pid, stat_field(&f, 4) as i32));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(
            parent_of
                .iter()
                .filter(|(_, parent)| *parent == p)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree
}

/// Which processes a CPU reading covers.
#[derive(Debug, Clone, Copy)]
pub enum ProcCpu {
    /// One process (a server with any number of threads).
    Process(i32),
    /// A server made of many processes, such as Postfix's `master` and the daemons it starts:
    /// the root and every live descendant. Postfix's daemons exit and are replaced during a
    /// run (smtpd after 100 sessions, for one), so each process also counts the CPU time of its
    /// children that have exited and been reaped (fields 16 and 17): a daemon's time then
    /// moves into its parent's count when it exits instead of vanishing from the sum.
    Tree(i32),
}

impl ProcCpu {
    /// The CPU time used so far.
    ///
    /// # Errors
    /// The process (for `Tree`, the root) does not exist.
    pub fn read(self) -> Result<Duration> {
        match self {
            ProcCpu::Process(pid) => process_cpu(pid),
            ProcCpu::Tree(root) => {
                // Make sure the root exists, so a server that died reads as an error, not 0.
                stat_fields(root)?;
                Ok(processes_cpu(&process_tree(root), true))
            }
        }
    }
}

/// Server CPU time over a measured interval: read at `start`, read again at `stop`.
#[derive(Debug)]
pub struct CpuClock {
    of: ProcCpu,
    cpu: Duration,
    wall: Instant,
}

impl CpuClock {
    /// Takes the first reading.
    ///
    /// # Errors
    /// The process cannot be read.
    pub fn start(of: ProcCpu) -> Result<Self> {
        Ok(Self {
            of,
            cpu: of.read()?,
            wall: Instant::now(),
        })
    }

    /// Takes the second reading and returns what was used in between.
    ///
    /// # Errors
    /// The process cannot be read (it died during the run).
    pub fn stop(&self) -> Result<CpuUse> {
        let cpu = self.of.read()?;
        Ok(CpuUse {
            cpu: cpu.saturating_sub(self.cpu),
            wall: self.wall.elapsed(),
        })
    }
}

/// The CPU time a server used over a measured interval, and how long the interval was.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub cpu: Duration,
    pub wall: Duration,
}

impl CpuUse {
    /// Milliseconds of CPU per 1,000 requests served in the interval. On a machine where the
    /// load generator and the server share the cores, requests per second mostly says who got
    /// the CPU; this says what each request cost, whoever got it.
    pub fn ms_per_thousand(self, requests: u64) -> f64 {
        if requests == 0 {
            return f64::NAN;
        }
        self.cpu.as_secs_f64() * 1e3 * 1e3 / requests as f64
    }

    /// How many cores the server kept busy on average over the interval.
    pub fn cores(self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// The sum of two intervals (several rounds of one measurement).
    pub fn add(self, other: CpuUse) -> CpuUse {
        CpuUse {
            cpu: self.cpu + other.cpu,
            wall: self.wall + other.wall,
        }
    }
}

/// Runs `f` with the CPU time of `of` measured around it.
///
/// # Errors
/// `f` failing, or the process not being readable before or after.
pub fn with_cpu<T>(of: ProcCpu, f: impl FnOnce() -> Result<T>) -> Result<(T, CpuUse)> {
    let clock = CpuClock::start(of)?;
    let out = f()?;
    Ok((out, clock.stop()?))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 500 0 0 0 731 29 5 7 20 0 1 0 99 \
                    1000 10 18446744073709551615\n";
        let f = parse_stat(line).expect("fields");
        assert_eq!(stat_field(&f, 3), 0, "state S is not a number");
        assert_eq!(stat_field(&f, 4), 1, "ppid");
        assert_eq!(stat_field(&f, 14), 731, "utime");
        assert_eq!(stat_field(&f, 15), 29, "stime");
        assert_eq!(stat_field(&f, 16), 5, "cutime");
        assert_eq!(stat_field(&f, 17), 7, "cstime");
        assert_eq!(stat_field(&f, 99), 0, "past the end");
    }

    #[test]
    fn a_process_tree_holds_the_children_and_counts_their_time() {
        // A shell that spends CPU time in a child it waits for, then sleeps.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30",
            ])
            .spawn()
            .expect("spawn sh");
        let me = std::process::id() as i32;
        let pid = child.id() as i32;
        assert!(process_tree(me).contains(&pid), "our child is in our tree");
        // The shell's loop burns CPU in the shell itself: wait until it shows (bounded).
        for _ in 0..600 {
            if process_cpu(pid).expect("read the child") >= Duration::from_millis(50) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (own, child_cpu) = (
            process_cpu(me).expect("me"),
            process_cpu(pid).expect("child"),
        );
        let tree = ProcCpu::Tree(me).read().expect("read our tree");
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            child_cpu > Duration::ZERO,
            "the shell's loop used no CPU time"
        );
        assert!(
            tree >= own + child_cpu,
            "the tree ({tree:?}) counts us ({own:?}) and the child ({child_cpu:?})"
        );
        assert!(ProcCpu::Process(-1).read().is_err(), "no such process");
    }
}

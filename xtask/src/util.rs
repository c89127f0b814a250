//! What the tasks share: building, starting servers, and printing benchmark tables.

use std::path::PathBuf;
use std::process::Command;

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
        let dir = root().join("target").join("bench");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.json", self.name));
        std::fs::write(&path, serde_json::to_string_pretty(self)?)?;
        println!("(written to {})", path.display());
        Ok(())
    }
}

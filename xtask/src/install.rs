//! `cargo xtask install [--prefix DIR]`: the binaries onto PATH, with shell completions and man
//! pages generated from each binary's own clap definition (its hidden `generate` subcommand).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use protolab_transport::cli::Failure;

use crate::util;

/// The binaries `install` copies, each from the package of the same name.
pub const BINARIES: [&str; 7] = [
    "greet", "udpecho", "dns", "smtp", "impair", "subnet", "http",
];

const HELP: &str = "\
cargo xtask install: the binaries, shell completions and man pages under a prefix

Usage:
  cargo xtask install [--prefix DIR] [--debug]

Builds the binaries (release unless --debug) and writes, under the prefix (default ~/.cargo):
  bin/NAME                                 greet udpecho dns smtp impair subnet http
  share/bash-completion/completions/NAME.bash
  share/zsh/site-functions/_NAME
  share/fish/vendor_completions.d/NAME.fish
  share/man/man1/NAME.1 and NAME-SUBCOMMAND.1

Examples:
  cargo xtask install                      into ~/.cargo/bin, already on PATH after rustup
  cargo xtask install --prefix ~/.local    then: export PATH=~/.local/bin:$PATH
";

pub fn run(args: &[String]) -> Result<()> {
    if crate::wants_help(args) {
        print!("{HELP}");
        return Ok(());
    }
    let mut prefix = None;
    let mut release = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--prefix" => {
                let dir = it.next().ok_or_else(|| {
                    Failure::usage("--prefix needs a folder")
                        .hint("cargo xtask install --prefix ~/.local")
                })?;
                prefix = Some(PathBuf::from(dir));
            }
            "--debug" => release = false,
            other => {
                return Err(
                    Failure::usage(format!("unknown option {other:?} for install"))
                        .hint("cargo xtask install --help")
                        .into(),
                );
            }
        }
    }
    let prefix = match prefix {
        Some(p) => p,
        None => default_prefix()?,
    };
    let bins = util::build_bins_of(release, &[])?;
    let written = install(&bins, &prefix)?;
    for path in &written {
        println!("installed {}", path.display());
    }
    let bin = prefix.join("bin");
    let on_path =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == bin));
    if !on_path {
        println!(
            "\n{} is not on PATH: export PATH={}:$PATH",
            bin.display(),
            bin.display()
        );
    }
    println!(
        "zsh: add {} to fpath; man: MANPATH={}:$MANPATH",
        prefix.join("share/zsh/site-functions").display(),
        prefix.join("share/man").display()
    );
    Ok(())
}

fn default_prefix() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| {
        Failure::usage("HOME is not set, so there is no default prefix").hint("give --prefix DIR")
    })?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// Copies the binaries in `bins` under `prefix` and writes their completions and man pages;
/// returns every file written.
///
/// # Errors
/// A binary missing, a folder that cannot be made, a `generate` that fails.
pub fn install(bins: &Path, prefix: &Path) -> Result<Vec<PathBuf>> {
    let bin_dir = prefix.join("bin");
    let share = prefix.join("share");
    let places = [
        ("bash", share.join("bash-completion/completions")),
        ("zsh", share.join("zsh/site-functions")),
        ("fish", share.join("fish/vendor_completions.d")),
        ("man", share.join("man/man1")),
    ];
    std::fs::create_dir_all(&bin_dir).with_context(|| format!("create {}", bin_dir.display()))?;
    let mut written = Vec::new();
    for name in BINARIES {
        let from = bins.join(name);
        let to = bin_dir.join(name);
        // Copy beside, then rename: replacing a running binary in place would fail (ETXTBSY).
        let tmp = bin_dir.join(format!(".{name}.new"));
        std::fs::copy(&from, &tmp)
            .with_context(|| format!("copy {} to {}", from.display(), tmp.display()))?;
        std::fs::rename(&tmp, &to).with_context(|| format!("install {}", to.display()))?;
        written.push(to);
        for (what, dir) in &places {
            // subnet has no subcommands: its generator is a hidden option.
            let generate: &[&str] = if name == "subnet" {
                &["--generate", what, "--out"]
            } else {
                &["generate", what, "--out"]
            };
            let out = Command::new(&from)
                .args(generate)
                .arg(dir)
                .output()
                .with_context(|| format!("run {name} generate {what}"))?;
            if !out.status.success() {
                // A binary that does not follow the convention yet still installs; say what
                // it lacks rather than fail the rest.
                let err = String::from_utf8_lossy(&out.stderr);
                eprintln!(
                    "warning: {name} wrote no {what} files: {}",
                    err.lines().next().unwrap_or("").trim()
                );
                break;
            }
        }
    }
    for (_, dir) in &places {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    BINARIES
                        .iter()
                        .any(|b| n.trim_start_matches('_').starts_with(b))
                })
            })
            .collect();
        files.sort();
        written.extend(files);
    }
    Ok(written)
}

//! Replays every committed fuzz input through its check, so an ordinary `cargo test` keeps each
//! crash the fuzzer ever found fixed, without nightly or the fuzzer.
//!
//! `fuzz/corpus/<target>/` holds the minimised corpus (`cargo fuzz cmin`), and
//! `fuzz/regressions/<target>/` the minimised input of every crash found (`cargo fuzz tmin`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use protolab_fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every file of `kind` (`corpus` or `regressions`) through its target's check; returns
/// how many ran, and panics naming every file that fails.
fn replay(kind: &str) -> usize {
    let mut failures = Vec::new();
    let mut ran = 0;
    for (name, check) in TARGETS {
        for file in files(&fuzz_dir().join(kind).join(name)) {
            let data = std::fs::read(&file).expect("read a fuzz input");
            ran += 1;
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{}: {why}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failing {kind} inputs:\n{}",
        failures.join("\n")
    );
    ran
}

#[test]
fn every_corpus_input_passes_its_check() {
    let ran = replay("corpus");
    assert!(
        ran >= TARGETS.len(),
        "only {ran} corpus inputs: is fuzz/corpus there?"
    );
}

#[test]
fn every_past_crash_stays_fixed() {
    replay("regressions");
}

#[test]
fn every_target_has_a_fuzz_target_file_and_a_corpus() {
    for (name, _) in TARGETS {
        let target = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&target).expect("a fuzz target file per check");
        assert!(
            text.contains(&format!("::{name}(data)")),
            "{} calls another check",
            target.display()
        );
        assert!(
            !files(&fuzz_dir().join("corpus").join(name)).is_empty(),
            "no corpus for {name}"
        );
    }
    let on_disk = files(&fuzz_dir().join("fuzz_targets")).len();
    assert_eq!(on_disk, TARGETS.len(), "fuzz_targets/ and TARGETS differ");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} missing in fuzz/Cargo.toml"
        );
    }
}

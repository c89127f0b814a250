//! Runs fuzz inputs through a check on stable Rust, to reproduce a crash without the fuzzer:
//! `cargo run -p protolab-fuzzing --example replay_one -- <target> <file>...`.
//!
//! Exits with status 2 for an unknown target or an unreadable file; a failing check panics with
//! its message, naming the invariant that broke.

use protolab_transport::outln;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        eprintln!("error: say which target: replay_one <target> <file>...");
        std::process::exit(2);
    };
    let Some(check) = protolab_fuzzing::target(&name) else {
        eprintln!("error: no fuzz target {name:?}: see crates/fuzzing/src/lib.rs TARGETS");
        std::process::exit(2);
    };
    for file in args {
        let data = std::fs::read(&file).unwrap_or_else(|e| {
            eprintln!("error: read {file}: {e}");
            std::process::exit(2);
        });
        check(&data);
        outln!("{file}: ok");
    }
}

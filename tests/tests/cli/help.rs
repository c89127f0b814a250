//! Every binary and every subcommand answers `--help` with an `Examples:` section.

use crate::{BINARIES, run, stderr, stdout};

/// The subcommands a help text lists under `Commands:`, without clap's own `help`.
pub fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // A name is indented by two spaces; a wrapped description by more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .map(str::to_owned)
        .collect()
}

/// Commands other than our own that examples show next to them.
const PEERS_IN_EXAMPLES: [&str; 2] = ["curl", "swaks"];

fn walk(bin: &str, path: &mut Vec<String>, seen: &mut Vec<String>) {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let out = run(bin, &args);
    let text = stdout(&out);
    let what = format!("{bin} {}", args.join(" "));
    assert!(out.status.success(), "{what}: {}", stderr(&out));
    assert!(
        text.contains("\nExamples:\n"),
        "{what} has no Examples: section:\n{text}"
    );
    assert!(
        !text.contains("EXAMPLES:"),
        "{what}: one heading, Examples:"
    );
    // Verbatim examples: each example line starts with the binary's name (or a continuation
    // indented under it), never a fragment wrapped from the line before.
    for line in text.lines().skip_while(|l| *l != "Examples:").skip(1) {
        if line.trim().is_empty() {
            break;
        }
        assert!(
            line.starts_with("  ") || line.starts_with("    "),
            "{what}: example line not indented: {line:?}"
        );
        // At two spaces a line is a whole command: one of this binary, a peer it is shown
        // with, or an environment setting before one. Anything else is the tail of a line
        // that wrapped.
        if !line.starts_with("   ") {
            let first = line.split_whitespace().next().unwrap_or_default();
            assert!(
                first == bin || PEERS_IN_EXAMPLES.contains(&first) || first.contains('='),
                "{what}: an example wrapped mid-line, or starts with {first:?}: {line:?}\n{text}"
            );
        }
    }
    seen.push(what);
    for sub in subcommands(&text) {
        path.push(sub);
        walk(bin, path, seen);
        path.pop();
    }
}

#[test]
fn every_command_has_help_with_examples() {
    let mut seen = Vec::new();
    for bin in BINARIES {
        walk(bin, &mut Vec::new(), &mut seen);
    }
    // The walk reached the subcommands, not only the top levels.
    for expected in [
        "greet serve --help",
        "greet hello --help",
        "greet bench --help",
        "udpecho serve --help",
        "udpecho probe --help",
        "impair udp --help",
        "impair link --help",
        "dns query --help",
        "dns serve --help",
        "dns zone --help",
        "smtp serve --help",
        "smtp send --help",
        "smtp web --help",
        "smtp list --help",
        "smtp show --help",
        "http get --help",
        "http serve --help",
        "http proxy --help",
    ] {
        assert!(
            seen.iter().any(|s| s.ends_with(expected)),
            "{expected} not walked: {seen:?}"
        );
    }
}

#[test]
fn json_and_verbose_are_accepted_before_and_after_the_subcommand() {
    for (bin, sub) in [
        ("greet", "hello"),
        ("udpecho", "probe"),
        ("impair", "udp"),
        ("dns", "query"),
        ("smtp", "serve"),
        ("smtp", "send"),
        ("http", "get"),
    ] {
        for args in [
            [sub, "--json", "--help"],
            ["--json", sub, "--help"],
            ["-v", sub, "--help"],
        ] {
            let out = run(bin, &args);
            assert!(out.status.success(), "{bin} {args:?}: {}", stderr(&out));
        }
    }
}

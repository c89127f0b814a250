//! Shell completions and man pages come from each binary's own clap definition and name every
//! subcommand.

use protolab_tests::bin;

use crate::help::subcommands;
use crate::{BINARIES, run, stderr, stdout};

#[test]
fn completions_and_man_pages_name_every_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in BINARIES {
        let subs = subcommands(&stdout(&run(name, &["--help"])));
        for what in ["bash", "zsh", "fish", "man"] {
            let out_dir = dir.path().join(what);
            let out_dir_text = out_dir.to_str().expect("utf-8");
            let args: Vec<&str> = if name == "subnet" {
                vec!["--generate", what, "--out", out_dir_text]
            } else {
                vec!["generate", what, "--out", out_dir_text]
            };
            let out = std::process::Command::new(bin(name))
                .args(&args)
                .output()
                .expect("run generate");
            assert!(out.status.success(), "{name} {args:?}: {}", stderr(&out));
            let file = match what {
                "bash" => out_dir.join(format!("{name}.bash")),
                "zsh" => out_dir.join(format!("_{name}")),
                "fish" => out_dir.join(format!("{name}.fish")),
                _ => out_dir.join(format!("{name}.1")),
            };
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{name} {what}: {}: {e}", file.display()));
            for sub in &subs {
                assert!(text.contains(sub.as_str()), "{name} {what} lacks {sub}");
                if what == "man" {
                    assert!(
                        out_dir.join(format!("{name}-{sub}.1")).exists(),
                        "no man page {name}-{sub}.1"
                    );
                }
            }
        }
    }
}

//! The HTTP cache test suite (cache-tests.fyi's command-line tests), as `cargo xtask conformance
//! http-cache` and the floor test in `tests/tests/http/cache_suite.rs` both run it.
//!
//! The suite lives outside the repository (`$PROTOLAB_SUITES/cache-tests`, by default
//! `../shared/suites/cache-tests` from the workspace root). It is copied into `target/cache-tests`
//! (the shared copy may be read-only) and given the one npm package its command-line client
//! imports, `undici`, so its interim-response tests run; then its origin server is started on a
//! free port, its client runs the tests through a cache, and its own `score.mjs` counts the
//! results the way the public results page does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Proc, free_port, wait_tcp, workspace_root};

/// Where the suite comes from, for error messages.
pub const SUITE_REPO: &str = "https://github.com/http-tests/cache-tests";

/// The undici major version the suite's package.json names.
const UNDICI: &str = "undici@7";

/// The suite's folder: `$PROTOLAB_SUITES/cache-tests`, or `../shared/suites/cache-tests`.
///
/// # Errors
/// A message saying where it was looked for and how to get it.
pub fn locate() -> Result<PathBuf, String> {
    let suites = std::env::var_os("PROTOLAB_SUITES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("..").join("shared").join("suites"));
    let dir = suites.join("cache-tests");
    if dir.join("test-engine").join("cli.mjs").exists() && dir.join("score.mjs").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "the HTTP cache test suite is not at {}: clone {SUITE_REPO} there (with a score.mjs \
             that scores a results file), or set PROTOLAB_SUITES to the folder holding cache-tests",
            dir.display()
        ))
    }
}

/// A runnable copy of the suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The copy's folder (inside target/).
    pub dir: PathBuf,
}

/// Copies the suite under target/ and installs undici there (once; later runs reuse it).
///
/// # Errors
/// The suite missing, node or npm missing, or the install failing.
pub fn prepare() -> Result<Suite, String> {
    let src = locate()?;
    let dir = workspace_root().join("target").join("cache-tests");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for part in ["tests", "test-engine", "score.mjs"] {
        let status = Command::new("cp")
            .args(["-r", "--no-preserve=mode"])
            .arg(src.join(part))
            .arg(&dir)
            .status()
            .map_err(|e| format!("cp: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cannot copy {} into {}",
                src.display(),
                dir.display()
            ));
        }
    }
    // The client only needs undici; the suite's own package.json would pull in its HTML
    // export tooling too, so the copy gets a minimal one.
    std::fs::write(
        dir.join("package.json"),
        "{\"name\":\"protolab-cache-tests\",\"private\":true}\n",
    )
    .map_err(|e| format!("package.json: {e}"))?;
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node is not installed: apt-get install nodejs npm".to_owned());
    }
    if !dir
        .join("node_modules")
        .join("undici")
        .join("package.json")
        .exists()
    {
        let out = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-package-lock",
                "--loglevel=error",
                UNDICI,
            ])
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("npm: {e} (apt-get install npm)"))?;
        if !out.status.success() {
            return Err(format!(
                "npm install {UNDICI} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(Suite { dir })
}

/// Counts of one run, per kind, as score.mjs reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Score {
    /// Required tests passed.
    pub required: u32,
    /// Required tests in all.
    pub required_total: u32,
    /// Optimal tests passed.
    pub optimal: u32,
    /// Optimal tests in all.
    pub optimal_total: u32,
    /// Check tests answered "yes".
    pub check_yes: u32,
    /// Check tests in all.
    pub check_total: u32,
}

impl Suite {
    /// Starts the suite's origin server on a free port; it is stopped when the `Proc` drops.
    ///
    /// # Errors
    /// node failing to start or the server not listening within 10 s.
    pub fn start_origin(&self, log_dir: &Path) -> Result<(Proc, u16), String> {
        let port = free_port();
        let log = std::fs::File::create(log_dir.join("origin.log")).map_err(|e| e.to_string())?;
        let child = Command::new("node")
            .arg("test-engine/server/server.mjs")
            .env("npm_package_config_protocol", "http")
            .env("npm_config_port", port.to_string())
            .env("npm_config_pidfile", log_dir.join("origin.pid"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("node: {e}"))?;
        let proc = Proc {
            child,
            name: "cache-tests origin".to_owned(),
        };
        wait_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(10));
        Ok((proc, port))
    }

    /// Runs every command-line test through the cache at `base` (`http://127.0.0.1:P`), writing
    /// the results JSON to `out`. Takes about a minute: many tests wait for responses to age.
    ///
    /// # Errors
    /// The client failing or taking more than 10 minutes.
    pub fn run_client(&self, base: &str, out: &Path) -> Result<(), String> {
        let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let mut child = Command::new("node")
            .args(["--no-warnings", "test-engine/cli.mjs"])
            .env("npm_config_base", base)
            .env("npm_config_id", "")
            .env("npm_package_config_id", "")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("node: {e}"))?;
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                if status.success() {
                    return Ok(());
                }
                return Err(format!(
                    "the suite's client failed against {base} ({status})"
                ));
            }
            if start.elapsed() > Duration::from_secs(600) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the suite's client took over 10 minutes against {base}"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Scores a results file with the suite's score.mjs.
    ///
    /// # Errors
    /// score.mjs failing or printing something unexpected.
    pub fn score(&self, results: &Path) -> Result<Score, String> {
        let out = Command::new("node")
            .arg("score.mjs")
            .arg(results)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("node: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "score.mjs failed on {}: {}",
                results.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("score.mjs printed something else: {e}"))?;
        let count = |kind: &str, result: &str| {
            v.get(kind)
                .and_then(|k| k.get(result))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0) as u32
        };
        let total = |kind: &str| {
            v.get(kind)
                .and_then(serde_json::Value::as_object)
                .map_or(0, |m| {
                    m.values()
                        .filter_map(serde_json::Value::as_u64)
                        .sum::<u64>() as u32
                })
        };
        Ok(Score {
            required: count("required", "pass"),
            required_total: total("required"),
            optimal: count("optimal", "pass"),
            optimal_total: total("optimal"),
            check_yes: count("check", "yes"),
            check_total: total("check"),
        })
    }

    /// The ids of the tests of `kind` that did not pass, with the suite's message for each.
    ///
    /// # Errors
    /// node failing.
    pub fn failures(&self, results: &Path, kind: &str) -> Result<Vec<String>, String> {
        let script = format!(
            "import fs from 'fs'\n\
             import index from './tests/index.mjs'\n\
             import {{ determineTestResult, resultTypes }} from './test-engine/lib/results.mjs'\n\
             const res = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'))\n\
             for (const s of index) for (const t of s.tests) {{\n\
               if (t.browser_only || (t.kind || 'required') !== '{kind}') continue\n\
               const r = determineTestResult(index, t.id, res)\n\
               if (r !== resultTypes.pass && r !== resultTypes.yes) console.log(t.id + ' ' + r[2] + ' ' + JSON.stringify(res[t.id] ?? null))\n\
             }}\n"
        );
        let out = Command::new("node")
            .args(["--input-type=module", "-e", &script])
            .arg(results)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("node: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    }
}

//! testssl.sh (Debian's `testssl.sh`) against a TLS port: the scan every TLS service of the lab
//! must pass, run the same way for SMTP's STARTTLS port and the HTTPS port.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Proc, require_peer};

/// Runs testssl.sh against `target` (`127.0.0.1:PORT`) trusting the lab CA `ca`: protocols,
/// cipher categories, server preferences and the known vulnerabilities (`-p -S -P -U`), with
/// `extra` first (such as `--starttls smtp`). Returns its findings, read from the JSON file it
/// writes under `dir`. Panics when it does not finish within 400 s (it takes about a minute)
/// or reports too little to judge.
pub fn scan(extra: &[&str], ca: &Path, target: &str, dir: &Path) -> Vec<serde_json::Value> {
    let testssl = require_peer("testssl", "testssl.sh");
    let json = dir.join("testssl.json");
    let _ = std::fs::remove_file(&json);
    let mut proc = Proc::spawn(
        "testssl",
        Command::new(testssl)
            .args(extra)
            .args(["--quiet", "--color", "0", "--warnings", "off"])
            .args([
                "--nodns",
                "none",
                "--connect-timeout",
                "10",
                "--openssl-timeout",
                "10",
            ])
            .arg("--add-ca")
            .arg(ca)
            .arg("--jsonfile")
            .arg(&json)
            .args(["-p", "-S", "-P", "-U", target])
            .stderr(Stdio::null()),
    );
    // It prints its report on stdout; drain it so it never blocks on a full pipe.
    let mut stdout = proc.stdout();
    let drain = std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut sink);
    });
    let status = proc.wait_for(Duration::from_secs(400));
    let _ = drain.join();
    assert!(status.is_some(), "testssl.sh did not finish within 400 s");
    let findings: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).expect("testssl.sh wrote its JSON"))
            .expect("testssl.sh JSON");
    assert!(
        findings.len() > 30,
        "testssl.sh reported too little to judge: {findings:?}"
    );
    findings
}

/// The findings rated HIGH or CRITICAL, but for one excluded by name: `cert_revocation`
/// ("Neither CRL nor OCSP URI provided"), which testssl.sh 3.0 rates HIGH for any certificate
/// without them. A lab CA that lives for one run publishes no revocation list; a real
/// certificate given with --tls-cert carries its CA's.
pub fn severe(findings: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("HIGH" | "CRITICAL")))
        .filter(|f| f["id"] != "cert_revocation")
        .collect()
}

/// The text of the finding `id` (empty when absent).
pub fn finding(findings: &[serde_json::Value], id: &str) -> String {
    findings
        .iter()
        .find(|f| f["id"] == id)
        .and_then(|f| f["finding"].as_str())
        .unwrap_or_default()
        .to_owned()
}

//! `cargo xtask lab-ca`: a lab CA and a server certificate for the lab's names, as files.
//!
//! The certificates come from `protolab_transport::tls::lab_ca`, the same function behind the
//! servers' `--tls-self-signed`: an ECDSA P-256 CA, and a server certificate signed by it for
//! localhost, 127.0.0.1, ::1 and the lab link's two addresses (198.18.0.1, 198.18.0.2).
//! `--name NAME` (repeatable) adds names to the server certificate, first, so that a client
//! asking for a lab DNS name (which it then sends in the clear as SNI) finds it there.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use protolab_transport::tls::{LAB_NAMES, LabCa, Validity, lab_ca};

pub fn run(args: &[String]) -> Result<()> {
    let mut out = protolab_lab::workspace_root().join("target/lab-ca");
    let mut extra: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => {
                out = PathBuf::from(it.next().context("--out needs a folder")?);
            }
            "--name" => extra.push(it.next().context("--name needs a DNS name")?.clone()),
            other => bail!("unknown option {other:?}: lab-ca takes --out DIR and --name NAME"),
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let names: Vec<&str> = extra
        .iter()
        .map(String::as_str)
        .chain(LAB_NAMES.iter().copied())
        .collect();
    let (ca, server) = if extra.is_empty() {
        lab_ca()
    } else {
        LabCa::new("protolab lab CA")
            .and_then(|ca| Ok((ca.issue(&names, Validity::days_from_now(90))?, ca)))
            .map(|(server, ca)| (ca, server))
    }
    .context("cannot make the lab certificates")?;
    write(&out.join("ca.pem"), ca.cert_pem().as_bytes(), 0o644)?;
    write(&out.join("server.pem"), server.cert_pem.as_bytes(), 0o644)?;
    // The key is readable by its owner only, as a real server's would be.
    write(&out.join("server.key"), server.key_pem.as_bytes(), 0o600)?;
    let d = out.display();
    println!("lab CA and server certificate (ECDSA P-256) in {d}/");
    println!("  ca.pem       the CA: give it to clients (--cacert, -CAfile, --tls-ca-path)");
    println!("  server.pem   for {}, valid 90 days", names.join(", "));
    println!("  server.key   its private key (mode 600)");
    println!();
    println!("  smtp serve --tls-cert {d}/server.pem --tls-key {d}/server.key");
    println!(
        "  smtp send --starttls --cacert {d}/ca.pem --from a@example.test --to b@example.test"
    );
    Ok(())
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    // Replace rather than truncate, so an old key file's wider mode never carries over.
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

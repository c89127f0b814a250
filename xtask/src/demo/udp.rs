//! `cargo xtask demo udp`: the echo server, the impairment relay in front of it, and the probe
//! through both, with the probe's report printed beside the relay's ground truth.

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use protolab_lab::output_ok;
use protolab_tests::Server;
use serde_json::Value;

use super::note;
use crate::util;

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

pub fn run(args: &[String]) -> Result<()> {
    if let Some(other) = args.first() {
        return Err(protolab_transport::cli::Failure::usage(format!(
            "demo udp takes no options (got {other:?})"
        ))
        .into());
    }
    let bins = util::build_bins(false)?;
    let udpecho = bins.join("udpecho");
    let impair = bins.join("impair");

    println!("== UDP echo and probe, through an impairment relay ==\n");
    let mut cmd = Command::new(&udpecho);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .env("RUST_LOG", "warn");
    let mut server = Server::start_cmd("udpecho serve", cmd, 2);
    let srv = server.addr("udp");
    println!("$ udpecho serve --listen 127.0.0.1:0 --workers 1");
    println!("listening udp {srv}");
    note(
        "The server echoes each probe packet with its receive time, its count of distinct probes\n\
         of this flow and a window saying which of the previous 64 sequence numbers it has seen.\n\
         Each flow is answered by one worker, so the server adds no reordering of its own.",
    );

    println!("\n$ udpecho probe {srv} --count 500 --interval 2ms");
    let out = Command::new(&udpecho)
        .env("RUST_LOG", "warn")
        .args([
            "probe",
            &srv.to_string(),
            "--count",
            "500",
            "--interval",
            "2ms",
            "--quiet",
        ])
        .output()
        .context("run udpecho probe")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    note(
        "Straight to the server on loopback: nothing lost, nothing reordered, RTT in microseconds.",
    );

    let dir = std::env::temp_dir().join(format!("protolab-demo-udp-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let stats = dir.join("truth.json");
    let impair_args = [
        "--loss",
        "5%",
        "--reorder",
        "10%",
        "--dup",
        "1%",
        "--delay",
        "10ms",
        "--jitter",
        "5ms",
        "--seed",
        "7",
    ];
    let mut cmd = Command::new(&impair);
    cmd.env("RUST_LOG", "warn")
        .args([
            "udp",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &srv.to_string(),
            "--stats",
        ])
        .arg(&stats)
        .args(impair_args);
    let mut relay = Server::start_cmd("impair udp", cmd, 1);
    let rel = relay.addr("udp");
    println!(
        "\n$ impair udp --listen 127.0.0.1:0 --forward {srv} --stats {} {}",
        stats.display(),
        impair_args.join(" ")
    );
    println!("listening udp {rel}");
    note(
        "The relay applies each impairment in BOTH directions, each direction with its own seeded\n\
         engine: 5% loss, 1% duplication, 10% of datagrams held back behind the next one, and a\n\
         one-way delay of 10 ms plus or minus 5 ms (jitter that keeps order).",
    );

    let saved = dir.join("probe.json");
    let picture = util::root().join("target").join("demo-udp-probe.svg");
    println!(
        "\n$ udpecho probe {rel} --count 3000 --rate 500 --wait 1s --seed 7 --output {} --svg {}",
        saved.display(),
        picture.display()
    );
    note(&format!(
        "The JSON files live in {} for the demo's length only (it removes them at the end);\n\
         the picture stays at {}.",
        dir.display(),
        picture.display()
    ));
    let out = util::with_progress("probing through the relay (3000 probes at 500/s)", || {
        output_ok(
            Command::new(&udpecho)
                .args([
                    "probe",
                    &rel.to_string(),
                    "--count",
                    "3000",
                    "--rate",
                    "500",
                    "--wait",
                    "1s",
                    "--seed",
                    "7",
                    "--quiet",
                    "--output",
                ])
                .arg(&saved)
                .arg("--svg")
                .arg(&picture),
        )
    })?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&saved)?).context("probe JSON")?;

    relay.proc.signal(libc::SIGINT);
    relay.proc.wait_for(Duration::from_secs(10));
    let mut rest = String::new();
    relay.stdout.read_to_string(&mut rest)?;
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(&stats)?)?;
    let local = report["local"].as_str().unwrap_or_default();
    let session = truth["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["client"] == local))
        .context("the relay has no session for the probe")?;
    let (up, down) = (&session["upstream"], &session["downstream"]);

    println!(
        "\nThe probe's report beside the relay's ground truth (the probe's session, {local}):\n"
    );
    println!("  {:<22} {:>8}   {:<34} {:>8}", "probe", "", "relay", "");
    let rows = [
        (
            "sent",
            n(&report, "sent"),
            "upstream received",
            n(up, "received"),
        ),
        (
            "lost upstream",
            n(&report, "lost_upstream"),
            "upstream dropped",
            n(up, "dropped"),
        ),
        (
            "lost downstream",
            n(&report, "lost_downstream"),
            "downstream dropped",
            n(down, "dropped"),
        ),
        (
            "duplicates",
            n(&report, "duplicates"),
            "duplicated (up + down)",
            n(up, "duplicated") + n(down, "duplicated"),
        ),
        (
            "reordered",
            n(&report, "reordered"),
            "reordered (up + down)",
            n(up, "reordered") + n(down, "reordered"),
        ),
    ];
    for (a, x, b, y) in rows {
        println!("  {a:<22} {x:>8}   {b:<34} {y:>8}");
    }
    println!();
    note(
        "Upstream loss is exact: the server's count of distinct probes says how many arrived.\n\
         The rest can differ when both directions act on the same probe, and that is the point\n\
         of the comparison: a probe duplicated on the way out whose copy's reply is then dropped\n\
         on the way back is one relay duplicate and one relay drop, but the probe, which got a\n\
         reply, sees neither; a probe held back on the way out and again on the way back may end\n\
         up in order. Impair one direction only (--loss 0/5%, UP/DOWN) and every row is equal,\n\
         which is what the tests check over 100,000 probes.",
    );

    server.proc.signal(libc::SIGTERM);
    server.proc.wait_for(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

//! An independent ground truth: nftables drops about 10% of the probes inside a private network
//! namespace, and its counter is the exact number dropped.

use protolab_tests::{Netns, Server, bin, is_root, require_peer, run_ok};

use crate::common::{heavy, n, stop};

/// The packets counted by the one counter in the namespace's ruleset.
fn nft_counter(ns: &Netns) -> u64 {
    let out = run_ok(ns.exec("nft").args(["-j", "list", "ruleset"]));
    let json: serde_json::Value = serde_json::from_str(&out).expect("nft -j JSON");
    let counters: Vec<u64> = json["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter_map(|o| o["rule"]["expr"].as_array())
        .flatten()
        .filter_map(|e| e["counter"]["packets"].as_u64())
        .collect();
    assert_eq!(counters.len(), 1, "one counter expected: {out}");
    counters[0]
}

#[test]
fn upstream_loss_equals_the_nftables_drop_counter() {
    assert!(
        is_root(),
        "this test needs root for a private network namespace and nftables: run it as root \
         (cargo xtask test does in CI)"
    );
    require_peer("nft", "nftables");
    require_peer("ip", "iproute2");
    let _turn = heavy();
    let ns = Netns::new("nft");
    let mut cmd = ns.exec(bin("udpecho"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--no-tcp",
    ]);
    let srv = Server::start_cmd("udpecho", cmd, 1);
    let port = srv.addr("udp").port();
    // Only 100-byte probes (UDP length 108) are dropped: the probe's final counters request is
    // 56 bytes and must pass, or the counter would hold more than the probes lost.
    let rules = format!(
        "table inet protolab {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
         udp dport {port} udp length 108 numgen random mod 100 < 10 counter drop\n  }}\n}}\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rules.nft");
    std::fs::write(&file, rules).expect("write rules");
    run_ok(ns.exec("nft").arg("-f").arg(&file));

    let out = run_ok(ns.exec(bin("udpecho")).args([
        "probe",
        &format!("127.0.0.1:{port}"),
        "--count",
        "20000",
        "--rate",
        "5000",
        "--size",
        "100",
        "--wait",
        "2s",
        "--json",
        "--quiet",
    ]));
    let report: serde_json::Value = serde_json::from_str(&out).expect("probe JSON");
    let dropped = nft_counter(&ns);
    let counters = stop(srv);

    assert!(dropped > 1000, "nftables dropped only {dropped} of 20000");
    assert_eq!(n(&report, "lost_upstream"), dropped);
    assert_eq!(n(&report, "lost_downstream"), 0);
    assert_eq!(n(&report, "lost"), dropped);
    assert_eq!(n(&counters, "probes"), 20_000 - dropped);
}

//! The load generator against a real peer: redis-server answers the inline `PING` line.

use std::process::Command;

use protolab_tests::{Server, bin, free_port, run_ok, start_redis};

fn bench(args: &[&str]) -> serde_json::Value {
    let out = run_ok(
        Command::new(bin("greet"))
            .arg("bench")
            .args(args)
            .arg("--json"),
    );
    serde_json::from_str(&out).expect("bench --json")
}

#[test]
fn bench_drives_redis_with_ping() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, addr) = start_redis(dir.path());
    let addr = addr.to_string();
    let r = bench(&[
        "--server",
        &addr,
        "--line",
        "PING",
        "--connections",
        "8",
        "--duration",
        "500ms",
    ]);
    assert!(r["requests"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["connect_errors"], 0, "{r}");
    assert!(r["latency_us"]["p50"].as_u64().unwrap() <= r["latency_us"]["max"].as_u64().unwrap());
}

#[test]
fn bench_drives_greet_with_banner() {
    let server = Server::start("greet", &["serve", "--listen", "127.0.0.1:0"], 1);
    let addr = server.addr("tcp").to_string();
    let r = bench(&[
        "--server",
        &addr,
        "--skip-banner",
        "--connections",
        "16",
        "--duration",
        "500ms",
    ]);
    assert!(r["requests"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
}

#[test]
fn bench_reports_a_dead_server_clearly() {
    let port = free_port();
    let out = Command::new(bin("greet"))
        .args([
            "bench",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--duration",
            "100ms",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the server running"), "{err}");
}

//! Many clients at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use protolab_tests::{Server, raise_fd_limit};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One whole conversation; returns what the server said.
async fn conversation(addr: SocketAddr, name: String) -> std::io::Result<Vec<String>> {
    let stream = TcpStream::connect(addr).await?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut said = Vec::new();
    let mut line = String::new();
    r.read_line(&mut line).await?;
    said.push(std::mem::take(&mut line));
    w.write_all(format!("{name}\n").as_bytes()).await?;
    r.read_line(&mut line).await?;
    said.push(std::mem::take(&mut line));
    w.write_all(b"exit\n").await?;
    r.read_line(&mut line).await?;
    said.push(line);
    Ok(said)
}

/// Runs `clients` conversations at once, all connected before any speaks.
fn crowd(addr: SocketAddr, clients: usize) -> Vec<(String, std::io::Result<Vec<String>>)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let name = format!("client-{i}");
                tokio::spawn(async move {
                    let r = tokio::time::timeout(
                        Duration::from_secs(120),
                        conversation(addr, name.clone()),
                    )
                    .await
                    .unwrap_or_else(|_| Err(std::io::Error::other("timed out")));
                    (name, r)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
}

fn assert_all_greeted(results: &[(String, std::io::Result<Vec<String>>)]) {
    let mut failed = 0;
    for (name, r) in results {
        match r {
            Ok(said) => assert_eq!(
                said,
                &vec![
                    "Welcome!\n".to_owned(),
                    format!("Hello, {name}!\n"),
                    String::new()
                ],
                "conversation of {name}"
            ),
            Err(_) => failed += 1,
        }
    }
    assert_eq!(failed, 0, "{failed} of {} clients failed", results.len());
}

#[test]
fn two_thousand_concurrent_clients_all_greeted() {
    let limit = raise_fd_limit();
    assert!(
        limit >= 4500,
        "need an open-file limit of at least 4,500, have {limit}"
    );
    let server = Server::start("greet", &["serve", "--listen", "127.0.0.1:0"], 1);
    let results = crowd(server.addr("tcp"), 2000);
    assert_eq!(results.len(), 2000);
    assert_all_greeted(&results);
}

#[test]
fn delay_is_per_connection_not_serial() {
    raise_fd_limit();
    let server = Server::start(
        "greet",
        &["serve", "--listen", "127.0.0.1:0", "--delay", "1s"],
        1,
    );
    let start = Instant::now();
    let results = crowd(server.addr("tcp"), 200);
    let elapsed = start.elapsed();
    assert_all_greeted(&results);
    // Each client's reply waits one second (and its `exit` another). A server that slept on one
    // thread, as the classic one does per client, would need 200 s or more; concurrent
    // handling needs about 2 s. The bound sits far above any scheduling noise and far below
    // serial behaviour, so it tells the two apart without timing the machine.
    assert!(
        elapsed < Duration::from_secs(30),
        "200 delayed clients took {elapsed:?}: replies were serialised"
    );
}

/// `greet bench` under Ctrl-C behaves as ping and irtt do: the first SIGINT ends the load and
/// the report still comes, covering what ran, with exit status 0.
#[test]
fn sigint_ends_the_bench_early_with_its_report() {
    let srv = Server::start("greet", &["serve", "--listen", "127.0.0.1:0"], 1);
    let addr = srv.addr("tcp").to_string();
    let mut cmd = std::process::Command::new(protolab_tests::bin("greet"));
    cmd.args([
        "bench",
        "--server",
        &addr,
        "--connections",
        "4",
        "--duration",
        "10m",
        "--json",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut bench = protolab_tests::Proc::spawn("greet bench", &mut cmd);
    // The load is running once the server has greeted someone; a second is plenty either way.
    std::thread::sleep(Duration::from_secs(1));
    bench.signal(libc::SIGINT);
    let status = bench
        .wait_for(Duration::from_secs(60))
        .expect("the bench exits after one SIGINT, long before its 10 minutes");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut bench.stdout(), &mut out).expect("read the report");
    assert!(status.success(), "{status}: {out}");
    let r: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(r["interrupted"], true, "{r}");
    assert!(r["requests"].as_u64().unwrap_or(0) > 0, "{r}");
    assert_eq!(r["errors"], 0, "no connection ended early: {r}");
    let elapsed = r["elapsed_us"].as_u64().unwrap_or(u64::MAX);
    assert!(
        elapsed < 600_000_000,
        "the load stopped before --duration: {r}"
    );
}

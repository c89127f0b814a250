//! `http proxy` with real peers: curl and wget as clients (forward and reverse), `http serve`
//! and nginx as origins. Every response says what the cache did in `Cache-Status`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use protolab_tests::http_peers::nginx_command;
use protolab_tests::{Proc, Server, free_port, require_peer, run_ok, wait_tcp};

fn origin() -> Server {
    Server::start("http", &["serve", "--listen", "127.0.0.1:0"], 1)
}

fn proxy(upstream: Option<SocketAddr>) -> Server {
    let up = upstream.map(|a| format!("http://{a}"));
    let mut args = vec!["proxy", "--listen", "127.0.0.1:0"];
    if let Some(u) = &up {
        args.extend(["--upstream", u.as_str()]);
    }
    Server::start("http", &args, 1)
}

/// The value of `name` in a response head as curl -i or wget -S prints it.
fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let l = l.trim_start();
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn curl(args: &[&str]) -> String {
    let curl = require_peer("curl", "curl");
    run_ok(
        Command::new(curl)
            .args(["-s", "-i", "--max-time", "20"])
            .args(args),
    )
}

#[test]
fn curl_through_the_forward_proxy_sees_miss_then_hit_with_age() {
    let origin = origin();
    let proxy = proxy(None);
    let url = format!("http://{}/cache/60", origin.addr("tcp"));
    let p = format!("http://{}", proxy.addr("tcp"));
    let first = curl(&["-x", &p, &url]);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let status = field(&first, "cache-status").expect("Cache-Status on a miss");
    assert!(
        status.contains("fwd=uri-miss") && status.contains("stored"),
        "{status}"
    );
    assert!(first.contains("as number 1"), "{first}");
    let second = curl(&["-x", &p, &url]);
    let status = field(&second, "cache-status").expect("Cache-Status on a hit");
    assert!(status.starts_with("protolab; hit"), "{status}");
    assert!(field(&second, "age").is_some(), "{second}");
    assert!(
        second.contains("as number 1"),
        "the origin was asked again: {second}"
    );
    // The environment variable curl reads works the same way.
    let curl_bin = require_peer("curl", "curl");
    let third = run_ok(
        Command::new(curl_bin)
            .args(["-s", "-i", "--max-time", "20", &url])
            .env("http_proxy", &p),
    );
    assert!(
        field(&third, "cache-status").is_some_and(|s| s.contains("hit")),
        "{third}"
    );
}

#[test]
fn wget_through_the_reverse_proxy_and_forward_proxy() {
    let wget = require_peer("wget", "wget");
    let origin = origin();
    let reverse = proxy(Some(origin.addr("tcp")));
    let forward = proxy(None);
    let get = |url: &str, proxy_env: Option<String>| {
        let mut cmd = Command::new(&wget);
        cmd.args(["-S", "-O", "-", "--tries=1", "--timeout=20", url]);
        match proxy_env {
            Some(p) => cmd.env("http_proxy", p),
            None => cmd.arg("--no-proxy"),
        };
        let out = cmd.output().expect("run wget");
        assert!(
            out.status.success(),
            "wget {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // wget -S prints the response head on standard error.
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let url = format!("http://{}/cache/30", reverse.addr("tcp"));
    assert!(field(&get(&url, None), "cache-status").is_some_and(|s| s.contains("fwd=uri-miss")));
    let head = get(&url, None);
    assert!(
        field(&head, "cache-status").is_some_and(|s| s.contains("hit")),
        "{head}"
    );
    let url = format!("http://{}/cache/30", origin.addr("tcp"));
    let p = format!("http://{}/", forward.addr("tcp"));
    let head = get(&url, Some(p.clone()));
    assert!(
        field(&head, "cache-status").is_some_and(|s| s.contains("miss")),
        "{head}"
    );
    let head = get(&url, Some(p));
    assert!(
        field(&head, "cache-status").is_some_and(|s| s.contains("hit")),
        "{head}"
    );
}

/// nginx serving a folder on a free port, stopped by its own PID.
fn start_nginx(dir: &Path, extra: &str) -> (Proc, SocketAddr) {
    let port = free_port();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    let mut cmd = nginx_command(
        dir,
        "1",
        256,
        &format!(
            "  server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n    {extra}\n  }}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let proc = Proc::spawn("nginx", &mut cmd);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_tcp(addr, Duration::from_secs(10));
    (proc, addr)
}

fn stop_nginx(mut p: Proc) {
    // SIGTERM to the master stops its worker too; SIGKILL would leave the worker behind.
    p.terminate(Duration::from_secs(10));
}

#[test]
fn nginx_origin_behind_the_proxy_is_cached_and_revalidated_with_its_etag() {
    let dir = tempfile::tempdir().unwrap();
    // no-cache: every use is revalidated, which nginx answers 304 from its ETag.
    let (nginx, addr) = start_nginx(
        dir.path(),
        "location /fresh/ { expires 60s; }\n    location /validate/ { add_header Cache-Control no-cache; }",
    );
    for sub in ["fresh", "validate"] {
        std::fs::create_dir_all(dir.path().join("www").join(sub)).unwrap();
        std::fs::write(
            dir.path().join("www").join(sub).join("a.txt"),
            "from nginx\n",
        )
        .unwrap();
    }
    let proxy = proxy(Some(addr));
    let base = format!("http://{}", proxy.addr("tcp"));

    let first = curl(&[&format!("{base}/fresh/a.txt")]);
    assert!(first.ends_with("from nginx\n"), "{first}");
    assert!(
        field(&first, "cache-status").is_some_and(|s| s.contains("stored")),
        "{first}"
    );
    let second = curl(&[&format!("{base}/fresh/a.txt")]);
    assert!(
        field(&second, "cache-status").is_some_and(|s| s.contains("hit")),
        "{second}"
    );

    curl(&[&format!("{base}/validate/a.txt")]);
    let again = curl(&[&format!("{base}/validate/a.txt")]);
    let status = field(&again, "cache-status").unwrap_or_default();
    assert!(
        status.contains("fwd=stale") && status.contains("fwd-status=304"),
        "{again}"
    );
    assert!(again.ends_with("from nginx\n"), "{again}");
    drop(proxy);
    stop_nginx(nginx);
}

#[test]
fn connect_tunnels_to_loopback_and_refuses_elsewhere() {
    let origin = origin();
    let proxy = proxy(None);
    let p = format!("http://{}", proxy.addr("tcp"));
    // curl -p asks for a CONNECT tunnel and speaks HTTP through it: the cache never sees it.
    let url = format!("http://{}/cache/60", origin.addr("tcp"));
    let out = curl(&["-p", "-x", &p, &url]);
    assert!(out.contains("HTTP/1.1 200 Connection Established"), "{out}");
    assert!(out.contains("as number 1"), "{out}");
    assert!(
        field(&out, "cache-status").is_none(),
        "a tunnel is not cached: {out}"
    );
    // A documentation address (RFC 5737): refused before any packet leaves.
    // curl exits 56 when the proxy refuses the tunnel; the proxy's answer is on its stdout.
    let out = Command::new(require_peer("curl", "curl"))
        .args([
            "-s",
            "-i",
            "--max-time",
            "20",
            "-p",
            "-x",
            &p,
            "http://192.0.2.1:80/",
        ])
        .output()
        .expect("run curl");
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(!out.status.success());
}

#[test]
fn a_forward_request_for_the_proxy_itself_is_refused_as_a_loop() {
    let proxy = proxy(None);
    let p = format!("http://{}", proxy.addr("tcp"));
    // Without loop detection this request would come back to the proxy until the connection
    // cap ran out.
    let out = Command::new(require_peer("curl", "curl"))
        .args([
            "-s",
            "-i",
            "--max-time",
            "20",
            "-x",
            &p,
            &format!("{p}/loop"),
        ])
        .output()
        .expect("run curl");
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 508"), "{head}");
}

#[test]
fn a_response_larger_than_max_object_streams_through_whole_and_unstored() {
    let origin = origin();
    let up = format!("http://{}", origin.addr("tcp"));
    let proxy = Server::start(
        "http",
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up,
            "--max-object",
            "1MiB",
        ],
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big");
    let url = format!("http://{}/bytes/3000000", proxy.addr("tcp"));
    let head = run_ok(
        Command::new(require_peer("curl", "curl"))
            .args(["-s", "-D", "-", "--max-time", "30", "-o"])
            .arg(&file)
            .arg(&url),
    );
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 3_000_000, "{head}");
    let status = field(&head, "cache-status").unwrap_or_default();
    assert!(status.contains("too-large"), "{head}");
}

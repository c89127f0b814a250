//! The web inbox from the outside: Mailpit's own API client (npm `mailpit-api`) and Debian's
//! chromium driven by npm `playwright-core`, both against `smtp serve --http` with swaks
//! delivering. The node scripts are in tests/browser/; their packages are installed by npm into
//! target/browser/ (never a browser download), and each script prints one JSON object of
//! findings that these tests assert.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use protolab_tests::{Server, require_peer, run_ok, workspace_root};
use serde_json::Value;

/// target/browser/ with tests/browser's scripts and their npm packages installed.
fn node_project() -> PathBuf {
    let root = workspace_root();
    let src = root.join("tests/browser");
    let dir = root.join("target/browser");
    std::fs::create_dir_all(&dir).expect("create target/browser");
    for f in ["package.json", "inbox.mjs", "mailpit-api.mjs"] {
        std::fs::copy(src.join(f), dir.join(f)).expect("copy the browser scripts");
    }
    // A lock file between concurrent tests: npm must not install twice into one folder.
    let lock = std::fs::File::create(dir.join(".install.lock")).expect("lock file");
    // SAFETY: flock takes no pointers, and the descriptor stays open while `lock` lives (the
    // lock is released when it is closed at the end of this function).
    let _ = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    let wanted = std::fs::read(src.join("package.json")).expect("package.json");
    let installed = std::fs::read(dir.join("node_modules/.installed-from")).unwrap_or_default();
    if installed != wanted {
        let npm = require_peer("npm", "npm");
        run_ok(
            Command::new(npm)
                .args(["install", "--no-audit", "--no-fund", "--no-save"])
                .current_dir(&dir)
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
        );
        std::fs::write(dir.join("node_modules/.installed-from"), &wanted).expect("mark install");
    }
    dir
}

struct Inbox {
    _server: Server,
    smtp: SocketAddr,
    http: SocketAddr,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

fn start() -> Inbox {
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("maildir");
    let mut cmd = Command::new(protolab_tests::bin("smtp"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--maildir",
        maildir.to_str().expect("utf-8"),
        "--hostname",
        "mx.test",
        "--http",
        "127.0.0.1:0",
    ])
    .env("RUST_LOG", "warn");
    let server = Server::start_cmd("smtp serve --http", cmd, 2);
    Inbox {
        smtp: server.addr("tcp"),
        http: server.addr("http"),
        _server: server,
        maildir,
        _dir: dir,
    }
}

fn node(project: &Path, args: &[&str]) -> Value {
    let node = require_peer("node", "nodejs");
    let out = run_ok(Command::new(node).args(args).current_dir(project));
    let line = out.lines().last().expect("the script's JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON from {args:?}: {e}: {out}"))
}

fn swaks(smtp: SocketAddr, from: &str, subject: &str, body: &str) {
    let swaks = require_peer("swaks", "swaks");
    let port = smtp.port().to_string();
    run_ok(Command::new(swaks).args([
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        from,
        "--to",
        "bob@example.test",
        "--header",
        &format!("Subject: {subject}"),
        "--body",
        body,
    ]));
}

#[test]
fn mailpit_api_client_lists_gets_searches_reads_raw_and_deletes() {
    let project = node_project();
    let inbox = start();
    swaks(inbox.smtp, "alice@example.test", "the invoice", "Pay me.");
    swaks(inbox.smtp, "carol@example.test", "lunch", "Noon?");
    // The index follows deliveries through a watch: wait until both are listed.
    let base = format!("http://{}", inbox.http);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while run_ok(Command::new("curl").args(["-s", &format!("{base}/api/v1/messages")]))
        .matches("\"ID\"")
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < until, "messages never listed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = node(&project, &["mailpit-api.mjs", &base]);
    assert_eq!(r["list"]["total"], 2, "{r}");
    assert_eq!(
        r["list"]["subjects"],
        serde_json::json!(["lunch", "the invoice"])
    );
    assert_eq!(r["latest"]["Subject"], "lunch");
    assert_eq!(r["latest"]["From"]["Address"], "carol@example.test");
    assert_eq!(
        r["latest"]["Text"].as_str().map(str::trim_end),
        Some("Noon?")
    );
    assert_eq!(r["search"]["count"], 1);
    assert_eq!(r["raw"]["hasSubject"], true);
    assert_eq!(r["deleted"], "ok\n");
    assert_eq!(r["after"]["total"], 1);
    let gone = r["search"]["ids"][0].as_str().expect("id");
    let left: Vec<String> = ["new", "cur"]
        .iter()
        .flat_map(|f| std::fs::read_dir(inbox.maildir.join(f)).expect("read"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1);
    assert!(!left[0].starts_with(gone), "{left:?}");
}

#[test]
fn chromium_shows_new_mail_live_and_runs_no_script_from_a_message() {
    require_peer("chromium", "chromium");
    let project = node_project();
    let inbox = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let attachment = dir.path().join("data.bin");
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(&attachment, &payload).expect("write");
    let shots = workspace_root().join("target/inbox-pictures");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let r = node(
        &project,
        &[
            "inbox.mjs",
            &format!("http://{}/", inbox.http),
            &inbox.smtp.port().to_string(),
            inbox.maildir.to_str().expect("utf-8"),
            attachment.to_str().expect("utf-8"),
            shots.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(r["appearedWithoutReload"], true, "{r}");
    assert_eq!(r["subject"], "hello browser", "{r}");
    assert!(
        r["text"]
            .as_str()
            .expect("text")
            .contains("text part words"),
        "{r}"
    );
    assert_eq!(r["html"], "bold words", "{r}");
    assert_eq!(r["downloadIdentical"], true, "{r}");
    assert_eq!(r["downloadName"], "data.bin", "{r}");
    // The subject is shown as text, no dialog opened, no script of the message ran.
    assert_eq!(r["hostileSubject"], "<script>alert(1)</script>", "{r}");
    assert_eq!(r["dialogs"], 0, "{r}");
    assert_eq!(r["marker"], Value::Null, "{r}");
    assert!(
        r["blocked"]
            .as_str()
            .expect("blocked")
            .starts_with("1 remote"),
        "{r}"
    );
    // The remote image was asked for by the parser and stopped by the policy inside the
    // browser; no request for it left.
    assert_eq!(r["remoteBlocked"], 1, "{r}");
    assert_eq!(r["remoteRequests"], 0, "{r}");
    assert_eq!(r["foreignRequests"], 0, "{r}");
    assert_eq!(
        r["searchSubjects"],
        serde_json::json!(["hello browser"]),
        "{r}"
    );
    // After the delete: one file left, and `smtp list` agrees with the page.
    let files = r["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{r}");
    let deleted = r["deleted"].as_str().expect("deleted id");
    assert!(
        !files[0].as_str().expect("name").starts_with(deleted),
        "{r}"
    );
    let listed: Value =
        serde_json::from_str(&run_ok(Command::new(protolab_tests::bin("smtp")).args([
            "list",
            inbox.maildir.to_str().expect("utf-8"),
            "--json",
        ])))
        .expect("json");
    let ids: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .map(|id| id.split(":2,").next().unwrap_or(id))
        .collect();
    assert_eq!(serde_json::json!(ids), r["pageIds"], "{r}");
    assert!(shots.join("inbox-list.png").exists() && shots.join("inbox-message.png").exists());
}

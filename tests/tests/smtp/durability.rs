//! kill -9 in the middle of a load: every message whose 250 a client saw is in new/, intact, and
//! nothing partial is in new/.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use protolab_tests::{Proc, require_peer};

use crate::common::{Smtp, stored_messages};

/// A client of Python's smtplib in several threads that prints `ACK <seq>` once it has seen the
/// 250 for message <seq>, and stops at the first error.
const ACKING_CLIENT: &str = r#"
import smtplib, sys, threading
port, threads, per = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
lock = threading.Lock()
def body(seq):
    lines = "".join("line %d %d the quick brown fox jumps over the lazy dog\r\n" % (seq, i) for i in range(40))
    return ("From: <k@example.test>\r\nSubject: seq %d\r\nX-Seq: %d\r\n\r\n" % (seq, seq) + lines).encode()
def worker(t):
    try:
        s = smtplib.SMTP("127.0.0.1", port, timeout=20)
        s.ehlo("acking.example.test")
        for i in range(per):
            seq = t * per + i
            s.sendmail("k@example.test", ["r%d@example.test" % seq], body(seq))
            with lock:
                print("ACK", seq, flush=True)
    except Exception as e:
        with lock:
            print("ERR", t, repr(e), flush=True)
ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
"#;

fn expected_body(seq: u64) -> Vec<u8> {
    let mut text = format!("From: <k@example.test>\r\nSubject: seq {seq}\r\nX-Seq: {seq}\r\n\r\n");
    for i in 0..40 {
        text.push_str(&format!(
            "line {seq} {i} the quick brown fox jumps over the lazy dog\r\n"
        ));
    }
    text.into_bytes()
}

#[test]
fn kill_9_loses_no_acknowledged_message() {
    let python = require_peer("python3", "python3");
    let source = require_peer("smtp-source", "postfix");
    let smtp = Smtp::start(&[]);
    let target = format!("127.0.0.1:{}", smtp.port());

    // Background load from smtp-source, bounded in count; it dies with the server.
    let _load = Proc::spawn(
        "smtp-source",
        Command::new(source).args([
            "-s",
            "8",
            "-m",
            "100000",
            "-l",
            "1024",
            "-f",
            "src@example.test",
            "-t",
            "dst@example.test",
            &target,
        ]),
    );
    let mut client = Proc::spawn(
        "acking client",
        Command::new(python).args(["-c", ACKING_CLIENT, &smtp.port(), "4", "5000"]),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = client.stdout();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut acked = BTreeSet::new();
    let start = Instant::now();
    while acked.len() < 200 {
        let line = rx
            .recv_timeout(Duration::from_secs(60).saturating_sub(start.elapsed()))
            .expect("200 acknowledgements within 60 s");
        if let Some(seq) = line.strip_prefix("ACK ") {
            acked.insert(seq.parse::<u64>().unwrap());
        }
    }
    // Mid-run, with sessions inside DATA and fsyncs in flight.
    smtp.server.proc.signal(libc::SIGKILL);
    client
        .wait_for(Duration::from_secs(60))
        .expect("the client ends after the server dies");
    while let Ok(line) = rx.try_recv() {
        if let Some(seq) = line.strip_prefix("ACK ") {
            acked.insert(seq.parse::<u64>().unwrap());
        }
    }

    let stored = stored_messages(&smtp.maildir);
    let mut by_seq: HashMap<u64, usize> = HashMap::new();
    let mut source_bodies = BTreeSet::new();
    for m in &stored {
        if m.return_path == "<k@example.test>" {
            let text = String::from_utf8_lossy(&m.message);
            let seq: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("X-Seq: "))
                .unwrap_or_else(|| panic!("{} is partial: no X-Seq header", m.name))
                .trim()
                .parse()
                .unwrap();
            assert_eq!(
                m.message,
                expected_body(seq),
                "{} (seq {seq}) is not intact",
                m.name
            );
            assert_eq!(m.delivered_to, vec![format!("r{seq}@example.test")]);
            *by_seq.entry(seq).or_default() += 1;
        } else {
            assert_eq!(m.return_path, "<src@example.test>", "{}", m.name);
            let at = m
                .message
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("complete header")
                + 4;
            source_bodies.insert(m.message[at..].to_vec());
        }
    }
    for seq in &acked {
        assert_eq!(
            by_seq.get(seq),
            Some(&1),
            "acknowledged message {seq} is missing from new/"
        );
    }
    // Every smtp-source message in new/ has the same, whole body: a partial one would differ.
    assert!(
        source_bodies.len() <= 1,
        "smtp-source messages in new/ differ: one is partial"
    );
    if let Some(b) = source_bodies.first() {
        assert!(
            b.len() >= 1024 && b.ends_with(b"\r\n"),
            "smtp-source body of {} octets",
            b.len()
        );
    }
    eprintln!(
        "acknowledged {} messages; new/ holds {} ({} from smtp-source)",
        acked.len(),
        stored.len(),
        stored.len() - by_seq.len()
    );
}

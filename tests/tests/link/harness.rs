//! The link tests' view of the lab's `impair link` runner (crates/lab/src/link.rs), and the
//! check that nothing of a link is left behind.

use std::path::Path;
use std::time::Duration;

use protolab_tests::trace::{close_completed, tcp_segments};
use protolab_tests::{Server, bin, run_ok};

pub use protolab_tests::link::{
    Link, RIGHT_ADDR, STATE_DIR, Side, names, namespaces, records, require_root, root_tun_devices,
    truth_of, wait_gone,
};

/// Asserts that none of `names` exists as a namespace and that no record of them is left.
pub fn assert_gone(names: &[&str]) {
    let now = namespaces();
    for n in names {
        assert!(
            !now.iter().any(|x| x == n),
            "namespace {n} is left: {now:?}"
        );
        assert!(
            !Path::new("/run/netns").join(n).exists(),
            "the mount of namespace {n} is left"
        );
    }
    for rec in records() {
        for n in names {
            assert!(
                !rec.contains(&format!("\"{n}\"")),
                "a record still names {n}: {rec}"
            );
        }
    }
}

/// The greeting conversation across `link` (started with `--trace --json`): `greet serve` on
/// the right end at 198.18.0.2:9999, `greet hello` from the left. Returns the server, the
/// client's transcript, and whether the close crossed the link (both FINs acknowledged in the
/// trace), waited for at most 20 s since the last ACK may still be on its way when the client
/// returns.
pub fn greet_across(link: &Link) -> (Server, String, bool) {
    let server = Server::start_cmd(
        "greet serve",
        link.exec(
            Side::Right,
            &bin("greet"),
            &["serve", "--listen", "198.18.0.2:9999"],
        ),
        1,
    );
    let transcript = run_ok(&mut link.exec(
        Side::Left,
        &bin("greet"),
        &["hello", "--server", "198.18.0.2:9999", "--timeout", "20s"],
    ));
    let closed = link.wait_for(Duration::from_secs(20), |lines| {
        close_completed(&tcp_segments(lines, 9999))
    });
    (server, transcript, closed)
}

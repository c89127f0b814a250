//! The link tests' view of the lab's `impair link` runner (crates/lab/src/link.rs), and the
//! check that nothing of a link is left behind.

use std::path::Path;

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

//! Helpers for protolab's end-to-end tests. Starting binaries and peers, links, relays,
//! namespaces and /proc sampling live in the lab harness (`crates/lab`, shared with xtask);
//! they are re-exported here under the names the tests have always used.

pub mod cache_suite;
pub mod testssl;

pub use protolab_lab::fixtures::test_data;
pub use protolab_lab::process::parse_listening;
pub use protolab_lab::sample::{fd_count, rss_kib};
pub use protolab_lab::{
    Link, Netns, Proc, Relay, Server, bin, free_port, free_port_on, is_root, raise_fd_limit,
    require_peer, run_ok, start_redis, wait_tcp, wait_udp_reply, which, workspace_root,
};
pub use protolab_lab::{fixtures, http_peers, link, netns, peers, process, relay, sample, trace};

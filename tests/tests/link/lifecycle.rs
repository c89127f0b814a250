//! The link's namespaces and devices exist while it runs and are gone after it, however it ends.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use protolab_tests::{bin, run_ok};

use crate::harness::{
    Link, Side, assert_gone, names, namespaces, records, require_root, root_tun_devices, wait_gone,
};

#[test]
fn namespaces_and_devices_exist_while_up_and_go_on_sigterm() {
    let tuns_before = root_tun_devices();
    let link = Link::start("term", &[]);
    let (left, right) = (link.left.clone(), link.right.clone());
    assert_eq!(
        link.banner[0],
        format!(
            "link up: left namespace {left} (198.18.0.1 on link0) <-> right namespace {right} \
             (198.18.0.2 on link0)"
        )
    );
    assert_eq!(link.banner[1], "each direction: no impairment");
    let now = namespaces();
    assert!(now.contains(&left) && now.contains(&right), "{now:?}");
    let addr = run_ok(Command::new("ip").args(["-n", &left, "-4", "addr", "show", "link0"]));
    assert!(
        addr.contains("inet 198.18.0.1 peer 198.18.0.2/32"),
        "{addr}"
    );
    let addr = run_ok(Command::new("ip").args(["-n", &right, "-4", "addr", "show", "link0"]));
    assert!(
        addr.contains("inet 198.18.0.2 peer 198.18.0.1/32"),
        "{addr}"
    );
    let state = run_ok(Command::new("ip").args(["-n", &left, "link", "show", "link0"]));
    assert!(state.contains(",UP,"), "{state}");
    // The devices live inside the namespaces, never in the namespace the link was started from.
    assert_eq!(root_tun_devices(), tuns_before);
    assert!(
        records().iter().any(|r| r.contains(&format!("\"{left}\""))),
        "the run records its namespaces"
    );

    let stopped = link.stop();
    assert!(stopped.status.success(), "{:?}", stopped.status);
    assert!(
        stopped
            .lines
            .iter()
            .any(|l| l.starts_with("link down (SIGTERM)")),
        "{:?}",
        stopped.lines
    );
    assert_gone(&[&left, &right]);
    assert_eq!(root_tun_devices(), tuns_before);
    // The ground truth is written at exit even when nothing crossed.
    assert_eq!(stopped.truth["left_to_right"]["received"], 0);
}

#[test]
fn sigint_takes_the_link_down_cleanly() {
    let link = Link::start("int", &[]);
    let (left, right) = (link.left.clone(), link.right.clone());
    let stopped = link.stop_with(libc::SIGINT);
    assert!(stopped.status.success(), "{:?}", stopped.status);
    assert!(
        stopped
            .lines
            .iter()
            .any(|l| l.starts_with("link down (SIGINT)")),
        "{:?}",
        stopped.lines
    );
    assert_gone(&[&left, &right]);
}

#[test]
fn sigkill_leaves_nothing_behind() {
    let tuns_before = root_tun_devices();
    let link = Link::start("kill", &[]);
    let (left, right) = (link.left.clone(), link.right.clone());
    let pid = link.proc.pid();
    // SIGKILL cannot be caught: the guardian process the link forked at start removes the
    // namespaces once it sees the link gone, and the kernel removes the TUN devices with the
    // link's descriptors.
    let stopped = link.stop_with(libc::SIGKILL);
    assert!(!stopped.status.success());
    assert!(
        wait_gone(&[&left, &right], Duration::from_secs(10)),
        "namespaces {left} and {right} outlived the killed link: {:?}",
        namespaces()
    );
    assert_gone(&[&left, &right]);
    assert!(
        !std::path::Path::new(&format!("/run/protolab-link/{pid}.json")).exists(),
        "the killed run's record is left"
    );
    assert_eq!(root_tun_devices(), tuns_before);
}

#[test]
fn a_later_run_clears_what_a_crashed_run_left() {
    require_root();
    // A crash of both the link and its guardian (a power cut, an older build) leaves the
    // namespaces and the record naming them, with the PID of a process that is gone.
    let (stale, _) = names("stale");
    run_ok(Command::new("ip").args(["netns", "add", &stale]));
    let mut dead = Command::new("true").spawn().expect("run true");
    let dead_pid = dead.id();
    dead.wait().expect("wait for true");
    std::fs::create_dir_all(crate::harness::STATE_DIR).unwrap();
    let record = format!("{}/{dead_pid}.json", crate::harness::STATE_DIR);
    std::fs::write(
        &record,
        format!(r#"{{"pid":{dead_pid},"start_time":1,"namespaces":["{stale}"]}}"#),
    )
    .unwrap();

    let link = Link::start("after", &[]);
    assert!(
        !namespaces().contains(&stale),
        "the stale namespace {stale} is still there after a new run started"
    );
    assert!(
        !std::path::Path::new(&record).exists(),
        "the stale record is left"
    );
    let (left, right) = (link.left.clone(), link.right.clone());
    assert!(link.stop().status.success());
    assert_gone(&[&left, &right, &stale]);
}

#[test]
fn a_namespace_it_did_not_make_is_refused_and_left_alone() {
    require_root();
    let (left, right) = names("foreign");
    /// Removes the test's own namespace however the test ends.
    struct Foreign(String);
    impl Drop for Foreign {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.0])
                .output();
        }
    }
    run_ok(Command::new("ip").args(["netns", "add", &left]));
    let _foreign = Foreign(left.clone());
    let out = Command::new(bin("impair"))
        .args(["link", "--left", &left, "--right", &right])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let exists = namespaces().contains(&left);
    let made_right = namespaces().contains(&right);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "namespace {left} already exists and was not made by `impair link`"
        )),
        "{err}"
    );
    assert!(exists, "the link removed a namespace it did not make");
    assert!(
        !made_right,
        "the link created {right} although it refused to run"
    );
}

#[test]
fn an_error_during_setup_removes_what_was_made() {
    require_root();
    let (left, right) = names("err");
    // The capture file cannot be created: the namespaces are already up when that fails.
    let out = Command::new(bin("impair"))
        .args(["link", "--left", &left, "--right", &right])
        .args(["--pcap", "/nonexistent-dir/capture.pcap"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("create the capture file /nonexistent-dir/capture.pcap"),
        "{err}"
    );
    assert_gone(&[&left, &right]);
}

#[test]
fn without_root_it_says_so_and_points_to_impair_udp() {
    use std::os::unix::fs::PermissionsExt;
    let (left, right) = names("noroot");
    // The user `nobody` may not reach the build folder (a clone under /root, say): it runs a
    // copy of the binary from a folder it can read.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("impair");
    std::fs::copy(bin("impair"), &copy).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(&copy);
    cmd.args(["link", "--left", &left, "--right", &right]);
    if protolab_tests::is_root() {
        // Run it as the unprivileged user `nobody`.
        cmd.uid(65534).gid(65534).current_dir("/");
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("impair link needs root"), "{err}");
    assert!(err.contains("impair udp --listen"), "{err}");
    let now = namespaces();
    assert!(!now.contains(&left) && !now.contains(&right));
}

#[test]
fn the_two_ends_reach_each_other_over_tcp() {
    // The kernel's own TCP, through the link both ways: a connection from the left namespace
    // to a listener in the right one, using only what iproute2 and the shell provide.
    let link = Link::start("reach", &[]);
    let server = protolab_tests::Server::start_cmd(
        "greet serve",
        link.exec(
            Side::Right,
            &bin("greet"),
            &["serve", "--listen", "198.18.0.2:9999"],
        ),
        1,
    );
    let out = run_ok(&mut link.exec(
        Side::Left,
        &bin("greet"),
        &["hello", "--server", "198.18.0.2:9999", "Ada"],
    ));
    drop(server);
    assert!(
        out.contains("Welcome!") && out.contains("Hello, Ada!"),
        "{out}"
    );
    let stopped = link.stop();
    let [received, forwarded, dropped, ..] =
        crate::harness::truth_of(&stopped.truth, "left_to_right");
    assert!(received > 0);
    assert_eq!(received, forwarded);
    assert_eq!(dropped, 0);
}

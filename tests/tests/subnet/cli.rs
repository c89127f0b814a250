//! The command line: the accepted input forms, the text report, refusals and exit codes.

use crate::common::{subnet_json, subnet_raw};

#[test]
fn every_mask_form_gives_the_same_report() {
    let a = subnet_json(&["192.168.1.77/26"]);
    assert_eq!(subnet_json(&["192.168.1.77", "255.255.255.192"]), a);
    assert_eq!(subnet_json(&["192.168.1.77/255.255.255.192"]), a);
    assert_eq!(subnet_json(&["192.168.1.77", "/26"]), a);
    assert_eq!(a["network"], "192.168.1.64");
    assert_eq!(a["broadcast"], "192.168.1.127");
    assert_eq!(a["hosts"], 62);
    assert_eq!(a["binary"]["mask"], "11111111.11111111.11111111.11|000000");
}

#[test]
fn the_text_report_shows_the_cut() {
    let out = subnet_raw(&["192.168.1.77/26", "--split", "4"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "192.168.1.77/26: network part 26 bits | host part 6 bits",
        "address     192.168.1.77     11000000.10101000.00000001.01|001101",
        "network     192.168.1.64     11000000.10101000.00000001.01|000000  address AND mask",
        "broadcast   192.168.1.127    11000000.10101000.00000001.01|111111  network OR wildcard",
        "kind        private: 192.168.0.0/16, RFC 1918",
        "192.168.1.112/28  192.168.1.113  192.168.1.126  192.168.1.127  14",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for (args, what) in [
        (
            &["192.168.1.300/24"][..],
            "error: 192.168.1.300: not an IPv4 or IPv6 address",
        ),
        (
            &["10.0.0.1"][..],
            "error: 10.0.0.1: no prefix length or mask",
        ),
        (&["10.0.0.1/33"][..], "error: /33: not a prefix length"),
        (
            &["10.0.0.1", "255.0.255.0"][..],
            "error: 255.0.255.0: not a subnet mask",
        ),
        (
            &["10.0.0.0/26", "--split", "3"][..],
            "error: --split 3: not a power of two",
        ),
        (
            &["10.0.0.0/26", "--split", "128"][..],
            "error: --split 128: a /26 network holds no 128 subnets",
        ),
        (
            &["10.0.0.0/26", "--split", "/24"][..],
            "error: --split /24: a /26 network holds no /24 subnets",
        ),
        (
            &["10.0.0.0/8", "--split", "/32"][..],
            "error: --split /32: 16777216 subnets is more than",
        ),
        (
            &["2001:db8::/32", "--split", "/129"][..],
            "error: --split /129: a /32 network holds no /129 subnets",
        ),
    ] {
        let out = subnet_raw(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(what), "{args:?}: {err}");
    }
}

#[test]
fn help_has_examples() {
    let out = subnet_raw(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Examples:"), "{text}");
    assert!(text.contains("--split"), "{text}");
}

#[test]
fn ipv6_report() {
    let r = subnet_json(&["2001:db8:abcd:12::1/48", "--split", "/64"]);
    assert_eq!(r["family"], 6);
    assert_eq!(r["expanded"], "2001:0db8:abcd:0012:0000:0000:0000:0001");
    assert_eq!(r["cidr"], "2001:db8:abcd::/48");
    assert_eq!(r["subnets_64"], "65536");
    assert_eq!(r["split"]["count"], 65536);
    assert_eq!(r["kinds"][0]["name"], "documentation");
    for (a, kind) in [
        ("fd00::1/64", "unique-local"),
        ("fe80::1/64", "link-local"),
        ("ff02::1/16", "multicast"),
        ("::1/128", "loopback"),
    ] {
        assert_eq!(subnet_json(&[a])["kinds"][0]["name"], kind, "{a}");
    }
}

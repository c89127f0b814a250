//! The HTTP cache test suite through `http proxy`: the required score never drops below the
//! figure recorded in tests/test-data/http/cache-suite-floor.txt (a figure that only rises).
//!
//! The suite is not part of the repository; without it this test fails and says how to get it
//! (there is no silent skip, in CI or out of it).

use protolab_tests::cache_suite;
use protolab_tests::{Server, workspace_root};

#[test]
fn required_score_stays_at_or_above_the_floor() {
    let floor_file = workspace_root().join("tests/test-data/http/cache-suite-floor.txt");
    let floor: u32 = std::fs::read_to_string(&floor_file)
        .expect("read the floor file")
        .trim()
        .parse()
        .expect("the floor file holds one number");
    let suite = cache_suite::prepare().unwrap_or_else(|e| {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        panic!(
            "{e}{}",
            if ci {
                " (CI=true: the suite is required)"
            } else {
                ""
            }
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let (_origin, origin_port) = suite.start_origin(dir.path()).unwrap();
    let upstream = format!("http://127.0.0.1:{origin_port}");
    let proxy = Server::start(
        "http",
        &["proxy", "--listen", "127.0.0.1:0", "--upstream", &upstream],
        1,
    );
    let results = dir.path().join("results.json");
    suite
        .run_client(&format!("http://{}", proxy.addr("tcp")), &results)
        .unwrap();
    let score = suite.score(&results).unwrap();
    let failures = suite.failures(&results, "required").unwrap();
    eprintln!(
        "cache-tests through http proxy: required {}/{}, optimal {}/{}, check yes {}/{}",
        score.required,
        score.required_total,
        score.optimal,
        score.optimal_total,
        score.check_yes,
        score.check_total
    );
    assert_eq!(score.required_total, 160, "the suite changed: {score:?}");
    assert!(
        score.required >= floor,
        "required score {} fell below the floor {floor} ({}); failing required tests:\n{}",
        score.required,
        floor_file.display(),
        failures.join("\n")
    );
    if score.required > floor {
        eprintln!(
            "the score rose above the floor: write {} into {}",
            score.required,
            floor_file.display()
        );
    }
}

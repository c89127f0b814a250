//! A second opinion on the desync corpus: hyper's HTTP/1 server over a real loopback socket,
//! sent the same bytes. Where the two differ, ours must be the stricter one.

use std::net::SocketAddr;

use crate::desync::{Verdict, corpus, run_corpus};

/// Starts hyper's HTTP/1 server on 127.0.0.1:0 in a thread of its own; it answers every request
/// (after reading its body) with 200, and `/status/202` with 202, like the origin.
fn start_hyper() -> SocketAddr {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;

    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |req: hyper::Request<hyper::body::Incoming>| async move {
                            let status = if req.uri().path() == "/status/202" {
                                202
                            } else {
                                200
                            };
                            let _ = req.into_body().collect().await?;
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"ok")))
                                .map_err(|_| unreachable_error())
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}

/// The service's error type is hyper's; building a response from fixed parts cannot fail.
fn unreachable_error() -> hyper::Error {
    unreachable!("a response from a status and a static body always builds")
}

fn accepts(v: Verdict) -> bool {
    matches!(v, Verdict::Accepted | Verdict::AcceptedThenClosed)
}

#[test]
fn desync_corpus_ours_is_at_least_as_strict_as_hyper() {
    let cases = corpus();
    let ours = crate::common::Http::start(&[]);
    let hyper_addr = start_hyper();
    let our_verdicts = run_corpus(ours.addr, &cases);
    let their_verdicts = run_corpus(hyper_addr, &cases);
    let mut agree = 0;
    let mut stricter = Vec::new();
    let mut laxer = Vec::new();
    for ((case, ours), theirs) in cases.iter().zip(&our_verdicts).zip(&their_verdicts) {
        let (a, b) = (accepts(*ours), accepts(*theirs));
        if a == b {
            agree += 1;
        } else if !a {
            stricter.push(format!(
                "{} ({}): ours {ours:?}, hyper {theirs:?}",
                case.name.escape_debug(),
                case.tier
            ));
        } else {
            laxer.push(format!(
                "{} ({}): ours {ours:?}, hyper {theirs:?}",
                case.name.escape_debug(),
                case.tier
            ));
        }
    }
    println!(
        "agreement with hyper on accept/refuse: {agree} of {} cases",
        cases.len()
    );
    println!("ours refuses, hyper accepts ({}):", stricter.len());
    for s in &stricter {
        println!("  {s}");
    }
    assert!(
        laxer.is_empty(),
        "cases hyper refuses but ours accepts:\n{}",
        laxer.join("\n")
    );
}

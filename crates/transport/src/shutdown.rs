//! Shutdown on SIGINT and SIGTERM.

use tokio_util::sync::CancellationToken;

/// Returns a token cancelled when the process receives SIGINT or SIGTERM.
///
/// Must be called inside a tokio runtime. Server runners take the token, stop accepting when it
/// fires and drain what is in flight. A second signal ends the process at once with status 130
/// (128 + SIGINT), for an operator who will not wait for the drain: once tokio has installed its
/// handler the default action is gone, so without this a second Ctrl-C would do nothing.
///
/// The handlers are in place when this returns, so call it before announcing `listening`: a
/// signal sent as soon as a test or a supervisor reads that line then shuts the server down
/// cleanly, where a handler installed later (by the task's first poll) would have let the
/// signal's default action kill the process without its report.
pub fn shutdown_on_signals() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop the process with SIGKILL");
        return token;
    };
    let fire = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT: draining; a second signal exits at once"),
            _ = term.recv() => tracing::info!("SIGTERM: draining; a second signal exits at once"),
        }
        fire.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("second signal: exiting without waiting for the drain");
        std::process::exit(130);
    });
    token
}

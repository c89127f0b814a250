//! Shutdown on SIGINT and SIGTERM.

use tokio_util::sync::CancellationToken;

/// Returns a token cancelled when the process receives SIGINT or SIGTERM.
///
/// Must be called inside a tokio runtime. Server runners take the token, stop accepting when it
/// fires and drain what is in flight.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot install signal handlers; stop the process with SIGKILL");
            return;
        };
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        fire.cancel();
    });
    token
}

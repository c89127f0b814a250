//! The web inbox: a Maildir shown in the browser and through a Mailpit-compatible JSON API.
//!
//! Layout:
//! - [`index`]: one small summary per message (headers, size, snippet: never bodies), built
//!   from the head of each file at start, capped in bytes, and the search over it.
//! - [`watch`]: keeps the index current with an inotify watch of `new/` and `cur/`, so a
//!   message appears once its delivery is durable, whoever delivered it.
//! - [`api`]: the HTTP routes: Mailpit's `/api/v1/...` subset, the HTML part behind a
//!   Content-Security-Policy, server-sent events at `/api/events`, and the page's assets.
//! - [`page`]: the page's files (HTML, CSS, JavaScript), compiled into the binary.
//!
//! The inbox is served by protolab-http's driver ([`protolab_http::serve::run_with`]) with the
//! same limits, deadlines and drain as every protolab HTTP service.

pub mod api;
pub mod index;
pub mod page;
pub mod watch;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use protolab_transport::CancellationToken;
use tokio::net::TcpListener;

pub use index::{Index, IndexConfig, Summary};

/// The port the inbox listens on by default (Mailpit's).
pub const DEFAULT_HTTP_PORT: u16 = 8025;

/// Why the inbox cannot start.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("cannot index the Maildir {path}: {source}")]
    Index {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the credentials file {path}: {why}")]
    Credentials {
        path: std::path::PathBuf,
        why: String,
    },
}

/// Options of the inbox.
#[derive(Debug, Clone, Default)]
pub struct InboxConfig {
    pub index: IndexConfig,
    /// `user:password` required by HTTP basic authentication, if any.
    pub auth: Option<String>,
}

/// Reads a `user:password` line from a file (the first line; surrounding blanks trimmed).
///
/// # Errors
/// An unreadable file, or a line without a colon.
pub fn read_credentials(path: &Path) -> Result<String, InboxError> {
    let err = |why: String| InboxError::Credentials {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let line = text.lines().next().unwrap_or_default().trim();
    match line.split_once(':') {
        Some((user, pass)) if !user.is_empty() && !pass.is_empty() => Ok(line.to_owned()),
        _ => Err(err("the first line must be user:password".into())),
    }
}

/// A change the page hears about through server-sent events.
#[derive(Debug, Clone)]
pub struct Event(pub Bytes);

/// The inbox of one Maildir: its index and the feed of changes.
#[derive(Debug)]
pub struct Inbox {
    pub index: Index,
    events: tokio::sync::broadcast::Sender<Event>,
    /// `Basic <base64(user:password)>`, the Authorization value required, if any.
    authorization: Option<String>,
}

impl Inbox {
    /// Indexes the Maildir at `root` (which must have `new/` and `cur/`) and starts watching it.
    ///
    /// # Errors
    /// A folder that cannot be read or watched.
    pub fn open(root: &Path, config: InboxConfig) -> Result<Arc<Self>, InboxError> {
        let err = |source| InboxError::Index {
            path: root.to_path_buf(),
            source,
        };
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(root.join(sub)).map_err(err)?;
        }
        let index = Index::build(root, config.index).map_err(err)?;
        let (events, _) = tokio::sync::broadcast::channel(256);
        let inbox = Arc::new(Self {
            index,
            events,
            authorization: config
                .auth
                .map(|c| format!("Basic {}", base64(c.as_bytes()))),
        });
        watch::start(inbox.clone()).map_err(err)?;
        Ok(inbox)
    }

    /// A message appeared in the Maildir.
    pub fn appeared(&self, s: Summary) {
        let json = api::summary_json(&s);
        if self.index.add(s) {
            self.publish("new", &json);
        }
    }

    /// Messages left the Maildir.
    pub fn removed(&self, ids: &[String]) {
        if self.index.write().remove(ids) > 0 {
            self.publish("delete", &serde_json::json!({ "IDs": ids }));
        }
    }

    /// Re-reads the folders after the watch lost events: adds what is missing, drops what is
    /// gone.
    pub fn rescan(&self) {
        let mut present = std::collections::HashSet::new();
        for folder in ["new", "cur"] {
            let Ok(dir) = std::fs::read_dir(self.index.root.join(folder)) else {
                continue;
            };
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let (id, _) = index::split_name(&name);
                present.insert(id.to_owned());
                if self.index.read().get(id).is_none()
                    && let Some(s) = index::summarize(&entry.path(), folder)
                {
                    self.appeared(s);
                }
            }
        }
        let gone: Vec<String> = self
            .index
            .read()
            .newest_first()
            .filter(|s| !present.contains(&s.id))
            .map(|s| s.id.clone())
            .collect();
        self.removed(&gone);
    }

    fn publish(&self, kind: &str, data: &serde_json::Value) {
        let text = format!("event: {kind}\ndata: {data}\n\n");
        // No subscriber is no error: nobody has the page open.
        let _ = self.events.send(Event(Bytes::from(text)));
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) fn authorized(&self, header: Option<&str>) -> bool {
        match (&self.authorization, header) {
            (None, _) => true,
            (Some(want), Some(got)) => {
                // Compared in full whatever the first difference, so timing says little.
                want.len() == got.len()
                    && want
                        .bytes()
                        .zip(got.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }
            (Some(_), None) => false,
        }
    }
}

/// Serves the inbox on `bound` until `shutdown` fires and connections have drained.
///
/// # Errors
/// Only errors of the listening socket itself.
pub async fn run(
    bound: TcpListener,
    inbox: Arc<Inbox>,
    shutdown: CancellationToken,
) -> std::io::Result<protolab_http::serve::Report> {
    let config = protolab_http::serve::ServeConfig {
        // A page and a few API clients: a modest cap keeps event streams bounded too.
        max_connections: 512,
        idle_timeout: std::time::Duration::from_secs(120),
        drain_timeout: std::time::Duration::from_secs(2),
        ..protolab_http::serve::ServeConfig::default()
    };
    protolab_http::serve::run_with(bound, config, api::Web(inbox), shutdown).await
}

/// Standard base64 with padding (RFC 4648 section 4), for the basic-auth comparison.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foob"), "Zm9vYg==");
        assert_eq!(super::base64(b"user:pass"), "dXNlcjpwYXNz");
    }
}

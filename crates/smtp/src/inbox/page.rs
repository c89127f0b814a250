//! The page's files, compiled into the binary: no build step, nothing loaded from elsewhere.
//!
//! The script builds every element with `textContent`, never `innerHTML`, so a header value
//! such as `<script>alert(1)</script>` shows as text. The HTML part of a message is shown in an
//! `<iframe sandbox>` (no `allow-scripts`, no `allow-same-origin`) whose document the server
//! sends with [`super::api::HTML_CSP`].

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("assets/app.js");
/// Its style sheet.
pub const APP_CSS: &str = include_str!("assets/app.css");

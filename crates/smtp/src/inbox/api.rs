//! The inbox's HTTP routes: a subset of Mailpit's API v1 (its paths and field names), the
//! HTML part of a message behind a Content-Security-Policy, server-sent events and the page.
//!
//! | Route | What |
//! |---|---|
//! | `GET /api/v1/messages?start&limit` | summaries, newest first |
//! | `DELETE /api/v1/messages` | all, or `{"IDs": [...]}`; the files are removed |
//! | `PUT /api/v1/messages` | `{"IDs": [...], "Read": bool}` (no IDs: all) |
//! | `GET /api/v1/message/{ID}` | the message decoded (`latest` is the newest); marks it read |
//! | `GET /api/v1/message/{ID}/raw` | the file as stored |
//! | `GET /api/v1/message/{ID}/headers` | `{name: [values]}` |
//! | `GET /api/v1/message/{ID}/part/{PartID}` | one MIME part, decoded |
//! | `GET /api/v1/search?query=&start&limit` | summaries matching `from: to: subject: is:` and text |
//! | `GET /api/events` | server-sent events: `new`, `delete`, `update` |
//! | `GET /view/{ID}.html[?images=1]` | the HTML part, sandboxed by its CSP |

use std::sync::Arc;

use bytes::Bytes;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use protolab_http::conn::Request;
use protolab_http::origin::{Body, Handler, Reply, percent_decode, split_target};
use protolab_http::wire::Headers;
use serde_json::{Value, json};

use super::Inbox;
use super::index::{Summary, parse_query};
use super::page;

/// What the HTML part is served with: no script, no remote image, font, frame or style sheet,
/// and the `sandbox` directive in case the page is opened outside the inbox's iframe.
pub const HTML_CSP: &str =
    "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; sandbox";
/// The same once the reader allowed images for this message.
pub const HTML_CSP_IMAGES: &str =
    "default-src 'none'; img-src data: cid: http: https:; style-src 'unsafe-inline'; sandbox";
/// The page's own policy: its files only, no inline script.
const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data:; frame-src 'self'; \
                        object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// Most summaries one list request returns.
const MAX_LIMIT: usize = 1000;

/// The inbox as an HTTP handler.
#[derive(Debug)]
pub struct Web(pub Arc<Inbox>);

impl Handler for Web {
    fn handle(&self, req: &Request, body: &[u8]) -> Reply {
        let inbox = &self.0;
        if !inbox.authorized(req.head.headers.get_str("authorization")) {
            let mut h = Headers::new();
            h.append("WWW-Authenticate", "Basic realm=\"protolab inbox\"");
            h.append("Content-Length", "0");
            return Reply::new(401, h, Bytes::new());
        }
        let (path, query) = split_target(&req.head.target);
        let method = req.head.method.as_str();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("GET" | "HEAD", [""] | ["index.html"]) => asset(page::INDEX_HTML, "text/html"),
            ("GET" | "HEAD", ["app.js"]) => asset(page::APP_JS, "text/javascript"),
            ("GET" | "HEAD", ["app.css"]) => asset(page::APP_CSS, "text/css"),
            ("GET", ["api", "v1", "messages"]) => list(inbox, &params(query), None),
            ("GET", ["api", "v1", "search"]) => {
                let p = params(query);
                let q = get(&p, "query").unwrap_or_default().to_owned();
                list(inbox, &p, Some(&q))
            }
            ("DELETE", ["api", "v1", "messages"]) => delete(inbox, body),
            ("PUT", ["api", "v1", "messages"]) => set_read(inbox, body),
            ("GET", ["api", "v1", "message", id]) => message(inbox, id),
            ("GET", ["api", "v1", "message", id, "raw"]) => raw(inbox, id),
            ("GET", ["api", "v1", "message", id, "headers"]) => headers(inbox, id),
            ("GET", ["api", "v1", "message", id, "part", p]) => part(inbox, id, p),
            ("GET", ["api", "events"]) => events(inbox),
            ("GET", ["view", file]) if file.ends_with(".html") => {
                let images = get(&params(query), "images") == Some("1");
                view_html(inbox, file.trim_end_matches(".html"), images)
            }
            (_, ["api", ..]) | (_, ["view", ..]) => text(404, "not found"),
            _ => text(404, "not found"),
        }
    }
}

fn text(status: u16, t: &str) -> Reply {
    Reply::text(status, format!("{t}\n"))
}

fn json_reply(v: &Value) -> Reply {
    let mut h = Headers::new();
    h.append("Cache-Control", "no-store");
    Reply::json(200, v, h)
}

fn asset(body: &'static str, kind: &str) -> Reply {
    let mut h = Headers::new();
    h.append("Content-Type", format!("{kind}; charset=utf-8"));
    h.append("Content-Length", body.len().to_string());
    h.append("Content-Security-Policy", PAGE_CSP);
    h.append("X-Content-Type-Options", "nosniff");
    h.append("Referrer-Policy", "no-referrer");
    h.append("Cache-Control", "no-cache");
    Reply::new(200, h, Bytes::from_static(body.as_bytes()))
}

/// The query's parameters, decoded (`+` is a space, as forms and URLSearchParams send it).
fn params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| percent_decode(&s.replace('+', " "));
            Some((dec(k)?, dec(v)?))
        })
        .collect()
}

fn get<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A summary in Mailpit's list form.
pub fn summary_json(s: &Summary) -> Value {
    json!({
        "ID": s.id,
        "MessageID": s.message_id,
        "Read": s.read(),
        "From": s.from,
        "To": s.to,
        "Cc": s.cc,
        "Bcc": s.bcc,
        "ReplyTo": [],
        "Subject": s.subject,
        "Created": rfc3339(s.created),
        "Tags": [],
        "Size": s.size,
        "Attachments": s.attachments,
        "Snippet": s.snippet,
        "ReturnPath": s.return_path,
        "DeliveredTo": s.delivered_to,
    })
}

fn rfc3339(secs: i64) -> String {
    mail_parser::DateTime::from_timestamp(secs).to_rfc3339()
}

fn list(inbox: &Inbox, p: &[(String, String)], search: Option<&str>) -> Reply {
    let start = get(p, "start")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0usize);
    let limit = get(p, "limit")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50usize)
        .min(MAX_LIMIT);
    let terms = search.map(parse_query).unwrap_or_default();
    let e = inbox.index.read();
    let mut page = Vec::with_capacity(limit.min(e.len()));
    let matched = if terms.is_empty() {
        // The plain list costs the page, not the inbox's size.
        page.extend(e.newest_first().skip(start).take(limit).map(summary_json));
        e.len()
    } else {
        let mut matched = 0usize;
        for s in e.newest_first().filter(|s| s.matches(&terms)) {
            if matched >= start && page.len() < limit {
                page.push(summary_json(s));
            }
            matched += 1;
        }
        matched
    };
    let unread = e.unread();
    let total = e.len();
    drop(e);
    json_reply(&json!({
        "total": total,
        "unread": unread,
        "count": page.len(),
        "messages_count": matched,
        "messages_unread": unread,
        "start": start,
        "tags": [],
        "messages": page,
    }))
}

/// The IDs a DELETE or PUT names; `None` for all.
fn body_ids(body: &[u8]) -> Result<(Option<Vec<String>>, Option<bool>), Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, None));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| text(400, &format!("bad JSON body: {e}")))?;
    let ids = v.get("IDs").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    let ids = ids.filter(|i| !i.is_empty());
    Ok((ids, v.get("Read").and_then(Value::as_bool)))
}

fn resolve(inbox: &Inbox, id: &str) -> Option<Summary> {
    let e = inbox.index.read();
    if id == "latest" {
        e.latest().cloned()
    } else {
        e.get(id).cloned()
    }
}

fn delete(inbox: &Inbox, body: &[u8]) -> Reply {
    let ids = match body_ids(body) {
        Ok((ids, _)) => ids,
        Err(r) => return r,
    };
    let targets: Vec<Summary> = {
        let e = inbox.index.read();
        match &ids {
            None => e.newest_first().cloned().collect(),
            Some(ids) => ids.iter().filter_map(|i| e.get(i).cloned()).collect(),
        }
    };
    let mut gone = Vec::with_capacity(targets.len());
    for s in &targets {
        match std::fs::remove_file(s.path(&inbox.index.root)) {
            Ok(()) => gone.push(s.id.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone.push(s.id.clone()),
            Err(e) => tracing::warn!(id = %s.id, error = %e, "cannot delete a message"),
        }
    }
    inbox.removed(&gone);
    if gone.len() == targets.len() {
        text(200, "ok")
    } else {
        text(500, "some messages could not be deleted")
    }
}

fn set_read(inbox: &Inbox, body: &[u8]) -> Reply {
    let (ids, read) = match body_ids(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let read = read.unwrap_or(true);
    let targets: Vec<Summary> = {
        let e = inbox.index.read();
        match &ids {
            None => e.newest_first().cloned().collect(),
            Some(ids) => ids.iter().filter_map(|i| e.get(i).cloned()).collect(),
        }
    };
    let changed = mark(inbox, &targets, read);
    if !changed.is_empty() {
        inbox.publish("update", &json!({ "IDs": changed, "Read": read }));
    }
    text(200, "ok")
}

/// Marks messages read (moved to `cur/` with the `S` flag, as the Maildir convention says) or
/// unread (the `S` flag removed). Returns the IDs whose file moved.
fn mark(inbox: &Inbox, targets: &[Summary], read: bool) -> Vec<String> {
    let root = &inbox.index.root;
    let mut changed = Vec::new();
    for s in targets {
        if s.read() == read {
            continue;
        }
        let mut flags: Vec<char> = s.flags.chars().filter(|&c| c != 'S').collect();
        if read {
            flags.push('S');
        }
        flags.sort_unstable();
        let flags: String = flags.into_iter().collect();
        let to = root.join("cur").join(format!("{}:2,{flags}", s.id));
        // The index moves first, so the watch knows the rename is ours.
        inbox.index.write().relocate(&s.id, "cur", &flags);
        if let Err(e) = std::fs::rename(s.path(root), &to) {
            tracing::debug!(id = %s.id, error = %e, "cannot change a message's flags");
            inbox.index.write().relocate(&s.id, s.folder, &s.flags);
            continue;
        }
        changed.push(s.id.clone());
    }
    changed
}

/// The whole file of a message, capped at the largest message the server accepts and more.
fn load(inbox: &Inbox, id: &str) -> Result<(Summary, Vec<u8>), Reply> {
    let Some(s) = resolve(inbox, id) else {
        return Err(text(404, "message not found"));
    };
    match std::fs::read(s.path(&inbox.index.root)) {
        Ok(b) => Ok((s, b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(text(404, "message not found")),
        Err(e) => Err(text(500, &format!("cannot read the message: {e}"))),
    }
}

fn message(inbox: &Inbox, id: &str) -> Reply {
    let (s, bytes) = match load(inbox, id) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(msg) = MessageParser::default().parse(&bytes) else {
        return text(422, "the message cannot be parsed");
    };
    let text_body = msg
        .text_part(0)
        .and_then(|p| match &p.body {
            PartType::Text(t) => Some(t.to_string()),
            _ => None,
        })
        .unwrap_or_default();
    let html_body = msg
        .html_part(0)
        .and_then(|p| match &p.body {
            PartType::Html(t) => Some(t.to_string()),
            _ => None,
        })
        .unwrap_or_default();
    let mut attachments = Vec::new();
    let mut inline = Vec::new();
    for &i in &msg.attachments {
        let Some(p) = msg.parts.get(i as usize) else {
            continue;
        };
        let ct = p
            .content_type()
            .map(|c| match &c.c_subtype {
                Some(sub) => format!("{}/{}", c.c_type, sub),
                None => c.c_type.to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        let item = json!({
            "PartID": i.to_string(),
            "FileName": p.attachment_name().unwrap_or_default(),
            "ContentType": ct,
            "ContentID": p.content_id().unwrap_or_default(),
            "Size": p.contents().len(),
        });
        let disposition_attachment = p
            .content_disposition()
            .is_some_and(|d| d.c_type.eq_ignore_ascii_case("attachment"));
        if p.content_id().is_some() && !disposition_attachment {
            inline.push(item);
        } else {
            attachments.push(item);
        }
    }
    let received: Vec<&str> = msg
        .headers_raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Received"))
        .map(|(_, v)| v.trim())
        .collect();
    let mailboxes = |a: Option<&mail_parser::Address<'_>>| -> Vec<Value> {
        a.map(|a| {
            a.iter()
                .map(|m| {
                    json!({"Name": m.name.as_deref().unwrap_or_default(),
                           "Address": m.address.as_deref().unwrap_or_default()})
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let from = mailboxes(msg.from()).into_iter().next();
    let date = msg.date().map(mail_parser::DateTime::to_rfc3339);
    let v = json!({
        "ID": s.id,
        "MessageID": msg.message_id().unwrap_or_default(),
        "From": from,
        "To": mailboxes(msg.to()),
        "Cc": mailboxes(msg.cc()),
        "Bcc": mailboxes(msg.bcc()),
        "ReplyTo": mailboxes(msg.reply_to()),
        "ReturnPath": s.return_path,
        "Subject": msg.subject().unwrap_or_default(),
        "Date": date.unwrap_or_else(|| rfc3339(s.created)),
        "Created": rfc3339(s.created),
        "Tags": [],
        "Text": text_body,
        "HTML": html_body,
        "Size": bytes.len(),
        "Inline": inline,
        "Attachments": attachments,
        "Envelope": {"ReturnPath": s.return_path, "DeliveredTo": s.delivered_to},
        "Received": received,
        "RemoteResources": count_remote(&html_body),
    });
    // Opening a message marks it read, as Mailpit does.
    if !s.read() && !mark(inbox, std::slice::from_ref(&s), true).is_empty() {
        inbox.publish("update", &json!({ "IDs": [s.id], "Read": true }));
    }
    json_reply(&v)
}

fn raw(inbox: &Inbox, id: &str) -> Reply {
    let (_, bytes) = match load(inbox, id) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut h = Headers::new();
    h.append("Content-Type", "text/plain; charset=utf-8");
    h.append("Content-Length", bytes.len().to_string());
    h.append("X-Content-Type-Options", "nosniff");
    Reply::new(200, h, Bytes::from(bytes))
}

fn headers(inbox: &Inbox, id: &str) -> Reply {
    let (_, bytes) = match load(inbox, id) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(msg) = MessageParser::default().parse_headers(&bytes) else {
        return text(422, "the message cannot be parsed");
    };
    let mut map = serde_json::Map::new();
    for (name, value) in msg.headers_raw() {
        let entry = map
            .entry(name.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = entry {
            a.push(Value::String(unfold(value)));
        }
    }
    json_reply(&Value::Object(map))
}

/// A raw header value on one line: folding removed, surrounding blanks trimmed.
fn unfold(v: &str) -> String {
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn part(inbox: &Inbox, id: &str, part_id: &str) -> Reply {
    let (_, bytes) = match load(inbox, id) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(msg) = MessageParser::default().parse(&bytes) else {
        return text(422, "the message cannot be parsed");
    };
    let Some(p) = part_id.parse::<usize>().ok().and_then(|i| msg.parts.get(i)) else {
        return text(404, "part not found");
    };
    if matches!(p.body, PartType::Multipart(_) | PartType::Message(_)) {
        return text(404, "part not found");
    }
    let ct = p
        .content_type()
        .map(|c| match &c.c_subtype {
            Some(sub) => format!("{}/{}", c.c_type, sub),
            None => c.c_type.to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into());
    let content = p.contents().to_vec();
    let mut h = Headers::new();
    // Served as a download, never rendered in the inbox's origin: an HTML attachment must not
    // run as the inbox's page.
    h.append("Content-Type", safe_header(&ct));
    let name = p.attachment_name().unwrap_or("part");
    h.append(
        "Content-Disposition",
        format!("attachment; filename=\"{}\"", safe_filename(name)),
    );
    h.append("Content-Length", content.len().to_string());
    h.append("X-Content-Type-Options", "nosniff");
    // No `sandbox` here: Chromium refuses downloads from a sandboxed response.
    h.append("Content-Security-Policy", "default-src 'none'");
    Reply::new(200, h, Bytes::from(content))
}

fn safe_header(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect()
}

fn safe_filename(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/' | ';') || *c == ' ')
        .collect()
}

/// The HTML part as a document of its own, for the page's sandboxed iframe.
fn view_html(inbox: &Inbox, id: &str, images: bool) -> Reply {
    let (_, bytes) = match load(inbox, id) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let html = MessageParser::default()
        .parse(&bytes)
        .and_then(|m| {
            m.html_part(0).and_then(|p| match &p.body {
                PartType::Html(t) => Some(t.to_string()),
                _ => None,
            })
        })
        .unwrap_or_default();
    let mut h = Headers::new();
    h.append("Content-Type", "text/html; charset=utf-8");
    h.append("Content-Length", html.len().to_string());
    h.append(
        "Content-Security-Policy",
        if images { HTML_CSP_IMAGES } else { HTML_CSP },
    );
    h.append("X-Content-Type-Options", "nosniff");
    h.append("Referrer-Policy", "no-referrer");
    h.append("Cache-Control", "no-store");
    Reply::new(200, h, Bytes::from(html))
}

/// Counts the remote resources an HTML part names (`src=`, `href=`, `background=`, `url(` with
/// an `http:`, `https:` or `//` value): what the policy blocks and the page reports.
pub fn count_remote(html: &str) -> usize {
    let lower = html.to_ascii_lowercase();
    let b = lower.as_bytes();
    let mut n = 0;
    for key in ["src=", "href=", "background=", "url("] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let mut i = from + pos + key.len();
            from = i;
            // An attribute name, not the tail of another one (`data-src=`, `xsrc=`).
            let before = (from - key.len()).checked_sub(1).map(|j| b[j]);
            if key != "url(" && before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-') {
                continue;
            }
            while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'') {
                i += 1;
            }
            let rest = &lower[i..];
            if rest.starts_with("http:") || rest.starts_with("https:") || rest.starts_with("//") {
                n += 1;
            }
        }
    }
    n
}

/// Server-sent events: every change to the inbox, as it happens.
fn events(inbox: &Inbox) -> Reply {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut feed = inbox.subscribe();
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return text(503, "no event stream here");
    };
    rt.spawn(async move {
        if tx
            .send(Bytes::from_static(b": connected\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let piece = tokio::select! {
                ev = feed.recv() => match ev {
                    Ok(ev) => ev.0,
                    // The page fell behind: it reloads the list instead.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        Bytes::from_static(b"event: reload\ndata: {}\n\n")
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                // A comment now and then finds out when the page has gone away.
                () = tokio::time::sleep(std::time::Duration::from_secs(15)) => {
                    Bytes::from_static(b": keep-alive\n\n")
                }
            };
            if tx.send(piece).await.is_err() {
                return;
            }
        }
    });
    let mut h = Headers::new();
    h.append("Content-Type", "text/event-stream");
    h.append("Cache-Control", "no-store");
    let mut reply = Reply::new(200, h, Bytes::new());
    reply.body = Body::Stream(rx);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_resources_counted() {
        let html = r#"<img src="http://198.18.0.9/x.png"><img data-src="http://a/">
            <a href='https://x.test/'>x</a><img src="cid:logo"><div style="background:url(//t.test/p)">
            <img src="data:image/png;base64,AA==">"#;
        assert_eq!(count_remote(html), 3);
    }

    #[test]
    fn query_parameters_decoded() {
        let p = params("query=from%3Aalice+subject%3A%22x+y%22&start=5");
        assert_eq!(get(&p, "query"), Some("from:alice subject:\"x y\""));
        assert_eq!(get(&p, "start"), Some("5"));
    }
}

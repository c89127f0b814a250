//! The inbox's index: one small summary per message of a Maildir, newest last.
//!
//! Built at start from the head of each file (its first [`HEAD_READ`] octets, never the whole
//! message), kept current by a watch of `new/` and `cur/` (see [`super::watch`]), and capped in
//! bytes: past [`IndexConfig::max_bytes`] the oldest summaries are dropped from the index (the
//! files stay; `smtp list` still shows them) and counted in [`Index::evicted`].

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mail_parser::{Address, MessageParser, MimeHeaders};

/// How much of each file is read to index it: the header section and the start of the body
/// (for the snippet).
pub const HEAD_READ: usize = 8 * 1024;
/// Longest subject kept in the index, in characters.
const MAX_SUBJECT: usize = 256;
/// Longest snippet kept, in characters.
const MAX_SNIPPET: usize = 120;
/// Addresses kept per field.
const MAX_ADDRESSES: usize = 8;

/// Options of the index.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Summaries are dropped, oldest first, once they take more than this (estimated).
    pub max_bytes: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A name and an address, as Mailpit's JSON gives them (`{"Name": ..., "Address": ...}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mailbox {
    pub name: String,
    pub address: String,
}

/// What the index knows of one message.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The Maildir base name (the file name without `:2,FLAGS`): the message's ID.
    pub id: String,
    /// `new` or `cur`.
    pub folder: &'static str,
    /// The flags after `:2,` (empty in `new/`).
    pub flags: String,
    /// Seconds since the epoch when it arrived (from the Maildir name, else the file's mtime).
    pub created: i64,
    pub size: u64,
    pub message_id: String,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub subject: String,
    pub snippet: String,
    /// Attachment parts seen in the indexed head (exact for a message whose parts begin there;
    /// the message view counts them exactly).
    pub attachments: usize,
    /// The envelope: `Return-Path:` and the `Delivered-To:` lines the server prepended.
    pub return_path: String,
    pub delivered_to: Vec<String>,
}

impl Summary {
    /// Seen by a mail reader: in `cur/` with the `S` flag.
    pub fn read(&self) -> bool {
        self.folder == "cur" && self.flags.contains('S')
    }

    /// The file's name in its folder.
    pub fn file_name(&self) -> String {
        if self.folder == "cur" {
            format!("{}:2,{}", self.id, self.flags)
        } else {
            self.id.clone()
        }
    }

    /// The file's path under `root`.
    pub fn path(&self, root: &Path) -> PathBuf {
        root.join(self.folder).join(self.file_name())
    }

    /// An estimate of the memory the summary takes, for the cap.
    fn weight(&self) -> usize {
        let boxes = |v: &[Mailbox]| {
            v.iter()
                .map(|m| m.name.len() + m.address.len() + 48)
                .sum::<usize>()
        };
        256 + self.id.len() * 2
            + self.flags.len()
            + self.message_id.len()
            + self.from.name.len()
            + self.from.address.len()
            + boxes(&self.to)
            + boxes(&self.cc)
            + boxes(&self.bcc)
            + self.subject.len()
            + self.snippet.len()
            + self.return_path.len()
            + self
                .delivered_to
                .iter()
                .map(|d| d.len() + 24)
                .sum::<usize>()
    }

    /// True when every term of `query` matches.
    pub fn matches(&self, query: &[Term]) -> bool {
        query.iter().all(|t| t.matches(self))
    }
}

/// Splits a Maildir file name into its base name and flags.
pub fn split_name(name: &str) -> (&str, &str) {
    match name.split_once(":2,") {
        Some((base, flags)) => (base, flags),
        None => (name, ""),
    }
}

/// Indexes one file: reads its head and parses it with mail-parser. `None` for a dot file or a
/// file that cannot be read (it may have been removed meanwhile).
pub fn summarize(path: &Path, folder: &'static str) -> Option<Summary> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') {
        return None;
    }
    let (id, flags) = split_name(name);
    let file = fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    // Exactly the octets wanted, in one read for a regular file: no second read to find the
    // end, which at 100,000 files is 100,000 system calls saved.
    let want = usize::try_from(meta.len())
        .unwrap_or(HEAD_READ)
        .min(HEAD_READ);
    let mut head = vec![0u8; want];
    let mut file = file;
    file.read_exact(&mut head).ok()?;
    let created = id
        .split('.')
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            meta.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64)
        });
    let mut s = Summary {
        id: id.to_owned(),
        folder,
        flags: flags.to_owned(),
        created,
        size: meta.len(),
        message_id: String::new(),
        from: Mailbox::default(),
        to: Vec::new(),
        cc: Vec::new(),
        bcc: Vec::new(),
        subject: String::new(),
        snippet: String::new(),
        attachments: 0,
        return_path: String::new(),
        delivered_to: Vec::new(),
    };
    let complete = meta.len() as usize <= head.len();
    fill(&mut s, &head, complete);
    Some(s)
}

/// The parser the index uses: Received and other trace fields are kept raw (the index never
/// looks into them, and their structured parse is the costliest part of a head), the fields a
/// summary shows are decoded.
static HEAD_PARSER: std::sync::LazyLock<MessageParser> = std::sync::LazyLock::new(|| {
    MessageParser::new()
        .with_minimal_headers()
        .with_message_ids()
        .header_raw(mail_parser::HeaderName::Received)
        .header_raw(mail_parser::HeaderName::ReturnPath)
        .header_raw(mail_parser::HeaderName::Date)
});

/// Fills a summary from a message's bytes (its head when `complete` is false).
///
/// The header section is parsed on its own; only a MIME message (multipart or encoded) is
/// parsed whole for its snippet and attachments. A plain text message's snippet is its first
/// line of text, taken as it is: most of an index's time at start is saved this way.
pub fn fill(s: &mut Summary, bytes: &[u8], complete: bool) {
    let parser = &*HEAD_PARSER;
    let Some(msg) = parser.parse_headers(bytes) else {
        return;
    };
    s.message_id = msg.message_id().unwrap_or_default().to_owned();
    s.from = msg
        .from()
        .and_then(Address::first)
        .map(mailbox)
        .unwrap_or_default();
    s.to = mailboxes(msg.to());
    s.cc = mailboxes(msg.cc());
    s.bcc = mailboxes(msg.bcc());
    s.subject = clip(msg.subject().unwrap_or_default(), MAX_SUBJECT);
    for (name, value) in msg.headers_raw() {
        if name.eq_ignore_ascii_case("Return-Path") {
            s.return_path = value.trim().trim_matches(['<', '>']).to_owned();
        } else if name.eq_ignore_ascii_case("Delivered-To") && s.delivered_to.len() < 100 {
            s.delivered_to.push(value.trim().to_owned());
        }
    }
    let root = msg.root_part();
    let plain = root.content_type().is_none_or(|c| {
        c.c_type.eq_ignore_ascii_case("text")
            && c.c_subtype
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("plain"))
            && c.attribute("charset").is_none_or(|cs| {
                cs.eq_ignore_ascii_case("utf-8") || cs.eq_ignore_ascii_case("us-ascii")
            })
    }) && root
        .content_transfer_encoding()
        .is_none_or(|e| e.eq_ignore_ascii_case("7bit") || e.eq_ignore_ascii_case("8bit"));
    let preview = |text: &str| {
        clip(
            &text
                .split_whitespace()
                .take(MAX_SNIPPET)
                .collect::<Vec<_>>()
                .join(" "),
            MAX_SNIPPET,
        )
    };
    if plain {
        let body = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(&[][..], |i| &bytes[i + 4..]);
        s.snippet = preview(&String::from_utf8_lossy(body));
        s.attachments = 0;
        return;
    }
    let Some(full) = parser.parse(bytes) else {
        return;
    };
    // A text part cut off by the head's end is still a fair preview; a binary one is not.
    s.snippet = full
        .body_preview(MAX_SNIPPET)
        .map(|p| preview(&p))
        .unwrap_or_default();
    s.attachments = full
        .attachments()
        .filter(|p| complete || p.attachment_name().is_some())
        .count();
}

fn mailbox(a: &mail_parser::Addr<'_>) -> Mailbox {
    Mailbox {
        name: clip(a.name.as_deref().unwrap_or_default(), MAX_SUBJECT),
        address: clip(a.address.as_deref().unwrap_or_default(), MAX_SUBJECT),
    }
}

fn mailboxes(a: Option<&Address<'_>>) -> Vec<Mailbox> {
    a.map(|a| a.iter().take(MAX_ADDRESSES).map(mailbox).collect())
        .unwrap_or_default()
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// One term of a search: `from:`, `to:`, `subject:`, `is:read`, `is:unread`, or free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    From(String),
    To(String),
    Subject(String),
    Read(bool),
    Text(String),
}

impl Term {
    fn matches(&self, s: &Summary) -> bool {
        let has = |hay: &str, needle: &str| hay.to_lowercase().contains(needle);
        let boxes =
            |v: &[Mailbox], n: &str| v.iter().any(|m| has(&m.name, n) || has(&m.address, n));
        match self {
            Term::From(n) => {
                has(&s.from.name, n) || has(&s.from.address, n) || has(&s.return_path, n)
            }
            Term::To(n) => {
                boxes(&s.to, n) || boxes(&s.cc, n) || s.delivered_to.iter().any(|d| has(d, n))
            }
            Term::Subject(n) => has(&s.subject, n),
            Term::Read(r) => s.read() == *r,
            Term::Text(n) => {
                has(&s.subject, n)
                    || has(&s.snippet, n)
                    || has(&s.from.name, n)
                    || has(&s.from.address, n)
                    || boxes(&s.to, n)
                    || boxes(&s.cc, n)
                    || has(&s.message_id, n)
            }
        }
    }
}

/// Parses a search such as `from:alice subject:"the invoice" lunch`: words, or phrases in
/// double quotes, each optionally prefixed by a field; every term must match (case-insensitive
/// substring). An unknown prefix is free text.
pub fn parse_query(q: &str) -> Vec<Term> {
    let mut terms = Vec::new();
    let mut chars = q.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c == '"' {
                quoted = !quoted;
                chars.next();
                continue;
            }
            if c.is_whitespace() && !quoted {
                break;
            }
            word.push(c);
            chars.next();
        }
        let lower = word.to_lowercase();
        let term = match lower.split_once(':') {
            Some(("from", v)) => Term::From(v.to_owned()),
            Some(("to", v)) => Term::To(v.to_owned()),
            Some(("subject", v)) => Term::Subject(v.to_owned()),
            Some(("is", "read")) => Term::Read(true),
            Some(("is", "unread")) => Term::Read(false),
            _ => Term::Text(lower),
        };
        terms.push(term);
    }
    terms
}

/// The summaries, in arrival order (Maildir names begin with the time).
///
/// Kept sorted by ID, so an ID is found by binary search: no second table of IDs, which at
/// 100,000 messages would cost megabytes.
#[derive(Debug, Default)]
pub struct Entries {
    /// Sorted by id; the newest last.
    list: Vec<Summary>,
    bytes: usize,
    unread: usize,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn unread(&self) -> usize {
        self.unread
    }

    fn find(&self, id: &str) -> Result<usize, usize> {
        self.list.binary_search_by(|s| s.id.as_str().cmp(id))
    }

    pub fn get(&self, id: &str) -> Option<&Summary> {
        self.find(id).ok().map(|i| &self.list[i])
    }

    /// The newest message.
    pub fn latest(&self) -> Option<&Summary> {
        self.list.last()
    }

    /// Newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Summary> {
        self.list.iter().rev()
    }

    /// Adds or replaces a summary; returns true when it is a message not indexed before.
    pub fn upsert(&mut self, s: Summary) -> bool {
        self.bytes += s.weight();
        self.unread += usize::from(!s.read());
        match self.find(&s.id) {
            Ok(i) => {
                let old = std::mem::replace(&mut self.list[i], s);
                self.bytes -= old.weight();
                self.unread -= usize::from(!old.read());
                false
            }
            Err(i) => {
                self.list.insert(i, s);
                true
            }
        }
    }

    /// Changes where a message's file is (after a rename to `cur/` with new flags).
    pub fn relocate(&mut self, id: &str, folder: &'static str, flags: &str) {
        if let Ok(i) = self.find(id) {
            let s = &mut self.list[i];
            self.unread -= usize::from(!s.read());
            s.folder = folder;
            s.flags = flags.to_owned();
            self.unread += usize::from(!s.read());
        }
    }

    pub fn remove(&mut self, ids: &[String]) -> usize {
        let before = self.list.len();
        let gone: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.list.retain(|s| !gone.contains(s.id.as_str()));
        if self.list.len() != before {
            self.recount();
        }
        before - self.list.len()
    }

    /// Drops the oldest summaries while over `max_bytes`; returns how many.
    pub fn trim(&mut self, max_bytes: usize) -> usize {
        let mut n = 0;
        let mut bytes = self.bytes;
        while bytes > max_bytes && n < self.list.len() {
            bytes -= self.list[n].weight();
            n += 1;
        }
        if n > 0 {
            self.list.drain(..n);
            self.recount();
        }
        n
    }

    fn recount(&mut self) {
        self.bytes = self.list.iter().map(Summary::weight).sum();
        self.unread = self.list.iter().filter(|s| !s.read()).count();
    }

    /// Sorts after a bulk load.
    fn finish_load(&mut self) {
        self.list.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        self.list.dedup_by(|a, b| a.id == b.id);
        self.list.shrink_to_fit();
        self.recount();
    }
}

/// The index of one Maildir, shared by the API and the watcher.
#[derive(Debug)]
pub struct Index {
    pub root: PathBuf,
    pub config: IndexConfig,
    entries: std::sync::RwLock<Entries>,
    /// Summaries dropped to keep within the cap.
    pub evicted: AtomicU64,
}

impl Index {
    /// Indexes every message of `root`'s `new/` and `cur/`, reading only the head of each file,
    /// with one thread per core.
    ///
    /// # Errors
    /// A folder that cannot be read.
    pub fn build(root: &Path, config: IndexConfig) -> std::io::Result<Self> {
        let mut files: Vec<(PathBuf, &'static str)> = Vec::new();
        for folder in ["new", "cur"] {
            for entry in fs::read_dir(root.join(folder))? {
                files.push((entry?.path(), folder));
            }
        }
        // One thread per core: more gave no faster start here and cost an allocator arena each.
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
        let chunk = files.len().div_ceil(threads).max(1);
        let mut entries = Entries::default();
        entries.list.reserve_exact(files.len());
        std::thread::scope(|scope| {
            let parts: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .filter_map(|(p, f)| summarize(p, f))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for p in parts {
                if let Ok(v) = p.join() {
                    entries.list.extend(v);
                }
            }
        });
        drop(files);
        entries.finish_load();
        let evicted = entries.trim(config.max_bytes) as u64;
        Ok(Self {
            root: root.to_path_buf(),
            config,
            entries: std::sync::RwLock::new(entries),
            evicted: AtomicU64::new(evicted),
        })
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a message that appeared; true when it is new to the index.
    pub fn add(&self, s: Summary) -> bool {
        let mut e = self.write();
        let fresh = e.upsert(s);
        let n = e.trim(self.config.max_bytes);
        self.evicted.fetch_add(n as u64, Ordering::Relaxed);
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_terms() {
        assert_eq!(
            parse_query(r#"from:alice subject:"the Invoice" lunch is:unread"#),
            vec![
                Term::From("alice".into()),
                Term::Subject("the invoice".into()),
                Term::Text("lunch".into()),
                Term::Read(false),
            ]
        );
        assert!(parse_query("   ").is_empty());
    }

    #[test]
    fn names_and_flags() {
        assert_eq!(split_name("1.M2P3Q4.h:2,RS"), ("1.M2P3Q4.h", "RS"));
        assert_eq!(split_name("1.M2P3Q4.h"), ("1.M2P3Q4.h", ""));
    }

    #[test]
    fn head_fields_decoded() {
        let msg = b"Return-Path: <a@x.test>\r\nDelivered-To: b@x.test\r\nFrom: =?utf-8?q?Al=C3=AFce?= <a@x.test>\r\nTo: b@x.test, \"C\" <c@x.test>\r\nSubject: =?iso-8859-1?q?caf=E9?=\r\n\r\nHello   there\r\n";
        let mut s = Summary {
            id: "1.x".into(),
            folder: "new",
            flags: String::new(),
            created: 1,
            size: 0,
            message_id: String::new(),
            from: Mailbox::default(),
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            subject: String::new(),
            snippet: String::new(),
            attachments: 0,
            return_path: String::new(),
            delivered_to: Vec::new(),
        };
        fill(&mut s, msg, true);
        assert_eq!(s.from.name, "Alïce");
        assert_eq!(s.subject, "café");
        assert_eq!(s.to.len(), 2);
        assert_eq!(s.snippet, "Hello there");
        assert_eq!(s.return_path, "a@x.test");
        assert_eq!(s.delivered_to, vec!["b@x.test".to_owned()]);
        assert!(s.matches(&parse_query("from:alïce subject:CAF")));
        assert!(!s.matches(&parse_query("to:nobody")));
    }
}

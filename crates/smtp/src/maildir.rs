//! Maildir delivery that acknowledges only what is durable, and reading back what arrived.
//!
//! A message is written to `tmp/<name>`, fsynced, renamed to `new/<name>`, and then `new/` itself
//! is fsynced so the rename survives a crash. Only then may the server say 250. A reader of
//! `new/` therefore never sees a partial file: a crash leaves at most a stray file in `tmp/`,
//! which Maildir readers ignore.
//!
//! The cost is two fsyncs per message, and on a virtual machine every hand-over between threads
//! costs as much as the disk, so [`Maildir::deliver`] does all of a message's work in the one
//! blocking-pool thread that runs it: write, fsync, rename, directory fsync. The fsyncs of
//! concurrent sessions overlap and the filesystem's journal commits them together. The fsync of
//! `new/` is shared through a leader-based group commit: a thread that needs the directory
//! synced takes a ticket after its rename; if no fsync is running it becomes the leader and runs
//! one covering every ticket issued so far, otherwise it waits for the fsync running now and
//! then, if that one began before its ticket, for the next. With twenty sessions one directory
//! fsync serves many messages.
//!
//! Names follow the Maildir convention `<seconds>.M<micros>P<pid>Q<counter>.<host>`, unique per
//! process by the counter and across processes by the PID; the microseconds have six digits so
//! that names sort in arrival order.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::session::Envelope;

/// Why a Maildir could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    #[error("cannot create Maildir folder {path}: {source}; check the path and its permissions")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}; check the path, its permissions and free space")]
    Write { path: PathBuf, source: io::Error },
    #[error("no message {0:?} in the Maildir; run `smtp list` for the ids")]
    NotFound(String),
    #[error("message id {0:?} matches several messages; give more of it")]
    Ambiguous(String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// A Maildir folder being delivered into.
#[derive(Debug)]
pub struct Maildir {
    root: PathBuf,
    host: String,
    counter: AtomicU64,
    syncer: GroupSync,
}

impl Maildir {
    /// Opens `root` as a Maildir, creating `tmp/`, `new/` and `cur/` as needed, and proves it
    /// can deliver: a probe file is written and fsynced in `tmp/`, renamed into `new/` and
    /// removed. A server that cannot store mail fails at its start, naming the path, instead of
    /// answering 451 to every message.
    ///
    /// # Errors
    /// A folder that cannot be created, opened or written.
    pub fn open(root: &Path, hostname: &str) -> Result<Self, MaildirError> {
        for sub in ["", "tmp", "new", "cur"] {
            // `root.join("")` would name the root with a trailing slash in errors.
            let path = if sub.is_empty() {
                root.to_path_buf()
            } else {
                root.join(sub)
            };
            fs::create_dir_all(&path).map_err(|source| MaildirError::Create { path, source })?;
        }
        probe(root)?;
        clean_stale_tmp(&root.join("tmp"));
        let new = root.join("new");
        let syncer =
            GroupSync::open(&new).map_err(|source| MaildirError::Create { path: new, source })?;
        // '/' and ':' cannot be in a Maildir name (RFC-less but universal convention).
        let host = hostname.replace('/', "\\057").replace(':', "\\072");
        Ok(Self {
            root: root.to_path_buf(),
            host,
            counter: AtomicU64::new(0),
            syncer,
        })
    }

    /// The Maildir's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh unique name for the next message.
    pub fn unique_name(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}.M{:06}P{}Q{n}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            self.host
        )
    }

    /// Starts writing message `name` in `tmp/` (a blocking call).
    ///
    /// # Errors
    /// Creating the file.
    pub fn create_tmp(&self, name: &str) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.root.join("tmp").join(name))
    }

    /// Makes message `name` durable in `new/` (a blocking call): writes `rest` to its file in
    /// `tmp/` (creating the file if `file` is `None`), fsyncs it, renames it into `new/` and waits
    /// for a directory fsync that covers the rename. Returns the octets written now.
    ///
    /// # Errors
    /// Any step's error; the message is then removed from `tmp/` and from `new/`, so nothing
    /// unacknowledged stays behind to be delivered twice when the client retries.
    pub fn deliver(&self, name: &str, file: Option<File>, rest: &[u8]) -> io::Result<u64> {
        let tmp = self.root.join("tmp").join(name);
        let new = self.root.join("new").join(name);
        let mut renamed = false;
        let result = (|| {
            let mut file = match file {
                Some(f) => f,
                None => self.create_tmp(name)?,
            };
            file.write_all(rest)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &new)?;
            renamed = true;
            self.syncer.sync()?;
            Ok(rest.len() as u64)
        })();
        if result.is_err() {
            let _ = fs::remove_file(if renamed { &new } else { &tmp });
        }
        result
    }

    /// Removes an abandoned message from `tmp/` (a blocking call).
    pub fn discard_tmp(&self, name: &str) {
        let _ = fs::remove_file(self.root.join("tmp").join(name));
    }
}

/// Writes, fsyncs, renames and removes a probe file, as a delivery does. Its name starts with a
/// dot, which Maildir readers skip, and it lives in `new/` only between a rename and a remove.
fn probe(root: &Path) -> Result<(), MaildirError> {
    let name = format!(".probe.P{}", std::process::id());
    let tmp = root.join("tmp").join(&name);
    let new = root.join("new").join(&name);
    let write = |path: &Path| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(b"probe\r\n")?;
        f.sync_all()
    };
    write(&tmp).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        MaildirError::Write {
            path: tmp.clone(),
            source,
        }
    })?;
    let moved = fs::rename(&tmp, &new).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        MaildirError::Write {
            path: new.clone(),
            source,
        }
    });
    moved?;
    fs::remove_file(&new).map_err(|source| MaildirError::Write { path: new, source })
}

/// Removes files left in `tmp/` for more than 36 hours, as the Maildir convention says: they are
/// what a crash or a dropped connection left behind, and no delivery in progress is that old.
fn clean_stale_tmp(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let limit = std::time::Duration::from_secs(36 * 3600);
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > limit);
        if old {
            tracing::info!(file = %entry.path().display(), "removing a stale file from tmp/");
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Leader-based group commit of a directory's fsync.
#[derive(Debug)]
struct GroupSync {
    dir: File,
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// The last ticket issued; a ticket is taken after the caller's rename.
    issued: u64,
    /// Every ticket up to this one is covered by a finished fsync.
    synced: u64,
    /// An fsync is running now.
    running: bool,
    /// Set by a failed fsync and kept: after a failed fsync the kernel may have dropped the
    /// directory's dirty state, so a later fsync succeeding proves nothing about earlier renames.
    /// Deliveries then fail with 451 until the server is restarted.
    failed: Option<String>,
}

impl GroupSync {
    fn open(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            dir: File::open(dir)?,
            state: Mutex::new(SyncState::default()),
            done: Condvar::new(),
        })
    }

    /// Returns once an fsync that began after this call has finished.
    fn sync(&self) -> io::Result<()> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.issued += 1;
        let ticket = s.issued;
        loop {
            if let Some(why) = &s.failed {
                return Err(io::Error::other(format!("fsync of new/ failed: {why}")));
            }
            if s.synced >= ticket {
                return Ok(());
            }
            if s.running {
                s = self
                    .done
                    .wait(s)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            // Lead: this fsync covers every ticket issued up to now, this one included.
            s.running = true;
            let covers = s.issued;
            drop(s);
            let result = self.dir.sync_all();
            s = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.running = false;
            match result {
                Ok(()) => s.synced = covers,
                Err(e) => s.failed = Some(e.to_string()),
            }
            self.done.notify_all();
        }
    }
}

/// The trace headers prepended to a stored message: `Return-Path:` with the envelope sender,
/// one `Delivered-To:` per envelope recipient (one copy is stored for all of them), and a
/// `Received:` header (RFC 5321 section 4.4).
pub fn trace_headers(
    env: &Envelope,
    peer: std::net::SocketAddr,
    hostname: &str,
    id: &str,
    now: SystemTime,
) -> Vec<u8> {
    let mut h = String::new();
    h.push_str(&format!("Return-Path: <{}>\r\n", env.mail_from));
    for r in &env.rcpt_to {
        h.push_str(&format!("Delivered-To: {r}\r\n"));
    }
    // RFC 3848 and RFC 6531 name the protocols; the S says the session was in TLS. HELO has no
    // registered name with TLS, so it stays SMTP, and the comment below still shows the TLS.
    let with = match (env.smtputf8, env.esmtp, env.tls.is_some()) {
        (true, _, false) => "UTF8SMTP",
        (true, _, true) => "UTF8SMTPS",
        (false, true, false) => "ESMTP",
        (false, true, true) => "ESMTPS",
        (false, false, _) => "SMTP",
    };
    let helo: String = env.helo.chars().filter(|c| !c.is_control()).collect();
    h.push_str(&format!("Received: from {helo} ([{}])", peer.ip()));
    if let Some(tls) = &env.tls {
        // Where Postfix puts it: a comment between the from and by clauses.
        h.push_str(&format!("\r\n\t(using {tls})"));
    }
    h.push_str(&format!(
        "\r\n\tby {hostname} (protolab-smtp) with {with} id {id}"
    ));
    if let [only] = env.rcpt_to.as_slice() {
        h.push_str(&format!("\r\n\tfor <{only}>"));
    }
    h.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(now)));
    h.into_bytes()
}

/// A date in RFC 5322 form, in UTC: `Wed, 25 Nov 2026 04:32:33 +0000`.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's days-from-civil inverse, for the proleptic Gregorian calendar.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    format!(
        "{}, {day} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A stored message as `smtp list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub id: String,
    /// `new` (not yet seen by a mail reader) or `cur`.
    pub folder: String,
    pub size: u64,
    pub return_path: String,
    pub delivered_to: Vec<String>,
    pub from: String,
    pub subject: String,
    pub date: String,
}

/// Lists the messages in `new/` and `cur/`, oldest first (Maildir names start with the time).
///
/// # Errors
/// A folder or file that cannot be read.
pub fn list(root: &Path) -> Result<Vec<Summary>, MaildirError> {
    let mut out = Vec::new();
    for folder in ["new", "cur"] {
        let dir = root.join(folder);
        let entries = fs::read_dir(&dir).map_err(|source| MaildirError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| MaildirError::Read {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let id = entry.file_name().to_string_lossy().into_owned();
            // Dot files are no messages by the Maildir convention (the start-up probe is one).
            if id.starts_with('.') {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let head = read_head(&path)?;
            let mut s = Summary {
                id,
                folder: folder.to_owned(),
                size,
                return_path: String::new(),
                delivered_to: Vec::new(),
                from: String::new(),
                subject: String::new(),
                date: String::new(),
            };
            for (name, value) in parse_headers(&head) {
                match name.to_ascii_lowercase().as_str() {
                    "return-path" => s.return_path = value,
                    "delivered-to" => s.delivered_to.push(value),
                    "from" if s.from.is_empty() => s.from = value,
                    "subject" if s.subject.is_empty() => s.subject = value,
                    "date" if s.date.is_empty() => s.date = value,
                    _ => {}
                }
            }
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Finds a message by its id or a unique prefix of it, in `new/` or `cur/`.
///
/// # Errors
/// No match, several matches, or an unreadable folder.
pub fn find(root: &Path, id: &str) -> Result<PathBuf, MaildirError> {
    let mut hits = Vec::new();
    for folder in ["new", "cur"] {
        let dir = root.join(folder);
        let entries = fs::read_dir(&dir).map_err(|source| MaildirError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == id {
                return Ok(entry.path());
            }
            if name.starts_with(id) {
                hits.push(entry.path());
            }
        }
    }
    match hits.len() {
        0 => Err(MaildirError::NotFound(id.to_owned())),
        1 => Ok(hits.remove(0)),
        _ => Err(MaildirError::Ambiguous(id.to_owned())),
    }
}

/// The header section of a stored message (at most its first 64 KiB).
fn read_head(path: &Path) -> Result<Vec<u8>, MaildirError> {
    let file = File::open(path).map_err(|source| MaildirError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut head = Vec::new();
    file.take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|source| MaildirError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
        head.truncate(end + 2);
    }
    Ok(head)
}

/// Unfolds a header section into (name, value) pairs.
pub fn parse_headers(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// Writes a whole message into `w` (used by `smtp show`).
///
/// # Errors
/// Reading the file or writing `w`.
pub fn copy_message(path: &Path, w: &mut impl Write) -> Result<(), MaildirError> {
    let mut f = File::open(path).map_err(|source| MaildirError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    io::copy(&mut f, w).map_err(|source| MaildirError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn open_probes_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        Maildir::open(dir.path(), "h").unwrap();
        for sub in ["tmp", "new", "cur"] {
            assert_eq!(fs::read_dir(dir.path().join(sub)).unwrap().count(), 0);
        }
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(
            Maildir::open(&file.join("m"), "h"),
            Err(MaildirError::Create { .. })
        ));
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_581_153);
        assert_eq!(rfc5322_date(t), "Wed, 25 Nov 2026 04:32:33 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn headers_unfold() {
        let h = parse_headers(b"Subject: a\r\n b\r\nFrom: x@y\r\n\r\nbody: no\r\n");
        assert_eq!(
            h,
            vec![
                ("Subject".into(), "a b".into()),
                ("From".into(), "x@y".into())
            ]
        );
    }

    #[test]
    fn stale_tmp_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let stale = dir.path().join("tmp").join("stale");
        let fresh = dir.path().join("tmp").join("fresh");
        let f = File::create(&stale).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(37 * 3600))
            .unwrap();
        File::create(&fresh).unwrap();
        Maildir::open(dir.path(), "mx").unwrap();
        assert!(!stale.exists());
        assert!(fresh.exists());
    }

    #[test]
    fn group_sync_from_many_threads() {
        let dir = tempfile::tempdir().unwrap();
        let md = std::sync::Arc::new(Maildir::open(dir.path(), "mx").unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let md = md.clone();
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        md.deliver(&md.unique_name(), None, b"x\r\n").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = md.syncer.state.lock().unwrap();
        assert_eq!(s.issued, 40);
        assert_eq!(s.synced, 40);
        assert_eq!(fs::read_dir(dir.path().join("new")).unwrap().count(), 40);
    }

    #[test]
    fn deliver_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path(), "mx/1:2").unwrap();
        let name = md.unique_name();
        assert!(name.ends_with(".mx\\0571\\0722"), "{name}");
        let mut f = Vec::new();
        let env = Envelope {
            helo: "c.test".into(),
            esmtp: true,
            mail_from: "a@b.test".into(),
            rcpt_to: vec!["c@d.test".into(), "e@f.test".into()],
            ..Envelope::default()
        };
        f.write_all(&trace_headers(
            &env,
            "127.0.0.1:5".parse().unwrap(),
            "mx",
            &name,
            UNIX_EPOCH,
        ))
        .unwrap();
        f.write_all(b"Subject: hi\r\n\r\nbody\r\n").unwrap();
        md.deliver(&name, None, &f).unwrap();
        let stored = std::fs::read_to_string(dir.path().join("new").join(&name)).unwrap();
        assert!(stored.starts_with(&format!(
            "Return-Path: <a@b.test>\r\nDelivered-To: c@d.test\r\nDelivered-To: e@f.test\r\n\
             Received: from c.test ([127.0.0.1])\r\n\tby mx (protolab-smtp) with ESMTP id {name};\r\n\
             \tThu, 1 Jan 1970 00:00:00 +0000\r\nSubject: hi\r\n"
        )));
        assert!(!dir.path().join("tmp").join(&name).exists());
        let list = list(dir.path()).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].return_path, "<a@b.test>");
        assert_eq!(list[0].delivered_to, vec!["c@d.test", "e@f.test"]);
        assert_eq!(list[0].subject, "hi");
        assert_eq!(
            find(dir.path(), &name[..5]).unwrap(),
            dir.path().join("new").join(&name)
        );
        assert!(matches!(
            find(dir.path(), "zzz"),
            Err(MaildirError::NotFound(_))
        ));
    }
}

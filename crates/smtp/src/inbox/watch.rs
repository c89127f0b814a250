//! Keeps the index current: a watch of `new/` and `cur/` with Linux's inotify.
//!
//! A delivery ends with a rename from `tmp/` into `new/` (`IN_MOVED_TO`), so the watch sees
//! each message once it is durable, whoever delivered it (this server, another `smtp serve`,
//! a copy by hand), and the SMTP delivery path needs no change. Removals and renames by other
//! programs (`IN_DELETE`, `IN_MOVED_FROM`) take the message out of the index. When the kernel's
//! event queue overflows, the folders are rescanned.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use super::Inbox;
use super::index::{split_name, summarize};

/// Starts the watch on a thread of its own; it runs for the life of the process.
///
/// # Errors
/// inotify cannot be set up (too many watches, not Linux).
pub fn start(inbox: Arc<Inbox>) -> io::Result<()> {
    // SAFETY: inotify_init1 takes no pointers; a negative result is an error, checked below.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut wds = Vec::new();
    for folder in ["new", "cur"] {
        let path = inbox.index.root.join(folder);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mask = libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE | libc::IN_CLOSE_WRITE;
        // SAFETY: c is a NUL-terminated path that outlives the call.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        wds.push((wd, folder));
    }
    std::thread::Builder::new()
        .name("inbox-watch".into())
        .spawn(move || run(&fd, &wds, &inbox))?;
    Ok(())
}

fn run(fd: &OwnedFd, wds: &[(i32, &'static str)], inbox: &Inbox) {
    // Indexing a new message reads and parses it: it runs only when a core is idle
    // (SCHED_IDLE, per thread on Linux), so a busy SMTP server is not slowed by its own inbox;
    // the page then learns of new mail once the burst is over. Where SCHED_IDLE is refused,
    // a niceness of 19 does nearly as well.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: param is a valid sched_param for the call; 0 names the calling thread.
    let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
    if !idle {
        // SAFETY: gettid and setpriority take no pointers.
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: buf is valid for buf.len() bytes for the whole call.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::warn!(error = %e, "the inbox's watch of the Maildir stopped");
            return;
        }
        let mut at = 0usize;
        let n = n as usize;
        // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }
        while at + 16 <= n {
            let word = |i: usize| {
                u32::from_ne_bytes(buf[at + i..at + i + 4].try_into().unwrap_or_default())
            };
            let wd = word(0) as i32;
            let mask = word(4);
            let len = word(12) as usize;
            let name_bytes = buf.get(at + 16..at + 16 + len).unwrap_or_default();
            at += 16 + len;
            if mask & libc::IN_Q_OVERFLOW != 0 {
                inbox.rescan();
                continue;
            }
            let name_end = name_bytes
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(name_bytes.len());
            let Ok(name) = std::str::from_utf8(&name_bytes[..name_end]) else {
                continue;
            };
            let Some(&(_, folder)) = wds.iter().find(|(w, _)| *w == wd) else {
                continue;
            };
            if name.is_empty() || name.starts_with('.') {
                continue;
            }
            if mask & (libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE) != 0 {
                appeared(inbox, folder, name);
            } else if mask & (libc::IN_MOVED_FROM | libc::IN_DELETE) != 0 {
                let (id, flags) = split_name(name);
                let gone = {
                    let e = inbox.index.read();
                    e.get(id)
                        .is_some_and(|s| s.folder == folder && s.flags == flags)
                };
                // Our own renames update the index before they happen; only a file that is
                // still where the index says, and no longer on disk, is really gone.
                if gone
                    && !Path::new(&inbox.index.root)
                        .join(folder)
                        .join(name)
                        .exists()
                {
                    inbox.removed(&[id.to_owned()]);
                }
            }
        }
    }
}

fn appeared(inbox: &Inbox, folder: &'static str, name: &str) {
    let (id, flags) = split_name(name);
    let known = inbox.index.read().get(id).is_some();
    if known {
        inbox.index.write().relocate(id, folder, flags);
        return;
    }
    let path = inbox.index.root.join(folder).join(name);
    if let Some(s) = summarize(&path, folder) {
        inbox.appeared(s);
    }
}

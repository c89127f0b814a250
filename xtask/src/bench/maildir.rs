//! What `bench smtp` compares `smtp serve` against on the durable side: a private Postfix that
//! delivers into a Maildir, and the disk's floor for the same durable steps with no SMTP at all.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use protolab_lab::{free_port, require_peer, wait_tcp};

/// A Postfix instance of its own: config, queue, data and mail all under one folder, listening
/// on a loopback port of its own, started and stopped by the benchmark and never touching the
/// system's Postfix. It stores durably the way Postfix does: smtpd hands the message to
/// cleanup, which fsyncs the queue file before the 250; qmgr then gives it to virtual(8),
/// which writes it into `vmail/catchall/` (a Maildir, for every recipient).
pub struct PrivatePostfix {
    config: PathBuf,
    pub addr: SocketAddr,
    /// The `master` process: every Postfix daemon of the instance is its child.
    pub master: i32,
    /// Where delivered messages appear.
    pub new: PathBuf,
}

impl PrivatePostfix {
    /// Makes the folders and configuration under `dir` (emptied first) and starts the instance.
    ///
    /// # Errors
    /// Postfix not installed, not root, or the instance not starting (the reason is then in
    /// `dir/maillog`, which the error names).
    pub fn start(dir: &Path) -> Result<Self> {
        let postfix = require_peer("postfix", "postfix");
        let postconf = require_peer("postconf", "postfix");
        let _ = std::fs::remove_dir_all(dir);
        for sub in ["etc", "queue", "data", "vmail"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let etc = dir.join("etc");
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        std::fs::copy("/etc/postfix/main.cf", etc.join("main.cf"))
            .context("copy /etc/postfix/main.cf")?;
        // The stock master.cf with the public smtp service moved to our loopback port.
        let master_cf =
            std::fs::read_to_string("/etc/postfix/master.cf").context("read master.cf")?;
        let mut moved = false;
        let master_cf: String = master_cf
            .lines()
            .map(|l| {
                let mut f = l.split_whitespace();
                if !moved && f.next() == Some("smtp") && f.next() == Some("inet") {
                    moved = true;
                    format!("{addr} {}\n", l.trim_start_matches("smtp").trim_start())
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        if !moved {
            bail!("no `smtp inet` service in /etc/postfix/master.cf to move to {addr}");
        }
        std::fs::write(etc.join("master.cf"), master_cf)?;
        // Postfix's daemons run as `postfix`; virtual(8) writes mail as `nobody` (65534).
        let chown = |who: &str, path: &Path| -> Result<()> {
            let ok = Command::new("chown").arg(who).arg(path).status()?.success();
            if !ok {
                bail!("chown {who} {} failed", path.display());
            }
            Ok(())
        };
        chown("postfix", &dir.join("data"))?;
        chown("nobody", &dir.join("vmail"))?;
        let d = dir.display();
        // Traps: maillog_file must be under maillog_file_prefixes or `postfix check` fails with
        // its reason only in the log; virtual(8) refuses to run when message_size_limit is 0
        // and virtual_mailbox_limit is set, hence both limits here.
        let settings = [
            format!("queue_directory={d}/queue"),
            format!("data_directory={d}/data"),
            "inet_interfaces=127.0.0.1".into(),
            "inet_protocols=ipv4".into(),
            "mydestination=".into(),
            "relay_domains=".into(),
            "mynetworks=127.0.0.0/8".into(),
            "smtpd_recipient_restrictions=permit_mynetworks,reject".into(),
            "virtual_mailbox_domains=static:ALL".into(),
            format!("virtual_mailbox_base={d}/vmail"),
            "virtual_mailbox_maps=static:catchall/".into(),
            "virtual_uid_maps=static:65534".into(),
            "virtual_gid_maps=static:65534".into(),
            "virtual_destination_concurrency_limit=20".into(),
            "message_size_limit=52428800".into(),
            "virtual_mailbox_limit=0".into(),
            "alias_maps=".into(),
            "alias_database=".into(),
            format!("maillog_file_prefixes={d}"),
            format!("maillog_file={d}/maillog"),
            "compatibility_level=3.6".into(),
            // smtpd runs chrooted without a resolver config, so the reverse lookup of
            // 127.0.0.1 can only fail; skip it rather than time it.
            "smtpd_peername_lookup=no".into(),
        ];
        let ok = Command::new(&postconf)
            .arg("-c")
            .arg(&etc)
            .arg("-e")
            .args(&settings)
            .status()?
            .success();
        if !ok {
            bail!("postconf -c {} -e failed", etc.display());
        }
        let out = Command::new(&postfix)
            .arg("-c")
            .arg(&etc)
            .arg("start")
            .output()
            .context("run postfix start")?;
        if !out.status.success() {
            bail!(
                "postfix -c {} start failed: {}; see {d}/maillog",
                etc.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let pid_file = dir.join("queue/pid/master.pid");
        let master = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .with_context(|| format!("no master pid in {}", pid_file.display()))?;
        let instance = Self {
            config: etc,
            addr,
            master,
            new: dir.join("vmail/catchall/new"),
        };
        wait_tcp(addr, Duration::from_secs(20));
        Ok(instance)
    }
}

impl Drop for PrivatePostfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .output();
        // `postfix stop` signals the master and returns; wait for it to be gone, so the next
        // measurement does not share the cores with a Postfix shutting down.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", self.master)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What the floor run measured.
pub struct Floor {
    pub rate: f64,
    pub secs: f64,
}

/// The disk's floor for durable delivery: `writers` threads, between them `messages` messages
/// of `size` octets, each one created in `tmp/`, written, fsynced, renamed into `new/`, and
/// `new/` fsynced, with no network and no protocol. This is what the 250 of a durable server
/// costs at the least on this filesystem; nothing is shared between the threads but the
/// kernel's journal. The files are left in `dir` for the caller to remove once its CPU reading
/// is taken.
///
/// # Errors
/// A write, fsync or rename failing.
pub fn durable_floor(dir: &Path, writers: u32, messages: u32, size: u32) -> Result<Floor> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("tmp"))?;
    std::fs::create_dir_all(dir.join("new"))?;
    let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let body = &body;
                scope.spawn(move || -> Result<()> {
                    let new_dir = File::open(dir.join("new")).context("open new/")?;
                    // Thread w writes messages w, w + writers, w + 2 * writers, ...
                    for i in (w..messages).step_by(writers as usize) {
                        let name = format!("floor.{w}.{i}");
                        let tmp = dir.join("tmp").join(&name);
                        let mut f = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .open(&tmp)
                            .with_context(|| format!("create {}", tmp.display()))?;
                        f.write_all(body)?;
                        f.sync_all().context("fsync a message")?;
                        drop(f);
                        std::fs::rename(&tmp, dir.join("new").join(&name))?;
                        new_dir.sync_all().context("fsync new/")?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a floor writer panicked"))??;
        }
        Ok(())
    })?;
    let secs = start.elapsed().as_secs_f64();
    let stored = std::fs::read_dir(dir.join("new"))?.count();
    if stored != messages as usize {
        bail!("the floor run stored {stored} of {messages} messages");
    }
    Ok(Floor {
        rate: f64::from(messages) / secs,
        secs,
    })
}

//! TUN devices: a network interface whose packets a process reads and writes as plain IP
//! packets through a file descriptor.
//!
//! The device is made with one ioctl on `/dev/net/tun` (see the kernel's
//! `Documentation/networking/tuntap.rst`): `TUNSETIFF` with `IFF_TUN | IFF_NO_PI` gives a layer-3
//! device whose reads and writes are whole IPv4 or IPv6 packets with no extra header. That is
//! all this link needs, so it uses the ioctl through `libc` rather than a crate with its own
//! async runtime. A device belongs to the network namespace of the thread that creates it, so
//! [`Tun::create_in`] creates it from a short-lived thread that has joined the namespace first.
//! The device lives as long as its descriptor: when the process ends, however it ends, the kernel
//! removes it.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One end of the link: a TUN device's descriptor, non-blocking.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
}

impl Tun {
    /// Creates the TUN device `name` inside the network namespace mounted at `netns_path`
    /// (such as `/run/netns/lab-a`) and returns its descriptor, set non-blocking.
    ///
    /// # Errors
    /// Opening the namespace or `/dev/net/tun`, joining the namespace, or the ioctl failing
    /// (no root, no TUN driver, a name already taken in that namespace).
    pub fn create_in(netns_path: &Path, name: &str) -> io::Result<Tun> {
        let ns = File::open(netns_path)?;
        let name = name.to_owned();
        // setns(2) moves only the calling thread, so a thread of its own joins the namespace,
        // creates the device there and ends; the rest of the process never changes namespace.
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns with a valid namespace descriptor; it affects only this thread.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                // An IPv6 link-local address and its router solicitations would add traffic the
                // user did not send; this lab speaks IPv4 (198.18.0.0/15) only.
                let tun = Tun::create_here(&name)?;
                let knob = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
                if Path::new(&knob).exists() {
                    std::fs::write(&knob, "1")?;
                }
                Ok(tun)
            })
            .join()
            .map_err(|_| io::Error::other("the thread creating the TUN device panicked"))?
        })
    }

    /// Creates the device in the calling thread's network namespace.
    fn create_here(name: &str) -> io::Result<Tun> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let cname = CString::new(name).map_err(|_| io::Error::other("device name has a NUL"))?;
        let bytes = cname.as_bytes_with_nul();
        if bytes.len() > libc::IFNAMSIZ {
            return Err(io::Error::other(format!(
                "device name {name:?} is longer than {} bytes",
                libc::IFNAMSIZ - 1
            )));
        }
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which lives for the whole call.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Tun {
            file,
            name: name.to_owned(),
        })
    }

    /// The device's name inside its namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one packet into `buf`; `WouldBlock` when none is waiting.
    ///
    /// # Errors
    /// As read(2).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: read into a buffer we own, bounded by its length.
        let n = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Writes one packet; the kernel takes it as if it had arrived on the device.
    ///
    /// # Errors
    /// As write(2): a packet that is not valid IP is refused with `EINVAL`.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        // SAFETY: write from a slice we borrow, bounded by its length.
        let n = unsafe { libc::write(self.fd(), packet.as_ptr().cast(), packet.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// The raw descriptor, for poll(2).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// An eventfd that wakes the forwarding threads when the link shuts down.
#[derive(Debug)]
pub struct Waker(OwnedFd);

impl Waker {
    /// # Errors
    /// eventfd(2) failing.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd has no memory preconditions; we own the returned descriptor.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(Waker(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the descriptor readable for good: every poller wakes now and on every later poll.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: an 8-byte write from a local u64, as eventfd(2) requires.
        unsafe {
            libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8);
        }
    }

    /// The raw descriptor, for poll(2).
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Waits until `fd` is readable, `stop` is readable, or `timeout` passes (`None`: no limit).
/// Returns whether `stop` fired.
///
/// # Errors
/// ppoll(2) failing other than by a signal.
pub fn wait_readable(
    fd: RawFd,
    stop: RawFd,
    timeout: Option<std::time::Duration>,
) -> io::Result<bool> {
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: two valid pollfd entries and an optional timespec, all alive for the call.
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(fds[1].revents != 0)
}

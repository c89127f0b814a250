//! What the lab samples from /proc about a process it started: resident memory, open
//! descriptors, and CPU time (for the CPU-per-request column every benchmark table has).

use std::io::Result;
use std::time::{Duration, Instant};

/// A process's memory, from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss_kib: u64,
    /// The highest resident size so far (`VmHWM`).
    pub peak_kib: u64,
}

/// The memory of process `pid`.
///
/// # Errors
/// The process does not exist (any more) or its status file cannot be read.
pub fn memory(pid: i32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("read {path}: {e}")))?;
    Ok(parse_status(&text))
}

fn parse_status(text: &str) -> Memory {
    let kib = |field: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: kib("VmRSS:"),
        peak_kib: kib("VmHWM:"),
    }
}

/// Resident memory of process `pid` in KiB; 0 when it cannot be read (the process is gone).
pub fn rss_kib(pid: i32) -> u64 {
    memory(pid).map_or(0, |m| m.rss_kib)
}

/// Open descriptors of process `pid`; 0 when they cannot be listed.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The kernel's clock tick (`USER_HZ`): `/proc/PID/stat` counts CPU time in these.
fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The fields of `/proc/PID/stat` from field 3 (state) on, as numbers where they are numbers.
/// The command name (field 2) sits in parentheses and may itself hold spaces and parentheses,
/// so the split starts after the last `)`.
fn stat_fields(pid: i32) -> Result<Vec<i64>> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("read {path}: {e}")))?;
    parse_stat(&text).ok_or_else(|| std::io::Error::other(format!("no command name in {path}")))
}

fn parse_stat(text: &str) -> Option<Vec<i64>> {
    let (_, rest) = text.rsplit_once(')')?;
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// Field `n` (numbered from 1, as in proc(5)) out of what [`stat_fields`] returned.
fn stat_field(fields: &[i64], n: usize) -> u64 {
    fields
        .get(n - 3)
        .and_then(|v| u64::try_from(*v).ok())
        .unwrap_or(0)
}

fn ticks(t: u64) -> Duration {
    let hz = clock_ticks_per_sec();
    Duration::from_secs(t / hz) + Duration::from_nanos((t % hz) * 1_000_000_000 / hz)
}

/// The CPU time a process has used so far, all its threads together: user plus system time,
/// fields 14 and 15 of `/proc/PID/stat`.
///
/// # Errors
/// The process does not exist (any more) or its stat file cannot be read.
pub fn process_cpu(pid: i32) -> Result<Duration> {
    let f = stat_fields(pid)?;
    Ok(ticks(stat_field(&f, 14) + stat_field(&f, 15)))
}

/// The CPU time of a set of processes: fields 14 and 15 summed over `pids`, and with
/// `reaped_children` also fields 16 and 17 (the time of their children that have exited and
/// been waited for). A process that is gone by the time it is read counts nothing: a server's
/// daemon may exit between listing and reading, and its time is then in its parent's fields
/// 16 and 17.
pub fn processes_cpu(pids: &[i32], reaped_children: bool) -> Duration {
    let last = if reaped_children { 17 } else { 15 };
    let total = pids
        .iter()
        .filter_map(|p| stat_fields(*p).ok())
        .map(|f| (14..=last).map(|n| stat_field(&f, n)).sum::<u64>())
        .sum();
    ticks(total)
}

/// Every live process with its parent: (pid, ppid).
fn parents() -> Vec<(i32, i32)> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(f) = stat_fields(pid) {
            parent_of.push((pid, stat_field(&f, 4) as i32));
        }
    }
    parent_of
}

/// The live children of `pid` (an nginx master's workers, for one).
pub fn children(pid: i32) -> Vec<i32> {
    parents()
        .into_iter()
        .filter(|(_, parent)| *parent == pid)
        .map(|(c, _)| c)
        .collect()
}

/// Every live process whose chain of parents leads to `root`, `root` included.
fn process_tree(root: i32) -> Vec<i32> {
    let parent_of = parents();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(
            parent_of
                .iter()
                .filter(|(_, parent)| *parent == p)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree
}

/// Which processes a CPU reading covers.
#[derive(Debug, Clone, Copy)]
pub enum ProcCpu {
    /// One process (a server with any number of threads).
    Process(i32),
    /// A server made of many processes, such as Postfix's `master` and the daemons it starts:
    /// the root and every live descendant. Postfix's daemons exit and are replaced during a
    /// run (smtpd after 100 sessions, for one), so each process also counts the CPU time of its
    /// children that have exited and been reaped (fields 16 and 17): a daemon's time then
    /// moves into its parent's count when it exits instead of vanishing from the sum.
    Tree(i32),
}

impl ProcCpu {
    /// The CPU time used so far.
    ///
    /// # Errors
    /// The process (for `Tree`, the root) does not exist.
    pub fn read(self) -> Result<Duration> {
        match self {
            ProcCpu::Process(pid) => process_cpu(pid),
            ProcCpu::Tree(root) => {
                // Make sure the root exists, so a server that died reads as an error, not 0.
                stat_fields(root)?;
                Ok(processes_cpu(&process_tree(root), true))
            }
        }
    }
}

/// Server CPU time over a measured interval: read at `start`, read again at `stop`.
#[derive(Debug)]
pub struct CpuClock {
    of: ProcCpu,
    cpu: Duration,
    wall: Instant,
}

impl CpuClock {
    /// Takes the first reading.
    ///
    /// # Errors
    /// The process cannot be read.
    pub fn start(of: ProcCpu) -> Result<Self> {
        Ok(Self {
            of,
            cpu: of.read()?,
            wall: Instant::now(),
        })
    }

    /// Takes the second reading and returns what was used in between.
    ///
    /// # Errors
    /// The process cannot be read (it died during the run).
    pub fn stop(&self) -> Result<CpuUse> {
        let cpu = self.of.read()?;
        Ok(CpuUse {
            cpu: cpu.saturating_sub(self.cpu),
            wall: self.wall.elapsed(),
        })
    }
}

/// The CPU time a server used over a measured interval, and how long the interval was.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub cpu: Duration,
    pub wall: Duration,
}

impl CpuUse {
    /// Milliseconds of CPU per 1,000 requests served in the interval. On a machine where the
    /// load generator and the server share the cores, requests per second mostly says who got
    /// the CPU; this says what each request cost, whoever got it.
    pub fn ms_per_thousand(self, requests: u64) -> f64 {
        if requests == 0 {
            return f64::NAN;
        }
        self.cpu.as_secs_f64() * 1e3 * 1e3 / requests as f64
    }

    /// How many cores the server kept busy on average over the interval.
    pub fn cores(self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// The sum of two intervals (several rounds of one measurement).
    // A plain method, as the benchmarks have always called it; not `Add`, whose `+` reads as
    // adding durations, which is only half of what this does.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, other: CpuUse) -> CpuUse {
        CpuUse {
            cpu: self.cpu + other.cpu,
            wall: self.wall + other.wall,
        }
    }
}

/// Runs `f` with the CPU time of `of` measured around it.
///
/// # Errors
/// `f` failing, or the process not being readable before or after.
pub fn with_cpu<T, E: From<std::io::Error>>(
    of: ProcCpu,
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<(T, CpuUse), E> {
    let clock = CpuClock::start(of)?;
    let out = f()?;
    Ok((out, clock.stop()?))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn memory_is_read_from_the_status_fields() {
        let text = "Name:\tdns\nVmPeak:\t  90000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\n";
        assert_eq!(
            parse_status(text),
            Memory {
                rss_kib: 6789,
                peak_kib: 12345
            }
        );
        assert_eq!(parse_status("Name:\tx\n"), Memory::default());
        let me = memory(std::process::id() as i32).expect("our own status");
        assert!(me.rss_kib > 0 && me.peak_kib >= me.rss_kib, "{me:?}");
        assert!(memory(-1).is_err());
        assert_eq!(rss_kib(-1), 0);
        assert!(
            fd_count(std::process::id() as i32) >= 3,
            "stdin, stdout, stderr"
        );
    }

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 500 0 0 0 731 29 5 7 20 0 1 0 99 \
                    1000 10 18446744073709551615\n";
        let f = parse_stat(line).expect("fields");
        assert_eq!(stat_field(&f, 3), 0, "state S is not a number");
        assert_eq!(stat_field(&f, 4), 1, "ppid");
        assert_eq!(stat_field(&f, 14), 731, "utime");
        assert_eq!(stat_field(&f, 15), 29, "stime");
        assert_eq!(stat_field(&f, 16), 5, "cutime");
        assert_eq!(stat_field(&f, 17), 7, "cstime");
        assert_eq!(stat_field(&f, 99), 0, "past the end");
    }

    #[test]
    fn a_process_tree_holds_the_children_and_counts_their_time() {
        // A shell that spends CPU time in a child it waits for, then sleeps.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30",
            ])
            .spawn()
            .expect("spawn sh");
        let me = std::process::id() as i32;
        let pid = child.id() as i32;
        assert!(process_tree(me).contains(&pid), "our child is in our tree");
        assert!(children(me).contains(&pid), "and among our children");
        // The shell's loop burns CPU in the shell itself: wait until it shows (bounded).
        for _ in 0..600 {
            if process_cpu(pid).expect("read the child") >= Duration::from_millis(50) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (own, child_cpu) = (
            process_cpu(me).expect("me"),
            process_cpu(pid).expect("child"),
        );
        let tree = ProcCpu::Tree(me).read().expect("read our tree");
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            child_cpu > Duration::ZERO,
            "the shell's loop used no CPU time"
        );
        assert!(
            tree >= own + child_cpu,
            "the tree ({tree:?}) counts us ({own:?}) and the child ({child_cpu:?})"
        );
        assert!(ProcCpu::Process(-1).read().is_err(), "no such process");
    }
}

//! Events as the core reports them; the binding converts them, the TS layer types them.

use std::collections::BTreeMap;

use crate::error::Code;
use crate::status::ExitStatus;

/// Named counters (memory.events, memory.oom_control...), in name order.
pub type Counters = BTreeMap<String, u64>;

/// One resource's PSI averages over 10 s (`some avg10=12.34`, `full avg10=…`) in
/// hundredths of a percent, exactly as the kernel prints them (two decimals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub some_avg10: Option<u32>,
    /// Absent for `cpu` before 5.13 (the kernel printed no `full` line).
    pub full_avg10: Option<u32>,
    /// Total stall time in µs (`total=`), for rates over any interval.
    pub some_total: Option<u64>,
    pub full_total: Option<u64>,
}

/// A cgroup's resources when an event was read (`cgroup::stats` reads them); `None`: no such
/// file on this system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// v2 `memory.current`, v1 `memory.usage_in_bytes`.
    pub memory_current: Option<u64>,
    /// v2 `memory.peak` (5.19+), v1 `memory.max_usage_in_bytes`.
    pub memory_peak: Option<u64>,
    /// v2 `memory.max`, v1 `memory.limit_in_bytes`; `None` when unlimited or unknown.
    pub memory_max: Option<u64>,
    /// v2 `memory.events`; v1 `memory.oom_control` counters plus `failcnt`.
    pub memory_events: Counters,
    /// v2 `memory.swap.current`; v1 `memory.memsw.usage_in_bytes` less the memory usage
    /// (needs swap accounting).
    pub swap_current: Option<u64>,
    /// `pids.current` of the pids controller (v1 hierarchy or unified).
    pub pids_current: Option<u64>,
    /// `pids.peak` (6.1+).
    pub pids_peak: Option<u64>,
    /// CPU time in µs: `cpu.stat` `user_usec`/`system_usec` on the unified hierarchy (there
    /// without the cpu controller too), else v1 `cpuacct.usage_user`/`usage_sys` (ns).
    pub cpu_user_usec: Option<u64>,
    pub cpu_system_usec: Option<u64>,
    /// `<resource>.pressure` in the unified directory (PSI, 4.20+ with CONFIG_PSI).
    pub psi_cpu: Option<Pressure>,
    pub psi_memory: Option<Pressure>,
    pub psi_io: Option<Pressure>,
}

/// Identifies one watch within one Monitor.
pub type WatchId = u32;

/// How the exit was noticed and where its status came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitSource {
    /// pidfd readiness; status from PIDFD_INFO_EXIT or the zombie's /proc stat.
    Pidfd,
    /// pidfd readiness; status from `waitid(P_PIDFD)` (our own child).
    Waitid,
    /// No pidfd on this kernel (or forced): bounded-backoff polling with a start-time check.
    Fallback,
    /// The kernel's process events connector (host and tree watches): the status its exit
    /// message carries.
    Connector,
}

impl ExitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitSource::Pidfd => "pidfd",
            ExitSource::Waitid => "waitid",
            ExitSource::Fallback => "fallback",
            ExitSource::Connector => "connector",
        }
    }
}

/// Where messages were lost before they could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossSource {
    /// The process events connector: its socket's buffer overran (ENOBUFS), or a gap in a
    /// CPU's sequence numbers.
    Connector,
    /// `/dev/kmsg`: records overwritten in the kernel's ring buffer before they were read.
    Kmsg,
}

impl LossSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LossSource::Connector => "connector",
            LossSource::Kmsg => "kmsg",
        }
    }
}

/// One process the kernel's OOM killer killed, as its log reported it (`/dev/kmsg`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OomVictim {
    pub pid: i32,
    /// The command name (at most 15 bytes), as the kernel printed it.
    pub comm: String,
    pub uid: Option<u32>,
    /// The victim's memory cgroup (`task_memcg`).
    pub cgroup: Option<String>,
    /// The cgroup whose limit was hit (`oom_memcg`); `None` for a system-wide OOM.
    pub oom_cgroup: Option<String>,
    /// `memcg`, `none` (system-wide), `cpuset` or `memory_policy`: what the OOM was confined to.
    pub constraint: Option<String>,
    /// Bytes (the kernel prints kB).
    pub total_vm: Option<u64>,
    pub anon_rss: Option<u64>,
    pub file_rss: Option<u64>,
    pub shmem_rss: Option<u64>,
    pub oom_score_adj: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A process exited. `ppid`, `comm`, `cgroup` and `remaining` come with host and tree
    /// watches only (`source` `Connector`): `remaining` is how many members a tree watch still
    /// has after this exit (0: its last event).
    Exit {
        pid: i32,
        status: Option<ExitStatus>,
        source: ExitSource,
        ppid: Option<i32>,
        comm: Option<String>,
        cgroup: Option<String>,
        remaining: Option<u32>,
    },
    /// A process was created (host and tree watches with forks on); threads are not reported.
    Fork {
        pid: i32,
        ppid: i32,
        comm: Option<String>,
        cgroup: Option<String>,
    },
    /// A process called execve (host and tree watches with execs on); `comm` is its new name
    /// when it could still be read.
    Exec {
        pid: i32,
        ppid: Option<i32>,
        comm: Option<String>,
        cgroup: Option<String>,
    },
    /// The kernel's OOM killer killed a process (an OOM-kill watch, from `/dev/kmsg`).
    OomKill(Box<OomVictim>),
    /// Messages were lost before they were read: events may be missing. `count` when the
    /// kernel's sequence numbers tell how many.
    Lost {
        source: LossSource,
        count: Option<u64>,
    },
    /// A cgroup's OOM killer ran. `kills` is the `oom_kill` delta since the previous event
    /// (baselined when the watch was made); `deltas` the change of every counter, `counters`
    /// their totals (memory.events on v2, memory.oom_control on v1).
    Oom {
        cgroup: String,
        kills: u64,
        deltas: Counters,
        counters: Counters,
        stats: Box<Stats>,
        /// The kills this monitor's OOM-kill watches read from the kernel's log for this
        /// cgroup, at most `kills` of them (see `Hub::push_oom`).
        victims: Vec<OomVictim>,
    },
    /// Memory pressure: a v1 `memory.pressure_level` notification (`level`) or a PSI trigger
    /// (`trigger`); `cgroup` is `None` for system-wide PSI (/proc/pressure).
    Pressure {
        cgroup: Option<String>,
        resource: String,
        level: Option<String>,
        trigger: Option<String>,
    },
    /// `cgroup.events` populated changed (false: no process left in the subtree).
    Populated { cgroup: String, value: bool },
    /// `cgroup.events` frozen changed.
    Frozen { cgroup: String, value: bool },
    /// Every directory of the watch is gone; the watch has ended. `counters` are the last
    /// ones read (at removal when still readable).
    Removed {
        cgroup: String,
        counters: Counters,
        stats: Box<Stats>,
    },
    /// A watch failed after registration (reported, never fatal to the process).
    Error { code: Code, message: String },
}

/// A turn's events. The first two sit inline: a turn on the consumer's thread runs between an
/// exit and its delivery, and a heap allocation there cost a page fault or two in a process
/// that has forked since (every page it had written is copy-on-write until written again).
pub type Events = smallvec::SmallVec<[Event; 2]>;

// Events are moved through every turn, queue and delivery: the large payloads are boxed.
const _: () = assert!(std::mem::size_of::<Event>() <= 128);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub watch: WatchId,
    /// CLOCK_MONOTONIC nanoseconds, taken when the kernel reported readiness.
    pub time: u64,
    pub kind: EventKind,
}

/// CLOCK_MONOTONIC in nanoseconds: the clock Node's `process.hrtime.bigint()` reads.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

//! Shared by the `reliability_*` tests: fd counters as one snapshot, exactness against
//! /proc/self/fd, RSS, and the report lines `npm run reliability` sums into its table.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use lifewatch_core::cgroup::watch::psi::{PsiTrigger, Resource};
use lifewatch_core::cgroup::Layout;
use lifewatch_core::{fd, CgroupWatchOptions, FdKind, FdStats};

/// Every kind's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot(pub [FdStats; FdKind::ALL.len()]);

impl Snapshot {
    pub fn take() -> Snapshot {
        Snapshot(FdKind::ALL.map(fd::stats))
    }

    pub fn in_use(&self) -> u64 {
        self.0.iter().map(|s| s.in_use).sum()
    }

    pub fn allocated(&self) -> u64 {
        self.0.iter().map(|s| s.allocated).sum()
    }

    pub fn released(&self) -> u64 {
        self.0.iter().map(|s| s.released).sum()
    }

    pub fn leak_prevented(&self) -> u64 {
        self.0.iter().map(|s| s.leak_prevented).sum()
    }

    pub fn kind(&self, k: FdKind) -> FdStats {
        self.0[FdKind::ALL.iter().position(|&x| x == k).unwrap()]
    }

    /// Per-kind in-use counts, for messages.
    pub fn describe(&self) -> String {
        FdKind::ALL
            .iter()
            .zip(self.0.iter())
            .map(|(k, s)| format!("{} {}", k.as_str(), s.in_use))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The fds of this process by what they point at: `anon_inode:[eventpoll]`, `anon_inode:[pidfd]`...
pub fn proc_fds() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            out.push(target.to_string_lossy().into_owned());
        }
    }
    out
}

/// How many open fds of this process are of each kind lifewatch counts, read from the
/// kernel: anon inodes for epoll, pidfd, eventfd and timerfd; inotify likewise; PSI files
/// (`*.pressure`, /proc/pressure/*) and other cgroupfs files and directories (control).
pub fn proc_kind_counts() -> [u64; FdKind::ALL.len()] {
    let mut n = [0u64; FdKind::ALL.len()];
    for t in proc_fds() {
        let kind = match t.as_str() {
            "anon_inode:[eventpoll]" => FdKind::Epoll,
            "anon_inode:[pidfd]" => FdKind::Pidfd,
            "anon_inode:[eventfd]" => FdKind::Eventfd,
            "anon_inode:inotify" => FdKind::Inotify,
            "anon_inode:[timerfd]" => FdKind::Timerfd,
            t if t.starts_with("/proc/pressure/") || t.ends_with(".pressure") => FdKind::Psi,
            t if t.starts_with("/sys/fs/cgroup") => FdKind::Control,
            _ => continue,
        };
        n[FdKind::ALL.iter().position(|&x| x == kind).unwrap()] += 1;
    }
    n
}

/// Resident set size of this process in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Appends one result line for `npm run reliability` (when it set the report path).
pub fn report(section: &str, case: &str, fds_leaked: i64, events_lost: i64, extra: &str) {
    let Ok(path) = std::env::var("LIFEWATCH_RELIABILITY_REPORT") else {
        return;
    };
    let line = format!(
        "{{\"runner\":\"cargo\",\"section\":{section:?},\"case\":{case:?},\"fdsLeaked\":{fds_leaked},\"eventsLost\":{events_lost}{extra}}}\n"
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(line.as_bytes()).unwrap();
}

/// A test cgroup (`rel` as `watch_cgroup` takes it), removed on drop.
pub struct TestDir {
    pub dir: PathBuf,
    pub rel: String,
}

impl TestDir {
    /// `lifewatch-test-<pid>-<what>` under `mount`; `None`, saying why, if it cannot be made.
    pub fn new(mount: &Path, what: &str) -> Option<TestDir> {
        let rel = format!("lifewatch-test-{}-{what}", std::process::id());
        let dir = mount.join(&rel);
        let _ = std::fs::remove_dir(&dir);
        match std::fs::create_dir(&dir) {
            Ok(()) => Some(TestDir { dir, rel }),
            Err(e) => {
                eprintln!("skip {what}: cannot create {}: {e}", dir.display());
                None
            }
        }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// As root on a host with cgroupfs: the layout, and test cgroups `<tag>-v1` in the v1
/// memory hierarchy and `<tag>-unified` in the unified one (each `None` where missing).
pub fn test_cgroups(tag: &str) -> (Option<Layout>, Option<TestDir>, Option<TestDir>) {
    let layout = Layout::detect()
        .ok()
        .filter(|_| rustix::process::geteuid().is_root());
    let v1 = layout
        .as_ref()
        .and_then(|l| l.v1.get("memory"))
        .and_then(|h| TestDir::new(&h.mount, &format!("{tag}-v1")));
    let unified = layout
        .as_ref()
        .and_then(|l| l.unified.as_ref())
        .and_then(|h| TestDir::new(&h.mount, &format!("{tag}-unified")));
    (layout, v1, unified)
}

/// Cgroup watch options with OOM and `cgroup.events` each on or off, nothing else.
pub fn only(oom: bool, events: bool) -> CgroupWatchOptions {
    CgroupWatchOptions {
        oom: Some(oom),
        events: Some(events),
        ..Default::default()
    }
}

/// A memory PSI trigger any user may arm: 100 ms of "some" stall in a 2 s window.
pub fn psi_trigger() -> PsiTrigger {
    PsiTrigger {
        resource: Resource::Memory,
        full: false,
        stall_us: 100_000,
        window_us: 2_000_000,
    }
}

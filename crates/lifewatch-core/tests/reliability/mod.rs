//! Shared by the `reliability_*` tests: fd counters as one snapshot, exactness against
//! /proc/self/fd, RSS, and the report lines `npm run reliability` sums into its table.

#![allow(dead_code)]

use std::io::Write;

use lifewatch_core::{fd, FdKind, FdStats};

/// Every kind's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot(pub [FdStats; 6]);

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
/// kernel: anon inodes for epoll, pidfd and eventfd; inotify likewise; PSI files
/// (`*.pressure`, /proc/pressure/*) and other cgroupfs files and directories (control).
pub fn proc_kind_counts() -> [u64; 6] {
    let mut n = [0u64; 6];
    for t in proc_fds() {
        let kind = match t.as_str() {
            "anon_inode:[eventpoll]" => FdKind::Epoll,
            "anon_inode:[pidfd]" => FdKind::Pidfd,
            "anon_inode:[eventfd]" => FdKind::Eventfd,
            "anon_inode:inotify" => FdKind::Inotify,
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

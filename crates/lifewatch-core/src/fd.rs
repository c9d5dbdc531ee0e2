//! Every fd lifewatch opens is a `CountedFd`: owned (closed on drop, on every path),
//! CLOEXEC at creation, and counted per kind, so leaks show up as numbers.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// How many kinds of fd there are.
const KINDS: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FdKind {
    Epoll,
    Pidfd,
    Eventfd,
    Inotify,
    Psi,
    Control,
    Timerfd,
    /// The process events connector's netlink socket (host and tree watches).
    Netlink,
    /// `/dev/kmsg`, read for OOM kills.
    Kmsg,
}

impl FdKind {
    pub const ALL: [FdKind; KINDS] = [
        FdKind::Epoll,
        FdKind::Pidfd,
        FdKind::Eventfd,
        FdKind::Inotify,
        FdKind::Psi,
        FdKind::Control,
        FdKind::Timerfd,
        FdKind::Netlink,
        FdKind::Kmsg,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FdKind::Epoll => "epoll",
            FdKind::Pidfd => "pidfd",
            FdKind::Eventfd => "eventfd",
            FdKind::Inotify => "inotify",
            FdKind::Psi => "psi",
            FdKind::Control => "control",
            FdKind::Timerfd => "timerfd",
            FdKind::Netlink => "netlink",
            FdKind::Kmsg => "kmsg",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

struct Counters {
    allocated: AtomicU64,
    released: AtomicU64,
    leak_prevented: AtomicU64,
}

impl Counters {
    const fn new() -> Self {
        Counters {
            allocated: AtomicU64::new(0),
            released: AtomicU64::new(0),
            leak_prevented: AtomicU64::new(0),
        }
    }
}

static COUNTERS: [Counters; KINDS] = [const { Counters::new() }; KINDS];

/// A snapshot of one kind's process-wide counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FdStats {
    pub allocated: u64,
    pub released: u64,
    pub in_use: u64,
    /// Closed by a path that exists only to stop a leak: an error path after the fd was
    /// opened, or a monitor torn down by its finalizer or env cleanup instead of `close()`.
    pub leak_prevented: u64,
}

pub fn stats(kind: FdKind) -> FdStats {
    let c = &COUNTERS[kind.index()];
    // Read released first: a concurrent open can only make in_use look larger, never negative.
    let released = c.released.load(Ordering::SeqCst);
    let allocated = c.allocated.load(Ordering::SeqCst);
    FdStats {
        allocated,
        released,
        in_use: allocated.saturating_sub(released),
        leak_prevented: c.leak_prevented.load(Ordering::SeqCst),
    }
}

/// How a `CountedFd` is being let go; decides whether it counts as a prevented leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Normal,
    LeakPrevented,
}

#[derive(Debug)]
pub struct CountedFd {
    fd: Option<OwnedFd>,
    kind: FdKind,
    /// Until `commit()`, dropping the fd is an error-path close and counts as a prevented leak.
    committed: bool,
}

impl CountedFd {
    /// Takes ownership of a freshly opened fd at once, before any further fallible call.
    pub fn new(fd: OwnedFd, kind: FdKind) -> Self {
        COUNTERS[kind.index()]
            .allocated
            .fetch_add(1, Ordering::SeqCst);
        CountedFd {
            fd: Some(fd),
            kind,
            committed: false,
        }
    }

    /// The fd reached its owner (registry, watcher): from now on a close is a normal release.
    pub fn commit(mut self) -> Self {
        self.committed = true;
        self
    }

    pub fn kind(&self) -> FdKind {
        self.kind
    }

    pub fn close(mut self, how: Release) {
        self.release(how);
    }

    fn release(&mut self, how: Release) {
        if let Some(fd) = self.fd.take() {
            drop(fd);
            let c = &COUNTERS[self.kind.index()];
            c.released.fetch_add(1, Ordering::SeqCst);
            if how == Release::LeakPrevented {
                c.leak_prevented.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

impl Drop for CountedFd {
    fn drop(&mut self) {
        let how = if self.committed {
            Release::Normal
        } else {
            Release::LeakPrevented
        };
        self.release(how);
    }
}

impl AsFd for CountedFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_ref().expect("fd used after release").as_fd()
    }
}

impl AsRawFd for CountedFd {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// Per-kind counts of fds released by one operation (a close, a shutdown step).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released([u64; KINDS]);

impl Released {
    pub fn add(&mut self, kind: FdKind) {
        self.0[kind.index()] += 1;
    }

    pub fn get(&self, kind: FdKind) -> u64 {
        self.0[kind.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{eventfd, EventfdFlags};

    fn efd() -> OwnedFd {
        eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap()
    }

    // Counters are process-wide and tests run in parallel: assert on deltas of one kind
    // that no other unit test in this module uses concurrently.
    #[test]
    fn counts_normal_and_error_path_releases() {
        let kind = FdKind::Psi;
        let before = stats(kind);
        let committed = CountedFd::new(efd(), kind).commit();
        let dropped_on_error = CountedFd::new(efd(), kind);
        assert_eq!(stats(kind).allocated - before.allocated, 2);
        drop(dropped_on_error);
        committed.close(Release::Normal);
        let after = stats(kind);
        assert_eq!(after.released - before.released, 2);
        assert_eq!(after.leak_prevented - before.leak_prevented, 1);
    }
}

//! Waiting for a cgroup to become empty, driven by the kernel, never by a sleep loop (runc's
//! `kill -0` polling, seed 003): on a unified hierarchy `cgroup.events` raises inotify
//! IN_MODIFY when `populated` drops to 0; members only visible in v1 hierarchies are
//! waited for through their pidfds, which poll readable when the process exits.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::time::Timespec;

use crate::cgroup::events_watch::EventsWatch;
use crate::cgroup::files;
use crate::cgroup::manager::Cgroup;
use crate::error::{Code, Result, SysResult};
use crate::fd::{CountedFd, FdKind};
use crate::pidfd;

/// Cancels a blocking cgroup wait from another thread (an AbortSignal, a closing owner).
#[derive(Debug)]
pub struct Cancel {
    fd: CountedFd,
}

impl Cancel {
    pub fn new() -> Result<Cancel> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .sys("eventfd", "creating a cancellation handle")?;
        Ok(Cancel {
            fd: CountedFd::new(fd, FdKind::Eventfd).commit(),
        })
    }

    pub fn cancel(&self) {
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    pub fn is_cancelled(&self) -> bool {
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        matches!(poll(&mut fds, Some(&Timespec::default())), Ok(n) if n > 0)
    }
}

impl AsFd for Cancel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Why a wait ended without the cgroup becoming empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Deadline,
    Cancelled,
}

struct Tracked {
    fd: CountedFd,
    /// Seen readable (exited) while still listed: not worth polling again.
    exited: bool,
    signalled: bool,
}

/// One emptiness check-and-wait session on a cgroup; owns its inotify fd and the pidfds of
/// the members it tracks, all closed when it is dropped.
pub struct EmptyWait<'a> {
    cg: &'a Cgroup,
    inotify: Option<EventsWatch>,
    /// Track every member by pidfd (to signal them), not only those outside the unified
    /// hierarchy.
    track_all: bool,
    tracked: HashMap<i32, Tracked>,
    backoff: Duration,
    /// PIDs of the unified cgroup seen by the last `check`.
    pub unified_members: usize,
}

impl<'a> EmptyWait<'a> {
    pub fn new(cg: &'a Cgroup, track_all: bool) -> Result<EmptyWait<'a>> {
        let inotify = match cg.unified_dir() {
            Some(dir) => Some(EventsWatch::new(dir)?),
            None => None,
        };
        Ok(EmptyWait {
            cg,
            inotify,
            track_all,
            tracked: HashMap::new(),
            backoff: Duration::from_millis(1),
            unified_members: 0,
        })
    }

    /// Reads the cgroup's state and tracks new members; true when it is empty (no process
    /// listed in any hierarchy and, on a unified hierarchy, `populated 0`). A cgroup
    /// removed meanwhile is empty: the kernel only removes empty cgroups.
    pub fn check(&mut self) -> Result<bool> {
        match self.check_inner() {
            Err(e) if e.code == Code::NoSuchCgroup => {
                self.tracked.clear();
                Ok(true)
            }
            r => r,
        }
    }

    fn members(&self) -> Result<(HashSet<i32>, HashSet<i32>)> {
        let mut all = HashSet::new();
        let mut unified = HashSet::new();
        if let Some(dir) = self.cg.unified_dir() {
            unified.extend(files::procs(dir)?);
            all.extend(unified.iter().copied());
        }
        for dir in self.cg.v1_dirs() {
            all.extend(files::procs(dir)?);
        }
        Ok((all, unified))
    }

    fn check_inner(&mut self) -> Result<bool> {
        let (all, unified) = self.members()?;
        self.unified_members = unified.len();
        let populated = match self.cg.unified_dir() {
            Some(dir) => files::keyed(
                &files::read(
                    dir,
                    "cgroup.events",
                    "checking whether the cgroup is populated",
                )?,
                "populated",
            )
            .unwrap_or(0),
            None => 0,
        };
        let wanted: HashSet<i32> = all
            .iter()
            .copied()
            .filter(|p| self.track_all || !unified.contains(p))
            .collect();
        self.tracked.retain(|pid, _| wanted.contains(pid));
        let mut fresh = Vec::new();
        for &pid in &wanted {
            if self.tracked.contains_key(&pid) {
                continue;
            }
            match pidfd::open(pid) {
                Ok(fd) => fresh.push((pid, fd.commit())),
                Err(e) if e.code == Code::NoSuchProcess => {}
                Err(e) => return Err(e),
            }
        }
        if !fresh.is_empty() {
            // A PID read from cgroup.procs may have been reused before pidfd_open: keep a
            // pidfd only if its PID is still listed afterwards and its process is still
            // alive after that second read (then it held the PID all along).
            let (again, _) = self.members()?;
            for (pid, fd) in fresh {
                if again.contains(&pid) && pidfd::alive(fd.as_fd()) {
                    self.tracked.insert(
                        pid,
                        Tracked {
                            fd,
                            exited: false,
                            signalled: false,
                        },
                    );
                }
            }
        }
        Ok(all.is_empty() && populated == 0)
    }

    /// Sends `signo` through its pidfd to every tracked member not signalled yet; returns
    /// how many were signalled. A member that exited meanwhile is skipped.
    pub fn signal_new(&mut self, signo: i32) -> usize {
        let mut n = 0;
        for (&pid, t) in self.tracked.iter_mut().filter(|(_, t)| !t.signalled) {
            t.signalled = true;
            if pidfd::send_signal(t.fd.as_fd(), signo, pid).is_ok() {
                n += 1;
            }
        }
        n
    }

    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Blocks until something changed (populated flipped, a tracked member exited), the
    /// deadline passed or the wait was cancelled.
    pub fn wait(
        &mut self,
        deadline: Option<Instant>,
        cancel: Option<&Cancel>,
    ) -> std::result::Result<(), Stop> {
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        let mut pids = Vec::new();
        if let Some(c) = cancel {
            fds.push(PollFd::from_borrowed_fd(c.as_fd(), PollFlags::IN));
        }
        if let Some(i) = &self.inotify {
            fds.push(PollFd::new(i, PollFlags::IN));
        }
        let base = fds.len();
        let mut stuck = false;
        for (&pid, t) in &self.tracked {
            if t.exited {
                stuck = true;
                continue;
            }
            fds.push(PollFd::new(&t.fd, PollFlags::IN));
            pids.push(pid);
        }
        let now = Instant::now();
        let mut timeout = deadline.map(|d| d.saturating_duration_since(now));
        if stuck || fds.len() == base && self.inotify.is_none() {
            // A listed member whose pidfd already reports its exit (a thread-group leader
            // that exited before its threads): nothing to wait on, so re-check with a
            // bounded backoff. The common paths never get here.
            let b = self.backoff;
            self.backoff = (b * 2).min(Duration::from_millis(100));
            timeout = Some(timeout.map_or(b, |t| t.min(b)));
        }
        if deadline.is_some_and(|d| d <= now) {
            return Err(Stop::Deadline);
        }
        let ts = timeout.map(|d| Timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        });
        let n = loop {
            match poll(&mut fds, ts.as_ref()) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r.unwrap_or(0),
            }
        };
        let cancelled = cancel.is_some() && !fds[0].revents().is_empty();
        let inotify_ready = self.inotify.is_some() && !fds[base - 1].revents().is_empty();
        let exited: Vec<i32> = fds[base..]
            .iter()
            .zip(&pids)
            .filter(|(f, _)| !f.revents().is_empty())
            .map(|(_, &p)| p)
            .collect();
        drop(fds);
        if inotify_ready {
            if let Some(i) = &self.inotify {
                i.drain();
            }
        }
        for p in exited {
            if let Some(t) = self.tracked.get_mut(&p) {
                t.exited = true;
            }
        }
        if cancelled {
            return Err(Stop::Cancelled);
        }
        if n == 0 && deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(Stop::Deadline);
        }
        Ok(())
    }
}

impl Cgroup {
    /// Resolves when the cgroup is empty: `Ok(true)`; `Ok(false)` when the deadline passed
    /// or the wait was cancelled first.
    pub fn wait_empty(&self, deadline: Option<Instant>, cancel: Option<&Cancel>) -> Result<bool> {
        let mut w = EmptyWait::new(self, false)?;
        loop {
            if w.check()? {
                return Ok(true);
            }
            if w.wait(deadline, cancel).is_err() {
                return Ok(false);
            }
        }
    }
}

//! Emptiness, driven by the kernel, never by a sleep loop: on a unified hierarchy
//! `cgroup.events` polls `POLLPRI` when `populated` drops to 0; members visible only
//! in v1 hierarchies are tracked through their pidfds, which poll readable when the process
//! exits. `Members` is that tracking, shared by the waits that need it (wait for empty, kill,
//! delete); `WaitEmpty` is the wait itself.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::time::Timespec;

use crate::cgroup::files;
use crate::cgroup::manage::manager::Cgroup;
use crate::error::{Code, Result};
use crate::fd::CountedFd;
use crate::process::pidfd;
use crate::reactor::waiter::{self, Done, Op, OpCx, WaitHandle};

struct Tracked {
    fd: CountedFd,
    /// Seen readable (exited) while still listed: not worth waiting on again.
    exited: bool,
    /// In the waiter's epoll set, waking the op.
    armed: bool,
    signalled: bool,
}

/// The members of a cgroup as one wait follows them: its `cgroup.events` subscription and the pidfds
/// of the members it tracks (all closed when it is dropped).
pub struct Members {
    cg: Cgroup,
    /// Track every member by pidfd (to signal them), not only those outside the unified
    /// hierarchy.
    track_all: bool,
    tracked: HashMap<i32, Tracked>,
    /// `cgroup.events` is watched (or there is nothing to watch).
    watching: bool,
    backoff: Duration,
    /// PIDs of the unified cgroup seen by the last `check`.
    pub unified_members: usize,
    /// Members the last `check` listed but could not track: gone already (a v1 hierarchy lists
    /// a process for a moment after it was reaped), or PIDs reused meanwhile. No file change
    /// announces that they left, so `arm` re-checks on a backoff while there are any.
    untracked: usize,
    /// The next look of its own while only `cgroup.events` can wake the wait (see `arm`).
    quiet: Duration,
}

const QUIET_FIRST: Duration = Duration::from_millis(20);
const QUIET_MAX: Duration = Duration::from_secs(1);

impl Members {
    pub fn new(cg: Cgroup, track_all: bool) -> Members {
        Members {
            cg,
            track_all,
            tracked: HashMap::new(),
            watching: false,
            backoff: Duration::from_millis(1),
            unified_members: 0,
            untracked: 0,
            quiet: QUIET_FIRST,
        }
    }

    /// Subscribes the op to `cgroup.events`, once, before its first `check`, so no change can
    /// slip in between. A cgroup already gone has nothing to watch (and `check` says empty).
    pub fn watch(&mut self, cx: &mut OpCx<'_, '_>) -> Result<()> {
        if self.watching {
            return Ok(());
        }
        if let Some(dir) = self.cg.unified_dir() {
            match cx.watch_file(&dir.join("cgroup.events")) {
                Err(e) if e.code != Code::NoSuchCgroup => return Err(e),
                _ => {}
            }
        }
        self.watching = true;
        Ok(())
    }

    /// Reads the cgroup's state and tracks new members; true when it is empty (no process
    /// listed in any hierarchy and, on a unified hierarchy, `populated 0`). A cgroup removed
    /// meanwhile is empty: the kernel only removes empty cgroups.
    pub fn check(&mut self) -> Result<bool> {
        match self.check_inner() {
            Err(e) if e.code == Code::NoSuchCgroup => {
                self.tracked.clear();
                self.untracked = 0;
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
        // Closing a dropped member's pidfd also takes it out of the waiter's epoll set.
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
            // pidfd only if its PID is still listed afterwards. Alive after that second read,
            // it held the PID all along; exited, it is a process that has died and is still
            // listed (a v1 hierarchy lists it until it is reaped), which no file change will
            // announce leaving: kept as exited, so `arm` re-checks on a backoff.
            let (again, _) = self.members()?;
            for (pid, fd) in fresh {
                if again.contains(&pid) {
                    let t = Tracked {
                        exited: !pidfd::alive(fd.as_fd()),
                        fd,
                        armed: false,
                        signalled: false,
                    };
                    self.tracked.insert(pid, t);
                }
            }
        }
        self.untracked = wanted
            .iter()
            .filter(|p| !self.tracked.contains_key(p))
            .count();
        Ok(all.is_empty() && populated == 0)
    }

    /// Sends `signo` through its pidfd to every tracked member not signalled yet; returns how
    /// many were signalled. A member that exited meanwhile is skipped.
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

    /// Arms the tracked members' pidfds to wake the op when they exit. Returns when the op must
    /// look again by itself: a listed member whose pidfd already reports its exit (a
    /// thread-group leader that exited before its threads, a process not yet reaped), one
    /// listed that could not be tracked, or nothing at all to wait on, is re-checked on a
    /// bounded backoff. The common paths return `None`.
    pub fn arm(&mut self, cx: &mut OpCx<'_, '_>) -> Result<Option<Instant>> {
        let mut stuck = self.untracked > 0;
        for t in self.tracked.values_mut() {
            if !t.exited && exited(&t.fd) {
                t.exited = true;
                if t.armed {
                    cx.remove_fd(t.fd.as_fd());
                    t.armed = false;
                }
            }
            if t.exited {
                stuck = true;
            } else if !t.armed {
                cx.add_fd(t.fd.as_fd())?;
                t.armed = true;
            }
        }
        if !stuck && !self.tracked.is_empty() {
            self.backoff = Duration::from_millis(1);
            return Ok(None);
        }
        if !stuck && self.cg.unified_dir().is_some() {
            // Woken by `cgroup.events` alone. The kernel sends at most one change of a cgroup
            // file per 10 ms and defers the next to a timer, which it drops if the cgroup is
            // removed meanwhile: a cgroup emptied and removed by someone else within that
            // window would never wake this wait. A slow look of its own catches that.
            self.backoff = Duration::from_millis(1);
            let at = Instant::now() + self.quiet;
            self.quiet = (self.quiet * 2).min(QUIET_MAX);
            return Ok(Some(at));
        }
        let at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_millis(100));
        Ok(Some(at))
    }
}

/// Whether a pidfd polls readable (its process exited), without waiting.
fn exited(fd: &CountedFd) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    matches!(poll(&mut fds, Some(&Timespec::default())), Ok(n) if n > 0)
}

/// The earlier of two optional times.
pub(crate) fn sooner(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `Instant::now() + timeout`; `None` (no deadline) when there is no timeout or it is too far
/// to represent.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// The wait for emptiness: `true` once empty, `false` when the deadline passed first.
pub(crate) struct WaitEmpty {
    members: Members,
    deadline: Option<Instant>,
}

impl Op for WaitEmpty {
    type Output = bool;

    fn step(&mut self, cx: &mut OpCx<'_, '_>) -> Option<Result<bool>> {
        let r = (|| {
            self.members.watch(cx)?;
            if self.members.check()? {
                return Ok(Some(true));
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Some(false));
            }
            if let Some(at) = sooner(self.members.arm(cx)?, self.deadline) {
                cx.wake_at(at);
            }
            Ok(None)
        })();
        r.transpose()
    }
}

impl Cgroup {
    /// Waits until the cgroup is empty: `true`; `false` when `timeout` passed first.
    pub fn wait_empty_async(
        &self,
        timeout: Option<Duration>,
        done: Done<bool>,
    ) -> Result<WaitHandle> {
        waiter::submit(self.wait_empty_op(timeout), done)
    }

    /// `wait_empty_async`, blocking the calling thread.
    pub fn wait_empty(&self, timeout: Option<Duration>) -> Result<bool> {
        waiter::run(self.wait_empty_op(timeout))
    }

    fn wait_empty_op(&self, timeout: Option<Duration>) -> WaitEmpty {
        WaitEmpty {
            members: Members::new(self.clone(), false),
            deadline: deadline(timeout),
        }
    }
}

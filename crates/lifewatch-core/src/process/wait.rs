//! A process's exit as a one-off wait on the shared waiter, for an owner with no monitor (a
//! handle kept past its monitor's close): done when the pidfd polls readable, with the status;
//! without pidfd, polled on a bounded backoff.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::time::Timespec;

use crate::error::{Result, SysResult};
use crate::event::{monotonic_ns, ExitSource};
use crate::fd::{CountedFd, FdKind};
use crate::process::exit;
use crate::process::handle::Process;
use crate::process::subreaper;
use crate::reactor::waiter::{self, Done, Op, OpCx, WaitHandle};
use crate::status::ExitStatus;

/// An exit as the wait saw it.
#[derive(Debug, Clone, Copy)]
pub struct Exited {
    pub status: Option<ExitStatus>,
    pub source: ExitSource,
    /// CLOCK_MONOTONIC ns when it was seen.
    pub time: u64,
}

struct ExitWait {
    pid: i32,
    start_time: Option<u64>,
    child: bool,
    /// A pidfd of the wait's own (a duplicate of the handle's): several waits for one process
    /// never put the same fd in the waiter's epoll set, and each removes only its own.
    pidfd: Option<CountedFd>,
    /// Reap it (a child lifewatch spawned); anyone else's zombie is left to its parent.
    reap: bool,
    /// The pidfd is in the waiter's epoll set (removed before the op ends).
    armed: bool,
    backoff: Duration,
}

impl ExitWait {
    fn disarm(&mut self, cx: &mut OpCx<'_, '_>) {
        if let (true, Some(fd)) = (self.armed, &self.pidfd) {
            cx.remove_fd(fd.as_fd());
            self.armed = false;
        }
    }
}

impl Drop for ExitWait {
    fn drop(&mut self) {
        if self.reap {
            subreaper::unclaim(self.pid);
        }
    }
}

impl Op for ExitWait {
    type Output = Exited;

    fn step(&mut self, cx: &mut OpCx<'_, '_>) -> Option<Result<Exited>> {
        let (pid, start, child) = (self.pid, self.start_time, self.reap || self.child);
        let (status, source) = match &self.pidfd {
            Some(fd) => {
                let fd = fd.as_fd();
                let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                if !matches!(poll(&mut fds, Some(&Timespec::default())), Ok(n) if n > 0) {
                    if !self.armed {
                        if let Err(e) = cx.add_fd(fd.as_fd()) {
                            return Some(Err(e));
                        }
                        self.armed = true;
                    }
                    return None;
                }
                let armed = std::mem::replace(&mut self.armed, false);
                if armed {
                    cx.remove_fd(fd);
                }
                exit::resolve(fd, pid, start, self.reap, child)
            }
            None => match exit::poll(pid, start, self.reap, child) {
                Some(status) => (status, ExitSource::Fallback),
                None => {
                    cx.wake_at(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(Duration::from_millis(100));
                    return None;
                }
            },
        };
        Some(Ok(Exited {
            status,
            source,
            time: monotonic_ns(),
        }))
    }

    fn cancel(&mut self, cx: &mut OpCx<'_, '_>) {
        self.disarm(cx);
    }
}

/// Waits for `process` to exit; `done` gets how. With `reap` (a child lifewatch spawned) its
/// zombie is reaped; anyone else's is left to its parent. The wait has a pidfd of its own: the
/// handle may be closed meanwhile, and other waits for the same process run alongside.
pub fn wait_exit(process: &Process, reap: bool, done: Done<Exited>) -> Result<WaitHandle> {
    let pidfd = match process.pidfd() {
        Some(fd) => {
            let dup = crate::failpoint::hit("fcntl")
                .and_then(|()| rustix::io::fcntl_dupfd_cloexec(fd, 0))
                .sys("fcntl", format!("waiting for pid {}", process.pid()))?;
            Some(CountedFd::new(dup, FdKind::Pidfd).commit())
        }
        None => None,
    };
    if reap {
        subreaper::claim(process.pid());
    }
    waiter::submit(
        ExitWait {
            pid: process.pid(),
            start_time: process.start_time(),
            child: process.is_child(),
            pidfd,
            reap,
            armed: false,
            backoff: Duration::from_millis(1),
        },
        done,
    )
}

/// Hands a child lifewatch spawned, whose watch ended before it exited, to the shared waiter,
/// which reaps it once it exits (nothing is told: nobody waits for it any more). False when
/// the waiter could not take it (no fds left).
pub fn reap_when_exited(process: &Process) -> bool {
    // The handle only cancels the wait: dropping it leaves the wait running.
    wait_exit(process, true, Box::new(|_| {})).is_ok()
}

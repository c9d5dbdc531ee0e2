//! A process's exit as a one-off wait on the shared waiter, for an owner with no monitor (a
//! handle kept past its monitor's close): done when the pidfd polls readable, with the status;
//! without pidfd, polled on a bounded backoff.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::time::Timespec;

use crate::error::Result;
use crate::event::{monotonic_ns, ExitSource};
use crate::process::exit::{self, wait_pid, zombie, Zombie};
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
    process: Arc<Process>,
    /// Reap it (a child lifewatch spawned); anyone else's zombie is left to its parent.
    reap: bool,
    /// The pidfd is in the waiter's epoll set (it is the handle's: removed before the op ends).
    armed: bool,
    backoff: Duration,
}

impl ExitWait {
    fn disarm(&mut self, cx: &mut OpCx<'_, '_>) {
        if let (true, Some(fd)) = (self.armed, self.process.pidfd()) {
            cx.remove_fd(fd);
            self.armed = false;
        }
    }
}

impl Drop for ExitWait {
    fn drop(&mut self) {
        if self.reap {
            subreaper::unclaim(self.process.pid());
        }
    }
}

impl Op for ExitWait {
    type Output = Exited;

    fn step(&mut self, cx: &mut OpCx<'_, '_>) -> Option<Result<Exited>> {
        let p = Arc::clone(&self.process);
        let (status, source) = match p.pidfd() {
            Some(fd) => {
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
                self.disarm(cx);
                exit::resolve(
                    fd,
                    p.pid(),
                    p.start_time(),
                    self.reap,
                    self.reap || p.is_child(),
                )
            }
            // Without pidfd a child's status (and reaping it) is waitid's, by PID.
            None => match (self.reap || p.is_child())
                .then(|| wait_pid(p.pid(), p.start_time(), self.reap))
                .flatten()
            {
                Some(st) => (Some(st), ExitSource::Fallback),
                None => match zombie(p.pid(), p.start_time()) {
                    Zombie::Status(st) => (Some(st), ExitSource::Fallback),
                    Zombie::Gone => (None, ExitSource::Fallback),
                    Zombie::Running => {
                        cx.wake_at(Instant::now() + self.backoff);
                        self.backoff = (self.backoff * 2).min(Duration::from_millis(100));
                        return None;
                    }
                },
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
/// zombie is reaped; anyone else's is left to its parent.
pub fn wait_exit(process: Arc<Process>, reap: bool, done: Done<Exited>) -> Result<WaitHandle> {
    if reap {
        subreaper::claim(process.pid());
    }
    waiter::submit(
        ExitWait {
            process,
            reap,
            armed: false,
            backoff: Duration::from_millis(1),
        },
        done,
    )
}

/// Hands a child lifewatch spawned, whose watch ended before it exited, to the shared waiter,
/// which reaps it once it exits (nothing is told: nobody waits for it any more). Gives the
/// process back when the waiter cannot take it (it could not start: no fds left).
pub fn reap_when_exited(process: Arc<Process>) -> std::result::Result<(), Arc<Process>> {
    let keep = Arc::clone(&process);
    match wait_exit(process, true, Box::new(|_| {})) {
        // The handle only cancels the wait: dropping it leaves the wait running.
        Ok(_) => Ok(()),
        Err(_) => Err(keep),
    }
}

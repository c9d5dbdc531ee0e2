//! Process watch without pidfd (kernels before 5.3, or forced for tests): bounded-backoff
//! polling of `kill(pid, 0)` and /proc, with a start-time check so a reused PID is
//! reported as the original's exit instead of being mistaken for it.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::epoll::EventFlags;
use rustix::process::{Pid, WaitId, WaitIdOptions};

use crate::error::{Error, Result, SysResult};
use crate::event::ExitSource;
use crate::exit::{self, zombie, Zombie};
use crate::fd::{Release, Released};
use crate::procstat;
use crate::source::{Keep, Ready, Source};
use crate::status::ExitStatus;

const FIRST: Duration = Duration::from_millis(1);
const CAP: Duration = Duration::from_millis(100);

pub struct FallbackWatch {
    pid: i32,
    start_time: Option<u64>,
    reap: bool,
    interval: Duration,
    due: Instant,
}

impl FallbackWatch {
    pub fn open(pid: i32, reap: bool) -> Result<Self> {
        let p =
            Pid::from_raw(pid).ok_or_else(|| Error::invalid(format!("pid {pid} is not valid")))?;
        let exists =
            crate::failpoint::hit("kill").and_then(|()| rustix::process::test_kill_process(p));
        if let Err(e) = exists {
            // EPERM: it exists but belongs to someone else; still watchable by polling.
            if e != rustix::io::Errno::PERM {
                return Err(e).sys("kill", format!("watching pid {pid}"));
            }
        }
        crate::failpoint::hook("fallback.checked");
        Ok(FallbackWatch {
            pid,
            start_time: procstat::read(pid).map(|s| s.start_time),
            reap,
            interval: FIRST,
            due: Instant::now() + FIRST,
        })
    }

    /// `Some(status)` once the process is gone; the inner `None` when it left no status.
    fn check(&self) -> Option<Option<ExitStatus>> {
        if let Some(st) = self.wait_child() {
            return Some(Some(st));
        }
        match zombie(self.pid, self.start_time) {
            Zombie::Status(st) => Some(Some(st)),
            Zombie::Gone => Some(None),
            Zombie::Running => None,
        }
    }

    fn wait_child(&self) -> Option<ExitStatus> {
        let mut opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
        if !self.reap {
            opts |= WaitIdOptions::NOWAIT;
        }
        let st = rustix::process::waitid(WaitId::Pid(Pid::from_raw(self.pid)?), opts).ok()??;
        match (st.exit_status(), st.terminating_signal()) {
            (Some(code), _) => Some(ExitStatus::Code(code)),
            (None, Some(signo)) => Some(ExitStatus::Signal {
                signo,
                core: st.dumped(),
            }),
            _ => None,
        }
    }
}

impl Source for FallbackWatch {
    fn interest(&self) -> Option<(BorrowedFd<'_>, EventFlags)> {
        None
    }

    fn due(&self) -> Option<Instant> {
        Some(self.due)
    }

    fn timed(&self) -> bool {
        true
    }

    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep {
        match self.check() {
            Some(status) => exit::report(cx, self.pid, status, ExitSource::Fallback),
            None => {
                self.interval = (self.interval * 2).min(CAP);
                self.due = Instant::now() + self.interval;
                Keep::Yes
            }
        }
    }

    fn signal(&self, signo: i32) -> Result<()> {
        // No pidfd: re-check identity right before kill(2), the best this kernel allows.
        let what = format!("sending signal {signo} to pid {}", self.pid);
        if !matches!(zombie(self.pid, self.start_time), Zombie::Running) {
            return Err(Error::sys("kill", libc::ESRCH, what));
        }
        // SAFETY: plain kill(2) with a validated PID and signal.
        if unsafe { libc::kill(self.pid, signo) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error()).sys("kill", what)
        }
    }

    fn release(self: Box<Self>, _how: Release, _released: &mut Released) {}
}

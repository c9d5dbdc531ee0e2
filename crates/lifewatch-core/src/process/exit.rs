//! Turning "the pidfd is readable" into an exit status, for children and non-children.

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::sync::Mutex;
use std::time::Duration;

use rustix::process::{Pid, WaitId, WaitIdOptions};

use crate::event::ExitSource;
use crate::process::pidfd::{self, InfoExit};
use crate::process::procstat;
use crate::status::ExitStatus;

/// Right at readiness the real parent may be reaping it: a short bounded retry (50 µs
/// doubling, under 13 ms in all) covers the moment between the zombie leaving /proc and the
/// kernel keeping its exit info, if a kernel has one; it only runs while an answer can come.
const ATTEMPTS: u32 = 8;

/// `start_time` is the process's /proc start time recorded at watch time, so the zombie
/// read from /proc is known to be the same process and not a reused PID. `child`: it was
/// our child when watched, so waitid may answer (for anyone else's it is ECHILD).
pub fn resolve(
    pidfd: BorrowedFd<'_>,
    pid: i32,
    start_time: Option<u64>,
    reap: bool,
    child: bool,
) -> (Option<ExitStatus>, ExitSource) {
    let waited = || {
        child
            .then(|| waited(pid, start_time, reap, || pidfd::wait_child(pidfd, reap)))
            .flatten()
    };
    let mut info_supported = true;
    let info = |supported: &mut bool| {
        if !*supported {
            return None;
        }
        match pidfd::info_exit(pidfd) {
            InfoExit::Status(st) => Some(st),
            InfoExit::Unsupported => {
                *supported = false;
                None
            }
            InfoExit::NotYet => None,
        }
    };
    for attempt in 0..ATTEMPTS {
        if let Some(st) = waited() {
            return (Some(st), ExitSource::Waitid);
        }
        if let Some(st) = info(&mut info_supported) {
            return (Some(st), ExitSource::Pidfd);
        }
        match zombie(pid, start_time) {
            Zombie::Status(st) => return (Some(st), ExitSource::Pidfd),
            // Reaped since the first look. The kernel keeps the exit info before it takes the
            // zombie out of /proc, so a second look finds it where there is any; if lifewatch
            // reaped it, its status is recorded by now; else there is nothing more to learn.
            Zombie::Gone => {
                if let Some(st) = info(&mut info_supported) {
                    return (Some(st), ExitSource::Pidfd);
                }
                if !info_supported {
                    return match waited() {
                        Some(st) => (Some(st), ExitSource::Waitid),
                        None => (None, ExitSource::Pidfd),
                    };
                }
            }
            Zombie::Running => {}
        }
        std::thread::sleep(Duration::from_micros(50 << attempt));
    }
    (None, ExitSource::Pidfd)
}

/// Without pidfd: `Some(status)` once the whole process is gone (`Some(None)` when its status
/// cannot be known: someone else reaped it), `None` while it runs. A child's status (and
/// reaping it, with `reap`) is waitid's, by PID: race-free, as a child keeps its PID until it
/// is reaped and only its parent can reap it.
pub fn poll(
    pid: i32,
    start_time: Option<u64>,
    reap: bool,
    child: bool,
) -> Option<Option<ExitStatus>> {
    let waited = || {
        child
            .then(|| waited(pid, start_time, reap, || wait_pid(pid, reap)))
            .flatten()
    };
    if let Some(st) = waited() {
        return Some(Some(st));
    }
    match zombie(pid, start_time) {
        Zombie::Status(st) => Some(Some(st)),
        Zombie::Running => None,
        // Reaped since the first look: by lifewatch (then its status is recorded by now) or
        // by its parent.
        Zombie::Gone => Some(waited()),
    }
}

/// A child's status by `waitid` on its PID: reaped with `reap`, else left for its next reader.
pub(crate) fn wait_pid(pid: i32, reap: bool) -> Option<ExitStatus> {
    let mut opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    if !reap {
        opts |= WaitIdOptions::NOWAIT;
    }
    let st = rustix::process::waitid(WaitId::Pid(Pid::from_raw(pid)?), opts).ok()??;
    ExitStatus::from_wait(&st)
}

/// Statuses of children lifewatch reaped, for its other handles of the same child: one child
/// may have two owners that wait for it (a watch that ended before the exit hands the child to
/// the shared waiter, and a Task follows it through a pidfd of its own), and only one of them
/// can reap it. The other reads the status here where the kernel keeps none in the pidfd
/// (before Linux 6.15) or has no pidfd. By PID and start time, so a reused PID never matches;
/// only the last few are kept.
static REAPED: Mutex<VecDeque<(i32, u64, ExitStatus)>> = Mutex::new(VecDeque::new());
const REAPED_KEPT: usize = 256;

/// Asks the kernel for a child's status with `wait` (which reaps with `reap`), else looks it up
/// among those lifewatch reaped. Under the lock the readers take too: a reap and its record are
/// one step to them, so no reader finds the zombie gone and its status not yet recorded.
pub(crate) fn waited(
    pid: i32,
    start_time: Option<u64>,
    reap: bool,
    wait: impl FnOnce() -> Option<ExitStatus>,
) -> Option<ExitStatus> {
    let mut r = REAPED.lock().unwrap_or_else(|p| p.into_inner());
    match (wait(), start_time) {
        (Some(st), Some(start)) if reap => {
            crate::failpoint::hook("exit.reaped");
            if r.len() == REAPED_KEPT {
                r.pop_front();
            }
            r.push_back((pid, start, st));
            Some(st)
        }
        (Some(st), _) => Some(st),
        (None, start) => {
            let start = start?;
            r.iter()
                .rev()
                .find(|(p, s, _)| *p == pid && *s == start)
                .map(|(_, _, st)| *st)
        }
    }
}

pub enum Zombie {
    Status(ExitStatus),
    /// No /proc entry, or another process (start time differs) holds the PID now.
    Gone,
    /// Still the same process and not yet a zombie.
    Running,
}

/// The wait status a zombie keeps in /proc until it is reaped.
pub fn zombie(pid: i32, start_time: Option<u64>) -> Zombie {
    match procstat::read(pid) {
        Some(st) if start_time.is_none_or(|t| t == st.start_time) => {
            match (st.is_zombie(), st.exit_code) {
                (true, Some(code)) => Zombie::Status(ExitStatus::from_wait_status(code)),
                (true, None) => Zombie::Gone,
                (false, _) => Zombie::Running,
            }
        }
        _ => Zombie::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaped_status_is_found_only_for_the_same_process() {
        let none = || None;
        let reap = |pid, start, code| waited(pid, start, true, || Some(ExitStatus::Code(code)));
        assert_eq!(reap(4_000_001, Some(77), 3), Some(ExitStatus::Code(3)));
        assert_eq!(
            waited(4_000_001, Some(77), false, none),
            Some(ExitStatus::Code(3))
        );
        // The same PID with another start time is another process (a reused PID).
        assert_eq!(waited(4_000_001, Some(78), false, none), None);
        assert_eq!(waited(4_000_001, None, false, none), None);
        // A peek (no reap) is not recorded: the zombie keeps its status for its next reader.
        assert_eq!(
            waited(4_000_003, Some(5), false, || Some(ExitStatus::Code(6))),
            Some(ExitStatus::Code(6))
        );
        assert_eq!(waited(4_000_003, Some(5), false, none), None);
        reap(4_000_002, None, 4);
        assert_eq!(
            waited(4_000_002, None, false, none),
            None,
            "unidentifiable: not kept"
        );
    }
}

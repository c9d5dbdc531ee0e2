//! Turning "the pidfd is readable" into an exit status, for children and non-children.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::event::ExitSource;
use crate::process::pidfd::{self, InfoExit};
use crate::process::procstat;
use crate::status::ExitStatus;

/// Right at readiness the real parent may be reaping: the zombie has just left /proc but
/// PIDFD_INFO_EXIT is not set yet. A short bounded retry (50 µs doubling, under 13 ms in
/// all) closes that window; it only runs while an answer can still come.
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
    let mut info_supported = true;
    for attempt in 0..ATTEMPTS {
        if let Some(st) = child.then(|| pidfd::wait_child(pidfd, reap)).flatten() {
            return (Some(st), ExitSource::Waitid);
        }
        if info_supported {
            match pidfd::info_exit(pidfd) {
                InfoExit::Status(st) => return (Some(st), ExitSource::Pidfd),
                InfoExit::Unsupported => info_supported = false,
                InfoExit::NotYet => {}
            }
        }
        match zombie(pid, start_time) {
            Zombie::Status(st) => return (Some(st), ExitSource::Pidfd),
            // Reaped and this kernel keeps no exit info: nothing more to learn.
            Zombie::Gone if !info_supported => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_micros(50 << attempt));
    }
    (None, ExitSource::Pidfd)
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

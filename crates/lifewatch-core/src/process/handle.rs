//! A process as lifewatch holds it: its PID and, where the kernel has pidfds, a pidfd taken
//! when it was first watched (or at its creation), so that signals and liveness always concern
//! that process and never one that reused its PID. Without pidfd (before Linux 5.3, or forced)
//! its /proc start time stands in, checked right before each kill(2).

use std::os::fd::{AsFd, BorrowedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::time::Timespec;

use crate::error::{Error, Result, SysResult};
use crate::fd::{CountedFd, FdKind, Release, Released};
use crate::process::exit::{zombie, Zombie};
use crate::process::pid::check_not_thread;
use crate::process::{pidfd, procstat, signal};

#[derive(Debug)]
pub struct Process {
    pid: i32,
    fd: Option<CountedFd>,
    /// Field 22 of /proc/<pid>/stat, read while the process was known to hold its PID.
    start_time: Option<u64>,
    /// A child of this process when taken (waitid can answer for it).
    child: bool,
}

impl Process {
    /// Any process, through a fresh pidfd.
    pub fn open(pid: i32) -> Result<Process> {
        let fd = pidfd::open(pid)?;
        crate::failpoint::hook("pid_watch.opened");
        Ok(Process::from_pidfd(pid, fd))
    }

    /// A process whose pidfd is already held (taken at creation by clone3, or opened just now).
    pub fn from_pidfd(pid: i32, fd: CountedFd) -> Process {
        // The start time is trusted only if the pidfd's process is still there after reading
        // it: until it is reaped, its PID cannot be reused.
        let stat = procstat::read(pid).filter(|_| pidfd::alive(fd.as_fd()));
        // Unknown parent (unreadable /proc): ask waitid, as for a child.
        let child = stat.is_none_or(|s| s.ppid as u32 == std::process::id());
        Process {
            pid,
            fd: Some(fd.commit()),
            start_time: stat.map(|s| s.start_time),
            child,
        }
    }

    /// Any process: through a pidfd where the kernel has them, else by PID and start time.
    pub fn any(pid: i32) -> Result<Process> {
        if pidfd::supported() {
            Process::open(pid)
        } else {
            Process::by_pid(pid)
        }
    }

    /// A process on a kernel without pidfd: known by PID and start time.
    pub fn by_pid(pid: i32) -> Result<Process> {
        let p = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| Error::invalid(format!("pid {pid} is not valid")))?;
        let exists =
            crate::failpoint::hit("kill").and_then(|()| rustix::process::test_kill_process(p));
        if let Err(e) = exists {
            // EPERM: it exists but belongs to someone else; still watchable by polling.
            if e != rustix::io::Errno::PERM {
                return Err(e).sys("kill", format!("watching pid {pid}"));
            }
        }
        check_not_thread(pid)?;
        crate::failpoint::hook("fallback.checked");
        let stat = procstat::read(pid);
        Ok(Process {
            pid,
            fd: None,
            start_time: stat.map(|s| s.start_time),
            child: stat.is_none_or(|s| s.ppid as u32 == std::process::id()),
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pidfd, where the kernel has them.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd)
    }

    pub fn start_time(&self) -> Option<u64> {
        self.start_time
    }

    pub fn is_child(&self) -> bool {
        self.child
    }

    /// Sends `signo` (1..=64) to exactly this process. ESRCH (`ERR_NO_SUCH_PROCESS`) once it
    /// has exited.
    pub fn signal(&self, signo: i32) -> Result<()> {
        let signo = signal::check(signo)?;
        match &self.fd {
            Some(fd) => pidfd::send_signal(fd.as_fd(), signo, self.pid),
            None => {
                // No pidfd: re-check identity right before kill(2), the best this kernel allows.
                let what = format!("sending signal {signo} to pid {}", self.pid);
                if !matches!(zombie(self.pid, self.start_time), Zombie::Running) {
                    return Err(Error::sys("kill", libc::ESRCH, what));
                }
                signal::kill(self.pid, signo)
            }
        }
    }

    /// Whether the whole process has exited (it may wait to be reaped), as the kernel says now.
    pub fn exited(&self) -> bool {
        match &self.fd {
            // A pidfd polls readable once every thread of the process has exited.
            Some(fd) => {
                let mut fds = [PollFd::new(fd, PollFlags::IN)];
                matches!(poll(&mut fds, Some(&Timespec::default())), Ok(n) if n > 0)
            }
            None => !matches!(zombie(self.pid, self.start_time), Zombie::Running),
        }
    }

    /// Closes the pidfd (if any), counting it in `released`.
    pub fn release(self, how: Release, released: &mut Released) {
        if let Some(fd) = self.fd {
            released.add(FdKind::Pidfd);
            fd.close(how);
        }
    }
}

//! A process watch through its pidfd: readable once the whole process has exited.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::event::epoll::EventFlags;

use crate::error::Result;
use crate::exit;
use crate::fd::{CountedFd, Release, Released};
use crate::pidfd;
use crate::procstat;
use crate::source::{Keep, Ready, Source};

pub struct PidWatch {
    pid: i32,
    fd: CountedFd,
    start_time: Option<u64>,
    /// Our own child (spawned by lifewatch): reap it. Anyone else's zombie is left alone.
    reap: bool,
    /// A child of this process when watched (waitid can answer): for anyone else's process
    /// waitid is always ECHILD, a syscall saved per exit.
    child: bool,
}

impl PidWatch {
    pub fn open(pid: i32, reap: bool) -> Result<Self> {
        let fd = pidfd::open(pid)?;
        crate::failpoint::hook("pid_watch.opened");
        Ok(Self::from_pidfd(pid, fd, reap))
    }

    /// A pidfd taken at creation (clone3 CLONE_PIDFD) or opened just now.
    pub fn from_pidfd(pid: i32, fd: CountedFd, reap: bool) -> Self {
        // The start time is only trusted if the pidfd's process is still there after
        // reading it: until it is reaped its PID cannot be reused.
        let stat = procstat::read(pid).filter(|_| pidfd::alive(fd.as_fd()));
        // Unknown parent (unreadable /proc): ask waitid, as for a child.
        let child = reap || stat.is_none_or(|s| s.ppid as u32 == std::process::id());
        PidWatch {
            pid,
            fd: fd.commit(),
            start_time: stat.map(|s| s.start_time),
            reap,
            child,
        }
    }
}

impl Source for PidWatch {
    fn interest(&self) -> Option<(BorrowedFd<'_>, EventFlags)> {
        Some((self.fd.as_fd(), EventFlags::IN))
    }

    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep {
        let (status, source) = exit::resolve(
            self.fd.as_fd(),
            self.pid,
            self.start_time,
            self.reap,
            self.child,
        );
        exit::report(cx, self.pid, status, source)
    }

    fn joinable(&self) -> bool {
        pidfd::alive(self.fd.as_fd())
    }

    fn signal(&self, signo: i32) -> Result<()> {
        pidfd::send_signal(self.fd.as_fd(), signo, self.pid)
    }

    fn release(self: Box<Self>, how: Release, released: &mut Released) {
        released.add(self.fd.kind());
        self.fd.close(how);
    }
}

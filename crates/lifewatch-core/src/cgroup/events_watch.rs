//! inotify on one cgroup's `cgroup.events`: what the manager's waits (freeze, emptiness)
//! block on between reads. The watch is added before the caller's first read, so no change
//! can slip in between.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::inotify;
use rustix::time::Timespec;

use crate::cgroup::empty::Cancel;
use crate::error::{Code, Error, Result, SysResult};
use crate::fd::{CountedFd, FdKind};

pub(crate) struct EventsWatch {
    fd: CountedFd,
}

impl EventsWatch {
    pub(crate) fn new(dir: &Path) -> Result<EventsWatch> {
        let fd = crate::failpoint::hit("inotify_init1")
            .and_then(|()| {
                inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            })
            .sys("inotify_init1", "watching cgroup.events")?;
        let fd = CountedFd::new(fd, FdKind::Inotify);
        let events = dir.join("cgroup.events");
        crate::failpoint::hit("inotify_add_watch")
            .and_then(|()| inotify::add_watch(&fd, &events, inotify::WatchFlags::MODIFY))
            .sys(
                "inotify_add_watch",
                format!("watching {}", events.display()),
            )
            .map_err(|e| match e.errno {
                Some(libc::ENOENT) => e.with_code(Code::NoSuchCgroup),
                _ => e,
            })
            .map_err(|e| e.with_path(&events))?;
        Ok(EventsWatch { fd: fd.commit() })
    }

    /// Consumes the pending notifications (the caller re-reads the files after).
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 4096];
        while matches!(rustix::io::read(&self.fd, &mut buf), Ok(n) if n > 0) {}
    }

    /// Waits for a modification: false on deadline or cancel.
    pub(crate) fn wait(&self, deadline: Instant, cancel: Option<&Cancel>) -> Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ts = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = vec![PollFd::new(&self.fd, PollFlags::IN)];
        if let Some(c) = cancel {
            fds.push(PollFd::from_borrowed_fd(c.as_fd(), PollFlags::IN));
        }
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(true),
            Err(e) => {
                return Err(Error::sys(
                    "poll",
                    e.raw_os_error(),
                    "waiting on cgroup.events",
                ))
            }
        }
        if fds.get(1).is_some_and(|f| !f.revents().is_empty()) {
            return Ok(false);
        }
        self.drain();
        Ok(true)
    }
}

impl AsFd for EventsWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

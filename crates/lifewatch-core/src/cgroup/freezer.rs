//! Freezing: `cgroup.freeze` on a unified hierarchy (v2, or hybrid hosts, whose unified
//! children have it), waited for through `cgroup.events` `frozen 1` with inotify; else the
//! v1 freezer's `freezer.state`, which has no notification and is re-read with a bounded
//! backoff until it says FROZEN.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::inotify;
use rustix::time::Timespec;

use crate::cgroup::empty::Cancel;
use crate::cgroup::files;
use crate::cgroup::manager::Cgroup;
use crate::error::{Code, Error, Result, SysResult};
use crate::fd::{CountedFd, FdKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freezer {
    /// `cgroup.freeze` on the unified hierarchy.
    Unified,
    /// v1 `freezer.state`.
    V1,
}

impl Cgroup {
    /// Which freezer this cgroup uses, if any.
    pub fn freezer(&self) -> Option<Freezer> {
        if self
            .unified_dir()
            .is_some_and(|d| files::exists(d, "cgroup.freeze"))
        {
            Some(Freezer::Unified)
        } else if self.v1_dir("freezer").is_some() {
            Some(Freezer::V1)
        } else {
            None
        }
    }

    /// Starts freezing or thawing without waiting for it to complete.
    pub fn set_frozen(&self, frozen: bool) -> Result<Freezer> {
        let what = if frozen {
            "freezing the cgroup"
        } else {
            "thawing the cgroup"
        };
        match self.freezer() {
            Some(Freezer::Unified) => {
                let dir = self.unified_dir().expect("checked");
                files::write(dir, "cgroup.freeze", if frozen { "1" } else { "0" }, what)?;
                Ok(Freezer::Unified)
            }
            Some(Freezer::V1) => {
                let dir = self.v1_dir("freezer").expect("checked");
                let state = if frozen { "FROZEN" } else { "THAWED" };
                files::write(dir, "freezer.state", state, what)?;
                Ok(Freezer::V1)
            }
            None => Err(Error::new(
                Code::UnsupportedKernel,
                format!(
                    "{what} /{}: no cgroup.freeze on a unified hierarchy and no v1 freezer hierarchy",
                    self.path().as_str()
                ),
            )),
        }
    }

    /// Freezes every process of the cgroup; returns once the kernel reports it frozen.
    pub fn freeze(&self, timeout: Duration, cancel: Option<&Cancel>) -> Result<()> {
        self.set_state(true, timeout, cancel)
    }

    pub fn thaw(&self, timeout: Duration, cancel: Option<&Cancel>) -> Result<()> {
        self.set_state(false, timeout, cancel)
    }

    fn set_state(&self, frozen: bool, timeout: Duration, cancel: Option<&Cancel>) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let what = if frozen { "freezing" } else { "thawing" };
        let busy = || {
            Error::new(
                Code::CgroupBusy,
                format!(
                    "{what} cgroup /{}: not done within {timeout:?}",
                    self.path().as_str()
                ),
            )
        };
        match self.freezer() {
            Some(Freezer::Unified) => {
                let dir = self.unified_dir().expect("checked");
                let watch = EventsWatch::new(dir)?;
                self.set_frozen(frozen)?;
                loop {
                    let text = files::read(dir, "cgroup.events", "reading the freezer state")?;
                    if files::keyed(&text, "frozen") == Some(frozen as u64) {
                        return Ok(());
                    }
                    if !watch.wait(deadline, cancel)? {
                        return Err(busy());
                    }
                }
            }
            _ => {
                self.set_frozen(frozen)?;
                let dir = self.v1_dir("freezer").expect("set_frozen checked");
                let want = if frozen { "FROZEN" } else { "THAWED" };
                let mut backoff = Duration::from_micros(500);
                loop {
                    let state = files::read(dir, "freezer.state", "reading the freezer state")?;
                    if state.trim() == want {
                        return Ok(());
                    }
                    let now = Instant::now();
                    if now >= deadline || cancel.is_some_and(Cancel::is_cancelled) {
                        return Err(busy());
                    }
                    std::thread::sleep(backoff.min(deadline - now));
                    backoff = (backoff * 2).min(Duration::from_millis(20));
                }
            }
        }
    }
}

/// inotify on one cgroup's `cgroup.events`.
pub(crate) struct EventsWatch {
    fd: CountedFd,
}

impl EventsWatch {
    pub(crate) fn new(dir: &Path) -> Result<EventsWatch> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .sys("inotify_init1", "watching cgroup.events")?;
        let fd = CountedFd::new(fd, FdKind::Inotify);
        let events = dir.join("cgroup.events");
        inotify::add_watch(&fd, &events, inotify::WatchFlags::MODIFY)
            .sys(
                "inotify_add_watch",
                format!("watching {}", events.display()),
            )
            .map_err(|e| e.with_path(&events))?;
        Ok(EventsWatch { fd: fd.commit() })
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
        let mut buf = [0u8; 1024];
        while matches!(rustix::io::read(&self.fd, &mut buf), Ok(n) if n > 0) {}
        Ok(true)
    }
}

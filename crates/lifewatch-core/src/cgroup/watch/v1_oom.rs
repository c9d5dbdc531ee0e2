//! cgroup v1 OOM notifications: an eventfd registered through `cgroup.event_control`
//! against `memory.oom_control` (runc's notify_linux.go, containerd 0.2.3's OOM fd), in
//! the Monitor's one epoll. Unlike runc, nothing is dropped: readiness is handled on the
//! reactor thread and events are queued. The eventfd counter coalesces, so the event
//! reports the `oom_kill` delta (baselined at registration), not notifications. The
//! eventfd also fires when the cgroup is removed: a directory that is gone means
//! `removed`, as containerd tells the two apart. `v1_pressure` reuses the registration.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::epoll::EventFlags;
use rustix::event::{eventfd, EventfdFlags};
use rustix::fs::{open, Mode, OFlags};

use crate::cgroup::watch::hub::{lock, SharedHub};
use crate::cgroup::watch::oom_check::KILL_WAIT;
use crate::error::{Code, Result, SysResult};
use crate::event::{EventKind, WatchId};
use crate::fd::{CountedFd, FdKind, Release, Released};
use crate::reactor::{Interest, Keep, Ready, Source};

/// Registers a fresh eventfd for `dir/file` with optional arguments (the pressure level).
/// Every fd opened here is closed on every error path; the control fds are closed once
/// the kernel holds its references (it keeps the eventfd, not our file descriptors).
pub(crate) fn register(dir: &Path, file: &str, args: Option<&str>) -> Result<CountedFd> {
    let what = format!("registering {file} notifications on {}", dir.display());
    let not_found = |e: crate::error::Error, p: PathBuf| {
        let e = e.with_path(p);
        match e.errno {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => e.with_code(Code::NoSuchCgroup),
            _ => e,
        }
    };
    let efd = CountedFd::new(
        crate::failpoint::hit("eventfd")
            .and_then(|()| eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK))
            .sys("eventfd", &what)?,
        FdKind::Eventfd,
    );
    let target_path = dir.join(file);
    let target = CountedFd::new(
        crate::failpoint::hit("open")
            .and_then(|()| {
                open(
                    &target_path,
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
            })
            .sys("open", &what)
            .map_err(|e| not_found(e, target_path.clone()))?,
        FdKind::Control,
    );
    let ctl_path = dir.join("cgroup.event_control");
    let ctl = CountedFd::new(
        crate::failpoint::hit("open")
            .and_then(|()| open(&ctl_path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()))
            .sys("open", &what)
            .map_err(|e| not_found(e, ctl_path.clone()))?,
        FdKind::Control,
    );
    let line = match args {
        Some(a) => format!("{} {} {a}", efd.as_raw_fd(), target.as_raw_fd()),
        None => format!("{} {}", efd.as_raw_fd(), target.as_raw_fd()),
    };
    crate::failpoint::hit("write")
        .and_then(|()| rustix::io::write(&ctl, line.as_bytes()))
        .sys("write", format!("{what} (cgroup.event_control)"))
        .map_err(|e| e.with_path(&ctl_path))?;
    ctl.commit().close(Release::Normal);
    target.commit().close(Release::Normal);
    Ok(efd)
}

/// What a v1 eventfd was registered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum V1What {
    Oom,
    /// The level argument as written (`medium,local`).
    Pressure(String),
}

/// One eventfd of one cgroup watch.
pub(crate) struct V1Part {
    pub watch: WatchId,
    pub fd: CountedFd,
    pub what: V1What,
    pub dir: PathBuf,
    pub hub: SharedHub,
}

/// v1 notifies when the OOM starts, before the killer has counted its kill: while the OOM
/// waits for its kill (the hub's wait, however it began), its counters are re-read
/// `RECHECK_FIRST` apart, then an eighth of the time waited so far apart. The kernel counts
/// the kill tens to hundreds of microseconds after it notifies (it logs the OOM report
/// first): the event comes at most `RECHECK_FIRST` or an eighth of that delay after the
/// kill, where doubling delays came up to twice as late. The last re-read falls on the end
/// of the wait, when an OOM without a kill is reported alone: about 70 in all.
const RECHECK_FIRST: Duration = Duration::from_micros(50);

/// When to re-read next, at `now`, for an OOM waiting for its kill since `since`. None past
/// twice the wait: then the counters could not be read (its removal reports the OOM).
fn next_recheck(now: Instant, since: Instant) -> Option<Instant> {
    let waited = now.saturating_duration_since(since);
    if waited > KILL_WAIT * 2 {
        return None;
    }
    let at = now + RECHECK_FIRST.max(waited / 8);
    let end = since + KILL_WAIT;
    Some(if now < end { at.min(end) } else { at })
}

impl V1Part {
    pub(crate) fn new(
        watch: WatchId,
        fd: CountedFd,
        what: V1What,
        dir: PathBuf,
        hub: SharedHub,
    ) -> Self {
        V1Part {
            watch,
            fd: fd.commit(),
            what,
            dir,
            hub,
        }
    }

    /// Reads (resets) the eventfd counter; false when there was nothing (a timed recheck).
    fn flush(&self) -> bool {
        let mut buf = [0u8; 8];
        matches!(rustix::io::read(self.fd.as_fd(), &mut buf), Ok(8))
    }
}

impl Source for V1Part {
    fn interest(&self) -> Option<Interest<'_>> {
        Some(Interest {
            fd: self.fd.as_fd(),
            flags: EventFlags::IN,
        })
    }

    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep {
        // Always flush, or level-triggered epoll reports it again at once.
        let notified = self.flush();
        let hub_ref = std::sync::Arc::clone(&self.hub);
        let mut hub = lock(&hub_ref);
        let Some(w) = hub.watches.get(&self.watch) else {
            return Keep::No;
        };
        if !self.dir.exists() {
            return hub.part_gone(self.watch, cx.time, cx.out);
        }
        match &self.what {
            V1What::Oom => {
                hub.check_oom(self.watch, cx.time, notified, cx.out);
                let next = hub
                    .oom_wait_since(self.watch)
                    .and_then(|since| next_recheck(Instant::now(), since));
                match next {
                    Some(at) => cx.wake_at(at),
                    None => cx.cancel_wake(),
                }
            }
            V1What::Pressure(level) => {
                let cgroup = w.name();
                let level = level.split(',').next().unwrap_or(level).to_string();
                cx.out.push(crate::event::Event {
                    watch: self.watch,
                    time: cx.time,
                    kind: EventKind::Pressure {
                        cgroup: Some(cgroup),
                        resource: "memory".into(),
                        level: Some(level),
                        trigger: None,
                    },
                });
            }
        }
        Keep::Yes
    }

    fn release(self: Box<Self>, how: Release, released: &mut Released) {
        released.add(self.fd.kind());
        self.fd.close(how);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rechecks_come_an_eighth_of_the_wait_apart_and_end_with_it() {
        let since = Instant::now();
        let ms = Duration::from_millis;
        let next = |waited: Duration| next_recheck(since + waited, since).map(|at| at - since);
        assert_eq!(next(Duration::ZERO), Some(RECHECK_FIRST));
        assert_eq!(next(ms(4)), Some(ms(4) + ms(4) / 8));
        assert_eq!(
            next(ms(499)),
            Some(KILL_WAIT),
            "the last falls on the end of the wait"
        );
        // Past it only when the counters could not be read: on, but never past twice the wait.
        assert_eq!(next(ms(600)), Some(ms(600) + ms(600) / 8));
        assert_eq!(next(KILL_WAIT * 2 + ms(1)), None);
        let mut waited = Duration::ZERO;
        let mut count = 0;
        while let Some(at) = next(waited).filter(|&at| at <= KILL_WAIT) {
            (waited, count) = (at, count + 1);
            if at == KILL_WAIT {
                break;
            }
        }
        assert!(
            (60..80).contains(&count),
            "{count} re-reads in a whole wait"
        );
    }
}

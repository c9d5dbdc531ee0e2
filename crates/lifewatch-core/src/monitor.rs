//! The public handle: one reactor thread, watches, signals, close. Close is idempotent
//! and safe from any owner (user `close()`, a finalizer, an env cleanup hook) in any order.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::event::{Event, WatchId};
use crate::fallback::FallbackWatch;
use crate::fd::{CountedFd, Release, Released};
use crate::pid_watch::PidWatch;
use crate::pidfd;
use crate::reactor::{Notify, Shared, CLOSED};
use crate::signal;

/// Linux's PID_MAX_LIMIT (2^22): no PID is ever larger.
pub const PID_MAX_LIMIT: i64 = 1 << 22;

#[derive(Debug, Clone, Default)]
pub struct MonitorOptions {
    /// Watch processes by polling even where pidfd exists (tests of the old-kernel path).
    pub force_fallback: bool,
    /// A cgroup tree to use instead of the mounted hierarchies (`Layout::from_root`).
    pub cgroup_root: Option<std::path::PathBuf>,
}

pub struct Monitor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cgroups: crate::monitor_cgroup::Cgroups,
    thread: Mutex<Option<JoinHandle<()>>>,
    use_pidfd: bool,
}

pub fn check_pid(pid: i64) -> Result<i32> {
    if pid <= 0 || pid > PID_MAX_LIMIT {
        return Err(Error::invalid(format!(
            "pid {pid} is out of range (1..={PID_MAX_LIMIT})"
        )));
    }
    Ok(pid as i32)
}

impl Monitor {
    /// `notify` is called from the reactor thread once per batch, when events become
    /// available after a `drain`; it must not block.
    pub fn new(options: MonitorOptions, notify: Notify) -> Result<Monitor> {
        let shared = Arc::new(Shared::new(notify)?);
        let looping = Arc::clone(&shared);
        let thread = crate::failpoint::hit("clone")
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
            .and_then(|()| {
                std::thread::Builder::new()
                    .name("lifewatch-reactor".into())
                    .spawn(move || looping.run())
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                shared.teardown(Release::LeakPrevented);
                return Err(Error::sys(
                    "clone",
                    e.raw_os_error().unwrap_or(libc::EAGAIN),
                    "starting the reactor thread",
                ));
            }
        };
        let cgroups = crate::monitor_cgroup::Cgroups::new(options.cgroup_root.clone(), &shared);
        Ok(Monitor {
            shared,
            cgroups,
            thread: Mutex::new(Some(thread)),
            use_pidfd: !options.force_fallback && pidfd::supported(),
        })
    }

    /// Whether process watches use pidfd (false: fallback polling).
    pub fn uses_pidfd(&self) -> bool {
        self.use_pidfd
    }

    /// Watches any process, child or not. A PID that is already gone is `ERR_NO_SUCH_PROCESS`;
    /// one that has exited but not been reaped (a zombie) reports its exit at once.
    pub fn watch_pid(&self, pid: i64) -> Result<WatchId> {
        self.watch_process(check_pid(pid)?, false)
    }

    /// Watches a child lifewatch started itself; its zombie is reaped when it exits.
    pub fn watch_own_child(&self, pid: i32, pidfd: Option<CountedFd>) -> Result<WatchId> {
        match pidfd {
            Some(fd) => self
                .shared
                .register(Box::new(PidWatch::from_pidfd(pid, fd, true))),
            None => self.watch_process(pid, true),
        }
    }

    fn watch_process(&self, pid: i32, reap: bool) -> Result<WatchId> {
        self.check_open()?;
        if self.use_pidfd {
            // Another watch of this process shares its pidfd; our own children are watched
            // once, at spawn, and reaped by that watch.
            let share = (!reap).then_some(pid);
            if let Some(pid) = share {
                if let Some(id) = self.shared.join(pid)? {
                    return Ok(id);
                }
            }
            self.shared
                .register_shared(Box::new(PidWatch::open(pid, reap)?), share)
        } else {
            self.shared
                .register(Box::new(FallbackWatch::open(pid, reap)?))
        }
    }

    /// Stops a watch and closes its fds; `false` if it already ended.
    pub fn unwatch(&self, id: WatchId) -> Result<bool> {
        self.check_open()?;
        if let Some(stopped) = self.unwatch_cgroup(id) {
            return Ok(stopped);
        }
        Ok(self
            .shared
            .unregister(id, Release::Normal, &mut Released::default()))
    }

    /// Signals a watched process through its own pidfd: it can never reach a reused PID.
    pub fn signal(&self, id: WatchId, signo: i32) -> Result<()> {
        self.check_open()?;
        self.shared.signal(id, signal::check(signo)?)
    }

    /// An fd that is readable whenever a watch has something to report. A consumer with an
    /// event loop of its own may watch it, call `set_direct(true)`, and call `turn_now` when
    /// it is readable: events then reach it with one thread wakeup instead of two, and the
    /// reactor handles only what the consumer leaves for longer than a short grace period.
    /// It is closed by `close`: `set_direct(false)` and stop watching it first.
    pub fn ready_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.shared.epoll_fd())
    }

    /// Direct mode on (a consumer now watches `ready_fd`) or off (before it stops): see
    /// `ready_fd`.
    pub fn set_direct(&self, on: bool) {
        self.shared.set_direct(on)
    }

    /// Handles what is ready now, on the calling thread, and returns every queued event
    /// (as `drain`) for the caller to deliver at once; see `ready_fd`.
    pub fn turn_now(&self) -> Vec<Event> {
        self.shared.turn_now()
    }

    /// Puts events that were taken (`turn_now`, `drain`) but could not be delivered back at
    /// the head of the queue, with a notification as for a new batch.
    pub fn requeue(&self, events: Vec<Event>) {
        self.shared.requeue(events)
    }

    /// Every event queued since the last drain, in the order the kernel reported them.
    pub fn drain(&self) -> Vec<Event> {
        self.shared.drain()
    }

    pub fn watch_count(&self) -> usize {
        self.shared.registry().len()
    }

    /// How many batches were handed over: notifications raised plus non-empty `turn_now`
    /// results (each one N-API call in the binding).
    pub fn notifications(&self) -> u64 {
        self.shared.notifications.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.shared.state.load(Ordering::SeqCst) == CLOSED
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        self.shared.check_open()
    }

    /// Stops the loop and closes every fd; returns what was released. Idempotent.
    pub fn close(&self) -> Released {
        self.close_as(Release::Normal)
    }

    /// Close from a finalizer or env cleanup: the owner forgot `close()`, so what this
    /// releases counts as prevented leaks.
    pub fn close_as(&self, how: Release) -> Released {
        {
            // Under the registry lock so no registration races the state change.
            let _reg = self.shared.registry();
            if self.shared.state.swap(CLOSED, Ordering::SeqCst) == CLOSED {
                return Released::default();
            }
        }
        self.shared.wake();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
        let released = self.shared.teardown(how);
        self.cgroups.clear();
        released
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.close_as(Release::LeakPrevented);
    }
}

/// Signals a PID once, through a short-lived pidfd where the kernel has them.
pub fn signal_pid(pid: i64, signo: i32) -> Result<()> {
    let pid = check_pid(pid)?;
    let signo = signal::check(signo)?;
    match pidfd::open(pid) {
        Ok(fd) => {
            // Committed only once the signal went out: closing it on the error path counts
            // as a prevented leak, as everywhere else.
            pidfd::send_signal(std::os::fd::AsFd::as_fd(&fd), signo, pid)?;
            fd.commit().close(crate::fd::Release::Normal);
            Ok(())
        }
        Err(e) if e.code == crate::error::Code::UnsupportedKernel => {
            // SAFETY: plain kill(2) with a validated PID and signal.
            if unsafe { libc::kill(pid, signo) } == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error()).map_err(|e| {
                    Error::sys(
                        "kill",
                        e.raw_os_error().unwrap_or(libc::EIO),
                        format!("sending signal {signo} to pid {pid}"),
                    )
                })
            }
        }
        Err(e) => Err(e),
    }
}

//! The public handle: one reactor on its own thread, composed with the process watches and
//! the cgroup watches that register on it. Close is idempotent and safe from any owner (user
//! `close()`, a finalizer, an env cleanup hook) in any order.

use std::sync::{Arc, Mutex};

use crate::cgroup::layout::Layout;
use crate::cgroup::path::CgroupPath;
use crate::cgroup::watch::psi::PsiTrigger;
use crate::cgroup::watch::{CgroupWatchOptions, CgroupWatched, CgroupWatcher};
use crate::error::{Code, Error, Result};
use crate::event::{Event, Events, WatchId};
use crate::fd::{Release, Released};
use crate::process::host::{HostOptions, HostWatcher, TreeOptions};
use crate::process::kmsg::OomKillWatcher;
use crate::process::spawn::{self, CgroupDirs, Placement, SpawnOptions};
use crate::process::{check_not_thread, check_pid, pidfd, signal, Process, Processes};
use crate::reactor::join::Stoppable;
use crate::reactor::{Notify, Reactor};

#[derive(Debug, Clone, Default)]
pub struct MonitorOptions {
    /// Watch processes by polling even where pidfd exists (tests of the old-kernel path).
    pub force_fallback: bool,
    /// A cgroup tree to use instead of the mounted hierarchies (`Layout::from_root`).
    pub cgroup_root: Option<std::path::PathBuf>,
}

pub struct Monitor {
    reactor: Arc<Reactor>,
    thread: Mutex<Option<Stoppable>>,
    processes: Processes,
    cgroups: CgroupWatcher,
    host: HostWatcher,
    oom_kills: OomKillWatcher,
    use_pidfd: bool,
}

/// A child spawned by `Monitor::spawn`, watched (and reaped) by the monitor.
#[derive(Debug, Clone, Copy)]
pub struct Spawned {
    pub watch: WatchId,
    pub pid: i32,
    pub placement: Placement,
}

impl Monitor {
    /// `notify` is called from the reactor thread once per batch, when events become
    /// available after a `drain`; it must not block.
    pub fn new(options: MonitorOptions, notify: Notify) -> Result<Monitor> {
        let reactor = Arc::new(Reactor::new(notify)?);
        let oom_kills = OomKillWatcher::default();
        let cgroups = CgroupWatcher::new(options.cgroup_root.clone(), Some(oom_kills.shared()));
        reactor.set_after_turn(cgroups.before_exits());
        let looping = Arc::clone(&reactor);
        let thread = crate::failpoint::hit("clone")
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
            .and_then(|()| {
                Stoppable::spawn(
                    std::thread::Builder::new().name("lifewatch-reactor".into()),
                    move || looping.run(),
                )
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                reactor.begin_close();
                reactor.teardown(Release::LeakPrevented);
                return Err(Error::sys(
                    "clone",
                    e.raw_os_error().unwrap_or(libc::EAGAIN),
                    "starting the reactor thread",
                ));
            }
        };
        Ok(Monitor {
            reactor,
            thread: Mutex::new(Some(thread)),
            processes: Processes::default(),
            cgroups,
            host: HostWatcher::default(),
            oom_kills,
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
        self.processes
            .watch(&self.reactor, check_pid(pid)?, self.use_pidfd)
    }

    /// Spawns into the cgroup with these directories (if any: `Cgroup::spawn_dirs`) and watches
    /// the child from its first instant; the watch reaps it when it exits.
    pub fn spawn(&self, opts: &SpawnOptions, cgroup: Option<&CgroupDirs>) -> Result<Spawned> {
        self.reactor.check_open()?;
        let child = spawn::spawn(opts, cgroup)?;
        let (pid, placement) = (child.process.pid(), child.placement);
        // Refused, the source closed the child's pidfd: a new one names it still (our unreaped
        // child keeps its PID), to kill and reap it with.
        self.processes
            .watch_child(&self.reactor, child.process)
            .map(|watch| Spawned {
                watch,
                pid,
                placement,
            })
            .inspect_err(|_| kill_unwatched(pid))
    }

    /// Every process exit on the host (and forks, execs) through the process events
    /// connector; `options.cgroup` (a path as `watch_cgroup` takes it) keeps only processes in
    /// that cgroup or below it. See `HostWatcher`.
    pub fn watch_host(&self, mut options: HostOptions) -> Result<WatchId> {
        self.reactor.check_open()?;
        if let Some(path) = options.cgroup.take() {
            let p = CgroupPath::parse(&path, &self.cgroups.layout()?)?;
            options.cgroup = Some(format!("/{}", p.as_str()));
        }
        self.host.watch_host(&self.reactor, options)
    }

    /// The exits of `pid` and of all its descendants, those forked from now on included,
    /// until the last is gone (its exit says `remaining: 0`).
    pub fn watch_tree(&self, pid: i64, options: TreeOptions) -> Result<WatchId> {
        self.reactor.check_open()?;
        self.host
            .watch_tree(&self.reactor, check_pid(pid)?, options)
    }

    /// Every OOM kill on the host, from the kernel's log (`replay`: those still in it too).
    pub fn watch_oom_kills(&self, replay: bool) -> Result<WatchId> {
        self.cgroups.arm();
        self.oom_kills.watch(&self.reactor, replay)
    }

    /// Stops a watch and closes its fds; `false` if it already ended.
    pub fn unwatch(&self, id: WatchId) -> Result<bool> {
        self.reactor.check_open()?;
        if let Some(stopped) = self.cgroups.unwatch(&self.reactor, id) {
            return Ok(stopped);
        }
        if let Some(stopped) = self.host.unwatch(&self.reactor, id) {
            return Ok(stopped);
        }
        if let Some(stopped) = self.oom_kills.unwatch(&self.reactor, id) {
            return Ok(stopped);
        }
        Ok(self.processes.unwatch(&self.reactor, id))
    }

    /// Signals a watched process through its own pidfd: it can never reach a reused PID.
    pub fn signal(&self, id: WatchId, signo: i32) -> Result<()> {
        self.reactor.check_open()?;
        self.processes.signal(id, signal::check(signo)?)
    }

    /// The cgroup layout this monitor uses (detected once, or from `cgroup_root`).
    pub fn cgroup_layout(&self) -> Result<Layout> {
        self.cgroups.layout()
    }

    /// Watches a cgroup (a hierarchy-relative path such as `lifewatch/job1`, or a directory
    /// under a cgroup mount). Events: `oom`, `pressure`, `populated`, `frozen`, and finally
    /// `removed` once every watched directory is gone. See `CgroupWatcher::watch`.
    pub fn watch_cgroup(&self, path: &str, opts: &CgroupWatchOptions) -> Result<WatchId> {
        self.watch_cgroup_parts(path, opts).map(|w| w.id)
    }

    /// `watch_cgroup`, saying which parts serve the watch and which defaulted parts were left
    /// out for lack of permission.
    pub fn watch_cgroup_parts(
        &self,
        path: &str,
        opts: &CgroupWatchOptions,
    ) -> Result<CgroupWatched> {
        self.cgroups.watch(&self.reactor, path, opts)
    }

    /// Re-reads a cgroup watch's counters now (see `CgroupWatcher::check`); `false` when `id`
    /// is not an active cgroup watch.
    pub fn check_cgroup(&self, id: WatchId) -> Result<bool> {
        self.reactor.check_open()?;
        Ok(self.cgroups.check(&self.reactor, id).is_some())
    }

    /// Ends a cgroup watch whose cgroup its caller removed, with `removed` (see
    /// `CgroupWatcher::removed`); `false` when `id` is not an active cgroup watch.
    pub fn cgroup_removed(&self, id: WatchId) -> Result<bool> {
        self.reactor.check_open()?;
        Ok(self.cgroups.removed(&self.reactor, id).is_some())
    }

    /// A system-wide PSI trigger on `/proc/pressure/<resource>`: `pressure` events with no
    /// cgroup.
    pub fn watch_pressure(&self, trigger: PsiTrigger) -> Result<WatchId> {
        self.cgroups.watch_pressure(&self.reactor, trigger)
    }

    /// How many times the kernel's inotify queue overflowed (`max_queued_events`) and every
    /// cgroup watch was re-read instead.
    pub fn inotify_overflows(&self) -> u64 {
        self.cgroups.inotify_overflows()
    }

    /// An fd that is readable whenever a watch has something to report. A consumer with an
    /// event loop of its own may watch it, call `set_direct(true)`, and call `turn_now` when
    /// it is readable: events then reach it with one thread wakeup instead of two, and the
    /// reactor handles only what the consumer leaves for longer than a short grace period.
    /// It is closed by `close`: `set_direct(false)` and stop watching it first.
    pub fn ready_fd(&self) -> std::os::fd::RawFd {
        self.reactor.ready_fd()
    }

    /// Direct mode on (a consumer now watches `ready_fd`) or off (before it stops). `false`
    /// when it cannot be on (closed, or no backstop thread): then do not watch `ready_fd`.
    pub fn set_direct(&self, on: bool) -> bool {
        self.reactor.set_direct(on)
    }

    /// Handles what is ready now, on the calling thread, and returns every queued event
    /// for the caller to deliver at once, then to call `turn_done`; see `ready_fd`.
    pub fn turn_now(&self) -> Events {
        self.reactor.turn_now()
    }

    /// After delivering what a notification's `drain` returned (see `Reactor::consumer_drained`).
    pub fn consumer_drained(&self) {
        self.reactor.consumer_drained()
    }

    /// The consumer gathers a burst's readiness for `hold` before its next `turn_now`.
    pub fn hold(&self, hold: std::time::Duration) {
        self.reactor.consumer_holds(hold)
    }

    /// After delivering what `turn_now` returned: counts the turn, and closes the fds of the
    /// watches it ended.
    pub fn turn_done(&self) {
        self.reactor.turn_done()
    }

    /// Puts events that were taken (`turn_now`, `drain`) but could not be delivered back at
    /// the head of the queue, with a notification as for a new batch.
    pub fn requeue(&self, events: Vec<Event>) {
        self.reactor.requeue(events)
    }

    /// Every event queued since the last drain, in the order the kernel reported them.
    pub fn drain(&self) -> Vec<Event> {
        self.reactor.drain()
    }

    /// Active watches: process watches (each of several watches of one process counts),
    /// cgroup watches, host and tree watches, OOM-kill watches.
    pub fn watch_count(&self) -> usize {
        self.processes.count() + self.cgroups.count() + self.host.count() + self.oom_kills.count()
    }

    /// How many batches were handed over: notifications raised plus non-empty `turn_now`
    /// results (each one N-API call in the binding).
    pub fn notifications(&self) -> u64 {
        self.reactor.deliveries()
    }

    pub fn is_closed(&self) -> bool {
        self.reactor.is_closed()
    }

    /// Stops the loop and closes every fd; returns what was released. Idempotent.
    pub fn close(&self) -> Released {
        self.close_as(Release::Normal)
    }

    /// Close from a finalizer or env cleanup: the owner forgot `close()`, so what this
    /// releases counts as prevented leaks.
    pub fn close_as(&self, how: Release) -> Released {
        if !self.reactor.begin_close() {
            return Released::default();
        }
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            t.join_here();
        }
        let released = self.reactor.teardown(how);
        self.processes.clear();
        self.cgroups.clear();
        self.host.clear();
        self.oom_kills.clear();
        released
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.close_as(Release::LeakPrevented);
    }
}

/// A child we spawned but could not watch: killed and reaped here (its PID cannot be reused
/// before it is reaped, so a pidfd opened now still names it).
fn kill_unwatched(pid: i32) {
    if let Ok(child) = Process::open(pid) {
        let _ = child.signal(libc::SIGKILL);
        if let Some(fd) = child.pidfd() {
            let _ = rustix::process::waitid(
                rustix::process::WaitId::PidFd(fd),
                rustix::process::WaitIdOptions::EXITED,
            );
        }
        child.release(Release::Normal, &mut Released::default());
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
            fd.commit().close(Release::Normal);
            Ok(())
        }
        Err(e) if e.code == Code::UnsupportedKernel => {
            check_not_thread(pid)?;
            signal::kill(pid, signo)
        }
        Err(e) => Err(e),
    }
}

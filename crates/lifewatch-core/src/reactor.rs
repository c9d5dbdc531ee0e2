//! One epoll instance and one wait loop per Monitor (containerd 0.2.3's Monitor, seed 002),
//! without its pitfalls: a failing epoll_wait is reported as an event, not fatal, and
//! events are queued for the consumer instead of being sent on a channel that can fill.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags};
use rustix::time::Timespec;

use crate::error::{Code, Error, Result, SysResult};
use crate::event::{monotonic_ns, Event, EventKind, WatchId};
use crate::failpoint;
use crate::fd::{CountedFd, FdKind, Release, Released};
use crate::registry::{Registry, Removed, ShareKey};
use crate::source::{Keep, Ready, Source};

/// epoll data of the waker eventfd; watch ids start at 1.
const WAKER: u64 = 0;
const BATCH: usize = 256;

pub const OPEN: u8 = 0;
/// The wait loop ended on an error: nothing registered now would ever be reported.
pub const STOPPED: u8 = 1;
pub const CLOSED: u8 = 2;

pub type Notify = Box<dyn Fn() + Send + Sync>;

/// Called on the reactor thread before a batch holding an exit is published, with the
/// readiness time; events it pushes go right before the first exit (cgroup OOM kills).
pub type BeforeExit = Box<dyn Fn(u64, &mut Vec<Event>) + Send + Sync>;

pub struct Shared {
    /// Raw copies for the wait loop; the owners sit in `owned` and are closed only after
    /// the loop thread has been joined.
    epoll: RawFd,
    waker: RawFd,
    owned: Mutex<Option<[CountedFd; 2]>>,
    registry: Mutex<Registry>,
    queue: Mutex<Vec<Event>>,
    wake_pending: AtomicBool,
    notify: Notify,
    pub(crate) state: AtomicU8,
    pub(crate) notifications: AtomicU64,
    pub(crate) before_exit: OnceLock<BeforeExit>,
}

impl Shared {
    pub fn new(notify: Notify) -> Result<Shared> {
        let epoll = CountedFd::new(
            failpoint::hit("epoll_create1")
                .and_then(|()| epoll::create(epoll::CreateFlags::CLOEXEC))
                .sys("epoll_create1", "creating a monitor")?,
            FdKind::Epoll,
        );
        let waker = CountedFd::new(
            failpoint::hit("eventfd")
                .and_then(|()| eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK))
                .sys("eventfd", "creating a monitor")?,
            FdKind::Eventfd,
        );
        failpoint::hit("epoll_ctl")
            .and_then(|()| epoll::add(&epoll, &waker, EventData::new_u64(WAKER), EventFlags::IN))
            .sys("epoll_ctl", "creating a monitor")?;
        Ok(Shared {
            epoll: epoll.as_raw_fd(),
            waker: waker.as_raw_fd(),
            owned: Mutex::new(Some([epoll.commit(), waker.commit()])),
            registry: Mutex::new(Registry::default()),
            queue: Mutex::new(Vec::new()),
            wake_pending: AtomicBool::new(false),
            notify,
            state: AtomicU8::new(OPEN),
            notifications: AtomicU64::new(0),
            before_exit: OnceLock::new(),
        })
    }

    /// `ERR_CLOSED` after close; `ERR_IO` once the wait loop has stopped on an error.
    pub fn check_open(&self) -> Result<()> {
        match self.state.load(Ordering::SeqCst) {
            OPEN => Ok(()),
            STOPPED => Err(Error::new(
                Code::Io,
                "the monitor's wait loop stopped after an error (see its error event): close it",
            )),
            _ => Err(Error::closed()),
        }
    }

    fn epoll_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `owned` keeps the fd open until `close`, which joins the loop first and
        // takes the registry lock that every other user holds.
        unsafe { BorrowedFd::borrow_raw(self.epoll) }
    }

    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a source and returns its watch id. On any failure the source's fds are
    /// closed right here (counted as prevented leaks).
    pub fn register(&self, source: Box<dyn Source>) -> Result<WatchId> {
        self.register_shared(source, None)
    }

    /// Like `register`; later `join(share)` calls may add watches on this source.
    pub fn register_shared(
        &self,
        source: Box<dyn Source>,
        share: Option<ShareKey>,
    ) -> Result<WatchId> {
        let mut reg = self.registry();
        if let Err(e) = self.check_open() {
            source.release(Release::LeakPrevented, &mut Released::default());
            return Err(e);
        }
        let id = reg.next_id();
        if let Some((fd, flags)) = source.interest() {
            let added = failpoint::hit("epoll_ctl").and_then(|()| {
                epoll::add(self.epoll_fd(), fd, EventData::new_u64(id as u64), flags)
            });
            if let Err(e) = added {
                source.release(Release::LeakPrevented, &mut Released::default());
                return Err(e).sys("epoll_ctl", format!("registering watch {id}"));
            }
        }
        let polled = source.due().is_some();
        reg.insert(id, source, share);
        drop(reg);
        if polled {
            // The loop may be sleeping without a deadline: make it recompute.
            self.wake();
        }
        Ok(id)
    }

    /// A new watch on the live source registered under `share`, if there is one.
    pub fn join(&self, share: ShareKey) -> Result<Option<WatchId>> {
        let mut reg = self.registry();
        self.check_open()?;
        Ok(reg.join(share))
    }

    /// A watch id with no source of its own (a cgroup watch served by several sources).
    pub fn reserve_id(&self) -> WatchId {
        self.registry().next_id()
    }

    /// Removes a watch; `false` when it is not (or no longer) registered.
    pub fn unregister(&self, id: WatchId, how: Release, released: &mut Released) -> bool {
        let mut reg = self.registry();
        match reg.remove(id) {
            Removed::None => false,
            Removed::Subscriber => true,
            Removed::Source(src) => {
                self.retire(src, how, released);
                true
            }
        }
    }

    fn retire(&self, src: Box<dyn Source>, how: Release, released: &mut Released) {
        if let Some((fd, _)) = src.interest() {
            // Closing would drop it from the set too; removing first keeps the set exact.
            let _ = epoll::delete(self.epoll_fd(), fd);
        }
        src.release(how, released);
    }

    pub fn signal(&self, id: WatchId, signo: i32) -> Result<()> {
        let reg = self.registry();
        match reg.source(id) {
            Some(src) => src.signal(signo),
            None => Err(Error::new(
                Code::NoSuchProcess,
                format!("watch {id} is not active (its process exited or it was removed)"),
            )),
        }
    }

    pub fn wake(&self) {
        let _ = rustix::io::write(
            unsafe { BorrowedFd::borrow_raw(self.waker) },
            &1u64.to_ne_bytes(),
        );
    }

    /// Takes every queued event. Clears the pending flag first, so an event queued while
    /// draining raises a fresh notification instead of waiting for the next one.
    pub fn drain(&self) -> Vec<Event> {
        self.wake_pending.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn publish(&self, mut events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&mut events);
        // One notification per batch, however many events and however slow the consumer.
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            self.notifications.fetch_add(1, Ordering::Relaxed);
            (self.notify)();
        }
    }

    /// The wait loop. Idle means blocked in epoll_wait with no timeout: no wakeups at all.
    pub fn run(&self) {
        let mut ready: Vec<epoll::Event> = Vec::with_capacity(BATCH);
        loop {
            let timeout = self.registry().next_due().map(|due| {
                let d = due.saturating_duration_since(Instant::now());
                Timespec {
                    tv_sec: d.as_secs() as _,
                    tv_nsec: d.subsec_nanos() as _,
                }
            });
            ready.clear();
            let waited = failpoint::hit("epoll_wait").and_then(|()| {
                epoll::wait(
                    self.epoll_fd(),
                    spare_capacity(&mut ready),
                    timeout.as_ref(),
                )
            });
            if let Err(e) = waited {
                if e == rustix::io::Errno::INTR {
                    continue;
                }
                // Under the registry lock: a registration either lands before (and is
                // covered by the error event) or is refused.
                {
                    let _reg = self.registry();
                    let _ = self.state.compare_exchange(
                        OPEN,
                        STOPPED,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
                self.publish(vec![Event {
                    watch: 0,
                    time: monotonic_ns(),
                    kind: EventKind::Error {
                        code: Code::Io,
                        message: format!("epoll_wait failed, the monitor stopped: {e}"),
                    },
                }]);
                return;
            }
            let time = monotonic_ns();
            if self.state.load(Ordering::SeqCst) != OPEN {
                return;
            }
            let mut out = Vec::new();
            let mut reg = self.registry();
            for ev in &ready {
                let id = ev.data.u64();
                if id == WAKER {
                    let mut buf = [0u8; 8];
                    let _ =
                        rustix::io::read(unsafe { BorrowedFd::borrow_raw(self.waker) }, &mut buf);
                    continue;
                }
                self.dispatch(&mut reg, id as WatchId, time, &mut out);
            }
            for id in reg.due_keys(Instant::now()) {
                self.dispatch(&mut reg, id, time, &mut out);
            }
            if let Some(hook) = self.before_exit.get() {
                if let Some(i) = out
                    .iter()
                    .position(|e| matches!(e.kind, EventKind::Exit { .. }))
                {
                    let mut first = Vec::new();
                    hook(time, &mut first);
                    out.splice(i..i, first);
                }
            }
            drop(reg);
            self.publish(out);
        }
    }

    fn dispatch(&self, reg: &mut Registry, key: WatchId, time: u64, out: &mut Vec<Event>) {
        let watch = reg.first_watch(key);
        // A source removed by `unwatch` after epoll_wait returned is simply gone.
        let Some(src) = reg.source_mut(key) else {
            return;
        };
        let from = out.len();
        let mut cx = Ready { watch, time, out };
        let keep = src.ready(&mut cx);
        reg.fan_out(key, out, from);
        if keep == Keep::No {
            let src = reg.remove_source(key).expect("present above");
            self.retire(src, Release::Normal, &mut Released::default());
        }
    }

    /// After the loop has been joined: releases every source, then the epoll and waker fds.
    pub fn teardown(&self, how: Release) -> Released {
        let mut released = Released::default();
        let mut reg = self.registry();
        for src in reg.drain() {
            self.retire(src, how, &mut released);
        }
        if let Some(fds) = self.owned.lock().unwrap_or_else(|p| p.into_inner()).take() {
            for fd in fds {
                released.add(fd.kind());
                fd.close(how);
            }
        }
        drop(reg);
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).clear();
        released
    }
}

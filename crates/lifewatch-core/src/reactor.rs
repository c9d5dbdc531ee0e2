//! One epoll instance and one wait loop per Monitor (containerd 0.2.3's Monitor, seed 002),
//! without its pitfalls: a failing epoll_wait is reported as an event, not fatal, and
//! events are queued for the consumer instead of being sent on a channel that can fill.
//!
//! Two epoll fds: `epoll` holds the sources, `outer` holds `epoll`, the waker and the few
//! sources that must not be nested (`Source::nestable`), and the reactor thread sleeps on
//! `outer`. A consumer with an event loop of its own (Node's)
//! may watch `epoll` and call `turn_now` when it is readable: an exit then wakes the
//! consumer's thread directly instead of waking the reactor, which then wakes the consumer
//! (two scheduler wakeups in a row). In that direct mode the reactor leaves ready sources
//! to the consumer for `GRACE` and handles only what is still there after it (a consumer
//! busy elsewhere), timestamped when the reactor first saw it. When it did find something
//! left (a burst the consumer cannot keep up with), it stops waiting and handles readiness
//! at once, in parallel with the consumer's deliveries, until a turn finds nothing or
//! readiness pauses for `EAGER`. The waker stays out of `epoll`, so only the reactor ever
//! consumes it.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

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

/// epoll data in `outer` of the waker eventfd and the sources' epoll fd; any other data in
/// either set is a watch id (ids start at 1 and never get near these).
const WAKER: u64 = u64::MAX;
const SOURCES: u64 = u64::MAX - 1;
/// How long, in direct mode, ready sources are left to the consumer's turn: a consumer that
/// is awake takes them well within it; a busy one gets them from the reactor's queue.
const GRACE: Duration = Duration::from_millis(5);
/// How long after finding work left by the consumer the reactor keeps handling readiness at
/// once: a burst keeps renewing it; a single exit after a pause is the consumer's again.
const EAGER: Duration = Duration::from_millis(10);
const BATCH: usize = 256;
const NO_WAIT: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

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
    outer: RawFd,
    waker: RawFd,
    owned: Mutex<Option<[CountedFd; 3]>>,
    /// A consumer watches `epoll` and turns on its own thread (`set_direct`).
    direct: AtomicBool,
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
        let new_epoll = || {
            failpoint::hit("epoll_create1")
                .and_then(|()| epoll::create(epoll::CreateFlags::CLOEXEC))
                .sys("epoll_create1", "creating a monitor")
                .map(|fd| CountedFd::new(fd, FdKind::Epoll))
        };
        let epoll = new_epoll()?;
        let outer = new_epoll()?;
        let waker = CountedFd::new(
            failpoint::hit("eventfd")
                .and_then(|()| eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK))
                .sys("eventfd", "creating a monitor")?,
            FdKind::Eventfd,
        );
        for (fd, data) in [(epoll.as_fd(), SOURCES), (waker.as_fd(), WAKER)] {
            failpoint::hit("epoll_ctl")
                .and_then(|()| epoll::add(&outer, fd, EventData::new_u64(data), EventFlags::IN))
                .sys("epoll_ctl", "creating a monitor")?;
        }
        Ok(Shared {
            epoll: epoll.as_raw_fd(),
            outer: outer.as_raw_fd(),
            waker: waker.as_raw_fd(),
            owned: Mutex::new(Some([epoll.commit(), outer.commit(), waker.commit()])),
            direct: AtomicBool::new(false),
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

    /// The sources' epoll fd: readable whenever a watch has something to report.
    pub fn epoll_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `owned` keeps the fd open until `close`, which joins the loop first and
        // takes the registry lock that every other user holds.
        unsafe { BorrowedFd::borrow_raw(self.epoll) }
    }

    /// The epoll set a source's fd belongs in.
    fn set_of(&self, source: &dyn Source) -> BorrowedFd<'_> {
        if source.nestable() {
            self.epoll_fd()
        } else {
            self.outer_fd()
        }
    }

    fn outer_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: as for `epoll_fd`.
        unsafe { BorrowedFd::borrow_raw(self.outer) }
    }

    /// Direct mode on or off (see the module doc). Off again before the consumer stops
    /// watching, so that the reactor handles everything at once from then on.
    pub fn set_direct(&self, on: bool) {
        // Under the registry lock: once closed, the raw fd numbers may belong to others.
        let _reg = self.registry();
        if self.state.load(Ordering::SeqCst) == CLOSED {
            return;
        }
        self.direct.store(on, Ordering::SeqCst);
        self.arm_sources();
        self.wake();
    }

    /// (Re-)arms the sources' entry in `outer`: one-shot in direct mode (the reactor hears
    /// of readiness once, then leaves it to the consumer until its grace ends).
    fn arm_sources(&self) {
        let flags = if self.direct.load(Ordering::SeqCst) {
            EventFlags::IN | EventFlags::ONESHOT
        } else {
            EventFlags::IN
        };
        // Cannot fail for a live entry of our own; if it did, the waker still runs turns.
        let _ = epoll::modify(
            self.outer_fd(),
            self.epoll_fd(),
            EventData::new_u64(SOURCES),
            flags,
        );
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
            let set = self.set_of(source.as_ref());
            let added = failpoint::hit("epoll_ctl")
                .and_then(|()| epoll::add(set, fd, EventData::new_u64(id as u64), flags));
            if let Err(e) = added {
                source.release(Release::LeakPrevented, &mut Released::default());
                return Err(e).sys("epoll_ctl", format!("registering watch {id}"));
            }
        }
        // Only the new source can bring the reactor's deadline forward: no scan of the rest.
        let due = source.due();
        reg.insert(id, source, share);
        self.rearm(&reg, due);
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
            let _ = epoll::delete(self.set_of(src.as_ref()), fd);
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

    /// Wakes the reactor when `due` comes before the deadline it sleeps to (a new timed
    /// source, or the next due time after a `turn_now` on another thread).
    fn rearm(&self, reg: &Registry, due: Option<Instant>) {
        // The caller holds the registry lock, so a close cannot slip in between.
        if self.state.load(Ordering::SeqCst) != CLOSED && reg.due_sooner(due) {
            self.wake();
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
        self.ring();
    }

    /// Puts events a consumer drained but could not deliver back at the head of the queue.
    pub fn requeue(&self, mut events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            events.append(&mut queue);
            *queue = events;
        }
        self.ring();
    }

    fn ring(&self) {
        // One notification per batch, however many events and however slow the consumer.
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            self.notifications.fetch_add(1, Ordering::Relaxed);
            (self.notify)();
        }
    }

    /// The wait loop. Idle means blocked in epoll_wait with no timeout: no wakeups at all.
    pub fn run(&self) {
        let mut woke: Vec<epoll::Event> = Vec::with_capacity(BATCH);
        // Direct mode: ready sources left to the consumer, since when (and that time as
        // the events' timestamp, should the reactor handle them after all).
        let mut left: Option<(Instant, u64)> = None;
        // Direct mode, but the consumer left work for the reactor lately: no grace until then.
        let mut eager_until: Option<Instant> = None;
        loop {
            let due = self.registry().sleep_until();
            let grace_end = left.map(|(at, _)| at + GRACE);
            let timeout = [due, grace_end].into_iter().flatten().min().map(|at| {
                let d = at.saturating_duration_since(Instant::now());
                Timespec {
                    tv_sec: d.as_secs() as _,
                    tv_nsec: d.subsec_nanos() as _,
                }
            });
            woke.clear();
            let waited = failpoint::hit("epoll_wait").and_then(|()| {
                epoll::wait(self.outer_fd(), spare_capacity(&mut woke), timeout.as_ref())
            });
            match waited {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return self.stop(self.registry(), e),
                Ok(_) => {}
            }
            let mut sources = false;
            // Sources registered in `outer` itself (not nestable), reported here only.
            let mut own = Vec::new();
            for ev in &woke {
                match ev.data.u64() {
                    WAKER => {
                        let mut buf = [0u8; 8];
                        let _ = rustix::io::read(
                            unsafe { BorrowedFd::borrow_raw(self.waker) },
                            &mut buf,
                        );
                    }
                    SOURCES => sources = true,
                    id => own.push(id as WatchId),
                }
            }
            if sources && self.direct.load(Ordering::SeqCst) && left.is_none() {
                let now = Instant::now();
                left = Some((now, monotonic_ns()));
                if woke.len() == 1 && eager_until.is_none_or(|until| now >= until) {
                    continue; // the consumer's turn, for the grace period
                }
            }
            let taken = left.take();
            let Some(out) = self.turn(taken.map_or_else(monotonic_ns, |(_, t)| t), &own) else {
                return;
            };
            if taken.is_some() {
                eager_until = (!out.is_empty()).then(|| Instant::now() + EAGER);
                self.arm_sources(); // its one shot was spent
            }
            self.publish(out);
        }
    }

    /// Direct mode: one turn on the consumer's thread, when `epoll_fd` is readable. Returns
    /// every queued event (as `drain` does) for the consumer to deliver at once, and wakes
    /// the reactor if a timed source now needs it sooner.
    pub fn turn_now(&self) -> Vec<Event> {
        let Some(mut out) = self.turn(monotonic_ns(), &[]) else {
            return Vec::new();
        };
        let reg = self.registry();
        self.rearm(&reg, reg.next_due());
        drop(reg);
        let mut events = self.drain();
        events.append(&mut out);
        if !events.is_empty() {
            // A delivery as much as a notification is (one N-API call in the binding).
            self.notifications.fetch_add(1, Ordering::Relaxed);
        }
        events
    }

    /// Handles every ready source of `epoll`, the `own` ones the reactor's wait reported,
    /// and every due timed source, under the registry lock; `None` once the monitor is no
    /// longer open.
    fn turn(&self, time: u64, own: &[WatchId]) -> Option<Vec<Event>> {
        let mut reg = self.registry();
        if self.state.load(Ordering::SeqCst) != OPEN {
            return None;
        }
        // On the stack: a turn runs on every wakeup of either thread.
        let mut buf = [const { MaybeUninit::<epoll::Event>::uninit() }; BATCH];
        let waited = failpoint::hit("epoll_wait")
            .and_then(|()| epoll::wait(self.epoll_fd(), &mut buf[..], Some(&NO_WAIT)));
        let ready: &[epoll::Event] = match waited {
            Ok((ready, _)) => ready,
            Err(rustix::io::Errno::INTR) => &[],
            Err(e) => {
                self.stop(reg, e);
                return None;
            }
        };
        let mut out = Vec::new();
        for id in ready
            .iter()
            .map(|ev| ev.data.u64() as WatchId)
            .chain(own.iter().copied())
        {
            self.dispatch(&mut reg, id, time, &mut out);
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
        Some(out)
    }

    /// epoll_wait failed: the monitor stops (under the registry lock, so a registration
    /// either lands before and is covered by the error event, or is refused) and says why.
    fn stop(&self, reg: MutexGuard<'_, Registry>, e: rustix::io::Errno) {
        let _ = self
            .state
            .compare_exchange(OPEN, STOPPED, Ordering::SeqCst, Ordering::SeqCst);
        drop(reg);
        self.publish(vec![Event {
            watch: 0,
            time: monotonic_ns(),
            kind: EventKind::Error {
                code: Code::Io,
                message: format!("epoll_wait failed, the monitor stopped: {e}"),
            },
        }]);
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

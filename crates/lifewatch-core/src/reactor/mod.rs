//! One epoll reactor: sources registered under keys, one wait loop on its own thread, events
//! queued for the consumer in the order its turns produced them. A failing epoll_wait stops
//! the loop with an error event instead of ending the process; the queue never drops.
//!
//! Each concern in its own file: `selector` (the two epoll sets and the waker), `timer`
//! (timed wakes through a timerfd), `queue` (delivery), `direct` (leaving readiness to a
//! consumer that turns on its own thread), `backstop` (the thread that watches for such a
//! consumer), `join` (a thread joined from the joiner's CPU), `registry` (keys, sources,
//! shared sources) and `source` (what a source is); `waiter` runs one-off waits on a shared
//! reactor. All state a turn touches sits under one lock, so turns on the reactor thread and
//! on a consumer's thread are serialized and publish in order.

pub mod backstop;
pub mod direct;
pub mod join;
pub mod queue;
pub mod registry;
pub mod selector;
pub mod source;
pub mod timer;
pub mod waiter;

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use rustix::event::epoll;
use rustix::time::Timespec;
use smallvec::SmallVec;

use crate::error::{Code, Error, Result, SysResult};
use crate::event::{monotonic_ns, Event, EventKind, Events, WatchId};
use crate::fd::{Release, Released};
use backstop::Backstop;
use direct::Consumer;

pub use queue::Notify;
use registry::{Entry, Registry, Removed};
use selector::{Hear, Selector, BATCH, SOURCES, TIMER, WAKER};
pub use source::{Interest, Keep, Ready, Registration, Source};
use timer::Timers;

pub const OPEN: u8 = 0;
/// The wait loop ended on an error: nothing registered now would ever be reported.
pub const STOPPED: u8 = 1;
pub const CLOSED: u8 = 2;

/// Called at the end of every turn that produced events, under the reactor's lock.
pub type AfterTurn = Box<dyn Fn(&mut Turn<'_>) + Send + Sync>;

/// A turn's events, as the `AfterTurn` hook sees them (it may add to them).
pub struct Turn<'a> {
    pub time: u64,
    pub out: &'a mut Events,
    timers: &'a mut Timers,
}

impl Turn<'_> {
    /// Wakes source `key` at `at`.
    pub fn wake_at(&mut self, key: WatchId, at: Instant) {
        self.timers.schedule(key, at);
    }
}

/// Everything a turn touches, under one lock.
pub struct State {
    pub registry: Registry,
    timers: Timers,
    /// Sources registered one-shot (pidfds) that ended in a consumer's turn, released (their
    /// fds closed) by `turn_done` once the consumer has delivered the turn's events:
    /// closing a pidfd is then not between an exit and its delivery. Any other source is
    /// released at once (a host watch's socket closes with its last watch, as it always did).
    /// A few inline (a single exit's is the usual case): pushing then writes beside the lock
    /// the turn holds, not to a page of its own (see `turn`).
    retired: SmallVec<[Entry; 4]>,
}

pub struct Reactor {
    selector: Selector,
    state: Mutex<State>,
    queue: queue::Queue,
    /// A consumer watches `ready_fd` and turns on its own thread (`set_direct`).
    direct: AtomicBool,
    /// Its turns, and the backstop's handovers.
    consumer: Arc<Consumer>,
    /// Started with the first `set_direct(true)`; told to stop by `begin_close`, joined by
    /// `teardown`.
    backstop: Mutex<Option<Backstop>>,
    status: AtomicU8,
    /// `stop_after_turn` was called: the loop returns once the current turn is over.
    stopping: AtomicBool,
    after_turn: OnceLock<AfterTurn>,
}

impl Reactor {
    pub fn new(notify: Notify) -> Result<Reactor> {
        let timers = Timers::new()?;
        let selector = Selector::new(timers.fd())?;
        Ok(Reactor {
            selector,
            state: Mutex::new(State {
                registry: Registry::default(),
                timers: timers.commit(),
                retired: SmallVec::new(),
            }),
            queue: queue::Queue::new(notify),
            direct: AtomicBool::new(false),
            consumer: Arc::new(Consumer::default()),
            backstop: Mutex::new(None),
            status: AtomicU8::new(OPEN),
            stopping: AtomicBool::new(false),
            after_turn: OnceLock::new(),
        })
    }

    /// Installs the hook run after each turn (once; later calls are ignored).
    pub fn set_after_turn(&self, hook: AfterTurn) {
        let _ = self.after_turn.set(hook);
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `ERR_CLOSED` after close; `ERR_IO` once the wait loop has stopped on an error.
    pub fn check_open(&self) -> Result<()> {
        match self.status.load(Ordering::SeqCst) {
            OPEN => Ok(()),
            STOPPED => Err(Error::new(
                Code::Io,
                "the monitor's wait loop stopped after an error (see its error event): close it",
            )),
            _ => Err(Error::closed()),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.status.load(Ordering::SeqCst) == CLOSED
    }

    /// An fd that is readable whenever a nested source has something to report (see `direct`).
    pub fn ready_fd(&self) -> RawFd {
        self.selector.ready_fd().as_raw_fd()
    }

    /// Direct mode on or off (see `direct`). Off again before the consumer stops watching, so
    /// that the reactor handles everything at once from then on. `false` when it cannot be on
    /// (the monitor is closed, or its backstop thread could not start): the reactor then
    /// delivers everything itself.
    pub fn set_direct(&self, on: bool) -> bool {
        // Under the lock: once closed, the raw fd numbers may belong to others.
        let _state = self.lock();
        if self.is_closed() {
            return false;
        }
        let mut backstop = self.backstop();
        if on && backstop.is_none() {
            let fds = backstop::Fds {
                sources: self.ready_fd(),
                reactor_waker: self.selector.waker_fd(),
            };
            match Backstop::start(fds, Arc::clone(&self.consumer)) {
                Ok(b) => *backstop = Some(b),
                Err(_) => return false,
            }
        }
        self.direct.store(on, Ordering::SeqCst);
        self.selector
            .hear_sources(if on { Hear::Never } else { Hear::Always });
        if let Some(b) = backstop.as_ref() {
            b.arm(on);
        }
        self.selector.wake();
        true
    }

    fn backstop(&self) -> MutexGuard<'_, Option<Backstop>> {
        self.backstop.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Direct mode: readiness is the consumer's again, and the backstop's to watch. Under the
    /// state lock, as `set_direct` changes the mode under it.
    fn give_back(&self, _locked: &State) {
        if self.direct.load(Ordering::SeqCst) {
            if let Some(b) = self.backstop().as_ref() {
                b.arm(true);
            }
        }
    }

    /// Registers a source and returns its key (also the id of its first watch). On any failure
    /// the source's fds are closed right here (counted as prevented leaks).
    pub fn register(&self, source: Box<dyn Source>, how: Registration) -> Result<WatchId> {
        let mut state = self.lock();
        if let Err(e) = self.check_open() {
            source.release(Release::LeakPrevented, &mut Released::default());
            return Err(e);
        }
        let key = state.registry.next_id();
        if let Some(i) = source.interest() {
            if let Err(e) = self.selector.add(i.fd, key as u64, i.flags, !how.unnested) {
                source.release(Release::LeakPrevented, &mut Released::default());
                return Err(e).sys("epoll_ctl", format!("registering watch {key}"));
            }
        }
        state.registry.insert(
            key,
            Entry {
                source,
                nested: !how.unnested,
            },
        );
        if let Some(at) = how.wake_at {
            state.timers.schedule(key, at);
        }
        Ok(key)
    }

    /// A new watch on the live source `key`, if it is still registered.
    pub fn join(&self, key: WatchId) -> Result<Option<WatchId>> {
        let mut state = self.lock();
        self.check_open()?;
        Ok(state.registry.join(key))
    }

    /// A watch id with no source of its own (a cgroup watch served by several sources).
    pub fn reserve_id(&self) -> WatchId {
        self.lock().registry.next_id()
    }

    /// Wakes source `key` at `at` (from any thread).
    pub fn wake_at(&self, key: WatchId, at: Instant) {
        let mut state = self.lock();
        if !self.is_closed() {
            state.timers.schedule(key, at);
        }
    }

    /// Removes a watch; `false` when it is not (or no longer) registered.
    pub fn unregister(&self, id: WatchId, how: Release, released: &mut Released) -> bool {
        let mut state = self.lock();
        let key = state.registry.source_of(id);
        match state.registry.remove(id) {
            Removed::None => false,
            Removed::Subscriber => true,
            Removed::Source(entry) => {
                if let Some(key) = key {
                    state.timers.cancel(key);
                }
                self.retire(entry, how, released);
                true
            }
        }
    }

    fn retire(&self, entry: Entry, how: Release, released: &mut Released) {
        if let Some(i) = entry.source.interest() {
            self.selector.delete(i.fd, entry.nested);
        }
        entry.source.release(how, released);
    }

    /// Queues events produced outside a turn (a watch's first look, right after registering).
    pub fn publish(&self, events: Events) {
        let _state = self.lock();
        self.queue.publish(events);
    }

    /// Every event queued since the last drain, in order.
    pub fn drain(&self) -> Vec<Event> {
        self.queue.drain()
    }

    /// Puts events that were taken but could not be delivered back at the head of the queue.
    pub fn requeue(&self, events: Vec<Event>) {
        self.queue.requeue(events)
    }

    /// Batches handed over (notifications raised plus consumer turns that delivered).
    pub fn deliveries(&self) -> u64 {
        self.queue.deliveries()
    }

    /// The wait loop (the reactor thread). Idle means blocked in epoll_wait with no timeout:
    /// no wakeups at all.
    pub fn run(&self) {
        let mut woke: Vec<epoll::Event> = Vec::with_capacity(BATCH);
        let mut own: Vec<WatchId> = Vec::new();
        // Events a quiet turn queued without notifying the consumer (see `direct`).
        let mut held = false;
        // Direct mode: until when the reactor handles readiness at once (see `direct`).
        let mut eager_until: Option<Instant> = None;
        loop {
            // Held events are notified once the consumer has not turned for the grace.
            let held_until = held.then(|| {
                let since = self.consumer.since_turn().unwrap_or(direct::GRACE);
                Instant::now() + direct::GRACE.saturating_sub(since)
            });
            let timeout = held_until.map(|at| {
                let d = at.saturating_duration_since(Instant::now());
                Timespec {
                    tv_sec: d.as_secs() as _,
                    tv_nsec: d.subsec_nanos() as _,
                }
            });
            match self.selector.wait(&mut woke, timeout.as_ref()) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return self.stop(&self.lock(), e),
                Ok(()) => {}
            }
            if self.status.load(Ordering::SeqCst) != OPEN || self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let mut sources = false;
            own.clear();
            for ev in &woke {
                match ev.data.u64() {
                    WAKER => self.selector.ack_waker(),
                    SOURCES => sources = true,
                    key => own.push(key as WatchId),
                }
            }
            let direct = self.direct.load(Ordering::SeqCst);
            // What the consumer left for a whole grace (the backstop says so).
            let handed = direct && self.consumer.take_handover();
            // A consumer that turned within the grace drains what the reactor queues.
            let draining = direct && direct::quiet(self.consumer.since_turn());
            // Notified once the consumer stopped turning, or stopped being one (`set_direct`
            // wakes the loop).
            if held && !draining {
                held = false;
                self.queue.notify_held();
            }
            // Drained by the consumer's turns meanwhile: nothing to wake for.
            held &= !self.queue.is_empty();
            if !direct {
                eager_until = None;
            }
            // Direct mode: the reactor hears the sources' set only while eager. Readiness after
            // a pause is the consumer's again.
            if sources && direct && !handed && eager_until.is_none_or(|at| Instant::now() >= at) {
                sources = false;
                eager_until = None;
                self.give_back(&self.lock());
                if own.is_empty() {
                    continue;
                }
            }
            let poll_sources = sources || handed;
            // Only nested sources: a PSI trigger (own) is reported at once.
            let quiet = draining && own.is_empty();
            let mut state = self.lock();
            let Some(found) = self.turn(&mut state, &own, poll_sources, !quiet, None) else {
                return;
            };
            held |= found && quiet;
            if poll_sources && self.direct.load(Ordering::SeqCst) {
                if found {
                    // The consumer left work: handle readiness at once while it keeps coming.
                    eager_until = Some(Instant::now() + direct::EAGER);
                    self.selector.hear_sources(Hear::Once);
                } else {
                    eager_until = None;
                    self.give_back(&state);
                }
            }
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Makes the wait loop return after the turn in progress (or at once, if none is): for an
    /// owner that decides to close from inside a turn, where `begin_close` would deadlock.
    pub fn stop_after_turn(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.selector.wake();
    }

    /// Direct mode: one turn on the consumer's thread, when `ready_fd` is readable. Returns every
    /// queued event for the consumer to deliver at once (one delivery, counted as such); the
    /// consumer then calls `turn_done`.
    pub fn turn_now(&self) -> Events {
        let mut state = self.lock();
        let mut taken = Events::new();
        if self
            .turn(&mut state, &[], true, false, Some(&mut taken))
            .is_none()
        {
            return Events::new();
        }
        // What the reactor queued before this turn comes first.
        let queued = self.queue.drain();
        let events = if queued.is_empty() {
            taken
        } else {
            let mut events = Events::from_vec(queued);
            events.extend(taken);
            events
        };
        if !events.is_empty() {
            self.queue.count_delivery();
        }
        events
    }

    /// The consumer drained a notified batch (the reactor's, through its own event loop). In
    /// direct mode, drains in quick succession are a burst the reactor took over, notified once
    /// per turn (an exit or two every 0.1 ms): they count as the consumer's turns, so the
    /// reactor's next turns queue quietly for its next drain or turn. A drain after a pause
    /// does not: the reactor's next event is notified at once, as before.
    pub fn consumer_drained(&self) {
        if self.direct.load(Ordering::SeqCst) && self.consumer.drained() {
            self.consumer.turned();
        }
    }

    /// Direct mode: the consumer gathers a burst for `hold` before its next turn (see
    /// `Consumer::hold`).
    pub fn consumer_holds(&self, hold: std::time::Duration) {
        self.consumer.hold(hold);
    }

    /// The consumer delivered its turn: the turn counts (`Consumer::turned`), and the sources it
    /// retired are released (see `State::retired`). Counted here rather than when the turn
    /// starts: it writes to a page of its own, and every write between an exit and its delivery
    /// may be a copy-on-write fault in a process that has forked since.
    pub fn turn_done(&self) {
        self.consumer.turned();
        let mut state = self.lock();
        self.release_retired_locked(&mut state);
    }

    fn release_retired_locked(&self, state: &mut State) {
        for entry in state.retired.drain(..) {
            self.retire(entry, Release::Normal, &mut Released::default());
        }
    }

    /// Handles the ready nested sources and due timers (with `poll_sources`: the timerfd is
    /// nested), the `own` keys the reactor's wait reported and the wakes they raise, then queues
    /// the turn's events, with a notification if `notify` (see `direct` for a quiet reactor
    /// turn); `None` once the reactor is no longer open.
    /// `Some(found)` says whether the turn produced events. A consumer's turn takes its events
    /// itself (`taken`, not queued) and leaves the sources that end to `turn_done`.
    fn turn(
        &self,
        state: &mut State,
        own: &[WatchId],
        poll_sources: bool,
        notify: bool,
        taken: Option<&mut Events>,
    ) -> Option<bool> {
        let by_consumer = taken.is_some();
        if self.status.load(Ordering::SeqCst) != OPEN {
            return None;
        }
        if !by_consumer {
            // A consumer that never released its turn's (it stopped mid-way).
            self.release_retired_locked(state);
        }
        // The turn's scratch lists live on the stack: a consumer's turn runs between an exit
        // and its delivery, on a thread whose heap pages the process's last fork left
        // copy-on-write, and each allocation there cost a page fault or two.
        let mut keys: SmallVec<[u64; 16]> = SmallVec::new();
        if poll_sources {
            match self.selector.ready_sources(&mut keys) {
                Ok(()) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    self.stop(state, e);
                    return None;
                }
            }
        }
        // Taken after the readiness check: no event is stamped before its readiness was seen.
        let time = monotonic_ns();
        let mut out = Events::new();
        let mut wakes: Vec<WatchId> = Vec::new();
        let timer = keys.contains(&TIMER);
        let mut order: SmallVec<[WatchId; 16]> = keys
            .iter()
            .filter(|&&k| k != TIMER)
            .map(|&k| k as WatchId)
            .chain(own.iter().copied())
            .collect();
        if timer {
            order.extend(state.timers.take_due(Instant::now()));
        }
        // A source may wake others (which may wake more): bounded, in case two wake each other.
        for _ in 0..64 {
            for key in order.drain(..) {
                self.dispatch(state, key, time, &mut out, &mut wakes, by_consumer);
            }
            if wakes.is_empty() {
                break;
            }
            order.extend(wakes.drain(..));
        }
        if !out.is_empty() {
            if let Some(hook) = self.after_turn.get() {
                hook(&mut Turn {
                    time,
                    out: &mut out,
                    timers: &mut state.timers,
                });
            }
        }
        let found = !out.is_empty();
        match taken {
            Some(taken) => *taken = out,
            None if notify => self.queue.publish(out),
            None => self.queue.append(out),
        }
        Some(found)
    }

    fn dispatch(
        &self,
        state: &mut State,
        key: WatchId,
        time: u64,
        out: &mut Events,
        wakes: &mut Vec<WatchId>,
        by_consumer: bool,
    ) {
        let watch = state.registry.first_watch(key);
        let State {
            registry,
            timers,
            retired,
        } = state;
        // A source removed after epoll_wait returned is simply gone.
        let Some(Entry {
            source: src,
            nested,
        }) = registry.entry_mut(key)
        else {
            return;
        };
        let nested = *nested;
        let from = out.len();
        let mut cx = Ready {
            key,
            watch,
            time,
            out,
            timers,
            wakes,
            set: self.selector.set(nested),
        };
        let keep = src.ready(&mut cx);
        registry.fan_out(key, out, from);
        if keep == Keep::No {
            let entry = registry.remove_source(key).expect("present above");
            timers.cancel(key);
            // Only a one-shot registration (a pidfd's): it cannot keep the set readable meanwhile.
            let one_shot = entry
                .source
                .interest()
                .is_some_and(|i| i.flags.contains(epoll::EventFlags::ONESHOT));
            if by_consumer && one_shot {
                retired.push(entry);
            } else {
                self.retire(entry, Release::Normal, &mut Released::default());
            }
        }
    }

    /// epoll_wait failed: the reactor stops (under its lock, held by the caller, so a
    /// registration either lands before and is covered by the error event, or is refused) and
    /// says why.
    fn stop(&self, _locked: &State, e: rustix::io::Errno) {
        let _ = self
            .status
            .compare_exchange(OPEN, STOPPED, Ordering::SeqCst, Ordering::SeqCst);
        self.queue.publish(smallvec::smallvec![Event {
            watch: 0,
            time: monotonic_ns(),
            kind: EventKind::Error {
                code: Code::Io,
                message: format!("epoll_wait failed, the monitor stopped: {e}"),
            },
        }]);
    }

    /// Marks the reactor closed and wakes its loop, which then returns: the owner joins it, then
    /// calls `teardown`. `false` if it was already closed.
    pub fn begin_close(&self) -> bool {
        // Under the lock, so no registration races the state change.
        let _state = self.lock();
        if self.status.swap(CLOSED, Ordering::SeqCst) == CLOSED {
            return false;
        }
        self.selector.wake();
        // Both threads wake now and are joined one after the other.
        if let Some(b) = self.backstop().as_ref() {
            b.tell_stop();
        }
        true
    }

    /// After the loop has been joined: releases every source, the timerfd, the sets and the
    /// waker; drops what was still queued.
    pub fn teardown(&self, how: Release) -> Released {
        let mut released = Released::default();
        // First: it borrows the sources' set and the waker.
        if let Some(b) = self.backstop().take() {
            b.stop(how, &mut released);
        }
        let mut state = self.lock();
        let retired = std::mem::take(&mut state.retired);
        for entry in state.registry.drain().into_iter().chain(retired) {
            self.retire(entry, how, &mut released);
        }
        state.timers.close(how, &mut released);
        self.selector.close(how, &mut released);
        drop(state);
        self.queue.clear();
        released
    }
}

//! What the reactor multiplexes: one kernel mechanism per implementation (a pidfd, an eventfd,
//! the inotify fd, a PSI trigger, a wait driven by others). A source knows how to be polled and
//! nothing of its owner's policy; how it is registered is said once, at registration.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use rustix::event::epoll::EventFlags;

use crate::error::{Result, SysResult};
use crate::event::{Events, WatchId};
use crate::fd::{Release, Released};
use crate::reactor::timer::Timers;

/// Whether a source stays registered after handling readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Yes,
    No,
}

/// The fd epoll watches for a source, and the readiness it waits for.
pub struct Interest<'a> {
    pub fd: BorrowedFd<'a>,
    pub flags: EventFlags,
}

pub trait Source: Send {
    /// `None` for a source woken only by its timer or by another source (`Ready::wake`).
    fn interest(&self) -> Option<Interest<'_>>;

    /// Readiness, its timer, or a wake: report events (`Ready::out`), re-arm, or end.
    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep;

    /// Closes every fd the source owns, counting each in `released`.
    fn release(self: Box<Self>, how: Release, released: &mut Released);
}

/// How a source is registered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registration {
    /// Keep the fd out of the sources' set that a consumer may watch (`Reactor::ready_fd`):
    /// for an fd whose poll consumes its event (a PSI trigger: the kernel clears the trigger's
    /// event when polled, and a nested set polls its items once to tell its own readiness,
    /// then again to report them). Only the reactor thread handles such a source.
    pub unnested: bool,
    /// The first timed wake.
    pub wake_at: Option<Instant>,
}

/// What a source gets while it handles readiness.
pub struct Ready<'a> {
    /// The key the source was registered under.
    pub key: WatchId,
    /// The watch its events are reported for (its own key, or the oldest watch that joined it).
    pub watch: WatchId,
    /// CLOCK_MONOTONIC ns of the turn: every event of one turn carries the same time.
    pub time: u64,
    pub out: &'a mut Events,
    pub(crate) timers: &'a mut Timers,
    pub(crate) wakes: &'a mut Vec<WatchId>,
    pub(crate) set: BorrowedFd<'a>,
}

impl Ready<'_> {
    /// Wakes this source at `at` (a later call replaces an earlier time).
    pub fn wake_at(&mut self, at: Instant) {
        self.timers.schedule(self.key, at);
    }

    /// Cancels this source's timed wake.
    pub fn cancel_wake(&mut self) {
        self.timers.cancel(self.key);
    }

    /// Wakes another source in this same turn (a shared inotify fd waking its waiters).
    pub fn wake(&mut self, key: WatchId) {
        self.wakes.push(key);
    }

    /// Watches one more fd for this source: its readiness wakes this source. The source owns
    /// the fd and must `remove_fd` it before closing it.
    pub fn add_fd(&self, fd: BorrowedFd<'_>, flags: EventFlags) -> Result<()> {
        crate::failpoint::hit("epoll_ctl")
            .and_then(|()| {
                rustix::event::epoll::add(
                    self.set,
                    fd,
                    rustix::event::epoll::EventData::new_u64(self.key as u64),
                    flags,
                )
            })
            .sys(
                "epoll_ctl",
                format!("watching an fd for source {}", self.key),
            )
    }

    pub fn remove_fd(&self, fd: BorrowedFd<'_>) {
        let _ = rustix::event::epoll::delete(self.set, fd);
    }
}

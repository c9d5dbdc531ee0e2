//! What the reactor multiplexes: one kernel mechanism per implementation.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use rustix::event::epoll::EventFlags;

use crate::error::{Error, Result};
use crate::event::{Event, WatchId};
use crate::fd::{Release, Released};

/// Whether a source stays registered after handling readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Yes,
    No,
}

pub struct Ready<'a> {
    pub watch: WatchId,
    /// CLOCK_MONOTONIC ns of the epoll_wait return that reported this readiness.
    pub time: u64,
    pub out: &'a mut Vec<Event>,
}

pub trait Source: Send {
    /// The fd to register with epoll and the readiness it waits for; `None` for polled sources.
    fn interest(&self) -> Option<(BorrowedFd<'_>, EventFlags)>;

    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep;

    /// Polled sources (the no-pidfd fallback) say when they next want `ready`.
    fn due(&self) -> Option<Instant> {
        None
    }

    /// Whether the fd may sit in a nested epoll set (the monitor's ready fd). Not for an fd
    /// whose poll consumes its event (a PSI trigger: the kernel clears the trigger's event
    /// when polled): a nested set polls its items once to tell its own readiness, then again
    /// to report them, and the second poll would find nothing. Such a source is registered
    /// in the reactor's own epoll, and only the reactor handles it.
    fn nestable(&self) -> bool {
        true
    }

    /// Whether `due` can ever return a time: only such sources are asked on each turn of
    /// the loop, so a wakeup costs nothing per pidfd watch.
    fn timed(&self) -> bool {
        false
    }

    /// Whether another watch of the same process may share this source now (its process
    /// has not exited yet, so the PID still names it).
    fn joinable(&self) -> bool {
        false
    }

    /// Sends a signal to the watched process, where the source is a process watch.
    fn signal(&self, _signo: i32) -> Result<()> {
        Err(Error::invalid("this watch is not a process watch"))
    }

    /// Closes every fd the source owns, counting each in `released`.
    fn release(self: Box<Self>, how: Release, released: &mut Released);
}

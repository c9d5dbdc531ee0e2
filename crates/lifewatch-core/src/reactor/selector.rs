//! The reactor's two epoll sets and its waker. `sources` holds the sources' fds and the
//! timerfd, and is what a consumer with an event loop of its own may watch (`ready_fd`): a
//! source's timed wake then runs on the consumer's thread like its readiness does, one thread
//! hop from the kernel to the consumer. `outer` holds `sources`, the waker and the few fds
//! that must not be nested, and the reactor thread sleeps on it. The waker stays out of
//! `sources`, so only the reactor ever consumes it.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Mutex;

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags};
use rustix::time::Timespec;

use crate::error::{Result, SysResult};
use crate::failpoint;
use crate::fd::{CountedFd, FdKind, Release, Released};

/// epoll data of the waker and the sources' set (in `outer`) and of the timerfd (in
/// `sources`); any other data in either set is a source's key (keys start at 1 and never get
/// near these).
pub const WAKER: u64 = u64::MAX;
pub const SOURCES: u64 = u64::MAX - 1;
pub const TIMER: u64 = u64::MAX - 2;

/// How many readiness events one wait takes at most.
pub const BATCH: usize = 256;

const NO_WAIT: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// How the reactor thread hears the sources' set (`hear_sources`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hear {
    Always,
    Once,
    Never,
}

pub struct Selector {
    /// Raw copies for the wait loop; the owners sit in `owned` and are closed only by
    /// `close`, after the loop thread has been joined.
    sources: RawFd,
    outer: RawFd,
    waker: RawFd,
    owned: Mutex<Option<[CountedFd; 3]>>,
}

impl Selector {
    /// The two sets and the waker, with `timer` (the timerfd) in `sources`.
    pub fn new(timer: BorrowedFd<'_>) -> Result<Selector> {
        let new_epoll = || {
            failpoint::hit("epoll_create1")
                .and_then(|()| epoll::create(epoll::CreateFlags::CLOEXEC))
                .sys("epoll_create1", "creating a monitor")
                .map(|fd| CountedFd::new(fd, FdKind::Epoll))
        };
        let sources = new_epoll()?;
        let outer = new_epoll()?;
        let waker = CountedFd::new(
            failpoint::hit("eventfd")
                .and_then(|()| eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK))
                .sys("eventfd", "creating a monitor")?,
            FdKind::Eventfd,
        );
        for (set, fd, data) in [
            (&outer, sources.as_fd(), SOURCES),
            (&outer, waker.as_fd(), WAKER),
            (&sources, timer, TIMER),
        ] {
            failpoint::hit("epoll_ctl")
                .and_then(|()| epoll::add(set, fd, EventData::new_u64(data), EventFlags::IN))
                .sys("epoll_ctl", "creating a monitor")?;
        }
        Ok(Selector {
            sources: sources.as_raw_fd(),
            outer: outer.as_raw_fd(),
            waker: waker.as_raw_fd(),
            owned: Mutex::new(Some([sources.commit(), outer.commit(), waker.commit()])),
        })
    }

    /// The sources' set: readable whenever a nested source is ready.
    pub fn ready_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `owned` keeps the fd open until `close`, which the owner calls only after
        // joining the loop thread and under the lock every other user holds.
        unsafe { BorrowedFd::borrow_raw(self.sources) }
    }

    fn outer(&self) -> BorrowedFd<'_> {
        // SAFETY: as for `ready_fd`.
        unsafe { BorrowedFd::borrow_raw(self.outer) }
    }

    /// The set a source's fd belongs in.
    pub fn set(&self, nested: bool) -> BorrowedFd<'_> {
        if nested {
            self.ready_fd()
        } else {
            self.outer()
        }
    }

    pub fn add(
        &self,
        fd: BorrowedFd<'_>,
        key: u64,
        flags: EventFlags,
        nested: bool,
    ) -> rustix::io::Result<()> {
        failpoint::hit("epoll_ctl")
            .and_then(|()| epoll::add(self.set(nested), fd, EventData::new_u64(key), flags))
    }

    pub fn delete(&self, fd: BorrowedFd<'_>, nested: bool) {
        // Closing would drop it from the set too; removing first keeps the set exact.
        let _ = epoll::delete(self.set(nested), fd);
    }

    /// How the reactor hears the sources' set (its entry in `outer`): always (no consumer of
    /// its own), once (while it handles readiness for a consumer: re-armed after each turn),
    /// or not at all (a consumer turns, and the backstop watches for it).
    pub fn hear_sources(&self, how: Hear) {
        let flags = match how {
            Hear::Always => EventFlags::IN,
            Hear::Once => EventFlags::IN | EventFlags::ONESHOT,
            Hear::Never => EventFlags::empty(),
        };
        // Cannot fail for a live entry of our own; if it did, the waker still runs turns.
        let _ = epoll::modify(
            self.outer(),
            self.ready_fd(),
            EventData::new_u64(SOURCES),
            flags,
        );
    }

    /// The waker, for a thread that hands work to the reactor (the backstop).
    pub fn waker_fd(&self) -> RawFd {
        self.waker
    }

    /// The reactor's sleep: what is ready in `outer`.
    pub fn wait(
        &self,
        out: &mut Vec<epoll::Event>,
        timeout: Option<&Timespec>,
    ) -> rustix::io::Result<()> {
        out.clear();
        failpoint::hit("epoll_wait")
            .and_then(|()| epoll::wait(self.outer(), spare_capacity(out), timeout))
            .map(|_| ())
    }

    /// What is ready in the sources' set now, without waiting: the keys, into `keys`.
    pub fn ready_sources(&self, keys: &mut impl Extend<u64>) -> rustix::io::Result<()> {
        // On the stack: this runs on every wakeup of either thread.
        let mut buf = [const { MaybeUninit::<epoll::Event>::uninit() }; BATCH];
        let (ready, _) = failpoint::hit("epoll_wait")
            .and_then(|()| epoll::wait(self.ready_fd(), &mut buf[..], Some(&NO_WAIT)))?;
        keys.extend(ready.iter().map(|ev| ev.data.u64()));
        Ok(())
    }

    pub fn wake(&self) {
        // SAFETY: as for `ready_fd`.
        let _ = rustix::io::write(
            unsafe { BorrowedFd::borrow_raw(self.waker) },
            &1u64.to_ne_bytes(),
        );
    }

    /// Consumes the waker's count (the reactor thread only).
    pub fn ack_waker(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: as for `ready_fd`.
        let _ = rustix::io::read(unsafe { BorrowedFd::borrow_raw(self.waker) }, &mut buf);
    }

    /// Closes the sets and the waker, counting them in `released`. Idempotent.
    pub fn close(&self, how: Release, released: &mut Released) {
        if let Some(fds) = self.owned.lock().unwrap_or_else(|p| p.into_inner()).take() {
            for fd in fds {
                released.add(fd.kind());
                fd.close(how);
            }
        }
    }
}

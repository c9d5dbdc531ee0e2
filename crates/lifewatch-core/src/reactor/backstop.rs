//! The backstop (see `direct`): while a consumer turns on its own thread, this thread watches
//! the sources' set for it at a lower priority (nice 5) and hands over to the reactor what the
//! consumer left for a whole grace. Woken with the consumer and the exited process's parent,
//! it runs after them instead of taking the CPU one of them needs. Not lower: `close` joins it,
//! and on a saturated host a thread at nice 19 took up to 60–300 ms to get a CPU and exit,
//! at nice 5 as long as the reactor thread (about 10 ms). The consumer's own turns never
//! depend on it. The reactor thread keeps its priority: PSI triggers, which only it may poll,
//! must not wait behind a saturated host.
//!
//! One eventfd of its own wakes it to re-read its orders: watch or not (`arm`), or stop. It
//! never touches the reactor's state; the handover is a flag and a write to the reactor's
//! waker.

use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::time::Timespec;

use crate::error::{Error, Result, SysResult};
use crate::failpoint;
use crate::fd::{CountedFd, FdKind, Release, Released};
use crate::reactor::direct::{Consumer, Grace};
use crate::reactor::join::Stoppable;

/// Its nice value (an unprivileged thread can lower its priority but never raise it again,
/// which this thread never needs).
const NICE: i32 = 5;

/// The orders, and the eventfd that says they changed.
struct Orders {
    watch: AtomicBool,
    stop: AtomicBool,
    waker: CountedFd,
}

impl Orders {
    fn ring(&self) {
        let _ = rustix::io::write(&self.waker, &1u64.to_ne_bytes());
    }
}

pub struct Backstop {
    orders: Arc<Orders>,
    thread: Stoppable,
}

/// The fds the thread borrows: the reactor keeps them open until it has joined the thread.
pub struct Fds {
    pub sources: RawFd,
    pub reactor_waker: RawFd,
}

impl Backstop {
    /// Starts the thread, not yet watching. Errors (no eventfd, no thread) close what was made.
    pub fn start(fds: Fds, consumer: Arc<Consumer>) -> Result<Backstop> {
        let waker = failpoint::hit("eventfd")
            .and_then(|()| eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK))
            .sys("eventfd", "starting a monitor's backstop thread")?;
        let orders = Arc::new(Orders {
            watch: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            waker: CountedFd::new(waker, FdKind::Eventfd),
        });
        let theirs = Arc::clone(&orders);
        let thread = failpoint::hit("clone")
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
            .and_then(|()| {
                Stoppable::spawn(
                    std::thread::Builder::new()
                        .name("lifewatch-backstop".into())
                        .stack_size(64 * 1024),
                    move || run(&theirs, fds, &consumer),
                )
            })
            .map_err(|e| {
                Error::sys(
                    "clone",
                    e.raw_os_error().unwrap_or(libc::EAGAIN),
                    "starting a monitor's backstop thread",
                )
            })?;
        Ok(Backstop { orders, thread })
    }

    /// Watch the sources' set for the consumer, or stop watching (the reactor's own).
    pub fn arm(&self, watch: bool) {
        self.orders.watch.store(watch, Ordering::SeqCst);
        self.orders.ring();
    }

    /// Tells the thread to stop, without waiting for it.
    pub fn tell_stop(&self) {
        self.orders.stop.store(true, Ordering::SeqCst);
        self.orders.ring();
    }

    /// Stops and joins the thread, then closes its eventfd (counted in `released`).
    pub fn stop(self, how: Release, released: &mut Released) {
        self.tell_stop();
        self.thread.join_here();
        if let Some(orders) = Arc::into_inner(self.orders) {
            released.add(orders.waker.kind());
            orders.waker.commit().close(how);
        }
    }
}

fn run(orders: &Orders, fds: Fds, consumer: &Consumer) {
    // Refused only by a security policy: the backstop then just runs at the usual priority.
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE);
    // SAFETY: the reactor closes these only after `stop` has joined this thread.
    let (sources, reactor_waker) = unsafe {
        (
            BorrowedFd::borrow_raw(fds.sources),
            BorrowedFd::borrow_raw(fds.reactor_waker),
        )
    };
    let mut grace = Grace::default();
    loop {
        let watching = orders.watch.load(Ordering::SeqCst);
        if !watching {
            grace.clear();
        }
        // Watching and nothing left yet: the sources' readiness wakes this thread. Once seen,
        // only the grace's end (or new orders) does: the readiness lasts until someone turns.
        let look = watching && !grace.is_left();
        let timeout = grace.deadline().map(|at| {
            let d = at.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: d.as_secs() as _,
                tv_nsec: d.subsec_nanos() as _,
            }
        });
        let mut fds = [
            PollFd::new(&orders.waker, PollFlags::IN),
            PollFd::new(&sources, PollFlags::IN),
        ];
        let n = if look { 2 } else { 1 };
        match poll(&mut fds[..n], timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            // Cannot happen for these fds; if it did, the consumer's turns still deliver, and
            // the reactor handles everything once direct mode ends.
            Err(_) => return,
        }
        if !fds[0].revents().is_empty() {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(orders.waker.as_fd(), &mut buf);
        }
        if orders.stop.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        if look && !fds[1].revents().is_empty() {
            grace.leave(now, consumer.turns());
        }
        // A consumer that turned since (or holds a burst) keeps the sources, and one that
        // drained them before this thread got to look has nothing left; else they are the
        // reactor's now, until it gives them back (`arm`).
        if grace.over(now, consumer.turns(), consumer.since_turn()) == Some(false)
            && orders.watch.load(Ordering::SeqCst)
            && readable(sources)
        {
            orders.watch.store(false, Ordering::SeqCst);
            consumer.hand_over();
            let _ = rustix::io::write(reactor_waker, &1u64.to_ne_bytes());
        }
    }
}

/// Whether the sources' set has something ready now (polling an epoll fd consumes nothing).
fn readable(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).is_ok_and(|n| n > 0)
}

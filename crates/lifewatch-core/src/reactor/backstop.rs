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
//!
//! It sleeps on an epoll set of its own, where the sources' set is registered once, when the
//! backstop starts (its interest then switched on and off), not re-registered on every sleep
//! as `poll` does. The kernel wakes the waiters of a file newest registration first: so Node's
//! loop, which registers the sources' set after the backstop started, is woken first by an
//! exit, and the backstop's wake no longer comes before it (with `poll` it did, about 2 µs
//! on that path).

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rustix::event::epoll::{self, EventData, EventFlags};
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

/// epoll data of the two fds in the backstop's set.
const ORDERS: u64 = 0;
const SOURCES: u64 = 1;

/// The orders, the eventfd that says they changed, and the set the thread sleeps on.
struct Orders {
    watch: AtomicBool,
    stop: AtomicBool,
    waker: CountedFd,
    set: CountedFd,
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
    /// Starts the thread, not yet watching. Errors (no eventfd, epoll set or thread) close what
    /// was made.
    pub fn start(fds: Fds, consumer: Arc<Consumer>) -> Result<Backstop> {
        const WHAT: &str = "starting a monitor's backstop thread";
        let waker = CountedFd::new(
            failpoint::hit("eventfd")
                .and_then(|()| eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK))
                .sys("eventfd", WHAT)?,
            FdKind::Eventfd,
        );
        let set = CountedFd::new(
            failpoint::hit("epoll_create1")
                .and_then(|()| epoll::create(epoll::CreateFlags::CLOEXEC))
                .sys("epoll_create1", WHAT)?,
            FdKind::Epoll,
        );
        // SAFETY: the reactor keeps the sources' set open until it has joined this thread.
        let sources = unsafe { BorrowedFd::borrow_raw(fds.sources) };
        for (fd, data, flags) in [
            (waker.as_fd(), ORDERS, EventFlags::IN),
            (sources, SOURCES, EventFlags::empty()),
        ] {
            failpoint::hit("epoll_ctl")
                .and_then(|()| epoll::add(&set, fd, EventData::new_u64(data), flags))
                .sys("epoll_ctl", WHAT)?;
        }
        let orders = Arc::new(Orders {
            watch: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            waker: waker.commit(),
            set: set.commit(),
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
            .map_err(|e| Error::sys("clone", e.raw_os_error().unwrap_or(libc::EAGAIN), WHAT));
        match thread {
            Ok(thread) => Ok(Backstop { orders, thread }),
            Err(e) => {
                // The thread never ran: its copy of the orders is gone with the closure.
                if let Some(orders) = Arc::into_inner(orders) {
                    orders.close(Release::LeakPrevented, &mut Released::default());
                }
                Err(e)
            }
        }
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

    /// Stops and joins the thread, then closes its eventfd and epoll set (counted in `released`).
    pub fn stop(self, how: Release, released: &mut Released) {
        self.tell_stop();
        self.thread.join_here();
        if let Some(orders) = Arc::into_inner(self.orders) {
            orders.close(how, released);
        }
    }
}

impl Orders {
    fn close(self, how: Release, released: &mut Released) {
        for fd in [self.set, self.waker] {
            released.add(fd.kind());
            fd.close(how);
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
    let mut hearing = false;
    let mut ready = [const { MaybeUninit::<epoll::Event>::uninit() }; 2];
    loop {
        let watching = orders.watch.load(Ordering::SeqCst);
        if !watching {
            grace.clear();
        }
        // Watching and nothing left yet: the sources' readiness wakes this thread. Once seen,
        // only the grace's end (or new orders) does: the readiness lasts until someone turns.
        let look = watching && !grace.is_left();
        if look != hearing {
            let flags = if look {
                EventFlags::IN
            } else {
                EventFlags::empty()
            };
            // Cannot fail for a live entry of this set's; if it did, this thread could neither
            // sleep through readiness nor be sure to hear it: it ends, as when its wait fails.
            if epoll::modify(&orders.set, sources, EventData::new_u64(SOURCES), flags).is_err() {
                return;
            }
            hearing = look;
        }
        let timeout = grace.deadline().map(|at| {
            let d = at.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: d.as_secs() as _,
                tv_nsec: d.subsec_nanos() as _,
            }
        });
        let (mut ordered, mut seen) = (false, false);
        match epoll::wait(&orders.set, &mut ready[..], timeout.as_ref()) {
            Ok((events, _)) => {
                for ev in events.iter() {
                    match ev.data.u64() {
                        ORDERS => ordered = true,
                        _ => seen = true,
                    }
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            // Cannot happen for this set; if it did, the consumer's turns still deliver, and
            // the reactor handles everything once direct mode ends.
            Err(_) => return,
        }
        if ordered {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(orders.waker.as_fd(), &mut buf);
        }
        if orders.stop.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        if look && seen {
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

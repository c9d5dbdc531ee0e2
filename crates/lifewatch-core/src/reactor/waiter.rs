//! One-off waits with no monitor of their own (a cgroup's kill, freeze, emptiness or delete; a
//! process handle's exit) as sources of one shared reactor: one thread however many waits are
//! pending, started by the first wait and stopped, with every fd it opened, when the last one
//! has finished.
//!
//! A wait is an `Op`: a step that re-reads and acts, then says what should run it again (a
//! file changing, an fd becoming readable, a time). Each step runs on the reactor thread; the
//! result goes to the caller's `Done` once the op's fds are closed (and, for the last wait,
//! once the waiter's own are). An op that has its result at once (`Op::now`: an empty
//! cgroup's removal) gives it on the caller's thread, and no waiter runs.
//!
//! A changing cgroupfs file (`cgroup.events`) is followed through its own open fd, which polls
//! `POLLPRI` once the kernel has changed it since the fd last read it, not through inotify:
//! closing an inotify instance that held a watch waits for an RCU grace period (8 to 20 ms
//! measured here), which every last wait would add to its caller's time.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rustix::event::epoll::EventFlags;
use rustix::fs::{Mode, OFlags};

use crate::error::{Code, Error, Result, SysResult};
use crate::event::WatchId;
use crate::fd::{CountedFd, FdKind, Release, Released};
use crate::reactor::{Interest, Keep, Reactor, Ready, Registration, Source};

/// Where a wait's result goes (called on the reactor thread).
pub type Done<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// One wait: `step` re-reads and acts, and returns the result once there is one; until then it
/// arms (through `OpCx`) what must wake it again. Its fds close when it is dropped.
pub trait Op: Send + 'static {
    type Output: Send + 'static;
    fn step(&mut self, cx: &mut OpCx<'_, '_>) -> Option<Result<Self::Output>>;

    /// The result, if the op has it at once on the calling thread without arming anything
    /// (a cgroup already empty is removed right away): `submit` then neither starts nor wakes
    /// the waiter thread, whose first step under load came up to 5 ms after the submit.
    fn now(&mut self) -> Option<Result<Self::Output>> {
        None
    }

    /// The wait was cancelled: take out what was armed that dropping the op does not (an fd it
    /// does not own, added with `add_fd`).
    fn cancel(&mut self, _cx: &mut OpCx<'_, '_>) {}
}

/// What an op's step may arm.
pub struct OpCx<'a, 'b> {
    ready: &'a mut Ready<'b>,
    /// The files this op is woken by.
    files: &'a mut Vec<Watched>,
}

/// A cgroupfs file an op is woken by, through its own fd.
struct Watched {
    path: PathBuf,
    fd: CountedFd,
}

/// Reads a watched file through its fd: from then on the fd polls `POLLPRI` again only once
/// the kernel changes the file (the kernel compares against the fd's last read).
fn rearm(fd: &CountedFd) {
    let mut buf = [0u8; 256];
    let _ = rustix::io::pread(fd, &mut buf, 0);
}

impl OpCx<'_, '_> {
    /// Wakes the op whenever `file` is modified (a cgroup's `cgroup.events`: populated, frozen).
    /// A missing file is `ERR_NO_SUCH_CGROUP` (the files watched are cgroupfs files).
    pub fn watch_file(&mut self, file: &Path) -> Result<()> {
        if self.files.iter().any(|w| w.path == file) {
            return Ok(());
        }
        let fd = crate::failpoint::hit("open")
            .and_then(|()| rustix::fs::open(file, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()))
            .sys("open", format!("watching {}", file.display()))
            .map_err(|e| match e.errno {
                Some(libc::ENOENT) | Some(libc::ENODEV) => {
                    e.with_code(Code::NoSuchCgroup).with_path(file)
                }
                _ => e.with_path(file),
            })?;
        let fd = CountedFd::new(fd, FdKind::Control);
        rearm(&fd);
        self.ready.add_fd(fd.as_fd(), EventFlags::PRI)?;
        self.files.push(Watched {
            path: file.to_owned(),
            fd: fd.commit(),
        });
        Ok(())
    }

    /// Wakes the op when `fd` is readable (a pidfd). An fd that stays readable
    /// must be removed (`remove_fd`) before the next step, or it wakes the op again at once.
    pub fn add_fd(&mut self, fd: BorrowedFd<'_>) -> Result<()> {
        self.ready.add_fd(fd, EventFlags::IN)
    }

    pub fn remove_fd(&mut self, fd: BorrowedFd<'_>) {
        self.ready.remove_fd(fd)
    }

    /// Wakes the op at `at` (a deadline, a backoff); a later call replaces the time.
    pub fn wake_at(&mut self, at: Instant) {
        self.ready.wake_at(at)
    }
}

/// A pending wait. `cancel` ends it with `ERR_CLOSED` ("the wait was cancelled").
pub struct WaitHandle {
    /// `None`: the wait was over when it was submitted (`Op::now`).
    pending: Option<(Arc<Waiter>, WatchId)>,
    cancelled: Arc<AtomicBool>,
}

impl WaitHandle {
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some((waiter, key)) = &self.pending {
            waiter.reactor.wake_at(*key, Instant::now());
        }
    }
}

/// Runs `op` on the shared waiter; `done` gets its result, unless this returns an error. An
/// op with its result at once (`Op::now`) gives it to `done` before this returns.
pub fn submit<O: Op>(mut op: O, done: Done<O::Output>) -> Result<WaitHandle> {
    if let Some(result) = op.now() {
        // Its fds (if any) close before the result is handed over, as on the waiter.
        drop(op);
        done(result);
        return Ok(WaitHandle {
            pending: None,
            cancelled: Arc::new(AtomicBool::new(false)),
        });
    }
    let waiter = Waiter::acquire()?;
    let cancelled = Arc::new(AtomicBool::new(false));
    let source = OpSource {
        op: Some(op),
        done: Some(done),
        result: None,
        key: None,
        files: Vec::new(),
        cancelled: Arc::clone(&cancelled),
        waiter: Arc::clone(&waiter),
    };
    // The first step runs on the reactor thread, right away.
    let how = Registration {
        wake_at: Some(Instant::now()),
        ..Registration::default()
    };
    // A source refused here is released without ever running: its `done` is not called.
    let key = waiter.reactor.register(Box::new(source), how)?;
    Ok(WaitHandle {
        pending: Some((waiter, key)),
        cancelled,
    })
}

/// Runs `op` and blocks the calling thread until it finishes (for callers without an event
/// loop of their own).
pub fn run<O: Op>(op: O) -> Result<O::Output> {
    let (tx, rx) = std::sync::mpsc::channel();
    submit(op, Box::new(move |r| drop(tx.send(r))))?;
    rx.recv().unwrap_or_else(|_| Err(Error::closed()))
}

/// The shared reactor of the waits, while any is pending.
struct Waiter {
    reactor: Reactor,
    /// Waits submitted and not finished.
    pending: Mutex<usize>,
    /// Results held back while this waiter closes: handed over once its fds are closed.
    deferred: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    /// Its thread, joined by a wait that arrives while it closes.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The waiter that takes new waits (none while idle).
static CURRENT: Mutex<Option<Arc<Waiter>>> = Mutex::new(None);

/// The waiter that took its last wait and is closing (until its thread ends).
static STOPPING: Mutex<Option<Arc<Waiter>>> = Mutex::new(None);

/// Waiters started and not yet closed: at most one.
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn current() -> MutexGuard<'static, Option<Arc<Waiter>>> {
    CURRENT.lock().unwrap_or_else(|p| p.into_inner())
}

fn stopping() -> MutexGuard<'static, Option<Arc<Waiter>>> {
    STOPPING.lock().unwrap_or_else(|p| p.into_inner())
}

impl Waiter {
    /// The current waiter (started if there is none), with one more wait counted. A waiter
    /// still closing is waited for first (its teardown is short): one started meanwhile would
    /// be a second thread.
    fn acquire() -> Result<Arc<Waiter>> {
        loop {
            let closing = {
                // CURRENT before STOPPING, as `finish` takes them.
                let mut cur = current();
                if let Some(w) = &*cur {
                    let w = Arc::clone(w);
                    *w.pending() += 1;
                    return Ok(w);
                }
                match stopping().take() {
                    Some(closing) => closing,
                    None => {
                        let w = Waiter::start()?;
                        *cur = Some(Arc::clone(&w));
                        *w.pending() += 1;
                        return Ok(w);
                    }
                }
            };
            // Its thread needs neither lock to end; its own handovers may submit (not join).
            let handle = closing.thread().take();
            if let Some(h) = handle.filter(|h| h.thread().id() != std::thread::current().id()) {
                let _ = h.join();
            }
        }
    }

    fn pending(&self) -> MutexGuard<'_, usize> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn thread(&self) -> MutexGuard<'_, Option<std::thread::JoinHandle<()>>> {
        self.thread.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start() -> Result<Arc<Waiter>> {
        let w = Arc::new(Waiter {
            reactor: Reactor::new(Box::new(|| {}))?,
            pending: Mutex::new(0),
            deferred: Mutex::new(Vec::new()),
            thread: Mutex::new(None),
        });
        // Counted before its thread can end (and count itself out).
        LIVE.fetch_add(1, Ordering::SeqCst);
        let looping = Arc::clone(&w);
        let started = crate::failpoint::hit("clone")
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
            .and_then(|()| {
                std::thread::Builder::new()
                    .name("lifewatch-waits".into())
                    .spawn(move || looping.run())
            })
            .map_err(|e| {
                Error::sys(
                    "clone",
                    e.raw_os_error().unwrap_or(libc::EAGAIN),
                    "starting the wait thread",
                )
            });
        match started {
            Ok(handle) => *w.thread() = Some(handle),
            Err(e) => {
                LIVE.fetch_sub(1, Ordering::SeqCst);
                w.reactor.begin_close();
                w.reactor.teardown(Release::LeakPrevented);
                return Err(e);
            }
        }
        Ok(w)
    }

    /// The reactor thread: runs until the last wait finished (or the loop failed), then
    /// closes everything and hands over the results held back for that.
    fn run(self: Arc<Self>) {
        self.reactor.run();
        {
            let mut cur = current();
            if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self)) {
                *cur = None;
            }
        }
        crate::failpoint::hook("waiter.closing");
        self.reactor.begin_close();
        // Waits still registered (the loop failed) are released here: they report an error.
        self.reactor.teardown(Release::Normal);
        let deferred =
            std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        LIVE.fetch_sub(1, Ordering::SeqCst);
        for handover in deferred {
            handover();
        }
        let mut closing = stopping();
        if closing.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self)) {
            *closing = None;
        }
    }

    /// One wait is done (on the reactor thread, inside a turn): `true` when it was the last
    /// of the current waiter, which then stops after this turn instead of taking more.
    fn finish(self: &Arc<Self>) -> bool {
        let mut cur = current();
        let mut pending = self.pending();
        *pending -= 1;
        if *pending > 0 || !cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, self)) {
            return false;
        }
        *cur = None;
        *stopping() = Some(Arc::clone(self));
        self.reactor.stop_after_turn();
        true
    }
}

struct OpSource<O: Op> {
    /// Dropped (its fds closed) before the result is handed over.
    op: Option<O>,
    done: Option<Done<O::Output>>,
    result: Option<Result<O::Output>>,
    /// Known from the first step on (`None`: it never ran, its registration was refused).
    key: Option<WatchId>,
    files: Vec<Watched>,
    cancelled: Arc<AtomicBool>,
    waiter: Arc<Waiter>,
}

impl<O: Op> Source for OpSource<O> {
    fn interest(&self) -> Option<Interest<'_>> {
        None
    }

    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep {
        self.key = Some(cx.key);
        let Some(op) = self.op.as_mut() else {
            return Keep::No;
        };
        // Woken by a file or not, each step reads what it needs afresh.
        for f in &self.files {
            rearm(&f.fd);
        }
        let mut ocx = OpCx {
            ready: cx,
            files: &mut self.files,
        };
        if self.cancelled.load(Ordering::SeqCst) {
            op.cancel(&mut ocx);
            self.result = Some(Err(Error::new(Code::Closed, "the wait was cancelled")));
            return Keep::No;
        }
        match op.step(&mut ocx) {
            Some(r) => {
                self.result = Some(r);
                Keep::No
            }
            None => Keep::Yes,
        }
    }

    fn release(mut self: Box<Self>, how: Release, released: &mut Released) {
        // Closing them takes them out of the epoll set too (nothing else holds them).
        for f in self.files.drain(..) {
            released.add(f.fd.kind());
            f.fd.close(how);
        }
        drop(self.op.take());
        let waiter = Arc::clone(&self.waiter);
        // Never ran: its registration was refused and `submit` returns that error instead.
        let done = self.done.take().filter(|_| self.key.is_some());
        let result = self
            .result
            .take()
            .unwrap_or_else(|| Err(Error::new(Code::Io, "the wait thread stopped")));
        let handover = move || {
            if let Some(done) = done {
                done(result)
            }
        };
        if waiter.finish() {
            waiter
                .deferred
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Box::new(handover));
        } else {
            handover();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Done in its first step, so the waiter goes idle, and stops, between submits.
    struct Immediate;

    impl Op for Immediate {
        type Output = ();
        fn step(&mut self, _: &mut OpCx<'_, '_>) -> Option<Result<()>> {
            Some(Ok(()))
        }
    }

    fn live() -> usize {
        LIVE.load(Ordering::SeqCst)
    }

    #[test]
    fn a_wait_submitted_while_the_last_one_closes_never_starts_a_second_waiter() {
        // The closing waiter is held up long enough that a wait submitted meanwhile must meet it.
        let scope = crate::failpoint::scope();
        let (closing_tx, closing_rx) = std::sync::mpsc::channel();
        scope.on_hook("waiter.closing", move || {
            closing_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let done = |tx: &std::sync::mpsc::Sender<Result<()>>| -> Done<()> {
            let tx = tx.clone();
            Box::new(move |r| drop(tx.send(r)))
        };
        submit(Immediate, done(&tx)).unwrap();
        closing_rx.recv().unwrap();
        submit(Immediate, done(&tx)).unwrap();
        let most = live();
        for _ in 0..2 {
            rx.recv().unwrap().unwrap();
        }
        assert_eq!(most, 1, "waiters alive at once");
        // And many in a row, each finding the last one's waiter closing or gone.
        let mut most = 0;
        for _ in 0..1_000 {
            submit(Immediate, done(&tx)).unwrap();
            most = most.max(live());
        }
        for _ in 0..1_000 {
            rx.recv().unwrap().unwrap();
        }
        assert_eq!(most, 1, "waiters alive at once");
    }
}

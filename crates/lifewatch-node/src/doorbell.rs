//! The doorbell: Node's own event loop watches the monitor's ready fd (a `uv_poll_t`), runs
//! a turn on the JS thread when it is readable and calls the batch callback right there. An
//! exit then wakes the JS thread directly, instead of waking the reactor thread, which then
//! wakes the JS thread through the threadsafe function's async handle; and it is delivered
//! in the loop iteration that saw it, ahead of Node's own SIGCHLD handling of that exit.
//! The reactor handles what the JS thread leaves for longer than its grace period (JS busy):
//! those events still come through the threadsafe function.
//!
//! A burst (readiness again within `BURST_GAP` of a delivery) is taken in batches: the poll
//! pauses for `HOLD` (a `uv_timer_t`) and one turn then delivers everything that came
//! meanwhile, so thousands of exits cost dozens of JS calls, not thousands. An exit after a
//! pause is still delivered in the loop iteration that saw it.
//!
//! libuv is Node's: the functions below are resolved against the node binary at load time,
//! as napi-sys does for `uv_run` (linking a libuv of our own would poll a different loop).
//! The handle is unref'd (the batch threadsafe function decides whether Node stays alive),
//! closed before the monitor closes its fds, and closed at env teardown through an async
//! cleanup hook, which keeps the loop turning until libuv has let go of the handle.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::os::fd::{BorrowedFd, RawFd};
use std::ptr::null_mut;
use std::rc::Rc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use lifewatch_core::{Event, Events};
use napi::bindgen_prelude::JsValuesTupleIntoVec;
use napi::{sys, Env};
use rustix::event::epoll::{self, EventData, EventFlags};

use crate::batch;

/// What the doorbell rings: a monitor that takes turns on this thread.
pub(crate) trait Door {
    /// `false` when direct mode cannot be on: the doorbell then closes.
    fn set_direct(&self, on: bool) -> bool;
    fn turn_now(&self) -> Events;
    fn requeue(&self, events: Vec<Event>);
    /// After a turn's delivery: counts the turn, and closes what it ended (see `turn_now`).
    fn turn_done(&self);
    /// The doorbell gathers a burst for `hold` before its next turn.
    fn hold(&self, hold: Duration);
}

thread_local! {
    /// The monitor whose turn this thread is delivering, until its `turn_done`.
    static DELIVERING: RefCell<Option<Arc<dyn Door>>> = const { RefCell::new(None) };
}

/// Finishes the turn being delivered on this thread, if any (once: the delivery then does not
/// finish it again): `fdStats()` counts what is open, and an exit's waiter may ask it while
/// the delivery is still under way.
pub(crate) fn finish_delivering_turn() {
    finish_turn_if(|_| true);
}

/// As `finish_delivering_turn`, but only if the turn is `door`'s: a count that one monitor
/// reads must not finish another's turn (that would count it as turning while it delivers).
pub(crate) fn finish_turn_of(door: &Arc<impl Door + 'static>) {
    finish_turn_if(|t| std::ptr::addr_eq(Arc::as_ptr(t), Arc::as_ptr(door)));
}

fn finish_turn_if(whose: impl FnOnce(&mut Arc<dyn Door>) -> bool) {
    if let Some(door) = DELIVERING.with(|d| d.borrow_mut().take_if(whose)) {
        door.turn_done();
    }
}

/// `UV_POLL` and `UV_TIMER` in libuv's `uv_handle_type` and `UV_READABLE` in `uv_poll_event`
/// (stable ABI).
const UV_POLL: c_int = 8;
const UV_TIMER: c_int = 13;
const UV_READABLE: c_int = 1;

/// Readiness this soon after a delivery is a burst (or as soon as the burst's last hold)...
const BURST_GAP: Duration = Duration::from_millis(1);
/// ...whose exits are gathered this long (in ms) before the next delivery; while a burst's
/// deliveries stay under `BATCH` events the hold doubles, up to `MAX_HOLD_MS`, so a burst
/// spread over a second by the kernel costs about one delivery per `BATCH` exits, not one per
/// hold. The monitor is told of each hold (`Door::hold`): the reactor then leaves the burst to
/// this thread, or queues what it takes without notifying, until a grace after the hold.
const HOLD_MS: u64 = 3;
const MAX_HOLD_MS: u64 = 16;
const BATCH: usize = 64;

type PollCb = unsafe extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
type TimerCb = unsafe extern "C" fn(handle: *mut c_void);
type CloseCb = unsafe extern "C" fn(handle: *mut c_void);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init(event_loop: *mut sys::uv_loop_s, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut c_void, events: c_int, cb: PollCb) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_timer_init(event_loop: *mut sys::uv_loop_s, handle: *mut c_void) -> c_int;
    fn uv_timer_start(handle: *mut c_void, cb: TimerCb, timeout: u64, repeat: u64) -> c_int;
    fn uv_timer_stop(handle: *mut c_void) -> c_int;
    fn uv_unref(handle: *mut c_void);
    fn uv_close(handle: *mut c_void, cb: CloseCb);
    fn uv_handle_set_data(handle: *mut c_void, data: *mut c_void);
    fn uv_handle_get_data(handle: *const c_void) -> *mut c_void;
    fn uv_backend_fd(event_loop: *const sys::uv_loop_s) -> c_int;
}

/// Lives as long as the libuv handles: each handle's data holds one count of it.
struct Bell {
    monitor: Weak<dyn Door>,
    /// The poll and the hold timer; null once closing has begun.
    handle: Cell<*mut c_void>,
    timer: Cell<*mut c_void>,
    /// The poll's memory, to tell the two apart when libuv hands them back closed.
    poll_memory: *mut c_void,
    /// The ready fd, and the loop's epoll fd (-1: libuv gives none) where a hold masks it.
    fd: RawFd,
    backend: RawFd,
    /// The current hold masked the fd (else it stopped the poll).
    masked: Cell<bool>,
    /// Handles libuv has not yet closed (the env cleanup hook goes with the last).
    open_handles: Cell<u8>,
    last_delivery: Cell<Option<Instant>>,
    /// Events in the last delivery, and the last hold of the current burst (0: none yet).
    last_size: Cell<usize>,
    hold_ms: Cell<u64>,
    cleanup: Cell<sys::napi_async_cleanup_hook_handle>,
    env: sys::napi_env,
    /// The batch callback, the exit callback (a batch of one plain exit, see `batch`) and the
    /// async context they are made in (microtasks run after them, as for any callback from
    /// Node's loop); null once released.
    callbacks: Cell<Callbacks>,
    context: Cell<sys::napi_async_context>,
}

#[derive(Clone, Copy)]
struct Callbacks {
    batch: sys::napi_ref,
    exit: sys::napi_ref,
}

const RELEASED: Callbacks = Callbacks {
    batch: null_mut(),
    exit: null_mut(),
};

/// Held by the `NativeMonitor`, on the JS thread only.
pub(crate) struct Doorbell(Rc<Bell>);

fn handle_layout(kind: c_int) -> Layout {
    // SAFETY: a pure size query.
    let size = unsafe { uv_handle_size(kind) };
    Layout::from_size_align(size, 16).expect("uv handle size")
}

impl Doorbell {
    /// `None` when the runtime gives no libuv loop or libuv refuses the fd: the monitor
    /// then delivers through its reactor thread alone.
    pub(crate) fn open(
        env: &Env,
        fd: RawFd,
        monitor: Weak<dyn Door>,
        batch: sys::napi_value,
        exit: sys::napi_value,
    ) -> Option<Doorbell> {
        let env = env.raw();
        let mut event_loop = null_mut();
        // SAFETY: `env` is the live env of the calling (JS) thread.
        let status = unsafe { sys::napi_get_uv_event_loop(env, &mut event_loop) };
        if status != sys::Status::napi_ok || event_loop.is_null() {
            return None;
        }
        let (callbacks, context) = callback_handles(env, batch, exit)?;
        let (poll_layout, timer_layout) = (handle_layout(UV_POLL), handle_layout(UV_TIMER));
        // SAFETY: fresh blocks of the sizes libuv asks for; freed in `on_closed`, or below
        // when an init fails (libuv has not seen that one then; a timer it has seen is closed).
        let (handle, timer) = unsafe {
            (
                alloc_zeroed(poll_layout).cast::<c_void>(),
                alloc_zeroed(timer_layout).cast::<c_void>(),
            )
        };
        let timer_ok = !timer.is_null() && unsafe { uv_timer_init(event_loop, timer) } == 0;
        if !timer_ok || handle.is_null() || unsafe { uv_poll_init(event_loop, handle, fd) } != 0 {
            unsafe {
                if !handle.is_null() {
                    dealloc(handle.cast(), poll_layout);
                }
                match (timer.is_null(), timer_ok) {
                    (true, _) => {}
                    (false, true) => uv_close(timer, on_orphan_timer_closed),
                    (false, false) => dealloc(timer.cast(), timer_layout),
                }
            }
            release_callbacks(env, callbacks, context);
            return None;
        }
        let bell = Rc::new(Bell {
            monitor,
            handle: Cell::new(handle),
            timer: Cell::new(timer),
            poll_memory: handle,
            fd,
            // SAFETY: a plain query of a live loop.
            backend: unsafe { uv_backend_fd(event_loop) },
            masked: Cell::new(false),
            open_handles: Cell::new(2),
            last_delivery: Cell::new(None),
            last_size: Cell::new(0),
            hold_ms: Cell::new(0),
            cleanup: Cell::new(null_mut()),
            env,
            callbacks: Cell::new(callbacks),
            context: Cell::new(context),
        });
        // SAFETY: the handle is initialised; its data owns one count, taken back in
        // `on_closed`, the only way the handle goes away from here on.
        unsafe {
            uv_handle_set_data(handle, Rc::into_raw(Rc::clone(&bell)) as *mut c_void);
            uv_handle_set_data(timer, Rc::into_raw(Rc::clone(&bell)) as *mut c_void);
            uv_unref(handle);
            uv_unref(timer);
        }
        let doorbell = Doorbell(bell);
        let mut cleanup = null_mut();
        // SAFETY: the hook's arg is the Bell, alive until `on_closed`, which unregisters the
        // hook first thing.
        let hooked = unsafe {
            sys::napi_add_async_cleanup_hook(
                env,
                Some(on_env_teardown),
                Rc::as_ptr(&doorbell.0) as *mut c_void,
                &mut cleanup,
            )
        };
        // SAFETY: as above.
        if hooked != sys::Status::napi_ok
            || unsafe { uv_poll_start(handle, UV_READABLE, on_readable) } != 0
        {
            doorbell.0.cleanup.set(if hooked == sys::Status::napi_ok {
                cleanup
            } else {
                null_mut()
            });
            doorbell.close();
            return None;
        }
        doorbell.0.cleanup.set(cleanup);
        let direct = doorbell
            .0
            .monitor
            .upgrade()
            .is_some_and(|door| door.set_direct(true));
        if !direct {
            doorbell.close();
            return None;
        }
        Some(doorbell)
    }

    /// Stops watching at once (the ready fd may be closed right after); libuv frees the
    /// handle on a later loop turn. Idempotent.
    pub(crate) fn close(&self) {
        close(&self.0);
    }
}

fn close(bell: &Bell) {
    let handle = bell.handle.replace(null_mut());
    if handle.is_null() {
        return;
    }
    let timer = bell.timer.replace(null_mut());
    // The reactor handles everything at once from here on (a held burst included).
    if let Some(door) = bell.monitor.upgrade() {
        let _ = door.set_direct(false);
    }
    // SAFETY: live handles of this thread's loop, closed exactly once (they were nulled).
    unsafe {
        uv_poll_stop(handle);
        uv_close(handle, on_closed);
        uv_timer_stop(timer);
        uv_close(timer, on_closed);
    }
    release_callbacks(
        bell.env,
        bell.callbacks.replace(RELEASED),
        bell.context.replace(null_mut()),
    );
}

/// References to the two callbacks and an async context to make them in; `None` if the
/// runtime refuses any (the doorbell is then not used).
fn callback_handles(
    env: sys::napi_env,
    batch: sys::napi_value,
    exit: sys::napi_value,
) -> Option<(Callbacks, sys::napi_async_context)> {
    const NAME: &str = "lifewatch:batch";
    let (mut callbacks, mut name, mut context) = (RELEASED, null_mut(), null_mut());
    // SAFETY: plain N-API calls on the JS thread with live values.
    unsafe {
        let made = sys::napi_create_reference(env, batch, 1, &mut callbacks.batch)
            == sys::Status::napi_ok
            && sys::napi_create_reference(env, exit, 1, &mut callbacks.exit)
                == sys::Status::napi_ok
            && sys::napi_create_string_utf8(
                env,
                NAME.as_ptr().cast(),
                NAME.len() as isize,
                &mut name,
            ) == sys::Status::napi_ok
            && sys::napi_async_init(env, null_mut(), name, &mut context) == sys::Status::napi_ok;
        if !made {
            release_callbacks(env, callbacks, null_mut());
            return None;
        }
    }
    Some((callbacks, context))
}

fn release_callbacks(env: sys::napi_env, callbacks: Callbacks, context: sys::napi_async_context) {
    // SAFETY: created by `callback_handles` and released once (the cell was emptied).
    unsafe {
        if !context.is_null() {
            sys::napi_async_destroy(env, context);
        }
        for reference in [callbacks.batch, callbacks.exit] {
            if !reference.is_null() {
                sys::napi_delete_reference(env, reference);
            }
        }
    }
}

/// Calls the batch callback with `events` (or the exit callback, for a batch of one plain
/// exit) as Node calls any callback from its loop: in a handle scope, through
/// `napi_make_callback` (microtasks and nextTicks run after it), with an exception raised as
/// uncaught. If the callback cannot be reached the events go back to the monitor's queue, to
/// come through the threadsafe function instead.
fn deliver(bell: &Bell, door: &dyn Door, events: Events) {
    let env = bell.env;
    let (callbacks, context) = (bell.callbacks.get(), bell.context.get());
    let mut scope = null_mut();
    // SAFETY: N-API calls on the JS thread, inside a handle scope opened and closed here.
    unsafe {
        if callbacks.batch.is_null()
            || sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok
        {
            door.requeue(events.into_vec());
            return;
        }
        let exit = match events.as_slice() {
            [one] => batch::PlainExit::of(one),
            _ => None,
        };
        // The exit's six values stay on the stack: no allocation on the usual path.
        let called = match exit {
            Some(exit) => exit
                .args(env)
                .is_ok_and(|args| call(env, context, callbacks.exit, &args)),
            None => batch::encode(&Env::from_raw(env), &events)
                .into_vec(env)
                .is_ok_and(|args| call(env, context, callbacks.batch, &args)),
        };
        if !called {
            door.requeue(events.into_vec());
        }
        sys::napi_close_handle_scope(env, scope);
    }
}

/// Calls `callback` with `args` through `napi_make_callback`, an exception raised as uncaught;
/// `false` if the callback could not be reached (nothing was called).
///
/// # Safety
/// On the JS thread, inside a handle scope; `callback` a live reference.
unsafe fn call(
    env: sys::napi_env,
    context: sys::napi_async_context,
    callback: sys::napi_ref,
    args: &[sys::napi_value],
) -> bool {
    let (mut func, mut recv, mut result) = (null_mut(), null_mut(), null_mut());
    // SAFETY: as the caller promises.
    unsafe {
        let ready = sys::napi_get_reference_value(env, callback, &mut func) == sys::Status::napi_ok
            && !func.is_null()
            // napi_make_callback wants an object as `this`.
            && sys::napi_get_global(env, &mut recv) == sys::Status::napi_ok;
        if !ready {
            return false;
        }
        let status = sys::napi_make_callback(
            env,
            context,
            recv,
            func,
            args.len(),
            args.as_ptr(),
            &mut result,
        );
        if status == sys::Status::napi_pending_exception {
            let mut error = null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut error);
            sys::napi_fatal_exception(env, error);
        }
    }
    true
}

unsafe extern "C" fn on_readable(handle: *mut c_void, status: c_int, _events: c_int) {
    // SAFETY: the data set in `open`, valid until `on_closed`.
    let bell = unsafe { &*(uv_handle_get_data(handle) as *const Bell) };
    if status < 0 {
        // The fd went bad: leave the delivery to the reactor thread.
        close(bell);
        return;
    }
    // Within a burst, a gap as long as its hold still belongs to it (the JS thread may be
    // kept from its loop that long by the very processes dying).
    let gap = BURST_GAP.max(Duration::from_millis(bell.hold_ms.get()));
    let burst = bell
        .last_delivery
        .get()
        .is_some_and(|at| at.elapsed() < gap);
    if burst {
        let hold = next_hold(bell.hold_ms.get(), bell.last_size.get());
        // SAFETY: live handles of this thread's loop (the poll was not closed: it called us).
        if unsafe { uv_timer_start(bell.timer.get(), on_hold_over, hold, 0) } == 0 {
            bell.hold_ms.set(hold);
            if let Some(door) = bell.monitor.upgrade() {
                door.hold(Duration::from_millis(hold));
            }
            pause(bell, handle);
            return;
        }
    }
    ring(bell);
    // After the delivery, as every write to the Bell on this path: see `ring`.
    bell.hold_ms.set(0);
}

/// The next hold of a burst (`HOLD_MS`), given the last one (0: none) and the size of the
/// delivery that ended it.
fn next_hold(last_ms: u64, delivered: usize) -> u64 {
    match last_ms {
        0 => HOLD_MS,
        ms if delivered < BATCH => (ms * 2).min(MAX_HOLD_MS),
        ms => ms,
    }
}

/// Sets the ready fd's interest in the loop's epoll set: none, or what libuv registered for a
/// readable poll (`POLLIN`, the fd as its data).
fn mask(bell: &Bell, readable: bool) -> bool {
    if bell.backend < 0 {
        return false;
    }
    let flags = if readable {
        EventFlags::IN
    } else {
        EventFlags::empty()
    };
    // SAFETY: the loop's epoll fd and the monitor's ready fd are open while the poll is.
    let (backend, fd) = unsafe {
        (
            BorrowedFd::borrow_raw(bell.backend),
            BorrowedFd::borrow_raw(bell.fd),
        )
    };
    epoll::modify(backend, fd, EventData::new_u64(bell.fd as u64), flags).is_ok()
}

/// Stops hearing the ready fd for a hold.
fn pause(bell: &Bell, handle: *mut c_void) {
    let masked = mask(bell, false);
    if !masked {
        // SAFETY: a live handle of this thread's loop.
        unsafe { uv_poll_stop(handle) };
    }
    bell.masked.set(masked);
}

/// The hold of a burst is over: one turn for all that came meanwhile, then watch again.
unsafe extern "C" fn on_hold_over(timer: *mut c_void) {
    // SAFETY: the data set in `open`, valid until `on_closed`.
    let bell = unsafe { &*(uv_handle_get_data(timer) as *const Bell) };
    ring(bell);
    let handle = bell.handle.get();
    if handle.is_null() {
        return;
    }
    if bell.masked.get() && mask(bell, true) {
        return;
    }
    // SAFETY: still open (not nulled): a live handle of this thread's loop. `uv_poll_start`
    // stops the poll first (taking the fd out of the loop's set), so a poll whose mask could
    // not be lifted is registered anew too.
    if unsafe { uv_poll_start(handle, UV_READABLE, on_readable) } != 0 {
        close(bell);
    }
}

/// One turn on this thread, its events delivered at once. Nothing is written to the Bell (nor,
/// in the monitor, to what the turn does not need) before the delivery: in a process that has
/// forked since the last exit (Node's `child_process` forks), every page written before is
/// copy-on-write again, and a write to one costs a page fault between the exit and JS.
fn ring(bell: &Bell) {
    match bell.monitor.upgrade() {
        Some(door) => {
            let events = door.turn_now();
            let size = events.len();
            let delivered = size > 0;
            let mut finished = false;
            if delivered {
                DELIVERING.with(|d| d.replace(Some(Arc::clone(&door))));
                deliver(bell, door.as_ref(), events);
                // `fdStats()` during the delivery finishes the turn itself.
                finished = DELIVERING.with(|d| d.borrow_mut().take()).is_none();
            }
            // The turn counts, and the fds of the watches it ended close: after the delivery,
            // off the path from an exit to its waiter.
            if !finished {
                door.turn_done();
            }
            bell.last_size.set(size);
            // After the closing too (thousands of fds in a burst's turn): readiness within the
            // burst gap of this is still the burst's.
            if delivered {
                bell.last_delivery.set(Some(Instant::now()));
            }
        }
        None => close(bell),
    }
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
    // SAFETY: takes back the count `open` gave the handle; libuv is done with the handle.
    let bell = unsafe { Rc::from_raw(uv_handle_get_data(handle) as *const Bell) };
    let layout = if std::ptr::eq(handle, bell.poll_memory) {
        handle_layout(UV_POLL)
    } else {
        handle_layout(UV_TIMER)
    };
    bell.open_handles.set(bell.open_handles.get() - 1);
    if bell.open_handles.get() == 0 {
        let cleanup = bell.cleanup.replace(null_mut());
        if !cleanup.is_null() {
            // SAFETY: registered in `open`; removing it also tells a running teardown we are
            // done.
            unsafe { sys::napi_remove_async_cleanup_hook(cleanup) };
        }
    }
    // SAFETY: allocated in `open` with this layout.
    unsafe { dealloc(handle.cast(), layout) };
}

/// A timer whose poll could not be made (`open` failed): libuv is done with it.
unsafe extern "C" fn on_orphan_timer_closed(timer: *mut c_void) {
    // SAFETY: allocated in `open` with this layout; no Bell was made.
    unsafe { dealloc(timer.cast(), handle_layout(UV_TIMER)) };
}

/// Env teardown (worker exit, process exit) before the monitor was closed.
unsafe extern "C" fn on_env_teardown(_: sys::napi_async_cleanup_hook_handle, arg: *mut c_void) {
    // SAFETY: the Bell registered in `open`; the handle's count keeps it alive until
    // `on_closed`, which unregisters this hook.
    close(unsafe { &*(arg as *const Bell) });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_holds_longer_while_its_batches_stay_small() {
        assert_eq!(next_hold(0, 1), HOLD_MS, "a burst's first hold");
        assert_eq!(next_hold(HOLD_MS, BATCH - 1), 2 * HOLD_MS);
        assert_eq!(
            next_hold(HOLD_MS, BATCH),
            HOLD_MS,
            "batches big enough: kept"
        );
        assert_eq!(next_hold(MAX_HOLD_MS, 1), MAX_HOLD_MS, "capped");
    }
}

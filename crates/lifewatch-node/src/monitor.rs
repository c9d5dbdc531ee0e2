//! `NativeMonitor`: the core Monitor plus the threadsafe function that carries its batches.
//! Teardown on every way out (user `close`, GC finalizer, env cleanup for worker exit),
//! idempotent and safe in any order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use lifewatch_core::fd::Release;
use lifewatch_core::{Event, Events, Monitor, MonitorOptions, Released};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, JsValue};
use napi_derive::napi;
use std::ffi::c_void;

use crate::batch;
use crate::doorbell::{Door, Doorbell};
use crate::error::OrThrow;
use crate::stats::ReleasedFds;

type BatchFn = ThreadsafeFunction<(), (), batch::Args, Status, false, true>;

#[napi(object)]
pub struct NativeMonitorOptions {
    pub force_fallback: Option<bool>,
    /// Node's loop watches the monitor's ready fd itself (default true; see `doorbell`).
    pub direct_wake: Option<bool>,
    /// A cgroup tree to use instead of the mounted hierarchies (tests).
    pub cgroup_root: Option<String>,
}

/// Shared by the monitor object, the reactor's notify closure and the env cleanup hook.
pub(crate) struct Inner {
    pub(crate) core: Monitor,
    batches: Mutex<Option<BatchFn>>,
    hook_ran: AtomicBool,
}

impl Door for Inner {
    fn set_direct(&self, on: bool) -> bool {
        self.core.set_direct(on)
    }

    fn turn_now(&self) -> Events {
        self.core.turn_now()
    }

    fn requeue(&self, events: Vec<Event>) {
        self.core.requeue(events)
    }

    fn turn_done(&self) {
        self.core.turn_done()
    }

    fn hold(&self, hold: std::time::Duration) {
        self.core.hold(hold)
    }
}

impl Inner {
    fn close(&self, how: Release) -> Released {
        let released = self.core.close_as(how);
        // Releasing the threadsafe function is what lets Node's loop exit.
        self.batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        released
    }
}

#[napi]
pub struct NativeMonitor {
    /// Other files add `#[napi] impl NativeMonitor` blocks (one concern each) through this.
    pub(crate) inner: Arc<Inner>,
    env: Env,
    /// The env cleanup hook's registration (a boxed `Weak<Inner>`), until removed or run.
    hook: Option<*mut c_void>,
    doorbell: Option<Doorbell>,
}

#[napi]
impl NativeMonitor {
    /// `onBatch` receives every event queued since the last call: one call per batch (see
    /// `batch` for its two arguments). `onExit` receives a batch of one plain exit as its
    /// numbers, when the doorbell delivers it.
    #[napi(
        constructor,
        ts_args_type = "onBatch: (records: Float64Array, others: Array<NativeEvent>) => void, onExit: (watch: number, time: bigint, pid: number, kind: number, value: number, source: number) => void, options?: NativeMonitorOptions | undefined | null"
    )]
    pub fn new(
        env: Env,
        on_batch: Function<batch::Args, ()>,
        // Called by the doorbell alone, through raw N-API (its arguments are made there).
        on_exit: Function<(), ()>,
        options: Option<NativeMonitorOptions>,
    ) -> Result<Self> {
        // The doorbell calls the same callbacks directly on this thread.
        let (batch_callback, exit_callback) = (on_batch.value().value, on_exit.value().value);
        let core_slot: Arc<OnceLock<Weak<Inner>>> = Arc::new(OnceLock::new());
        let drain_from = Arc::clone(&core_slot);
        let batches: BatchFn = on_batch
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(move |ctx| {
                let events = drain_from
                    .get()
                    .and_then(Weak::upgrade)
                    .map(|inner| {
                        let events = inner.core.drain();
                        inner.core.consumer_drained();
                        events
                    })
                    .unwrap_or_default();
                Ok(batch::encode(&ctx.env, &events))
            })?;
        let notify_slot = Arc::clone(&core_slot);
        let direct_wake = options.as_ref().and_then(|o| o.direct_wake).unwrap_or(true);
        let options = MonitorOptions {
            force_fallback: options
                .as_ref()
                .and_then(|o| o.force_fallback)
                .unwrap_or(false),
            cgroup_root: options
                .and_then(|o| o.cgroup_root)
                .map(std::path::PathBuf::from),
        };
        let core = Monitor::new(
            options,
            Box::new(move || {
                if let Some(inner) = notify_slot.get().and_then(Weak::upgrade) {
                    if let Some(f) = inner
                        .batches
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                    {
                        f.call((), ThreadsafeFunctionCallMode::NonBlocking);
                    }
                }
            }),
        )
        .or_throw(&env)?;
        let inner = Arc::new(Inner {
            core,
            batches: Mutex::new(Some(batches)),
            hook_ran: AtomicBool::new(false),
        });
        let _ = core_slot.set(Arc::downgrade(&inner));
        let hook = Box::into_raw(Box::new(Arc::downgrade(&inner))).cast::<c_void>();
        // SAFETY: `on_env_cleanup` takes back exactly this box; `remove_hook` frees it otherwise.
        let status =
            unsafe { sys::napi_add_env_cleanup_hook(env.raw(), Some(on_env_cleanup), hook) };
        if status != sys::Status::napi_ok {
            // SAFETY: not registered, so nothing else will free it.
            drop(unsafe { Box::from_raw(hook.cast::<Weak<Inner>>()) });
            inner.close(Release::LeakPrevented);
            return Err(Error::from_reason(
                "registering the monitor's env cleanup hook failed",
            ));
        }
        // Registered after the cleanup hook above, so that at teardown (hooks run in reverse
        // order) the doorbell stops watching before the monitor closes the fd.
        let doorbell = direct_wake
            .then(|| {
                let door: Arc<dyn Door> = Arc::clone(&inner) as Arc<dyn Door>;
                Doorbell::open(
                    &env,
                    inner.core.ready_fd(),
                    Arc::downgrade(&door),
                    batch_callback,
                    exit_callback,
                )
            })
            .flatten();
        Ok(NativeMonitor {
            inner,
            env,
            hook: Some(hook),
            doorbell,
        })
    }

    #[napi]
    pub fn watch_pid(&self, env: Env, pid: i64) -> Result<u32> {
        self.inner.core.watch_pid(pid).or_throw(&env)
    }

    #[napi]
    pub fn unwatch(&self, env: Env, watch: u32) -> Result<bool> {
        self.inner.core.unwatch(watch).or_throw(&env)
    }

    #[napi]
    pub fn check_cgroup(&self, env: Env, watch: u32) -> Result<bool> {
        self.inner.core.check_cgroup(watch).or_throw(&env)
    }

    #[napi]
    pub fn cgroup_removed(&self, env: Env, watch: u32) -> Result<bool> {
        self.inner.core.cgroup_removed(watch).or_throw(&env)
    }

    #[napi]
    pub fn signal(&self, env: Env, watch: u32, signo: i32) -> Result<()> {
        self.inner.core.signal(watch, signo).or_throw(&env)
    }

    #[napi(getter)]
    pub fn uses_pidfd(&self) -> bool {
        self.inner.core.uses_pidfd()
    }

    /// Watches still in force: read while this monitor's delivery is under way (by the waiter
    /// of an exit it delivers), it finishes that turn first, which ends the watches delivered.
    #[napi(getter)]
    pub fn watch_count(&self) -> u32 {
        crate::doorbell::finish_turn_of(&self.inner);
        self.inner.core.watch_count() as u32
    }

    /// IN_Q_OVERFLOW seen on the monitor's inotify fd (each one re-read every v2 watch).
    #[napi(getter)]
    pub fn inotify_overflows(&self) -> f64 {
        self.inner.core.inotify_overflows() as f64
    }

    /// Batches handed to JS so far (threadsafe-function notifications and direct deliveries).
    #[napi(getter)]
    pub fn notifications(&self) -> f64 {
        self.inner.core.notifications() as f64
    }

    /// Keep Node's event loop alive while open (as a listening server does).
    #[napi(js_name = "ref")]
    #[allow(deprecated)]
    pub fn refer(&self, env: Env) -> Result<()> {
        self.with_batches(|f| f.refer(&env))
    }

    #[napi]
    #[allow(deprecated)]
    pub fn unref(&self, env: Env) -> Result<()> {
        self.with_batches(|f| f.unref(&env))
    }

    /// Runs `op` on the batch threadsafe function while the monitor still has one.
    fn with_batches(&self, op: impl FnOnce(&mut BatchFn) -> Result<()>) -> Result<()> {
        match self
            .inner
            .batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(f) => op(f),
            None => Ok(()),
        }
    }

    pub(crate) fn core(&self) -> &Monitor {
        &self.inner.core
    }

    /// Idempotent; returns the fds released by this call, per kind.
    #[napi]
    pub fn close(&mut self) -> ReleasedFds {
        self.stop_doorbell();
        let released = self.inner.close(Release::Normal);
        self.remove_hook();
        ReleasedFds::from(released)
    }

    /// Whether Node's loop watches the ready fd (false: delivery through the reactor alone).
    #[napi(getter)]
    pub fn direct_wake(&self) -> bool {
        self.doorbell.is_some()
    }

    /// Before the monitor's fds close: libuv must not watch a closed (or reused) fd number.
    fn stop_doorbell(&mut self) {
        if let Some(d) = self.doorbell.take() {
            d.close();
        }
    }

    /// napi-rs's own `remove_env_cleanup_hook` never frees what it registered, which kept a
    /// whole closed monitor alive per `close()`: this registration owns and frees its box.
    fn remove_hook(&mut self) {
        if let Some(hook) = self.hook.take() {
            if !self.inner.hook_ran.load(Ordering::SeqCst) {
                // SAFETY: registered in `new` with this callback and pointer; the hook has not
                // run, so the box is still ours to free once it is unregistered.
                unsafe {
                    sys::napi_remove_env_cleanup_hook(self.env.raw(), Some(on_env_cleanup), hook);
                    drop(Box::from_raw(hook.cast::<Weak<Inner>>()));
                }
            }
        }
    }
}

/// Runs when the env (a worker thread, the main thread at exit) is torn down first.
unsafe extern "C" fn on_env_cleanup(arg: *mut c_void) {
    // SAFETY: the box registered in `NativeMonitor::new`, handed back exactly once.
    let weak = unsafe { Box::from_raw(arg.cast::<Weak<Inner>>()) };
    if let Some(inner) = weak.upgrade() {
        inner.hook_ran.store(true, Ordering::SeqCst);
        inner.close(Release::LeakPrevented);
    }
}

impl Drop for NativeMonitor {
    /// The GC finalizer: a monitor nobody closed still releases everything.
    fn drop(&mut self) {
        self.stop_doorbell();
        self.inner.close(Release::LeakPrevented);
        self.remove_hook();
    }
}

//! `NativeProcess`: a process handle of its own (a pidfd), for an owner whose process must be
//! known after the monitor watching it has closed (a Task): its liveness, signals, and its exit
//! through the core's shared waiter.

use std::sync::Arc;

use lifewatch_core::fd::Release;
use lifewatch_core::process::wait::{wait_exit, Exited};
use lifewatch_core::{check_pid, Code, Error, Process, Released};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::Env;
use napi_derive::napi;

use crate::error::{js_error, OrThrow};
use crate::event::status_fields;
use crate::wait::NativeCancel;

#[napi]
pub struct NativeProcess {
    pid: i32,
    /// `None` once closed (a pending exit wait has a pidfd of its own).
    process: Option<Arc<Process>>,
}

#[napi(object, object_from_js = false)]
pub struct NativeExit {
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub core: Option<bool>,
    #[napi(ts_type = "'pidfd' | 'waitid' | 'fallback'")]
    pub source: String,
    /// CLOCK_MONOTONIC ns when the exit was seen.
    pub time: BigInt,
}

/// How an exit wait ended: the exit, or the error.
#[napi(object, object_from_js = false)]
pub struct NativeExitOutcome {
    pub exit: Option<NativeExit>,
    #[napi(ts_type = "Error & { code: string }")]
    pub error: Option<napi::Error>,
}

impl From<Exited> for NativeExit {
    fn from(e: Exited) -> Self {
        let (exit_code, signal, core) = status_fields(e.status);
        NativeExit {
            exit_code,
            signal,
            core,
            source: e.source.as_str().into(),
            time: BigInt::from(e.time),
        }
    }
}

impl NativeProcess {
    fn core(&self, env: &Env) -> Result<&Arc<Process>> {
        let closed = || {
            js_error(
                env,
                Error::new(Code::Closed, "the process handle is closed"),
            )
        };
        self.process.as_ref().ok_or_else(closed)
    }
}

#[napi]
impl NativeProcess {
    /// Any process (a pidfd where the kernel has them).
    #[napi(factory)]
    pub fn open(env: Env, pid: i64) -> Result<NativeProcess> {
        let pid = check_pid(pid).or_throw(&env)?;
        Ok(NativeProcess {
            pid,
            process: Some(Arc::new(Process::any(pid).or_throw(&env)?)),
        })
    }

    #[napi(getter)]
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the whole process has exited, as the kernel says now (true once closed).
    #[napi(getter)]
    pub fn exited(&self) -> bool {
        self.process.as_ref().is_none_or(|p| p.exited())
    }

    #[napi]
    pub fn signal(&self, env: Env, signo: i32) -> Result<()> {
        self.core(&env)?.signal(signo).or_throw(&env)
    }

    /// Calls `callback` once the process has exited, with how (`reap` for a child lifewatch
    /// spawned). Until then Node is kept alive only with `keepAlive`.
    #[napi(
        ts_args_type = "reap: boolean, keepAlive: boolean, callback: (outcome: NativeExitOutcome) => void, cancel?: NativeCancel"
    )]
    pub fn wait_exit(
        &self,
        env: Env,
        reap: bool,
        keep_alive: bool,
        callback: Function<NativeExitOutcome, ()>,
        cancel: Option<&NativeCancel>,
    ) -> Result<()> {
        let process = self.core(&env)?;
        #[allow(deprecated)]
        let mut tsfn = callback
            .build_threadsafe_function::<lifewatch_core::Result<Exited>>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|ctx| {
                Ok(match ctx.value {
                    Ok(exit) => NativeExitOutcome {
                        exit: Some(exit.into()),
                        error: None,
                    },
                    Err(e) => NativeExitOutcome {
                        exit: None,
                        error: Some(js_error(&ctx.env, e)),
                    },
                })
            })?;
        if keep_alive {
            #[allow(deprecated)]
            tsfn.refer(&env)?;
        }
        let handle = wait_exit(
            process,
            reap,
            Box::new(move |r| {
                let _ = tsfn.call(r, ThreadsafeFunctionCallMode::NonBlocking);
            }),
        )
        .or_throw(&env)?;
        if let Some(c) = cancel {
            c.bind(handle);
        }
        Ok(())
    }

    /// Closes the pidfd (a pending exit wait goes on with its own). Idempotent.
    #[napi]
    pub fn close(&mut self) {
        release(self.process.take(), Release::Normal);
    }
}

fn release(process: Option<Arc<Process>>, how: Release) {
    if let Some(p) = process.and_then(|p| Arc::try_unwrap(p).ok()) {
        p.release(how, &mut Released::default());
    }
}

impl Drop for NativeProcess {
    /// The GC finalizer of a handle nobody closed.
    fn drop(&mut self) {
        release(self.process.take(), Release::LeakPrevented);
    }
}

//! Waits of the core's shared waiter as promises: the result settles the promise (the value, or
//! the JavaScript error); a `NativeCancel` ends the wait early (the TypeScript layer ties it to
//! an AbortSignal).

use std::sync::{Arc, Mutex};

use lifewatch_core::reactor::waiter::{Done, WaitHandle};
use napi::bindgen_prelude::*;
use napi::Env;
use napi_derive::napi;

use crate::error::{js_error, OrThrow};

/// Cancels one pending wait, once it has started.
#[napi]
#[derive(Default)]
pub struct NativeCancel {
    state: Arc<Mutex<CancelState>>,
}

#[derive(Default)]
struct CancelState {
    handle: Option<WaitHandle>,
    cancelled: bool,
}

#[napi]
impl NativeCancel {
    #[napi(constructor)]
    pub fn new() -> Self {
        NativeCancel::default()
    }

    #[napi]
    pub fn cancel(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.cancelled = true;
        if let Some(h) = &st.handle {
            h.cancel();
        }
    }
}

impl NativeCancel {
    /// The wait this cancels (a cancel that came first takes effect at once).
    pub(crate) fn bind(&self, handle: WaitHandle) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.cancelled {
            handle.cancel();
        }
        st.handle = Some(handle);
    }
}

/// Starts a wait whose result settles the returned promise (with `T`, or the JS error).
pub(crate) fn wait<'e, T, R>(
    env: &'e Env,
    cancel: Option<&NativeCancel>,
    start: impl FnOnce(Done<T>) -> lifewatch_core::Result<WaitHandle>,
    convert: impl FnOnce(T) -> R + Send + 'static,
) -> Result<Object<'e>>
where
    T: Send + 'static,
    R: ToNapiValue + Send + 'static,
{
    let (deferred, promise) = env.create_deferred::<R, Box<dyn FnOnce(Env) -> Result<R>>>()?;
    let done: Done<T> = Box::new(move |r| {
        deferred.resolve(Box::new(move |env| {
            r.map(convert).map_err(|e| js_error(&env, e))
        }));
    });
    let handle = start(done).or_throw(env)?;
    if let Some(c) = cancel {
        c.bind(handle);
    }
    Ok(promise)
}

//! The bench's JS floor: the least an addon can do to bring a process's exit to JavaScript.
//! A pidfd polled by a `uv_poll_t` on Node's own loop; when it is readable, one JS function is
//! called through `napi_make_callback` (as Node calls any callback from its loop). No status
//! read, no thread of its own, no event object, no promise. lifewatch's exit → JS latency is
//! compared to this in the same run.

use std::ffi::{c_int, c_void};
use std::ptr::null_mut;

use napi::{sys, Env, JsValue, Result};
use napi_derive::napi;

const UV_POLL: c_int = 8;
const UV_READABLE: c_int = 1;

type PollCb = unsafe extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
type CloseCb = unsafe extern "C" fn(handle: *mut c_void);

// Node's libuv, resolved against the node binary at load time.
extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init(event_loop: *mut sys::uv_loop_s, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut c_void, events: c_int, cb: PollCb) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_close(handle: *mut c_void, cb: CloseCb);
    fn uv_handle_set_data(handle: *mut c_void, data: *mut c_void);
    fn uv_handle_get_data(handle: *const c_void) -> *mut c_void;
}

struct Watch {
    env: sys::napi_env,
    pidfd: c_int,
    callback: sys::napi_ref,
    context: sys::napi_async_context,
    /// The handle's memory (libuv's size), freed once libuv has closed it.
    handle: Vec<u8>,
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::from_reason(format!(
            "{what} failed ({status})"
        )))
    }
}

/// Calls `callback()` once `pid` has exited (its pidfd is readable).
#[napi]
pub fn watch_exit(
    env: Env,
    pid: u32,
    callback: napi::bindgen_prelude::Function<'_, (), ()>,
) -> Result<()> {
    // SAFETY: pidfd_open has no memory arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as c_int;
    if pidfd < 0 {
        return Err(napi::Error::from_reason(format!(
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        )));
    }
    let raw = env.raw();
    let (mut event_loop, mut reference, mut name, mut context) =
        (null_mut(), null_mut(), null_mut(), null_mut());
    // SAFETY: N-API calls on the JS thread with live values; what was made is released below
    // if a later step fails.
    let made = unsafe {
        check(
            sys::napi_get_uv_event_loop(raw, &mut event_loop),
            "napi_get_uv_event_loop",
        )
        .and_then(|()| {
            check(
                sys::napi_create_reference(raw, callback.raw(), 1, &mut reference),
                "napi_create_reference",
            )
        })
        .and_then(|()| {
            check(
                sys::napi_create_string_utf8(raw, c"jsfloor".as_ptr(), 7, &mut name),
                "napi_create_string_utf8",
            )
        })
        .and_then(|()| {
            check(
                sys::napi_async_init(raw, null_mut(), name, &mut context),
                "napi_async_init",
            )
        })
    };
    // SAFETY: a pure size query.
    let size = unsafe { uv_handle_size(UV_POLL) };
    let watch = Box::into_raw(Box::new(Watch {
        env: raw,
        pidfd,
        callback: reference,
        context,
        handle: vec![0u8; size + 16],
    }));
    // SAFETY: the handle memory lives in the Watch until `on_closed` frees both; on failure
    // libuv never saw the handle and the Watch is released here.
    unsafe {
        let handle = aligned((*watch).handle.as_mut_ptr());
        if made.is_err() || uv_poll_init(event_loop, handle, pidfd) != 0 {
            release(*Box::from_raw(watch));
            return made.and(Err(napi::Error::from_reason("uv_poll_init failed")));
        }
        uv_handle_set_data(handle, watch.cast());
        if uv_poll_start(handle, UV_READABLE, on_readable) != 0 {
            uv_close(handle, on_closed);
            return Err(napi::Error::from_reason("uv_poll_start failed"));
        }
    }
    Ok(())
}

/// libuv handles want 16-byte alignment; the Vec has a 16-byte margin for it.
fn aligned(p: *mut u8) -> *mut c_void {
    (((p as usize) + 15) & !15) as *mut c_void
}

unsafe extern "C" fn on_readable(handle: *mut c_void, _status: c_int, _events: c_int) {
    // SAFETY: the Watch set in `watch_exit`, alive until `on_closed`.
    let w = unsafe { &*(uv_handle_get_data(handle) as *const Watch) };
    let (mut scope, mut func, mut recv, mut result) =
        (null_mut(), null_mut(), null_mut(), null_mut());
    // SAFETY: N-API calls on the JS thread, in a handle scope opened and closed here.
    unsafe {
        uv_poll_stop(handle);
        sys::napi_open_handle_scope(w.env, &mut scope);
        sys::napi_get_reference_value(w.env, w.callback, &mut func);
        sys::napi_get_global(w.env, &mut recv);
        sys::napi_make_callback(w.env, w.context, recv, func, 0, null_mut(), &mut result);
        sys::napi_close_handle_scope(w.env, scope);
        uv_close(handle, on_closed);
    }
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
    // SAFETY: takes back the Watch leaked in `watch_exit`; libuv is done with the handle.
    release(*unsafe { Box::from_raw(uv_handle_get_data(handle) as *mut Watch) });
}

fn release(w: Watch) {
    // SAFETY: made in `watch_exit` (null when that step failed), released once.
    unsafe {
        if !w.context.is_null() {
            sys::napi_async_destroy(w.env, w.context);
        }
        if !w.callback.is_null() {
            sys::napi_delete_reference(w.env, w.callback);
        }
        libc::close(w.pidfd);
    }
}

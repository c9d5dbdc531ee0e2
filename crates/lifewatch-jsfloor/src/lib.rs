//! The bench's JS floor: the least an addon can do to bring a process's exit to JavaScript.
//! A pidfd polled by a `uv_poll_t` on Node's own loop; when it is readable, one JS function is
//! called through `napi_make_callback` (as Node calls any callback from its loop). No status
//! read, no thread of its own, no event object, no promise. lifewatch's exit → JS latency is
//! compared to this in the same run.
//!
//! `watchExitStatus` adds the least an exit *event* needs on top: its status read, the poll
//! stopped and the pidfd closed before JS runs, and its time and status passed to the function,
//! which makes the event object (the bench times the reaction of the promise it resolves).

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
    pid: u32,
    /// `watchExitStatus`: the status is read and the pidfd closed before the call.
    status: bool,
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
    watch(env, pid, callback.raw(), false)
}

/// Calls `callback(time, status)` once `pid` has exited, its pidfd closed: `time` the
/// CLOCK_MONOTONIC ns (a bigint) when its readiness was seen, `status` its wait status, or -1
/// when it could not be read.
#[napi]
pub fn watch_exit_status(
    env: Env,
    pid: u32,
    callback: napi::bindgen_prelude::Function<'_, (), ()>,
) -> Result<()> {
    watch(env, pid, callback.raw(), true)
}

fn watch(env: Env, pid: u32, callback: sys::napi_value, status: bool) -> Result<()> {
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
                sys::napi_create_reference(raw, callback, 1, &mut reference),
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
        pid,
        status,
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
    // SAFETY: the Watch set in `watch`, alive until `on_closed`.
    let w = unsafe { &mut *(uv_handle_get_data(handle) as *mut Watch) };
    let (mut scope, mut func, mut recv, mut result) =
        (null_mut(), null_mut(), null_mut(), null_mut());
    let mut args = [null_mut(); 2];
    // SAFETY: N-API calls on the JS thread, in a handle scope opened and closed here; the
    // handle stops polling the pidfd (`uv_close` takes it out of libuv's set at once) before
    // the pidfd is closed.
    unsafe {
        uv_poll_stop(handle);
        sys::napi_open_handle_scope(w.env, &mut scope);
        let argc = if w.status {
            let time = monotonic_ns();
            let status = exit_status(w.pidfd, w.pid);
            uv_close(handle, on_closed);
            libc::close(w.pidfd);
            w.pidfd = -1;
            sys::napi_create_bigint_uint64(w.env, time, &mut args[0]);
            sys::napi_create_int32(w.env, status, &mut args[1]);
            2
        } else {
            0
        };
        sys::napi_get_reference_value(w.env, w.callback, &mut func);
        sys::napi_get_global(w.env, &mut recv);
        sys::napi_make_callback(
            w.env,
            w.context,
            recv,
            func,
            argc,
            args.as_ptr(),
            &mut result,
        );
        sys::napi_close_handle_scope(w.env, scope);
        if !w.status {
            uv_close(handle, on_closed);
        }
    }
}

fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the timespec given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// `struct pidfd_info` up to `exit_code` (the first 64 bytes, PIDFD_INFO_SIZE_VER0).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    ids: [u32; 11],
    exit_code: i32,
}

const PIDFD_INFO_EXIT: u64 = 1 << 3;
/// `_IOWR(0xFF, 11, struct pidfd_info)` with the 64-byte size.
const PIDFD_GET_INFO: libc::c_ulong = (3 << 30) | (64 << 16) | (0xFF << 8) | 11;

/// The wait status as an exit event needs it: from the pidfd once the process was reaped
/// (Linux 6.15+), else from the zombie's `/proc/<pid>/stat` (its last field); -1 if neither.
fn exit_status(pidfd: c_int, pid: u32) -> i32 {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_EXIT,
        ..Default::default()
    };
    // SAFETY: the kernel writes at most the 64 bytes the request encodes.
    if unsafe { libc::ioctl(pidfd, PIDFD_GET_INFO as _, &mut info) } == 0
        && info.mask & PIDFD_INFO_EXIT != 0
    {
        return info.exit_code;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.trim_end().rsplit(' ').next()?.parse().ok())
        .unwrap_or(-1)
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
        if w.pidfd >= 0 {
            libc::close(w.pidfd);
        }
    }
}

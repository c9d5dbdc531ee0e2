//! Core errors as JavaScript errors: created here, each an instance of the `LifewatchError`
//! class the TypeScript layer registers at load (a plain `Error` when none is), with `code`,
//! `errno` (negative, as Node's SystemError has it), `syscall` and `path` as properties.

use std::ptr::null_mut;

use lifewatch_core::Error as CoreError;
use napi::bindgen_prelude::{Function, ToNapiValue, Unknown};
use napi::{sys, Env, JsValue};
use napi_derive::napi;

/// The registered class, per env (per thread running JavaScript).
struct ErrorClass(sys::napi_ref);

/// Registers the class core errors are created with: `new Class(code, message, details)`.
#[napi(
    ts_args_type = "errorClass: new (code: never, message: string, details: { syscall?: string; errno?: number; path?: string }) => Error"
)]
pub fn set_error_class(env: Env, class: Function<'_>) -> napi::Result<()> {
    let mut reference = null_mut();
    // SAFETY: a live function of this env; the reference is released with the env.
    napi::check_status!(unsafe {
        sys::napi_create_reference(env.raw(), class.raw(), 1, &mut reference)
    })?;
    env.set_instance_data(ErrorClass(reference), (), |cx| {
        // SAFETY: created above for this env, which is being torn down.
        unsafe { sys::napi_delete_reference(cx.env.raw(), cx.value.0) };
    })
}

/// The JavaScript error for a core error, as a `napi::Error` that throws (or rejects with)
/// exactly that object.
pub fn js_error(env: &Env, e: CoreError) -> napi::Error {
    match create(env, &e) {
        // SAFETY: `value` is a live value of this env, on its thread.
        Ok(value) => napi::Error::from(unsafe { Unknown::from_raw_unchecked(env.raw(), value) }),
        Err(failed) => failed,
    }
}

fn create(env: &Env, e: &CoreError) -> napi::Result<sys::napi_value> {
    let raw = env.raw();
    let string = |s: &str| -> napi::Result<sys::napi_value> {
        // SAFETY: plain value creation on the env's thread.
        unsafe { <&str as ToNapiValue>::to_napi_value(raw, s) }
    };
    let set = |object: sys::napi_value, name: &str, value: sys::napi_value| -> napi::Result<()> {
        let key = string(name)?;
        // SAFETY: `object` is an object created here, on this thread.
        napi::check_status!(unsafe { sys::napi_set_property(raw, object, key, value) })
    };
    let mut props = Vec::new();
    if let Some(s) = e.syscall {
        props.push(("syscall", string(s)?));
    }
    if let Some(n) = e.errno {
        // SAFETY: plain value creation.
        props.push(("errno", unsafe { i32::to_napi_value(raw, -n)? }));
    }
    if let Some(p) = &e.path {
        props.push(("path", string(&p.to_string_lossy())?));
    }
    let (code, message) = (string(e.code.as_str())?, string(&e.message)?);
    let mut class = null_mut();
    if let Ok(Some(registered)) = env.get_instance_data::<ErrorClass>() {
        // SAFETY: a reference of this env (released only at its teardown).
        unsafe { sys::napi_get_reference_value(raw, registered.0, &mut class) };
    }
    let mut out = null_mut();
    if class.is_null() {
        // SAFETY: plain error creation; its properties are set below.
        napi::check_status!(unsafe { sys::napi_create_error(raw, code, message, &mut out) })?;
        for (name, value) in props {
            set(out, name, value)?;
        }
        return Ok(out);
    }
    let mut details = null_mut();
    // SAFETY: as above.
    napi::check_status!(unsafe { sys::napi_create_object(raw, &mut details) })?;
    for (name, value) in props {
        set(details, name, value)?;
    }
    let args = [code, message, details];
    // SAFETY: the registered constructor, with three live arguments.
    napi::check_status!(unsafe {
        sys::napi_new_instance(raw, class, args.len(), args.as_ptr(), &mut out)
    })?;
    Ok(out)
}

/// Core results into napi results whose errors are the JavaScript errors above.
pub trait OrThrow<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for lifewatch_core::Result<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|e| js_error(env, e))
    }
}

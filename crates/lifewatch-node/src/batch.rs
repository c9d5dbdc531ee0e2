//! A batch as the JS callback takes it: `(records, others)`. Every event has a record of
//! `RECORD` numbers in `records` (a `Float64Array`), in kernel order. A process exit that
//! carries nothing but its status (a watched PID's, the common case) is that record alone:
//! JavaScript makes its object from it, which costs a fraction of building it field by field
//! through N-API on a thread that has just woken. Any other event is an object, the next of
//! `others`. `src/events.ts` reads the records; the two sides share the constants below.

use std::ptr::null_mut;

use lifewatch_core::{Event, EventKind, ExitSource, ExitStatus};
use napi::bindgen_prelude::{FnArgs, ToNapiValue};
use napi::{sys, Env};

use crate::event::NativeEvent;

/// Numbers per record: the time (the bits of its u64, read through a `BigUint64Array`), the
/// kind, the watch, the pid, the status value and the exit source.
pub const RECORD: usize = 6;

/// Record kinds: the next of `others`, or an exit whose status is unknown, an exit code, a
/// signal, a signal that dumped core.
const OTHER: f64 = 0.0;
const EXIT_UNKNOWN: f64 = 1.0;
const EXIT_CODE: f64 = 2.0;
const EXIT_SIGNAL: f64 = 3.0;
const EXIT_CORE: f64 = 4.0;

/// The JS side indexes its source names with this.
fn source_index(source: ExitSource) -> f64 {
    match source {
        ExitSource::Pidfd => 0.0,
        ExitSource::Waitid => 1.0,
        ExitSource::Fallback => 2.0,
        ExitSource::Connector => 3.0,
    }
}

/// The records, copied into a fresh `Float64Array` (a V8-owned buffer: no finalizer to run).
pub struct Records(Vec<f64>);

impl ToNapiValue for Records {
    unsafe fn to_napi_value(env: sys::napi_env, records: Self) -> napi::Result<sys::napi_value> {
        let bytes = std::mem::size_of_val(records.0.as_slice());
        let (mut data, mut buffer, mut array) = (null_mut(), null_mut(), null_mut());
        // SAFETY: N-API calls on the JS thread; V8 gives `bytes` writable bytes at `data`,
        // which are filled before anything else can see the buffer.
        unsafe {
            check(sys::napi_create_arraybuffer(
                env,
                bytes,
                &mut data,
                &mut buffer,
            ))?;
            if bytes > 0 {
                std::ptr::copy_nonoverlapping(
                    records.0.as_ptr(),
                    data.cast::<f64>(),
                    records.0.len(),
                );
            }
            check(sys::napi_create_typedarray(
                env,
                sys::TypedarrayType::float64_array,
                records.0.len(),
                buffer,
                0,
                &mut array,
            ))?;
        }
        Ok(array)
    }
}

fn check(status: sys::napi_status) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::from(status),
            "making a batch's records",
        ))
    }
}

pub type Args = FnArgs<(Records, Vec<NativeEvent>)>;

/// On the JS thread (an `error` event's error is made as a JavaScript error).
pub fn encode(env: &Env, events: Vec<Event>) -> Args {
    let mut records = Vec::with_capacity(events.len() * RECORD);
    let mut others = Vec::new();
    for e in events {
        let time = f64::from_bits(e.time);
        match e.kind {
            EventKind::Exit {
                pid,
                status,
                source,
                ppid: None,
                comm: None,
                cgroup: None,
                remaining: None,
            } => {
                let (kind, value) = match status {
                    None => (EXIT_UNKNOWN, 0.0),
                    Some(ExitStatus::Code(c)) => (EXIT_CODE, c as f64),
                    Some(ExitStatus::Signal { signo, core }) => {
                        (if core { EXIT_CORE } else { EXIT_SIGNAL }, signo as f64)
                    }
                };
                records.extend([
                    time,
                    kind,
                    e.watch as f64,
                    pid as f64,
                    value,
                    source_index(source),
                ]);
            }
            _ => {
                records.extend([time, OTHER, e.watch as f64, 0.0, 0.0, 0.0]);
                others.push(NativeEvent::new(env, e));
            }
        }
    }
    FnArgs::from((Records(records), others))
}

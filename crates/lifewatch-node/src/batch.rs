//! A batch as the JS callback takes it: `(records, others)`. Every event has a record of
//! `RECORD` numbers in `records` (a `Float64Array`), in kernel order. A process exit that
//! carries nothing but its status (a watched PID's, the common case) is that record alone:
//! JavaScript makes its object from it, which costs a fraction of building it field by field
//! through N-API on a thread that has just woken. Any other event is an object, the next of
//! `others`. `src/events.ts` reads the records; the two sides share the constants below.
//!
//! The doorbell gives a batch of one plain exit (the usual batch on its path) to a second
//! callback as that record's numbers: no buffer, no array, no typed-array view in JS. In a
//! paired A/B of non-child exits (`bench/ab.ts`) that and a leaner path in the monitor's JS
//! took 12.9 µs off the median.

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

/// A process exit that carries nothing but its status, as the numbers of its record.
pub struct PlainExit {
    time: u64,
    kind: f64,
    watch: f64,
    pid: f64,
    value: f64,
    source: f64,
}

impl PlainExit {
    pub fn of(e: &Event) -> Option<PlainExit> {
        let EventKind::Exit {
            pid,
            status,
            source,
            ppid: None,
            comm: None,
            cgroup: None,
            remaining: None,
        } = &e.kind
        else {
            return None;
        };
        let (kind, value) = match status {
            None => (EXIT_UNKNOWN, 0.0),
            Some(ExitStatus::Code(c)) => (EXIT_CODE, *c as f64),
            Some(ExitStatus::Signal { signo, core }) => {
                (if *core { EXIT_CORE } else { EXIT_SIGNAL }, *signo as f64)
            }
        };
        Some(PlainExit {
            time: e.time,
            kind,
            watch: e.watch as f64,
            pid: *pid as f64,
            value,
            source: source_index(*source),
        })
    }

    fn record(&self) -> [f64; RECORD] {
        [
            f64::from_bits(self.time),
            self.kind,
            self.watch,
            self.pid,
            self.value,
            self.source,
        ]
    }

    /// The exit callback's arguments: `(watch, time, pid, kind, value, source)`, the time a
    /// bigint. A batch of this one exit (the usual one) costs no buffer and no array.
    pub fn args(&self, env: sys::napi_env) -> napi::Result<[sys::napi_value; 6]> {
        let mut args = [std::ptr::null_mut(); 6];
        // SAFETY: N-API calls on the JS thread, each writing one slot of `args`.
        unsafe {
            check(sys::napi_create_double(env, self.watch, &mut args[0]))?;
            check(sys::napi_create_bigint_uint64(env, self.time, &mut args[1]))?;
            for (slot, v) in
                args[2..]
                    .iter_mut()
                    .zip([self.pid, self.kind, self.value, self.source])
            {
                check(sys::napi_create_double(env, v, slot))?;
            }
        }
        Ok(args)
    }
}

/// On the JS thread (an `error` event's error is made as a JavaScript error).
pub fn encode(env: &Env, events: &[Event]) -> Args {
    let mut records = Vec::with_capacity(events.len() * RECORD);
    let mut others = Vec::new();
    for e in events {
        match PlainExit::of(e) {
            Some(exit) => records.extend(exit.record()),
            None => {
                records.extend([f64::from_bits(e.time), OTHER, e.watch as f64, 0.0, 0.0, 0.0]);
                others.push(NativeEvent::new(env, e.clone()));
            }
        }
    }
    FnArgs::from((Records(records), others))
}

//! Core events as plain JS objects; the TS layer narrows them into a discriminated union.

use lifewatch_core::{signal, Event, EventKind, ExitStatus};
use napi::bindgen_prelude::BigInt;
use napi_derive::napi;

#[napi(object)]
pub struct NativeEvent {
    #[napi(js_name = "type")]
    pub kind: String,
    pub watch: u32,
    /// CLOCK_MONOTONIC ns at readiness (same clock as `process.hrtime.bigint()`).
    pub time: BigInt,
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub core: Option<bool>,
    pub source: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl From<Event> for NativeEvent {
    fn from(e: Event) -> Self {
        let mut out = NativeEvent {
            kind: String::new(),
            watch: e.watch,
            time: BigInt::from(e.time),
            pid: None,
            exit_code: None,
            signal: None,
            core: None,
            source: None,
            code: None,
            message: None,
        };
        match e.kind {
            EventKind::Exit {
                pid,
                status,
                source,
            } => {
                out.kind = "exit".into();
                out.pid = Some(pid);
                out.source = Some(source.as_str().into());
                match status {
                    Some(ExitStatus::Code(c)) => out.exit_code = Some(c),
                    Some(ExitStatus::Signal { signo, core }) => {
                        out.signal = Some(signal::display_name(signo));
                        out.core = Some(core);
                    }
                    None => {}
                }
            }
            EventKind::Error { code, message } => {
                out.kind = "error".into();
                out.code = Some(code.as_str().into());
                out.message = Some(message);
            }
        }
        out
    }
}

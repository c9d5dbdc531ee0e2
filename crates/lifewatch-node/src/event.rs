//! Core events as the objects of the TypeScript `LifewatchEvent` union: one variant per event
//! type, tagged `type`, with only the fields that event has.

use std::collections::HashMap;

use lifewatch_core::{signal, Counters, Event, EventKind, ExitStatus, Stats};
use napi::bindgen_prelude::BigInt;
use napi::Env;
use napi_derive::napi;

use crate::error::js_error;

#[napi(
    discriminant = "type",
    discriminant_case = "camelCase",
    object_from_js = false
)]
pub enum NativeEvent {
    Exit {
        watch: u32,
        /// CLOCK_MONOTONIC ns of the turn that saw it (the clock of `process.hrtime.bigint()`).
        time: BigInt,
        pid: i32,
        exit_code: Option<i32>,
        signal: Option<String>,
        core: Option<bool>,
        #[napi(ts_type = "'pidfd' | 'waitid' | 'fallback'")]
        source: String,
    },
    Oom {
        watch: u32,
        time: BigInt,
        cgroup: String,
        kills: f64,
        deltas: HashMap<String, f64>,
        counters: HashMap<String, f64>,
        stats: NativeCgroupStats,
    },
    Pressure {
        watch: u32,
        time: BigInt,
        cgroup: Option<String>,
        #[napi(ts_type = "'memory' | 'cpu' | 'io'")]
        resource: String,
        #[napi(ts_type = "'low' | 'medium' | 'critical'")]
        level: Option<String>,
        trigger: Option<String>,
    },
    Populated {
        watch: u32,
        time: BigInt,
        cgroup: String,
        value: bool,
    },
    Frozen {
        watch: u32,
        time: BigInt,
        cgroup: String,
        value: bool,
    },
    Removed {
        watch: u32,
        time: BigInt,
        cgroup: String,
        counters: HashMap<String, f64>,
        stats: NativeCgroupStats,
    },
    Error {
        watch: u32,
        time: BigInt,
        #[napi(ts_type = "Error & { code: string }")]
        error: napi::Error,
    },
}

#[napi(object, object_from_js = false)]
#[derive(Default)]
pub struct NativeCgroupStats {
    pub memory_current: Option<f64>,
    pub memory_peak: Option<f64>,
    pub memory_max: Option<f64>,
    pub memory_events: HashMap<String, f64>,
    pub pids_current: Option<f64>,
}

pub fn counters(c: Counters) -> HashMap<String, f64> {
    c.into_iter().map(|(k, v)| (k, v as f64)).collect()
}

impl From<Stats> for NativeCgroupStats {
    fn from(s: Stats) -> Self {
        NativeCgroupStats {
            memory_current: s.memory_current.map(|v| v as f64),
            memory_peak: s.memory_peak.map(|v| v as f64),
            memory_max: s.memory_max.map(|v| v as f64),
            memory_events: counters(s.memory_events),
            pids_current: s.pids_current.map(|v| v as f64),
        }
    }
}

/// An exit status as the fields of an exit: `exitCode`, or `signal` (its name) and `core`.
pub fn status_fields(status: Option<ExitStatus>) -> (Option<i32>, Option<String>, Option<bool>) {
    match status {
        Some(ExitStatus::Code(c)) => (Some(c), None, None),
        Some(ExitStatus::Signal { signo, core }) => {
            (None, Some(signal::display_name(signo)), Some(core))
        }
        None => (None, None, None),
    }
}

impl NativeEvent {
    /// On the JS thread (an `error` event's error is created as a JavaScript error).
    pub fn new(env: &Env, e: Event) -> NativeEvent {
        let (watch, time) = (e.watch, BigInt::from(e.time));
        match e.kind {
            EventKind::Exit {
                pid,
                status,
                source,
            } => {
                let (exit_code, signal, core) = status_fields(status);
                NativeEvent::Exit {
                    watch,
                    time,
                    pid,
                    exit_code,
                    signal,
                    core,
                    source: source.as_str().into(),
                }
            }
            EventKind::Oom {
                cgroup,
                kills,
                deltas,
                counters: totals,
                stats,
            } => NativeEvent::Oom {
                watch,
                time,
                cgroup,
                kills: kills as f64,
                deltas: counters(deltas),
                counters: counters(totals),
                stats: stats.into(),
            },
            EventKind::Pressure {
                cgroup,
                resource,
                level,
                trigger,
            } => NativeEvent::Pressure {
                watch,
                time,
                cgroup,
                resource,
                level,
                trigger,
            },
            EventKind::Populated { cgroup, value } => NativeEvent::Populated {
                watch,
                time,
                cgroup,
                value,
            },
            EventKind::Frozen { cgroup, value } => NativeEvent::Frozen {
                watch,
                time,
                cgroup,
                value,
            },
            EventKind::Removed {
                cgroup,
                counters: totals,
                stats,
            } => NativeEvent::Removed {
                watch,
                time,
                cgroup,
                counters: counters(totals),
                stats: stats.into(),
            },
            EventKind::Error { code, message } => NativeEvent::Error {
                watch,
                time,
                error: js_error(env, lifewatch_core::Error::new(code, message)),
            },
        }
    }
}

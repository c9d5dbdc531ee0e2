//! Core events as plain JS objects; the TS layer narrows them into a discriminated union.

use std::collections::HashMap;

use lifewatch_core::cgroup::stats::{Counters, Pressure, Stats};
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
    pub cgroup: Option<String>,
    pub kills: Option<f64>,
    pub deltas: Option<HashMap<String, f64>>,
    pub counters: Option<HashMap<String, f64>>,
    pub stats: Option<NativeCgroupStats>,
    pub resource: Option<String>,
    pub level: Option<String>,
    pub trigger: Option<String>,
    pub value: Option<bool>,
}

#[napi(object)]
pub struct NativeCgroupStats {
    pub memory_current: Option<f64>,
    pub memory_peak: Option<f64>,
    pub memory_max: Option<f64>,
    pub memory_events: HashMap<String, f64>,
    pub swap_current: Option<f64>,
    pub pids_current: Option<f64>,
    pub pids_peak: Option<f64>,
    pub cpu_user_usec: Option<f64>,
    pub cpu_system_usec: Option<f64>,
    pub psi_cpu: Option<NativePressure>,
    pub psi_memory: Option<NativePressure>,
    pub psi_io: Option<NativePressure>,
}

/// PSI avg10 in percent.
#[napi(object)]
pub struct NativePressure {
    pub some_avg10: Option<f64>,
    pub full_avg10: Option<f64>,
}

impl From<Pressure> for NativePressure {
    fn from(p: Pressure) -> Self {
        NativePressure {
            some_avg10: p.some_avg10.map(|v| v as f64 / 100.0),
            full_avg10: p.full_avg10.map(|v| v as f64 / 100.0),
        }
    }
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
            swap_current: s.swap_current.map(|v| v as f64),
            pids_current: s.pids_current.map(|v| v as f64),
            pids_peak: s.pids_peak.map(|v| v as f64),
            cpu_user_usec: s.cpu_user_usec.map(|v| v as f64),
            cpu_system_usec: s.cpu_system_usec.map(|v| v as f64),
            psi_cpu: s.psi_cpu.map(Into::into),
            psi_memory: s.psi_memory.map(Into::into),
            psi_io: s.psi_io.map(Into::into),
        }
    }
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
            cgroup: None,
            kills: None,
            deltas: None,
            counters: None,
            stats: None,
            resource: None,
            level: None,
            trigger: None,
            value: None,
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
            EventKind::Oom {
                cgroup,
                kills,
                deltas,
                counters: totals,
                stats,
            } => {
                out.kind = "oom".into();
                out.cgroup = Some(cgroup);
                out.kills = Some(kills as f64);
                out.deltas = Some(counters(deltas));
                out.counters = Some(counters(totals));
                out.stats = Some(stats.into());
            }
            EventKind::Pressure {
                cgroup,
                resource,
                level,
                trigger,
            } => {
                out.kind = "pressure".into();
                out.cgroup = cgroup;
                out.resource = Some(resource);
                out.level = level;
                out.trigger = trigger;
            }
            EventKind::Populated { cgroup, value } => {
                out.kind = "populated".into();
                out.cgroup = Some(cgroup);
                out.value = Some(value);
            }
            EventKind::Frozen { cgroup, value } => {
                out.kind = "frozen".into();
                out.cgroup = Some(cgroup);
                out.value = Some(value);
            }
            EventKind::Removed {
                cgroup,
                counters: totals,
                stats,
            } => {
                out.kind = "removed".into();
                out.cgroup = Some(cgroup);
                out.counters = Some(counters(totals));
                out.stats = Some(stats.into());
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

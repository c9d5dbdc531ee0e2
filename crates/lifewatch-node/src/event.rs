//! Core events as the objects of the TypeScript `LifewatchEvent` union: one variant per event
//! type, tagged `type`, with only the fields that event has.

use std::collections::HashMap;

use lifewatch_core::{signal, Counters, Event, EventKind, ExitStatus, OomVictim, Pressure, Stats};
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
        #[napi(ts_type = "'pidfd' | 'waitid' | 'fallback' | 'connector'")]
        source: String,
        ppid: Option<i32>,
        comm: Option<String>,
        cgroup: Option<String>,
        remaining: Option<u32>,
    },
    Fork {
        watch: u32,
        time: BigInt,
        pid: i32,
        ppid: i32,
        comm: Option<String>,
        cgroup: Option<String>,
    },
    Exec {
        watch: u32,
        time: BigInt,
        pid: i32,
        ppid: Option<i32>,
        comm: Option<String>,
        cgroup: Option<String>,
    },
    OomKill {
        watch: u32,
        time: BigInt,
        pid: i32,
        comm: String,
        uid: Option<u32>,
        cgroup: Option<String>,
        oom_cgroup: Option<String>,
        #[napi(ts_type = "'memcg' | 'none' | 'cpuset' | 'memory_policy'")]
        constraint: Option<String>,
        total_vm: Option<f64>,
        anon_rss: Option<f64>,
        file_rss: Option<f64>,
        shmem_rss: Option<f64>,
        oom_score_adj: Option<i32>,
    },
    Lost {
        watch: u32,
        time: BigInt,
        #[napi(ts_type = "'connector' | 'kmsg'")]
        source: String,
        count: Option<f64>,
    },
    Oom {
        watch: u32,
        time: BigInt,
        cgroup: String,
        kills: f64,
        deltas: HashMap<String, f64>,
        counters: HashMap<String, f64>,
        stats: NativeCgroupStats,
        victims: Option<Vec<NativeOomVictim>>,
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
    pub swap_current: Option<f64>,
    pub pids_current: Option<f64>,
    pub pids_peak: Option<f64>,
    pub cpu_user_usec: Option<f64>,
    pub cpu_system_usec: Option<f64>,
    pub psi: Option<NativePsi>,
}

/// PSI avg10 per resource, absent where the kernel has no such file.
#[napi(object, object_from_js = false)]
pub struct NativePsi {
    pub cpu: Option<NativePressure>,
    pub memory: Option<NativePressure>,
    pub io: Option<NativePressure>,
}

/// PSI avg10 in percent: `some` (a task stalled), `full` (all stalled); and the total stall
/// time of each in µs.
#[napi(object, object_from_js = false)]
pub struct NativePressure {
    pub some: Option<f64>,
    pub full: Option<f64>,
    pub some_total: Option<f64>,
    pub full_total: Option<f64>,
}

impl From<Pressure> for NativePressure {
    fn from(p: Pressure) -> Self {
        NativePressure {
            some: p.some_avg10.map(|v| v as f64 / 100.0),
            full: p.full_avg10.map(|v| v as f64 / 100.0),
            some_total: p.some_total.map(|v| v as f64),
            full_total: p.full_total.map(|v| v as f64),
        }
    }
}

/// A victim an `oom` event names (from the monitor's OOM-kill watches).
#[napi(object, object_from_js = false)]
pub struct NativeOomVictim {
    pub pid: i32,
    pub comm: String,
    pub cgroup: Option<String>,
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
            psi: (s.psi_cpu.is_some() || s.psi_memory.is_some() || s.psi_io.is_some()).then(|| {
                NativePsi {
                    cpu: s.psi_cpu.map(Into::into),
                    memory: s.psi_memory.map(Into::into),
                    io: s.psi_io.map(Into::into),
                }
            }),
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
                ppid,
                comm,
                cgroup,
                remaining,
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
                    ppid,
                    comm,
                    cgroup,
                    remaining,
                }
            }
            EventKind::Fork {
                pid,
                ppid,
                comm,
                cgroup,
            } => NativeEvent::Fork {
                watch,
                time,
                pid,
                ppid,
                comm,
                cgroup,
            },
            EventKind::Exec {
                pid,
                ppid,
                comm,
                cgroup,
            } => NativeEvent::Exec {
                watch,
                time,
                pid,
                ppid,
                comm,
                cgroup,
            },
            EventKind::OomKill(v) => {
                let OomVictim {
                    pid,
                    comm,
                    uid,
                    cgroup,
                    oom_cgroup,
                    constraint,
                    total_vm,
                    anon_rss,
                    file_rss,
                    shmem_rss,
                    oom_score_adj,
                } = *v;
                let bytes = |v: Option<u64>| v.map(|v| v as f64);
                NativeEvent::OomKill {
                    watch,
                    time,
                    pid,
                    comm,
                    uid,
                    cgroup,
                    oom_cgroup,
                    constraint,
                    total_vm: bytes(total_vm),
                    anon_rss: bytes(anon_rss),
                    file_rss: bytes(file_rss),
                    shmem_rss: bytes(shmem_rss),
                    oom_score_adj,
                }
            }
            EventKind::Lost { source, count } => NativeEvent::Lost {
                watch,
                time,
                source: source.as_str().into(),
                count: count.map(|c| c as f64),
            },
            EventKind::Oom {
                cgroup,
                kills,
                deltas,
                counters: totals,
                stats,
                victims,
            } => NativeEvent::Oom {
                watch,
                time,
                cgroup,
                kills: kills as f64,
                deltas: counters(deltas),
                counters: counters(totals),
                stats: (*stats).into(),
                // Only where the monitor watches OOM kills: absent otherwise, not empty.
                victims: (!victims.is_empty()).then(|| {
                    victims
                        .into_iter()
                        .map(|v| NativeOomVictim {
                            pid: v.pid,
                            comm: v.comm,
                            cgroup: v.cgroup,
                        })
                        .collect()
                }),
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
                stats: (*stats).into(),
            },
            EventKind::Error { code, message } => NativeEvent::Error {
                watch,
                time,
                error: js_error(env, lifewatch_core::Error::new(code, message)),
            },
        }
    }
}

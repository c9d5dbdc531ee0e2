//! Process-wide fd accounting and small stateless helpers.

use lifewatch_core::{fd, signal, FdKind, Released};
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::OrThrow;

#[napi(object)]
pub struct FdKindStats {
    pub kind: String,
    pub allocated: f64,
    pub released: f64,
    pub in_use: f64,
    pub leak_prevented: f64,
}

/// Counters of every fd lifewatch opened in this process, by kind.
#[napi]
pub fn fd_stats() -> Vec<FdKindStats> {
    FdKind::ALL
        .iter()
        .map(|&k| {
            let s = fd::stats(k);
            FdKindStats {
                kind: k.as_str().into(),
                allocated: s.allocated as f64,
                released: s.released as f64,
                in_use: s.in_use as f64,
                leak_prevented: s.leak_prevented as f64,
            }
        })
        .collect()
}

#[napi(object)]
pub struct ReleasedFds {
    pub epoll: u32,
    pub pidfd: u32,
    pub eventfd: u32,
    pub inotify: u32,
    pub psi: u32,
    pub control: u32,
    pub timerfd: u32,
}

impl From<Released> for ReleasedFds {
    fn from(r: Released) -> Self {
        let n = |k| r.get(k) as u32;
        ReleasedFds {
            epoll: n(FdKind::Epoll),
            pidfd: n(FdKind::Pidfd),
            eventfd: n(FdKind::Eventfd),
            inotify: n(FdKind::Inotify),
            psi: n(FdKind::Psi),
            control: n(FdKind::Control),
            timerfd: n(FdKind::Timerfd),
        }
    }
}

/// `SIGTERM`, `term` or `15` to a signal number; anything else is ERR_INVALID_ARGUMENT.
#[napi]
pub fn signal_number(env: Env, name: String) -> Result<i32> {
    signal::parse(&name).or_throw(&env)
}

/// One signal to a PID through a short-lived pidfd (kill(2) where there is no pidfd).
#[napi]
pub fn signal_pid(env: Env, pid: i64, signo: i32) -> Result<()> {
    lifewatch_core::signal_pid(pid, signo).or_throw(&env)
}

/// CLOCK_MONOTONIC ns, the clock of every event's `time`.
#[napi]
pub fn monotonic_ns() -> napi::bindgen_prelude::BigInt {
    lifewatch_core::monotonic_ns().into()
}

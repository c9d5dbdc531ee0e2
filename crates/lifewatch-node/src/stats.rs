//! Process-wide fd accounting and the monotonic clock.

use lifewatch_core::{fd, FdKind, Released};
use napi_derive::napi;

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
    crate::doorbell::finish_delivering_turn();
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
    pub netlink: u32,
    pub kmsg: u32,
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
            netlink: n(FdKind::Netlink),
            kmsg: n(FdKind::Kmsg),
        }
    }
}

/// CLOCK_MONOTONIC ns, the clock of every event's `time`.
#[napi]
pub fn monotonic_ns() -> napi::bindgen_prelude::BigInt {
    lifewatch_core::monotonic_ns().into()
}

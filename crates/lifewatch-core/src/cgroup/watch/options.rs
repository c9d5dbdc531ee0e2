//! What a cgroup watch is asked for and what it was made of.

use crate::cgroup::watch::psi::PsiTrigger;
use crate::error::Error;
use crate::event::WatchId;

/// What to watch on one cgroup. `None` means "where this system has it"; `Some(true)`
/// makes a missing mechanism an error; `Some(false)` turns it off.
#[derive(Debug, Clone, Default)]
pub struct CgroupWatchOptions {
    /// OOM kills: v1 `memory.oom_control` eventfd, or v2 `memory.events`.
    pub oom: Option<bool>,
    /// `populated` / `frozen` changes from `cgroup.events` (unified hierarchy).
    pub events: Option<bool>,
    /// v1 `memory.pressure_level`: `low|medium|critical[,hierarchy|local]`.
    pub pressure: Option<String>,
    /// PSI triggers on the cgroup's `*.pressure` files (unified hierarchy).
    pub psi: Vec<PsiTrigger>,
    /// v2: `memory.events.local` (this cgroup only) instead of `memory.events`.
    pub local: bool,
}

/// One kind of notification serving a cgroup watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchPart {
    /// OOM kills (v1 eventfd or v2 `memory.events`).
    Oom,
    /// `populated` / `frozen` from `cgroup.events`.
    Events,
    /// v1 `memory.pressure_level`.
    Pressure,
    /// PSI triggers.
    Psi,
}

impl WatchPart {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchPart::Oom => "oom",
            WatchPart::Events => "events",
            WatchPart::Pressure => "pressure",
            WatchPart::Psi => "psi",
        }
    }
}

/// A cgroup watch as made: its id, the parts serving it, and the defaulted parts left out
/// with the permission error that kept each out.
#[derive(Debug)]
pub struct CgroupWatched {
    pub id: WatchId,
    pub parts: Vec<WatchPart>,
    pub left_out: Vec<(WatchPart, Error)>,
}

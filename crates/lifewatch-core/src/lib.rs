//! lifewatch-core: Linux process and cgroup lifecycle watching, with no napi in sight.
//!
//! The layers, each using only those below it:
//! - `error`, `fd`, `failpoint`, `event`, `status`, `pseudofile`: typed errors, counted fds,
//!   test-only failures, the events the layers above report, the exit statuses they carry and
//!   reading kernel pseudo-files;
//! - `reactor/`: one epoll loop, its sources, timers, delivery queue and direct-wake policy;
//! - `process/`: pidfds, exit statuses, process watches (a reactor source), signals, spawn,
//!   the child subreaper, the host-wide streams (the process events connector, the kernel
//!   log's OOM kills);
//! - `cgroup/`: the shared facts (layout, paths, statistics, cgroupfs files), then `watch/`
//!   (one reactor source per kernel mechanism) and `manage/` (the cgroup manager);
//! - `monitor`: the public handle composing a reactor, process watches and cgroup watches.

pub mod cgroup;
pub mod error;
pub mod event;
pub mod failpoint;
pub mod fd;
pub mod monitor;
pub mod process;
pub mod pseudofile;
pub mod reactor;
pub mod status;

pub use cgroup::watch::{CgroupWatchOptions, CgroupWatched, WatchPart};
pub use error::{Code, Error, Result};
pub use event::{
    monotonic_ns, Counters, Event, EventKind, Events, ExitSource, LossSource, OomVictim, Pressure,
    Stats, WatchId,
};
pub use fd::{FdKind, FdStats, Released};
pub use monitor::{signal_pid, Monitor, MonitorOptions};
pub use process::host::{HostOptions, TreeOptions};
pub use process::{check_pid, signal, spawn, subreaper, Process};
pub use status::ExitStatus;

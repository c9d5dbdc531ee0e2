//! lifewatch-core: Linux process and cgroup lifecycle watching with no napi in sight.
//! One file per kernel mechanism; `Monitor` ties them to one epoll reactor.

pub mod cgroup;
pub mod error;
pub mod event;
pub mod exit;
pub mod failpoint;
pub mod fallback;
pub mod fd;
pub mod monitor;
pub mod monitor_cgroup;
pub mod pid_watch;
pub mod pidfd;
pub mod procstat;
pub mod reactor;
pub mod registry;
pub mod signal;
pub mod source;
pub mod spawn;
pub mod status;
pub mod subreaper;

pub use error::{Code, Error, Result};
pub use event::{monotonic_ns, Event, EventKind, ExitSource, WatchId};
pub use fd::{FdKind, FdStats, Released};
pub use monitor::{check_pid, signal_pid, Monitor, MonitorOptions};
pub use monitor_cgroup::{CgroupWatchOptions, CgroupWatched, WatchPart};
pub use status::ExitStatus;

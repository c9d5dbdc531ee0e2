//! cgroups: where the hierarchies are (layout), which paths are acceptable (path), and,
//! in their own files, the watchers and the manager built on them.

pub mod empty;
pub(crate) mod events_watch;
pub mod files;
pub mod freezer;
pub mod kill;
pub mod layout;
pub mod limits;
pub mod manager;
pub(crate) mod oom_check;
pub mod path;
pub mod psi;
pub mod stats;
pub mod usage;
pub mod v1_oom;
pub mod v1_pressure;
pub mod v2_events;
pub mod watch;

pub use empty::Cancel;
pub use layout::{Hierarchy, Layout, Mode, ProcessCgroups};
pub use manager::Cgroup;
pub use path::CgroupPath;

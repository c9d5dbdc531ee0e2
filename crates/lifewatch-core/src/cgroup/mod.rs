//! cgroups: where the hierarchies are (layout), which paths are acceptable (path), and,
//! in their own files, the watchers and the manager built on them.

pub mod layout;
pub mod path;
pub mod psi;
pub mod stats;
pub mod v1_oom;
pub mod v1_pressure;
pub mod v2_events;
pub mod watch;

pub use layout::{Hierarchy, Layout, Mode, ProcessCgroups};
pub use path::CgroupPath;

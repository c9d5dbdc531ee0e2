//! cgroups: the facts both halves share — where the hierarchies are (`layout`), which paths
//! are acceptable (`path`), a cgroup's resource figures (`stats`), cgroupfs file access
//! (`files`) — then watching cgroups on a monitor's reactor (`watch/`, one file per kernel
//! mechanism) and managing them (`manage/`: create, limits, kill, freeze, wait, delete).

pub mod files;
pub mod layout;
pub mod manage;
pub mod path;
pub mod stats;
pub mod watch;

pub use layout::{Hierarchy, Layout, Mode, ProcessCgroups};
pub use manage::Cgroup;
pub use path::CgroupPath;

//! cgroups: where the hierarchies are (layout), which paths are acceptable (path), and,
//! in their own files, the watchers and the manager built on them.

pub mod layout;
pub mod path;

pub use layout::{Hierarchy, Layout, Mode, ProcessCgroups};
pub use path::CgroupPath;

//! The cgroup manager: one cgroup across every hierarchy it needs (`manager`), its limits
//! (`limits`), and what waits on the kernel — kill, freeze and thaw, emptiness, delete — each
//! an op of the reactor's shared waiter (one thread for all), plus usage figures.

pub mod delete;
pub mod empty;
pub mod freezer;
pub mod kill;
pub mod limits;
pub mod manager;
pub mod state;
pub mod usage;

pub use crate::reactor::waiter::WaitHandle;
pub use manager::Cgroup;

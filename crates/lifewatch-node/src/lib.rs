//! napi-rs binding of lifewatch-core: conversions, promises and JavaScript errors, plus the
//! one piece that needs Node itself (the doorbell: Node's loop watching a monitor's ready fd).
//! Behaviour and policy live in the core crate and the TypeScript layer; a reader never needs
//! this crate to understand what lifewatch does.

#![deny(clippy::all)]
// napi-derive registers exports only outside `cfg(test)`: in the lib test build they look unused.
#![cfg_attr(test, allow(dead_code))]

mod batch;
mod cgroup;
mod cgroup_watch;
mod doorbell;
mod error;
mod event;
mod host;
mod monitor;
mod process;
mod signal;
mod spawn;
mod stats;
mod subreaper;
mod wait;

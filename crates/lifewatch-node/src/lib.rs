//! napi-rs binding of lifewatch-core: types, conversions and errors only. Behaviour lives
//! in the core crate; a reader never needs this crate to understand what lifewatch does.

#![deny(clippy::all)]

mod cgroup;
mod error;
mod event;
mod monitor;
mod stats;

//! napi-rs binding of lifewatch-core: types, conversions and errors only. Behaviour lives
//! in the core crate; a reader never needs this crate to understand what lifewatch does.

#![deny(clippy::all)]
// In the unit-test build nothing calls the #[napi] exports (only Node does): not dead code.
#![cfg_attr(test, allow(dead_code))]

mod error;
mod event;
mod monitor;
mod stats;
mod subreaper;

//! Signal names and one-off signals.

use lifewatch_core::signal;
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::OrThrow;

/// `SIGTERM`, `term`, `15`, `SIGRTMIN+3`, `SIGIOT`... to a signal number; anything else is
/// ERR_INVALID_ARGUMENT.
#[napi]
pub fn signal_number(env: Env, name: String) -> Result<i32> {
    signal::parse(&name).or_throw(&env)
}

/// The name events use for a signal number (`SIGKILL`, `SIGRTMIN+2`); `signal_number` reads it back.
#[napi]
pub fn signal_name(env: Env, signo: i32) -> Result<String> {
    signal::check(signo)
        .map(signal::display_name)
        .or_throw(&env)
}

/// One signal to a PID through a short-lived pidfd (kill(2) where there is no pidfd).
#[napi]
pub fn signal_pid(env: Env, pid: i64, signo: i32) -> Result<()> {
    lifewatch_core::signal_pid(pid, signo).or_throw(&env)
}

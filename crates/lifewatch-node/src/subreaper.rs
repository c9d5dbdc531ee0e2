//! Child subreaper: opt-in marking of this process, and reaping of orphaned zombies.

use lifewatch_core::subreaper;
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::OrThrow;
use crate::event::status_fields;

#[napi(object, object_from_js = false)]
pub struct ReapedOrphan {
    pub pid: i32,
    /// The process's name (`comm`, at most 15 bytes).
    pub comm: String,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub core: Option<bool>,
}

/// `prctl(PR_SET_CHILD_SUBREAPER, on)`.
#[napi]
pub fn set_child_subreaper(env: Env, on: bool) -> Result<()> {
    subreaper::set(on).or_throw(&env)
}

/// `prctl(PR_GET_CHILD_SUBREAPER)`.
#[napi]
pub fn is_child_subreaper(env: Env) -> Result<bool> {
    subreaper::get().or_throw(&env)
}

/// PIDs of our zombie children, except those lifewatch reaps itself and `exclude`.
#[napi]
pub fn zombie_children(exclude: Vec<i32>) -> Vec<i32> {
    subreaper::zombies(&exclude).iter().map(|z| z.pid).collect()
}

/// PIDs of our running children, except those lifewatch reaps itself and `exclude`.
#[napi]
pub fn running_children(exclude: Vec<i32>) -> Vec<i32> {
    subreaper::running_children(&exclude)
}

/// Reaps the zombie children among `pids` (still zombies, not reaped by anyone else).
#[napi]
pub fn reap_zombies(pids: Vec<i32>) -> Vec<ReapedOrphan> {
    subreaper::zombies(&[])
        .iter()
        .filter(|z| pids.contains(&z.pid))
        .filter_map(subreaper::reap)
        .map(|r| {
            let (exit_code, signal, core) = status_fields(Some(r.status));
            ReapedOrphan {
                pid: r.pid,
                comm: r.comm,
                exit_code,
                signal,
                core,
            }
        })
        .collect()
}

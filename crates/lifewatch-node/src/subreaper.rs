//! Child subreaper: opt-in marking of this process, and reaping of orphaned zombies.

use lifewatch_core::{subreaper, ExitStatus};
use napi::Result;
use napi_derive::napi;

use crate::error::IntoNapi;

#[napi(object)]
pub struct ReapedOrphan {
    pub pid: i32,
    /// The process's name (`comm`, at most 15 bytes).
    pub comm: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub core: Option<bool>,
}

/// `prctl(PR_SET_CHILD_SUBREAPER, on)`.
#[napi]
pub fn set_child_subreaper(on: bool) -> Result<()> {
    subreaper::set(on).napi()
}

/// `prctl(PR_GET_CHILD_SUBREAPER)`.
#[napi]
pub fn is_child_subreaper() -> Result<bool> {
    subreaper::get().napi()
}

/// PIDs of our zombie children, except `exclude`.
#[napi]
pub fn zombie_children(exclude: Vec<i32>) -> Vec<i32> {
    subreaper::zombies(&exclude).iter().map(|z| z.pid).collect()
}

/// Reaps the zombie children among `pids` (still zombies, not reaped by anyone else).
#[napi]
pub fn reap_zombies(pids: Vec<i32>) -> Vec<ReapedOrphan> {
    subreaper::zombies(&[])
        .iter()
        .filter(|z| pids.contains(&z.pid))
        .filter_map(subreaper::reap)
        .map(|r| {
            let (exit_code, signal, core) = match r.status {
                ExitStatus::Code(c) => (Some(c), None, None),
                ExitStatus::Signal { signo, core } => (None, Some(signo), Some(core)),
            };
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

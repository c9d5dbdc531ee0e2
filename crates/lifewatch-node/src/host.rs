//! Host-wide streams on `NativeMonitor`: host, tree and OOM-kill watches. Conversions only.

use lifewatch_core::{HostOptions, TreeOptions};
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::OrThrow;
use crate::monitor::NativeMonitor;

#[napi(object)]
pub struct NativeHostOptions {
    pub exits: bool,
    pub forks: bool,
    pub execs: bool,
    pub cgroup: Option<String>,
}

#[napi(object)]
pub struct NativeTreeOptions {
    pub forks: bool,
    pub execs: bool,
}

#[napi]
impl NativeMonitor {
    /// Every process exit (and fork, exec) on the host, through the process events connector.
    #[napi]
    pub fn watch_host(&self, env: Env, options: NativeHostOptions) -> Result<u32> {
        let o = HostOptions {
            exits: options.exits,
            forks: options.forks,
            execs: options.execs,
            cgroup: options.cgroup,
        };
        self.core().watch_host(o).or_throw(&env)
    }

    /// A process and every descendant, until the last is gone.
    #[napi]
    pub fn watch_tree(&self, env: Env, pid: i64, options: NativeTreeOptions) -> Result<u32> {
        let o = TreeOptions {
            forks: options.forks,
            execs: options.execs,
        };
        self.core().watch_tree(pid, o).or_throw(&env)
    }

    /// Every OOM kill on the host, from the kernel's log.
    #[napi]
    pub fn watch_oom_kills(&self, env: Env, replay: bool) -> Result<u32> {
        self.core().watch_oom_kills(replay).or_throw(&env)
    }
}

//! `NativeMonitor.spawn`: the core's spawn into a cgroup, watched by the monitor (conversions).

use std::path::PathBuf;

use lifewatch_core::spawn::{CgroupDirs, SpawnOptions, Stdio};
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::OrThrow;
use crate::monitor::NativeMonitor;

#[napi(object, object_from_js = false)]
pub struct NativeSpawned {
    pub watch: u32,
    pub pid: i32,
    #[napi(ts_type = "'clone_into_cgroup' | 'joined_in_child' | 'none'")]
    pub placement: String,
}

/// The directories of the cgroup to spawn into: the unified one, and each v1 one once.
#[napi(object)]
pub struct NativeCgroupDirs {
    pub unified: Option<String>,
    pub v1: Vec<String>,
}

#[napi(object)]
pub struct NativeSpawnOptions {
    pub argv0: Option<String>,
    /// Flat `[key, value, key, value...]`; absent: inherit this process's environment.
    pub env: Option<Vec<String>>,
    pub cwd: Option<String>,
    /// Per slot: -1 inherit, -2 /dev/null, else an fd of this process.
    pub stdio: Vec<i32>,
}

#[napi]
impl NativeMonitor {
    /// Spawns into the cgroup with these directories (if given); the monitor watches the child
    /// and reaps it.
    #[napi]
    pub fn spawn(
        &self,
        env: Env,
        command: String,
        args: Vec<String>,
        options: NativeSpawnOptions,
        cgroup: Option<NativeCgroupDirs>,
    ) -> Result<NativeSpawned> {
        let mut stdio = [Stdio::Inherit; 3];
        for (slot, &v) in stdio.iter_mut().zip(options.stdio.iter()) {
            *slot = match v {
                -1 => Stdio::Inherit,
                -2 => Stdio::Null,
                fd => Stdio::Fd(fd),
            };
        }
        let opts = SpawnOptions {
            program: command,
            args,
            argv0: options.argv0,
            env: options.env.map(|flat| {
                flat.chunks(2)
                    .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
                    .collect()
            }),
            cwd: options.cwd.map(PathBuf::from),
            stdio,
        };
        let dirs = cgroup.map(|d| CgroupDirs {
            unified: d.unified.map(PathBuf::from),
            v1: d.v1.into_iter().map(PathBuf::from).collect(),
        });
        let s = self.core().spawn(&opts, dirs.as_ref()).or_throw(&env)?;
        Ok(NativeSpawned {
            watch: s.watch,
            pid: s.pid,
            placement: s.placement.as_str().into(),
        })
    }
}

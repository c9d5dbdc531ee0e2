//! `NativeCgroup`: the core's cgroup manager as a class. Its waits (kill, freeze, thaw,
//! waitEmpty, delete) settle promises (see `wait`). Timeouts arrive in milliseconds: absent or
//! infinite is no limit.

use std::path::Path;
use std::time::Duration;

use lifewatch_core::cgroup::manage::limits::{Input, RawLimits};
use lifewatch_core::cgroup::manage::state::State;
use lifewatch_core::cgroup::{Cgroup, Layout};
use napi::bindgen_prelude::*;
use napi::Env;
use napi_derive::napi;

use crate::error::{js_error, OrThrow};
use crate::event::NativeCgroupStats;
use crate::wait::{wait, NativeCancel};

#[napi(object)]
pub struct NativeLimits {
    pub memory: Option<Either<f64, String>>,
    pub swap: Option<Either<f64, String>>,
    pub pids: Option<Either<f64, String>>,
    pub cpu: Option<Either<f64, String>>,
    pub cpu_weight: Option<Either<f64, String>>,
}

fn input(v: Option<Either<f64, String>>) -> Option<Input> {
    v.map(|v| match v {
        Either::A(n) => Input::Number(n),
        Either::B(s) => Input::Text(s),
    })
}

#[napi(object)]
pub struct NativeCgroupDir {
    /// `unified` or a v1 controller.
    pub controller: String,
    pub path: String,
}

#[napi(object, object_from_js = false)]
pub struct NativeKillReport {
    #[napi(ts_type = "'cgroup.kill' | 'signal' | 'none'")]
    pub method: String,
    pub signalled: u32,
    pub rounds: u32,
}

/// The watchers' snapshot plus what the manager knows.
#[napi(object, object_from_js = false)]
pub struct NativeCgroupUsage {
    pub stats: NativeCgroupStats,
    pub pids_max: Option<f64>,
    pub procs: u32,
    pub populated: Option<bool>,
    pub frozen: Option<bool>,
}

#[napi]
pub struct NativeCgroup {
    inner: Cgroup,
}

fn layout(root: Option<String>) -> lifewatch_core::Result<Layout> {
    match root {
        Some(r) => Layout::from_root(Path::new(&r)),
        None => Layout::detect(),
    }
}

/// Milliseconds to a timeout; `None` (no limit) when absent, infinite, or too long to represent.
fn timeout(ms: Option<f64>) -> Option<Duration> {
    ms.and_then(|m| Duration::try_from_secs_f64(m / 1000.0).ok())
}

#[napi]
impl NativeCgroup {
    /// Creates (or, with `adopt`, takes over) the cgroup with its limits, validated before
    /// anything is written.
    #[napi(factory)]
    pub fn create(
        env: Env,
        path: String,
        limits: NativeLimits,
        cgroup_root: Option<String>,
        adopt: Option<bool>,
    ) -> Result<Self> {
        let raw = RawLimits {
            memory: input(limits.memory),
            swap: input(limits.swap),
            pids: input(limits.pids),
            cpu: input(limits.cpu),
            cpu_weight: input(limits.cpu_weight),
        };
        let limits = raw.parse().or_throw(&env)?;
        let layout = layout(cgroup_root).or_throw(&env)?;
        Ok(NativeCgroup {
            inner: if adopt == Some(true) {
                Cgroup::adopt(&layout, &path, &limits)
            } else {
                Cgroup::create(&layout, &path, &limits)
            }
            .or_throw(&env)?,
        })
    }

    #[napi(factory)]
    pub fn open(env: Env, path: String, cgroup_root: Option<String>) -> Result<Self> {
        let layout = layout(cgroup_root).or_throw(&env)?;
        Ok(NativeCgroup {
            inner: Cgroup::open(&layout, &path).or_throw(&env)?,
        })
    }

    #[napi(getter)]
    pub fn path(&self) -> String {
        format!("/{}", self.inner.path().as_str())
    }

    #[napi(getter)]
    pub fn dirs(&self) -> Vec<NativeCgroupDir> {
        self.inner
            .dirs()
            .into_iter()
            .map(|(controller, p)| NativeCgroupDir {
                controller,
                path: p.to_string_lossy().into_owned(),
            })
            .collect()
    }

    #[napi]
    pub fn add(&self, env: Env, pid: i64) -> Result<()> {
        self.inner.add(pid).or_throw(&env)
    }

    #[napi]
    pub fn procs(&self, env: Env) -> Result<Vec<i32>> {
        self.inner.procs().or_throw(&env)
    }

    /// Resolves once the cgroup is empty (ERR_TIMEOUT after `timeoutMs`).
    #[napi(ts_return_type = "Promise<NativeKillReport>")]
    pub fn kill<'e>(
        &self,
        env: &'e Env,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> Result<Object<'e>> {
        let cg = self.inner.clone();
        wait(
            env,
            cancel,
            |done| cg.kill_async(timeout(timeout_ms), done),
            |r| NativeKillReport {
                method: r.method.as_str().into(),
                signalled: r.signalled as u32,
                rounds: r.rounds as u32,
            },
        )
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn freeze<'e>(
        &self,
        env: &'e Env,
        frozen: bool,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> Result<Object<'e>> {
        let cg = self.inner.clone();
        wait(
            env,
            cancel,
            |done| cg.freeze_async(frozen, timeout(timeout_ms), done),
            |()| (),
        )
    }

    /// Resolves `true` when empty, `false` when the timeout passed first.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn wait_empty<'e>(
        &self,
        env: &'e Env,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> Result<Object<'e>> {
        let cg = self.inner.clone();
        wait(
            env,
            cancel,
            |done| cg.wait_empty_async(timeout(timeout_ms), done),
            |empty| empty,
        )
    }

    /// Resolves `true` once `state` holds (at once when it does), `false` when the timeout passed.
    #[napi(
        ts_args_type = "state: 'populated' | 'frozen' | 'thawed', timeoutMs?: number, cancel?: NativeCancel",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn wait_state<'e>(
        &self,
        env: &'e Env,
        state: String,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> Result<Object<'e>> {
        let state = match state.as_str() {
            "populated" => State::Populated,
            "frozen" => State::Frozen,
            "thawed" => State::Thawed,
            _ => {
                return Err(js_error(
                    env,
                    lifewatch_core::Error::invalid(format!("unknown cgroup state {state:?}")),
                ))
            }
        };
        let cg = self.inner.clone();
        wait(
            env,
            cancel,
            |done| cg.wait_state_async(state, timeout(timeout_ms), done),
            |holds| holds,
        )
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete<'e>(
        &self,
        env: &'e Env,
        kill: bool,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> Result<Object<'e>> {
        let cg = self.inner.clone();
        wait(
            env,
            cancel,
            |done| cg.delete_async(kill, timeout(timeout_ms), done),
            |()| (),
        )
    }

    #[napi]
    pub fn stats(&self, env: Env) -> Result<NativeCgroupUsage> {
        let u = self.inner.usage().or_throw(&env)?;
        Ok(NativeCgroupUsage {
            stats: u.stats.into(),
            pids_max: u.pids_max.map(|n| n as f64),
            procs: u.procs as u32,
            populated: u.populated,
            frozen: u.frozen,
        })
    }
}

//! `NativeCgroup`: the core cgroup manager and spawn, as a class. Blocking waits (kill,
//! freeze, waitEmpty, delete) run on their own thread and settle a promise; a
//! `NativeCancel` ends them early (the TS layer ties it to an AbortSignal).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifewatch_core::cgroup::limits::{Input, RawLimits};
use lifewatch_core::cgroup::{Cancel, Cgroup, Layout};
use lifewatch_core::spawn::{spawn_watched, SpawnOptions, Stdio};
use napi::bindgen_prelude::*;
use napi::Env;
use napi_derive::napi;

use crate::error::{to_napi, IntoNapi};
use crate::event::NativeCgroupStats;
use crate::monitor::NativeMonitor;

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

#[napi(object)]
pub struct NativeSpawnOptions {
    pub argv0: Option<String>,
    /// Flat `[key, value, key, value...]`; absent: inherit this process's environment.
    pub env: Option<Vec<String>>,
    pub cwd: Option<String>,
    /// Per slot: -1 inherit, -2 /dev/null, else an fd of this process.
    pub stdio: Vec<i32>,
}

#[napi(object)]
pub struct NativeSpawned {
    pub watch: u32,
    pub pid: i32,
    pub placement: String,
}

#[napi(object)]
pub struct NativeKillReport {
    pub method: String,
    pub signalled: u32,
    pub rounds: u32,
}

/// The watchers' snapshot plus what the manager knows.
#[napi(object)]
pub struct NativeCgroupUsage {
    pub stats: NativeCgroupStats,
    pub pids_max: Option<f64>,
    pub procs: u32,
    pub populated: Option<bool>,
    pub frozen: Option<bool>,
}

/// Cancels a pending kill, freeze, thaw, waitEmpty or delete.
#[napi]
pub struct NativeCancel {
    inner: Arc<Cancel>,
}

#[napi]
impl NativeCancel {
    #[napi(constructor)]
    pub fn new() -> Result<Self> {
        Ok(NativeCancel {
            inner: Arc::new(Cancel::new().napi()?),
        })
    }

    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

#[napi]
pub struct NativeCgroup {
    inner: Arc<Cgroup>,
}

fn layout(root: Option<String>) -> lifewatch_core::Result<Layout> {
    match root {
        Some(r) => Layout::from_root(Path::new(&r)),
        None => Layout::detect(),
    }
}

fn timeout(ms: Option<f64>) -> Option<Duration> {
    ms.filter(|m| m.is_finite() && *m >= 0.0)
        .map(|m| Duration::from_micros((m * 1000.0) as u64))
}

/// Runs `f` on its own thread and settles the returned promise with its result.
fn background<T, F>(env: &Env, f: F) -> Result<Object<'_>>
where
    T: ToNapiValue + Send + 'static,
    F: FnOnce() -> lifewatch_core::Result<T> + Send + 'static,
{
    let (deferred, promise) = env.create_deferred::<T, Box<dyn FnOnce(Env) -> Result<T>>>()?;
    std::thread::Builder::new()
        .name("lifewatch-cgroup".into())
        .spawn(move || match f() {
            Ok(v) => deferred.resolve(Box::new(move |_| Ok(v))),
            Err(e) => deferred.reject(to_napi(e)),
        })
        .map_err(|e| Error::from_reason(format!("starting a cgroup wait thread: {e}")))?;
    Ok(promise)
}

impl NativeCgroup {
    /// What a wait on its own thread takes along: the cgroup, the caller's cancel handle,
    /// and the timeout from `timeoutMs` (none when absent or not a finite non-negative number).
    fn wait_args(
        &self,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> (Arc<Cgroup>, Option<Arc<Cancel>>, Option<Duration>) {
        (
            Arc::clone(&self.inner),
            cancel.map(|c| Arc::clone(&c.inner)),
            timeout(timeout_ms),
        )
    }
}

#[napi]
impl NativeCgroup {
    /// Creates the cgroup with its limits (validated before anything is written).
    #[napi(factory)]
    pub fn create(path: String, limits: NativeLimits, cgroup_root: Option<String>) -> Result<Self> {
        let raw = RawLimits {
            memory: input(limits.memory),
            swap: input(limits.swap),
            pids: input(limits.pids),
            cpu: input(limits.cpu),
            cpu_weight: input(limits.cpu_weight),
        };
        let limits = raw.parse().napi()?;
        let layout = layout(cgroup_root).napi()?;
        Ok(NativeCgroup {
            inner: Arc::new(Cgroup::create(&layout, &path, &limits).napi()?),
        })
    }

    #[napi(factory)]
    pub fn open(path: String, cgroup_root: Option<String>) -> Result<Self> {
        let layout = layout(cgroup_root).napi()?;
        Ok(NativeCgroup {
            inner: Arc::new(Cgroup::open(&layout, &path).napi()?),
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
    pub fn add(&self, pid: i64) -> Result<()> {
        self.inner.add(pid).napi()
    }

    #[napi]
    pub fn procs(&self) -> Result<Vec<i32>> {
        self.inner.procs().napi()
    }

    /// Spawns into this cgroup and registers the child with `monitor` (which reaps it).
    #[napi]
    pub fn spawn(
        &self,
        monitor: &NativeMonitor,
        command: String,
        args: Vec<String>,
        options: NativeSpawnOptions,
    ) -> Result<NativeSpawned> {
        let mut stdio = [Stdio::Inherit; 3];
        for (slot, &v) in stdio.iter_mut().zip(options.stdio.iter()) {
            *slot = match v {
                -1 => Stdio::Inherit,
                -2 => Stdio::Null,
                fd => Stdio::Fd(fd),
            };
        }
        let env = options.env.map(|flat| {
            flat.chunks(2)
                .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
                .collect()
        });
        let opts = SpawnOptions {
            program: command,
            args,
            argv0: options.argv0,
            env,
            cwd: options.cwd.map(PathBuf::from),
            stdio,
        };
        let s = spawn_watched(&monitor.inner.core, &opts, Some(&self.inner)).napi()?;
        Ok(NativeSpawned {
            watch: s.watch,
            pid: s.pid,
            placement: s.placement.as_str().into(),
        })
    }

    /// Resolves once the cgroup is empty (ERR_CGROUP_BUSY after `timeoutMs`).
    #[napi(ts_return_type = "Promise<NativeKillReport>")]
    pub fn kill<'e>(
        &self,
        env: &'e Env,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> Result<Object<'e>> {
        let (cg, cancel, t) = self.wait_args(timeout_ms, cancel);
        let deadline = t.map(|t| Instant::now() + t);
        background(env, move || {
            let r = cg.kill(deadline, cancel.as_deref())?;
            Ok(NativeKillReport {
                method: r.method.as_str().into(),
                signalled: r.signalled as u32,
                rounds: r.rounds as u32,
            })
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn freeze<'e>(
        &self,
        env: &'e Env,
        frozen: bool,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> Result<Object<'e>> {
        let (cg, cancel, t) = self.wait_args(timeout_ms, cancel);
        let t = t.unwrap_or(Duration::from_secs(30));
        background(env, move || {
            if frozen {
                cg.freeze(t, cancel.as_deref())
            } else {
                cg.thaw(t, cancel.as_deref())
            }
        })
    }

    /// Resolves `true` when empty, `false` when the timeout passed or it was cancelled.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn wait_empty<'e>(
        &self,
        env: &'e Env,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> Result<Object<'e>> {
        let (cg, cancel, t) = self.wait_args(timeout_ms, cancel);
        let deadline = t.map(|t| Instant::now() + t);
        background(env, move || cg.wait_empty(deadline, cancel.as_deref()))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete<'e>(
        &self,
        env: &'e Env,
        kill: bool,
        timeout_ms: Option<f64>,
        cancel: Option<&NativeCancel>,
    ) -> Result<Object<'e>> {
        let (cg, cancel, t) = self.wait_args(timeout_ms, cancel);
        let t = t.unwrap_or(Duration::from_secs(10));
        background(env, move || cg.delete(kill, t, cancel.as_deref()))
    }

    #[napi]
    pub fn stats(&self) -> Result<NativeCgroupUsage> {
        let u = self.inner.usage().napi()?;
        Ok(NativeCgroupUsage {
            stats: u.stats.into(),
            pids_max: u.pids_max.map(|n| n as f64),
            procs: u.procs as u32,
            populated: u.populated,
            frozen: u.frozen,
        })
    }
}

//! Cgroup watching on `NativeMonitor`, plus the stateless layout helpers: conversions only.

use std::collections::HashMap;

use lifewatch_core::cgroup::stats;
use lifewatch_core::cgroup::watch::psi::PsiTrigger;
use lifewatch_core::cgroup::{CgroupPath, Hierarchy, Layout};
use lifewatch_core::CgroupWatchOptions;
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::{js_error, OrThrow};
use crate::event::NativeCgroupStats;
use crate::monitor::NativeMonitor;

#[napi(object)]
pub struct NativePsiTrigger {
    pub resource: String,
    /// `some` (default) or `full`.
    pub kind: Option<String>,
    pub stall_us: f64,
    pub window_us: f64,
}

impl NativePsiTrigger {
    fn core(&self) -> lifewatch_core::Result<PsiTrigger> {
        PsiTrigger::from_parts(
            &self.resource,
            self.kind.as_deref().unwrap_or("some"),
            self.stall_us,
            self.window_us,
        )
    }
}

#[napi(object)]
pub struct NativeCgroupWatchOptions {
    pub oom: Option<bool>,
    pub events: Option<bool>,
    pub pressure: Option<String>,
    pub psi: Option<Vec<NativePsiTrigger>>,
    pub local: Option<bool>,
}

/// A defaulted part left out: its name and the error that kept it out.
#[napi(object, object_from_js = false)]
pub struct NativeLeftOut {
    #[napi(ts_type = "'oom' | 'events' | 'pressure' | 'psi'")]
    pub part: String,
    #[napi(ts_type = "Error & { code: string }")]
    pub error: napi::Error,
}

#[napi(object, object_from_js = false)]
pub struct NativeCgroupWatched {
    pub id: u32,
    #[napi(ts_type = "Array<'oom' | 'events' | 'pressure' | 'psi'>")]
    pub parts: Vec<String>,
    pub left_out: Vec<NativeLeftOut>,
}

#[napi(object)]
pub struct NativeHierarchy {
    pub mount: String,
    pub root: String,
}

#[napi(object)]
pub struct NativeLayout {
    #[napi(ts_type = "'v1' | 'v2' | 'hybrid'")]
    pub mode: String,
    pub unified: Option<NativeHierarchy>,
    pub v1: HashMap<String, NativeHierarchy>,
}

#[napi(object)]
pub struct NativeProcessCgroups {
    /// The process's directory in the unified hierarchy, where mounted.
    pub unified: Option<String>,
    /// Its path inside the unified hierarchy (`0::/...`).
    pub unified_path: Option<String>,
    /// Its directory per v1 controller.
    pub v1: HashMap<String, String>,
}

fn hierarchy(h: &Hierarchy) -> NativeHierarchy {
    NativeHierarchy {
        mount: h.mount.to_string_lossy().into_owned(),
        root: h.root.clone(),
    }
}

fn layout_to_js(l: &Layout) -> NativeLayout {
    NativeLayout {
        mode: l.mode().as_str().into(),
        unified: l.unified.as_ref().map(hierarchy),
        v1: l
            .v1
            .iter()
            .map(|(k, h)| (k.clone(), hierarchy(h)))
            .collect(),
    }
}

fn layout_at(root: Option<String>) -> lifewatch_core::Result<Layout> {
    match root {
        Some(r) => Layout::from_root(std::path::Path::new(&r)),
        None => Layout::detect(),
    }
}

#[napi]
impl NativeMonitor {
    #[napi]
    pub fn watch_cgroup(
        &self,
        env: Env,
        path: String,
        options: Option<NativeCgroupWatchOptions>,
    ) -> Result<NativeCgroupWatched> {
        let o = options.unwrap_or(NativeCgroupWatchOptions {
            oom: None,
            events: None,
            pressure: None,
            psi: None,
            local: None,
        });
        let psi = o
            .psi
            .unwrap_or_default()
            .iter()
            .map(NativePsiTrigger::core)
            .collect::<lifewatch_core::Result<Vec<_>>>()
            .or_throw(&env)?;
        let opts = CgroupWatchOptions {
            oom: o.oom,
            events: o.events,
            pressure: o.pressure,
            psi,
            local: o.local.unwrap_or(false),
        };
        let w = self
            .core()
            .watch_cgroup_parts(&path, &opts)
            .or_throw(&env)?;
        Ok(NativeCgroupWatched {
            id: w.id,
            parts: w.parts.iter().map(|p| p.as_str().into()).collect(),
            left_out: w
                .left_out
                .into_iter()
                .map(|(p, e)| NativeLeftOut {
                    part: p.as_str().into(),
                    error: js_error(&env, e),
                })
                .collect(),
        })
    }

    /// A system-wide PSI trigger (/proc/pressure/<resource>).
    #[napi]
    pub fn watch_pressure(&self, env: Env, trigger: NativePsiTrigger) -> Result<u32> {
        let t = trigger.core().or_throw(&env)?;
        self.core().watch_pressure(t).or_throw(&env)
    }

    #[napi]
    pub fn cgroup_layout(&self, env: Env) -> Result<NativeLayout> {
        Ok(layout_to_js(&self.core().cgroup_layout().or_throw(&env)?))
    }
}

/// The cgroup layout of this system (or of a test tree at `root`).
#[napi]
pub fn cgroup_layout(env: Env, root: Option<String>) -> Result<NativeLayout> {
    Ok(layout_to_js(&layout_at(root).or_throw(&env)?))
}

/// The cgroups a process is in, as directories.
#[napi]
pub fn cgroup_of(env: Env, pid: i64, root: Option<String>) -> Result<NativeProcessCgroups> {
    let pid = lifewatch_core::check_pid(pid).or_throw(&env)?;
    let g = layout_at(root)
        .and_then(|l| l.cgroups_of(pid))
        .or_throw(&env)?;
    Ok(NativeProcessCgroups {
        unified: g.unified.map(|p| p.to_string_lossy().into_owned()),
        unified_path: g.unified_path,
        v1: g
            .v1
            .into_iter()
            .map(|(k, p)| (k, p.to_string_lossy().into_owned()))
            .collect(),
    })
}

/// A resource snapshot of a cgroup (memory, events counters, pids).
#[napi]
pub fn cgroup_stats(env: Env, path: String, root: Option<String>) -> Result<NativeCgroupStats> {
    let layout = layout_at(root).or_throw(&env)?;
    let cg = CgroupPath::parse(&path, &layout).or_throw(&env)?;
    Ok(stats::snapshot(&layout, &cg).into())
}

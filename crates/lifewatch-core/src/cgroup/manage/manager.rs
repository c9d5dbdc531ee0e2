//! One cgroup across every hierarchy it needs (as containerd's cgroups package does): created
//! with its limits or rolled back, opened, processes added and listed. Killing, freezing,
//! waiting for emptiness, deleting and usage live in their own files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cgroup::files;
use crate::cgroup::layout::Layout;
use crate::cgroup::manage::limits::{weight_to_shares, Limits, Max};
use crate::cgroup::path::CgroupPath;
use crate::error::{Code, Error, Result};
use crate::process::check_pid;

/// v1 controllers a managed cgroup lives in, when mounted (`freezer` only without a
/// unified hierarchy, whose `cgroup.freeze` does the job).
const V1_MANAGED: [&str; 4] = ["memory", "pids", "cpu", "freezer"];

/// Where a controller's files are for this cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    V1,
    V2,
    Missing,
}

/// A cgroup (a cheap clone: the waits each take one).
#[derive(Debug, Clone)]
pub struct Cgroup {
    path: CgroupPath,
    layout: Layout,
    unified: Option<PathBuf>,
    /// v1 controller -> its directory for this cgroup.
    v1: BTreeMap<String, PathBuf>,
    /// Directories `create` made (parents first), removed again by `delete`.
    created: Arc<Mutex<Vec<PathBuf>>>,
}

impl Cgroup {
    /// Creates (or takes over, if it exists) the cgroup in every hierarchy it needs and
    /// writes its limits. Nothing is written before every limit is known to be applicable;
    /// on any failure every directory made here is removed again.
    pub fn create(layout: &Layout, path: &str, limits: &Limits) -> Result<Cgroup> {
        let path = CgroupPath::parse(path, layout)?;
        if path.is_root() {
            return Err(Error::invalid("cannot create the root cgroup"));
        }
        // A unified hierarchy without cgroup.controllers (very old kernels) has none; any
        // other failure to read it (EMFILE, EACCES...) is an error, not "no controllers",
        // which would silently place the limits elsewhere.
        let v2_available = match &layout.unified {
            Some(h) => {
                match files::read(&h.mount, "cgroup.controllers", "listing v2 controllers") {
                    Ok(s) => s.split_whitespace().map(String::from).collect::<Vec<_>>(),
                    Err(e) if e.errno == Some(libc::ENOENT) => Vec::new(),
                    Err(e) => return Err(e),
                }
            }
            None => Vec::new(),
        };
        let place = |c: &str| {
            if layout.v1.contains_key(c) {
                Place::V1
            } else if v2_available.iter().any(|a| a == c) {
                Place::V2
            } else {
                Place::Missing
            }
        };
        let (memory, pids, cpu) = (place("memory"), place("pids"), place("cpu"));
        let need = |wanted: bool, p: Place, c: &str| -> Result<()> {
            if wanted && p == Place::Missing {
                return Err(Error::new(
                    Code::UnsupportedKernel,
                    format!(
                        "cannot limit {c}: no cgroup v1 {c} hierarchy is mounted and the unified hierarchy does not offer the {c} controller"
                    ),
                ));
            }
            Ok(())
        };
        need(
            limits.memory.is_some() || limits.swap.is_some(),
            memory,
            "memory",
        )?;
        need(limits.pids.is_some(), pids, "pids")?;
        need(
            limits.cpu.is_some() || limits.cpu_weight.is_some(),
            cpu,
            "cpu",
        )?;
        if memory == Place::V1 && limits.swap.is_some() && limits.memory.is_none() {
            return Err(Error::invalid(
                "a swap limit needs a memory limit on cgroup v1 (memory.memsw.limit_in_bytes is memory plus swap)",
            ));
        }

        let mut cg = Cgroup {
            path: path.clone(),
            layout: layout.clone(),
            unified: layout.unified.as_ref().map(|h| path.dir_in(h)),
            v1: BTreeMap::new(),
            created: Arc::new(Mutex::new(Vec::new())),
        };
        for c in V1_MANAGED {
            if c == "freezer" && layout.unified.is_some() {
                continue;
            }
            if let Some(h) = layout.v1.get(c) {
                cg.v1.insert(c.to_string(), path.dir_in(h));
            }
        }
        let v2_controllers: Vec<&str> = [("memory", memory), ("pids", pids), ("cpu", cpu)]
            .into_iter()
            .filter(|&(_, p)| p == Place::V2)
            .map(|(c, _)| c)
            .collect();
        match cg.build(layout, &v2_controllers, limits) {
            Ok(()) => Ok(cg),
            Err(e) => {
                cg.remove_created();
                Err(e)
            }
        }
    }

    fn build(&self, layout: &Layout, v2_controllers: &[&str], limits: &Limits) -> Result<()> {
        let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(h), Some(leaf)) = (&layout.unified, &self.unified) {
            if !layout.fake {
                crate::cgroup::path::check_cgroupfs(&h.mount)?;
            }
            let mut parent = h.mount.clone();
            for dir in files::chain(&h.mount, leaf) {
                enable_controllers(&parent, v2_controllers)?;
                if files::mkdir(&dir, "creating the cgroup")? {
                    created.push(dir.clone());
                }
                parent = dir;
            }
        }
        for (c, leaf) in &self.v1 {
            let h = layout.v1(c)?;
            if !layout.fake {
                crate::cgroup::path::check_cgroupfs(&h.mount)?;
            }
            for dir in files::chain(&h.mount, leaf) {
                if files::mkdir(&dir, "creating the cgroup")? {
                    created.push(dir.clone());
                }
            }
        }
        drop(created);
        self.write_limits(limits)
    }

    fn write_limits(&self, l: &Limits) -> Result<()> {
        let what = "setting the cgroup's limits";
        if let Some(dir) = self.v1.get("memory") {
            if let Some(m) = l.memory {
                files::write(dir, "memory.limit_in_bytes", &m.v1(), what)?;
            }
            if let Some(s) = l.swap {
                if !files::exists(dir, "memory.memsw.limit_in_bytes") {
                    return Err(Error::new(
                        Code::UnsupportedKernel,
                        "cannot limit swap: memory.memsw.limit_in_bytes is missing (swap accounting is off)",
                    )
                    .with_path(dir));
                }
                let memsw = match (l.memory, s) {
                    (Some(Max::Value(m)), Max::Value(s)) => Max::Value(m.saturating_add(s)),
                    _ => Max::Unlimited,
                };
                files::write(dir, "memory.memsw.limit_in_bytes", &memsw.v1(), what)?;
            }
        } else if let Some(dir) = &self.unified {
            if let Some(m) = l.memory {
                files::write(dir, "memory.max", &m.v2(), what)?;
            }
            if let Some(s) = l.swap {
                if !files::exists(dir, "memory.swap.max") {
                    return Err(Error::new(
                        Code::UnsupportedKernel,
                        "cannot limit swap: memory.swap.max is missing (no swap accounting)",
                    )
                    .with_path(dir));
                }
                files::write(dir, "memory.swap.max", &s.v2(), what)?;
            }
        }
        if let Some(p) = l.pids {
            match self.v1.get("pids").or(self.unified.as_ref()) {
                Some(dir) => files::write(dir, "pids.max", &p.v2(), what)?,
                None => unreachable!("checked in create"),
            }
        }
        if let Some(dir) = self.v1.get("cpu") {
            if let Some(c) = l.cpu {
                files::write(dir, "cpu.cfs_period_us", &c.period.to_string(), what)?;
                let quota = c.quota.map_or("-1".to_string(), |q| q.to_string());
                files::write(dir, "cpu.cfs_quota_us", &quota, what)?;
            }
            if let Some(w) = l.cpu_weight {
                files::write(dir, "cpu.shares", &weight_to_shares(w).to_string(), what)?;
            }
        } else if let Some(dir) = &self.unified {
            if let Some(c) = l.cpu {
                files::write(dir, "cpu.max", &c.v2(), what)?;
            }
            if let Some(w) = l.cpu_weight {
                files::write(dir, "cpu.weight", &w.to_string(), what)?;
            }
        }
        Ok(())
    }

    /// An existing cgroup: found in the unified hierarchy and/or the managed v1 ones.
    pub fn open(layout: &Layout, path: &str) -> Result<Cgroup> {
        let path = CgroupPath::parse(path, layout)?;
        let mut unified = None;
        let mut v1 = BTreeMap::new();
        let mut first_error = None;
        let mut keep = |r: Result<PathBuf>| match r {
            Ok(d) => Some(d),
            Err(e) => {
                if e.code != Code::NoSuchCgroup && first_error.is_none() {
                    first_error = Some(e);
                }
                None
            }
        };
        if let Some(h) = &layout.unified {
            unified = keep(path.existing_dir_in(h, layout));
        }
        for c in V1_MANAGED {
            if let Some(h) = layout.v1.get(c) {
                if let Some(d) = keep(path.existing_dir_in(h, layout)) {
                    v1.insert(c.to_string(), d);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if unified.is_none() && v1.is_empty() {
            return Err(Error::new(
                Code::NoSuchCgroup,
                format!("no cgroup /{} exists in any hierarchy", path.as_str()),
            ));
        }
        Ok(Cgroup {
            path,
            layout: layout.clone(),
            unified,
            v1,
            created: Arc::new(Mutex::new(Vec::new())),
        })
    }

    pub fn path(&self) -> &CgroupPath {
        &self.path
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(PathBuf::as_path)
    }

    /// Each v1 directory once (co-mounted controllers share one).
    pub fn v1_dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for d in self.v1.values() {
            if !out.contains(&d.as_path()) {
                out.push(d);
            }
        }
        out
    }

    /// Where a child spawned into this cgroup goes: the unified directory (joined with
    /// `CLONE_INTO_CGROUP`) and each v1 directory once (joined by the child before it execs).
    pub fn spawn_dirs(&self) -> crate::process::spawn::CgroupDirs {
        crate::process::spawn::CgroupDirs {
            unified: self.unified.clone(),
            v1: self.v1_dirs().into_iter().map(Path::to_path_buf).collect(),
        }
    }

    /// Every directory: `("unified", dir)` and `(controller, dir)` per v1 controller.
    pub fn dirs(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        if let Some(u) = &self.unified {
            out.push(("unified".to_string(), u.clone()));
        }
        for (c, d) in &self.v1 {
            out.push((c.clone(), d.clone()));
        }
        out
    }

    /// Moves a process (all its threads) into the cgroup in every hierarchy.
    pub fn add(&self, pid: i64) -> Result<()> {
        let pid = check_pid(pid)?;
        let what = format!("adding pid {pid} to cgroup /{}", self.path.as_str());
        for dir in self.v1_dirs().into_iter().chain(self.unified_dir()) {
            files::write(dir, "cgroup.procs", &pid.to_string(), &what).map_err(|e| {
                match e.errno {
                    Some(libc::ESRCH) => e.with_code(Code::NoSuchProcess),
                    _ => e,
                }
            })?;
        }
        Ok(())
    }

    /// The PIDs in the cgroup, across every hierarchy.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let mut all = Vec::new();
        for dir in self.unified_dir().into_iter().chain(self.v1_dirs()) {
            for p in files::procs(dir)? {
                if !all.contains(&p) {
                    all.push(p);
                }
            }
        }
        all.sort_unstable();
        Ok(all)
    }

    /// Removes the directories `create` made, innermost first (each only when nothing else
    /// has appeared in it): after `delete`, and on `create`'s error path.
    pub(crate) fn remove_created(&self) {
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|p| p.into_inner()));
        for dir in created.iter().rev() {
            let _ = files::rmdir(dir);
        }
    }
}

/// Enables controllers for the children of `parent` (v2 `cgroup.subtree_control`), only
/// those not enabled yet.
fn enable_controllers(parent: &Path, controllers: &[&str]) -> Result<()> {
    if controllers.is_empty() {
        return Ok(());
    }
    let what = "enabling controllers for the new cgroup";
    let enabled = files::read(parent, "cgroup.subtree_control", what)?;
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    files::write(parent, "cgroup.subtree_control", &missing.join(" "), what)
}

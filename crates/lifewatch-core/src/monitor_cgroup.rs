//! The Monitor's cgroup API: `watch_cgroup` plans which kernel mechanisms serve a watch
//! (v1 eventfds, v2 inotify, PSI), validates everything before opening anything, opens
//! with every fd owned at once, and registers the parts in the Monitor's one epoll.
//!
//! Watching the same cgroup twice in one monitor is allowed: each watch has its own id and
//! baselines, and both get every event (a v2 file's inotify wd is shared and refcounted).
//! Only changes are reported: the counters, `populated` and `frozen` are baselined when the
//! watch is made (a cgroup OOM-killed before it was watched reports no stale kill); read
//! `cgroup.events` after watching to learn the current state without a race.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cgroup::layout::Layout;
use crate::cgroup::path::CgroupPath;
use crate::cgroup::psi::{self, PsiPart, PsiTrigger};
use crate::cgroup::stats::{self, Counters};
use crate::cgroup::v1_oom::{self, V1Part, V1What};
use crate::cgroup::v1_pressure::PressureLevel;
use crate::cgroup::v2_events::InotifySource;
use crate::cgroup::watch::{lock, CgWatch, EventsState, Hub, OomFile, OomState, SharedHub, WdKind};
use crate::error::{Code, Error, Result, SysResult};
use crate::event::{monotonic_ns, WatchId};
use crate::fd::{CountedFd, Release, Released};
use crate::monitor::Monitor;
use crate::reactor::Shared;
use crate::source::Source;

/// What to watch on one cgroup. `None` means "where this system has it"; `Some(true)`
/// makes a missing mechanism an error; `Some(false)` turns it off.
#[derive(Debug, Clone, Default)]
pub struct CgroupWatchOptions {
    /// OOM kills: v1 `memory.oom_control` eventfd, or v2 `memory.events`.
    pub oom: Option<bool>,
    /// `populated` / `frozen` changes from `cgroup.events` (unified hierarchy).
    pub events: Option<bool>,
    /// v1 `memory.pressure_level`: `low|medium|critical[,hierarchy|local]`.
    pub pressure: Option<String>,
    /// PSI triggers on the cgroup's `*.pressure` files (unified hierarchy).
    pub psi: Vec<PsiTrigger>,
    /// v2: `memory.events.local` (this cgroup only) instead of `memory.events`.
    pub local: bool,
}

/// One kind of notification serving a cgroup watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchPart {
    /// OOM kills (v1 eventfd or v2 `memory.events`).
    Oom,
    /// `populated` / `frozen` from `cgroup.events`.
    Events,
    /// v1 `memory.pressure_level`.
    Pressure,
    /// PSI triggers.
    Psi,
}

impl WatchPart {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchPart::Oom => "oom",
            WatchPart::Events => "events",
            WatchPart::Pressure => "pressure",
            WatchPart::Psi => "psi",
        }
    }
}

/// A cgroup watch as made: its id, the parts serving it, and the defaulted parts left out
/// with the permission error that kept each out.
#[derive(Debug)]
pub struct CgroupWatched {
    pub id: WatchId,
    pub parts: Vec<WatchPart>,
    pub left_out: Vec<(WatchPart, Error)>,
}

/// The Monitor's cgroup state: the hub its sources share, and how to find the layout.
pub struct Cgroups {
    root: Option<PathBuf>,
    hub: SharedHub,
    /// Serializes the lazy creation of the inotify source.
    init: Mutex<()>,
}

impl Cgroups {
    pub(crate) fn new(root: Option<PathBuf>, shared: &Arc<Shared>) -> Cgroups {
        let hub: SharedHub = Arc::new(Mutex::new(Hub::default()));
        let h = Arc::clone(&hub);
        let _ = shared
            .before_exit
            .set(Box::new(move |time, out| lock(&h).flush_oom(time, out)));
        Cgroups {
            root,
            hub,
            init: Mutex::new(()),
        }
    }

    pub(crate) fn clear(&self) {
        lock(&self.hub).watches.clear();
    }
}

/// Which mechanisms serve a watch, decided before anything is opened.
#[derive(Debug)]
pub(crate) struct Plan {
    pub path: CgroupPath,
    /// v1 memory directory (OOM eventfd, pressure level).
    pub v1_dir: Option<PathBuf>,
    pub oom: Option<(OomFile, PathBuf)>,
    /// Unified directory watched through inotify (cgroup.events, memory.events, removal).
    pub inotify_dir: Option<PathBuf>,
    pub events: Option<PathBuf>,
    pub pressure: Option<PressureLevel>,
    pub psi: Vec<(PathBuf, PsiTrigger)>,
}

/// The existing directory of `path` in `h`; `None` when it does not exist there.
fn dir_in(
    path: &CgroupPath,
    h: &crate::cgroup::Hierarchy,
    layout: &Layout,
) -> Result<Option<PathBuf>> {
    let candidate = path.dir_in(h);
    if candidate.exists() && !candidate.is_dir() {
        return Err(Error::invalid(format!(
            "{} is a file, not a cgroup directory",
            candidate.display()
        ))
        .with_path(candidate));
    }
    match path.existing_dir_in(h, layout) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.code == Code::NoSuchCgroup => Ok(None),
        Err(e) => Err(e),
    }
}

fn unsupported(msg: String) -> Error {
    Error::new(Code::UnsupportedKernel, msg)
}

impl Plan {
    pub(crate) fn make(input: &str, opts: &CgroupWatchOptions, layout: &Layout) -> Result<Plan> {
        let path = CgroupPath::parse(input, layout)?;
        let name = format!("/{}", path.as_str());
        let pressure = opts
            .pressure
            .as_deref()
            .map(PressureLevel::parse)
            .transpose()?;
        let privileged = psi::privileged();
        for t in &opts.psi {
            t.validate(privileged)?;
        }
        let mem_h = layout.v1.get("memory");
        let v1_dir = match mem_h {
            Some(h) => dir_in(&path, h, layout)?,
            None => None,
        };
        let uni_dir = match &layout.unified {
            Some(h) => dir_in(&path, h, layout)?,
            None => None,
        };
        if v1_dir.is_none() && uni_dir.is_none() {
            return Err(Error::new(
                Code::NoSuchCgroup,
                format!("cgroup {name} does not exist in any hierarchy this monitor watches"),
            ));
        }
        let missing = |what: &str, hierarchy_mounted: bool| {
            if hierarchy_mounted {
                Error::new(
                    Code::NoSuchCgroup,
                    format!("cgroup {name} has no {what} directory"),
                )
            } else {
                unsupported(format!(
                    "{what} is not available on this system (watching {name})"
                ))
            }
        };
        let mut plan = Plan {
            path: path.clone(),
            v1_dir: None,
            oom: None,
            inotify_dir: None,
            events: None,
            pressure: None,
            psi: Vec::new(),
        };
        if opts.oom != Some(false) {
            let v2_file = uni_dir.as_ref().map(|d| {
                d.join(if opts.local {
                    "memory.events.local"
                } else {
                    "memory.events"
                })
            });
            if let Some(d) = &v1_dir {
                plan.oom = Some((OomFile::V1, d.join("memory.oom_control")));
                plan.v1_dir = Some(d.clone());
            } else if let Some(f) = v2_file.filter(|f| f.exists()) {
                plan.oom = Some((OomFile::V2, f));
                plan.inotify_dir = uni_dir.clone();
            } else if opts.oom == Some(true) {
                return Err(match mem_h {
                    Some(_) => missing("v1 memory", true),
                    None => unsupported(format!(
                        "no cgroup v1 memory hierarchy is mounted and cgroup {name} has no memory.events (no v2 memory controller)"
                    )),
                });
            }
        }
        if opts.events != Some(false) {
            match uni_dir.as_ref().filter(|d| d.join("cgroup.events").exists()) {
                Some(d) => {
                    plan.events = Some(d.join("cgroup.events"));
                    plan.inotify_dir = Some(d.clone());
                }
                None if opts.events == Some(true) => {
                    return Err(match (&layout.unified, &uni_dir) {
                        (None, _) => unsupported(
                            "cgroup.events needs the unified (cgroup2) hierarchy, which is not mounted".into(),
                        ),
                        (Some(_), None) => missing("unified", true),
                        (Some(_), Some(_)) => unsupported(format!(
                            "cgroup {name} has no cgroup.events (the root cgroup has none)"
                        )),
                    })
                }
                None => {}
            }
        }
        if let Some(level) = pressure {
            match &v1_dir {
                Some(d) => plan.v1_dir = Some(d.clone()),
                None => return Err(missing("v1 memory", mem_h.is_some())),
            }
            plan.pressure = Some(level);
        }
        for t in &opts.psi {
            let Some(d) = &uni_dir else {
                return Err(missing("unified", layout.unified.is_some()));
            };
            plan.psi.push((psi::file(Some(d), t.resource), *t));
        }
        if plan.oom.is_none()
            && plan.events.is_none()
            && plan.pressure.is_none()
            && plan.psi.is_empty()
        {
            return Err(unsupported(format!(
                "nothing to watch on cgroup {name} with these options on this system"
            )));
        }
        Ok(plan)
    }
}

fn read_baseline(file: &Path) -> Result<Counters> {
    stats::read_counters(file)
        .sys("read", format!("reading {}", file.display()))
        .map_err(|e| {
            let e = e.with_path(file);
            match e.errno {
                Some(libc::ENOENT) => e.with_code(Code::NoSuchCgroup),
                _ => e,
            }
        })
}

impl Monitor {
    /// The cgroup layout this monitor uses (detected once, or from `cgroup_root`).
    pub fn cgroup_layout(&self) -> Result<Layout> {
        let mut hub = lock(&self.cgroups.hub);
        if hub.layout.is_none() {
            hub.layout = Some(match &self.cgroups.root {
                Some(root) => Layout::from_root(root)?,
                None => Layout::detect()?,
            });
        }
        Ok(hub.layout.clone().expect("set above"))
    }

    /// Watches a cgroup (a hierarchy-relative path such as `lifewatch/job1`, or a
    /// directory under a cgroup mount). Events: `oom`, `pressure`, `populated`, `frozen`,
    /// and finally `removed` once every watched directory is gone.
    pub fn watch_cgroup(&self, path: &str, opts: &CgroupWatchOptions) -> Result<WatchId> {
        self.watch_cgroup_parts(path, opts).map(|w| w.id)
    }

    /// `watch_cgroup`, saying which parts serve the watch. A part left to its default
    /// (`None`) that needs a permission the caller lacks (an unprivileged user cannot
    /// write a v1 `cgroup.event_control`) is left out and listed with its error, so the
    /// parts that work still do; an explicitly requested part fails the whole call, with
    /// nothing registered. If every part is left out, the first such error is returned.
    pub fn watch_cgroup_parts(
        &self,
        path: &str,
        opts: &CgroupWatchOptions,
    ) -> Result<CgroupWatched> {
        self.check_open()?;
        let layout = self.cgroup_layout()?;
        let mut plan = Plan::make(path, opts, &layout)?;
        let mut left_out: Vec<(WatchPart, Error)> = Vec::new();
        // A defaulted part refused for lack of permission is left out; anything else fails.
        let mut tolerate = |part: WatchPart, requested: Option<bool>, e: Error| -> Result<()> {
            if requested.is_none() && e.code == Code::Permission {
                left_out.push((part, e));
                Ok(())
            } else {
                Err(e)
            }
        };
        // Baselines first: anything after them is reported (see the final check below).
        let mut oom = match &plan.oom {
            Some((kind, file)) => match read_baseline(file) {
                Ok(last) => Some(OomState {
                    file: file.clone(),
                    kind: *kind,
                    last,
                    pending: None,
                }),
                Err(e) => {
                    tolerate(WatchPart::Oom, opts.oom, e)?;
                    None
                }
            },
            None => None,
        };
        let events = match &plan.events {
            Some(file) => match read_baseline(file) {
                Ok(c) => Some(EventsState {
                    file: file.clone(),
                    populated: c.get("populated").map(|&v| v != 0),
                    frozen: c.get("frozen").map(|&v| v != 0),
                }),
                Err(e) => {
                    tolerate(WatchPart::Events, opts.events, e)?;
                    None
                }
            },
            None => None,
        };
        if oom.is_none() {
            plan.oom = None;
        }
        if events.is_none() {
            plan.events = None;
        }
        if plan.oom.as_ref().map(|o| o.0) != Some(OomFile::V2) && plan.events.is_none() {
            plan.inotify_dir = None;
        }
        if plan.inotify_dir.is_some() {
            self.ensure_inotify()?;
        }
        // Open every fd; an error drops (closes) what was opened so far.
        let mut v1: Vec<(CountedFd, V1What)> = Vec::new();
        if let (Some((OomFile::V1, _)), Some(dir)) = (&plan.oom, &plan.v1_dir) {
            match v1_oom::register(dir, "memory.oom_control", None) {
                Ok(fd) => v1.push((fd, V1What::Oom)),
                Err(e) => tolerate(WatchPart::Oom, opts.oom, e)?,
            }
        }
        if v1.is_empty() && matches!(plan.oom, Some((OomFile::V1, _))) {
            plan.oom = None;
            oom = None;
        }
        if let (Some(level), Some(dir)) = (&plan.pressure, &plan.v1_dir) {
            let arg = level.arg();
            v1.push((
                v1_oom::register(dir, "memory.pressure_level", Some(&arg))?,
                V1What::Pressure(arg),
            ));
        }
        let mut psis: Vec<(CountedFd, PsiTrigger, PathBuf)> = Vec::new();
        for (file, t) in &plan.psi {
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            psis.push((psi::arm(file, t)?, *t, dir));
        }
        let parts: Vec<WatchPart> = [
            (WatchPart::Oom, plan.oom.is_some()),
            (WatchPart::Events, plan.events.is_some()),
            (WatchPart::Pressure, plan.pressure.is_some()),
            (WatchPart::Psi, !plan.psi.is_empty()),
        ]
        .into_iter()
        .filter_map(|(p, on)| on.then_some(p))
        .collect();
        if parts.is_empty() {
            let (_, first) = left_out
                .into_iter()
                .next()
                .expect("Plan::make refuses a plan without parts: an empty one had parts left out");
            return Err(first);
        }

        let id = self.shared.reserve_id();
        {
            let mut hub = lock(&self.cgroups.hub);
            hub.watches.insert(
                id,
                CgWatch {
                    path: plan.path.clone(),
                    parts_left: v1.len() + psis.len() + usize::from(plan.inotify_dir.is_some()),
                    sources: Vec::new(),
                    wds: Vec::new(),
                    dir_name: plan
                        .inotify_dir
                        .as_ref()
                        .and_then(|d| d.file_name())
                        .map(Into::into),
                    oom,
                    events,
                },
            );
            if let Some(dir) = &plan.inotify_dir {
                let mut add = || -> Result<()> {
                    // The root cgroup cannot be removed: no parent to watch.
                    if let (Some(parent), false) = (dir.parent(), plan.path.is_root()) {
                        hub.add_wd(id, parent, WdKind::Parent)?;
                    }
                    if let Some((OomFile::V2, f)) = &plan.oom {
                        hub.add_wd(id, f, WdKind::MemoryEvents)?;
                    }
                    if let Some(f) = &plan.events {
                        hub.add_wd(id, f, WdKind::CgroupEvents)?;
                    }
                    Ok(())
                };
                if let Err(e) = add() {
                    hub.remove(id);
                    return Err(e);
                }
            }
        }
        let hub = &self.cgroups.hub;
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        for (fd, what) in v1 {
            let dir = plan.v1_dir.clone().unwrap_or_default();
            sources.push(Box::new(V1Part::new(id, fd, what, dir, Arc::clone(hub))));
        }
        for (fd, t, dir) in psis {
            sources.push(Box::new(PsiPart::new(
                fd,
                t,
                Some((id, dir, Arc::clone(hub))),
            )));
        }
        let mut ids = Vec::new();
        let mut failed = None;
        for s in sources {
            if failed.is_some() {
                s.release(Release::LeakPrevented, &mut Released::default());
                continue;
            }
            match self.shared.register(s) {
                Ok(sid) => ids.push(sid),
                Err(e) => failed = Some(e),
            }
        }
        let ended = {
            let mut hub = lock(hub);
            match hub.watches.get_mut(&id) {
                Some(w) if failed.is_none() => {
                    w.sources = ids.clone();
                    false
                }
                _ => {
                    hub.remove(id);
                    true
                }
            }
        };
        if ended {
            for sid in ids {
                self.shared
                    .unregister(sid, Release::Normal, &mut Released::default());
            }
            if let Some(e) = failed {
                return Err(e);
            }
            return Ok(CgroupWatched {
                id,
                parts,
                left_out,
            });
        }
        // Whatever changed between the baselines and the registrations.
        let mut out = Vec::new();
        {
            let mut hub = lock(hub);
            let now = monotonic_ns();
            hub.check_oom(id, now, false, &mut out);
            hub.check_events(id, now, &mut out);
        }
        self.shared.publish(out);
        Ok(CgroupWatched {
            id,
            parts,
            left_out,
        })
    }

    /// A system-wide PSI trigger on `/proc/pressure/<resource>`: `pressure` events with
    /// no cgroup.
    pub fn watch_pressure(&self, trigger: PsiTrigger) -> Result<WatchId> {
        self.check_open()?;
        let fd = psi::arm(&psi::file(None, trigger.resource), &trigger)?;
        self.shared
            .register(Box::new(PsiPart::new(fd, trigger, None)))
    }

    /// Ends a cgroup watch; `None` when `id` is not one.
    pub(crate) fn unwatch_cgroup(&self, id: WatchId) -> Option<bool> {
        let sources = lock(&self.cgroups.hub).remove(id)?;
        for sid in sources {
            self.shared
                .unregister(sid, Release::Normal, &mut Released::default());
        }
        Some(true)
    }

    /// Active cgroup watches.
    pub fn cgroup_watch_count(&self) -> usize {
        lock(&self.cgroups.hub).watches.len()
    }

    /// How many times the kernel's inotify queue overflowed (`max_queued_events`) and
    /// every cgroup watch was re-read instead.
    pub fn inotify_overflows(&self) -> u64 {
        lock(&self.cgroups.hub).overflows
    }

    fn ensure_inotify(&self) -> Result<()> {
        let _init = self.cgroups.init.lock().unwrap_or_else(|p| p.into_inner());
        if lock(&self.cgroups.hub).inotify.is_some() {
            return Ok(());
        }
        let src = InotifySource::open(Arc::clone(&self.cgroups.hub))?;
        self.shared.register(Box::new(src)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(name: &str, v2: bool) -> (PathBuf, Layout) {
        let t = std::env::temp_dir().join(format!("lw-plan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        if v2 {
            std::fs::create_dir_all(t.join("job")).unwrap();
            std::fs::write(t.join("cgroup.controllers"), "memory").unwrap();
            std::fs::write(t.join("job/memory.events"), "oom 0\n").unwrap();
            std::fs::write(t.join("job/cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
            std::fs::write(t.join("job/memory.pressure"), "").unwrap();
        } else {
            std::fs::create_dir_all(t.join("memory/job")).unwrap();
            std::fs::create_dir_all(t.join("unified/job")).unwrap();
            std::fs::write(t.join("unified/cgroup.controllers"), "").unwrap();
            std::fs::write(t.join("unified/job/cgroup.events"), "populated 0\n").unwrap();
            std::fs::create_dir_all(t.join("memory/only-v1")).unwrap();
        }
        std::fs::write(t.join("regular"), "").unwrap();
        let l = Layout::from_root(&t).unwrap();
        (t, l)
    }

    fn o() -> CgroupWatchOptions {
        CgroupWatchOptions::default()
    }

    #[test]
    fn plans_v2() {
        let (t, l) = tree("v2", true);
        let p = Plan::make("job", &o(), &l).unwrap();
        assert_eq!(p.oom.as_ref().unwrap().0, OomFile::V2);
        assert!(p.events.is_some());
        assert_eq!(p.inotify_dir, Some(t.join("job")));
        let local = Plan::make(
            "job",
            &CgroupWatchOptions {
                local: true,
                oom: Some(true),
                ..o()
            },
            &l,
        );
        assert_eq!(
            local.unwrap_err().code,
            Code::UnsupportedKernel,
            "no memory.events.local in this tree"
        );
        let pl = Plan::make(
            "job",
            &CgroupWatchOptions {
                pressure: Some("low".into()),
                ..o()
            },
            &l,
        );
        assert_eq!(pl.unwrap_err().code, Code::UnsupportedKernel);
        let trig = PsiTrigger {
            resource: psi::Resource::Memory,
            full: false,
            stall_us: 100_000,
            window_us: 2_000_000,
        };
        let p = Plan::make(
            "job",
            &CgroupWatchOptions {
                psi: vec![trig],
                ..o()
            },
            &l,
        )
        .unwrap();
        assert_eq!(p.psi[0].0, t.join("job/memory.pressure"));
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn plans_hybrid() {
        let (t, l) = tree("hy", false);
        let p = Plan::make("job", &o(), &l).unwrap();
        assert_eq!(p.oom.as_ref().unwrap().0, OomFile::V1);
        assert_eq!(p.v1_dir, Some(t.join("memory/job")));
        assert_eq!(p.events, Some(t.join("unified/job/cgroup.events")));
        let p = Plan::make("only-v1", &o(), &l).unwrap();
        assert!(p.events.is_none(), "events: where available");
        assert_eq!(
            Plan::make(
                "only-v1",
                &CgroupWatchOptions {
                    events: Some(true),
                    ..o()
                },
                &l
            )
            .unwrap_err()
            .code,
            Code::NoSuchCgroup
        );
        let p = Plan::make(
            "job",
            &CgroupWatchOptions {
                pressure: Some("medium,local".into()),
                oom: Some(false),
                events: Some(false),
                ..o()
            },
            &l,
        )
        .unwrap();
        assert_eq!(p.pressure.unwrap().arg(), "medium,local");
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn bad_input() {
        let (t, l) = tree("bad", false);
        let code = |p: &str, opts: CgroupWatchOptions| Plan::make(p, &opts, &l).unwrap_err().code;
        assert_eq!(code("nope", o()), Code::NoSuchCgroup);
        assert_eq!(code("../x", o()), Code::InvalidArgument);
        assert_eq!(code("memory/../../etc", o()), Code::InvalidArgument);
        assert_eq!(code("/tmp", o()), Code::InvalidArgument);
        assert_eq!(
            code(
                "job",
                CgroupWatchOptions {
                    pressure: Some("huge".into()),
                    ..o()
                }
            ),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                "job",
                CgroupWatchOptions {
                    oom: Some(false),
                    events: Some(false),
                    ..o()
                }
            ),
            Code::UnsupportedKernel
        );
        std::fs::remove_dir_all(&t).unwrap();
    }
}

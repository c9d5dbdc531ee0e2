//! Watching cgroups on a monitor's reactor: a watch plans which kernel mechanisms serve it
//! (`plan`), validates everything before opening anything, opens with every fd owned at once,
//! and registers its parts as reactor sources: v1 eventfds (`v1_oom`, also for
//! `v1_pressure`), the monitor's one inotify fd for v2 files (`v2_events`), PSI triggers
//! (`psi`). Their shared state is the `hub`; `oom_check` turns counters into `oom` events.
//!
//! Watching the same cgroup twice in one monitor is allowed: each watch has its own id and
//! baselines, and both get every event (a v2 file's inotify wd is shared and refcounted).
//! Only changes are reported: the counters, `populated` and `frozen` are baselined when the
//! watch is made (a cgroup OOM-killed before it was watched reports no stale kill); read
//! `cgroup.events` after watching to learn the current state without a race.

pub mod hub;
pub mod oom_check;
pub mod options;
pub mod plan;
pub mod psi;
pub mod v1_oom;
pub mod v1_pressure;
pub mod v2_events;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::cgroup::layout::Layout;
use crate::cgroup::stats::{self, Counters};
use crate::error::{Code, Error, Result, SysResult};
use crate::event::{monotonic_ns, Event, EventKind, Events, WatchId};
use crate::fd::{CountedFd, Release, Released};
use crate::process::kmsg::{self, SharedKmsg};
use crate::reactor::{AfterTurn, Reactor, Registration, Source};
use hub::{lock, CgWatch, EventsState, Hub, OomFile, OomState, SharedHub, WdKind};
use plan::Plan;
use psi::{PsiPart, PsiTrigger};
use v1_oom::{V1Part, V1What};
use v2_events::InotifySource;

pub use options::{CgroupWatchOptions, CgroupWatched, WatchPart};

fn is_exit(e: &Event) -> bool {
    matches!(e.kind, EventKind::Exit { .. })
}

/// Puts `flushed` and every `oom` and `oomKill` that comes after the first exit of `out`
/// right before that exit, keeping the order of the rest.
fn ooms_before_exits(out: &mut Events, flushed: Events) {
    let Some(i) = out.iter().position(is_exit) else {
        return;
    };
    let (late, rest): (Vec<_>, Vec<_>) = out
        .drain(i..)
        .partition(|e| matches!(e.kind, EventKind::Oom { .. } | EventKind::OomKill(_)));
    out.extend(flushed);
    out.extend(late);
    out.extend(rest);
}

/// The cgroup watches of one monitor: the hub their sources share, how to find the layout,
/// and the system-wide PSI watches.
pub struct CgroupWatcher {
    root: Option<PathBuf>,
    hub: SharedHub,
    /// Serializes the lazy creation of the inotify source.
    init: Mutex<()>,
    /// System-wide PSI watches (`watch_pressure`), each one reactor source.
    system: Mutex<HashSet<WatchId>>,
    /// Set once the monitor has had a cgroup or OOM-kill watch, before the first one is
    /// registered: until then no event can be owed before an exit, and the hook after each
    /// turn takes no lock. A lock is a write, and the first write to a page since a fork in
    /// this process (every spawn) costs a page fault: two on every exit, before this.
    armed: Arc<AtomicBool>,
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

impl CgroupWatcher {
    /// `root`: a cgroup tree to use instead of the mounted hierarchies (`Layout::from_root`).
    /// `kmsg`: the monitor's OOM-kill watches, whose victims `oom` events name.
    pub fn new(root: Option<PathBuf>, kmsg: Option<SharedKmsg>) -> CgroupWatcher {
        CgroupWatcher {
            root,
            hub: Arc::new(Mutex::new(Hub {
                kmsg,
                ..Hub::default()
            })),
            init: Mutex::new(()),
            system: Mutex::new(HashSet::new()),
            armed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A cgroup or OOM-kill watch is about to be registered: from now on the hook after each
    /// turn orders their events before exits.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// What a monitor runs after each turn: an OOM kill counted before the exit it caused is
    /// reported before that exit: the kernel log's waiting records and the counters not yet
    /// reported are read now (see `Hub::flush_oom`), and an `oom` or `oomKill` a source
    /// reported in this turn after an exit (epoll lists ready fds in no particular order)
    /// moves ahead of it.
    pub fn before_exits(&self) -> AfterTurn {
        let hub = Arc::clone(&self.hub);
        let armed = Arc::clone(&self.armed);
        Box::new(move |turn| {
            if !armed.load(Ordering::SeqCst) || !turn.out.iter().any(is_exit) {
                return;
            }
            let mut hub = lock(&hub);
            // No cgroup watch and no kernel log: nothing can owe an event before these exits.
            if hub.watches.is_empty() && hub.kmsg.is_none() {
                return;
            }
            let mut flushed = Events::new();
            if let Some(k) = hub.kmsg.as_ref() {
                kmsg::drain_all(k, turn.time, &mut flushed);
            }
            hub.flush_oom(turn.time, &mut flushed);
            ooms_before_exits(turn.out, flushed);
            if let Some((key, at)) = hub.v2_wake() {
                turn.wake_at(key, at);
            }
        })
    }

    pub fn clear(&self) {
        lock(&self.hub).watches.clear();
        self.system
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The cgroup layout this monitor uses (detected once, or from `cgroup_root`).
    pub fn layout(&self) -> Result<Layout> {
        let mut hub = lock(&self.hub);
        if hub.layout.is_none() {
            hub.layout = Some(match &self.root {
                Some(root) => Layout::from_root(root)?,
                None => Layout::detect()?,
            });
        }
        Ok(hub.layout.clone().expect("set above"))
    }

    /// `watch_cgroup`, saying which parts serve the watch. A part left to its default
    /// (`None`) that needs a permission the caller lacks (an unprivileged user cannot
    /// write a v1 `cgroup.event_control`) is left out and listed with its error, so the
    /// parts that work still do; an explicitly requested part fails the whole call, with
    /// nothing registered. If every part is left out, the first such error is returned.
    pub fn watch(
        &self,
        reactor: &Reactor,
        path: &str,
        opts: &CgroupWatchOptions,
    ) -> Result<CgroupWatched> {
        reactor.check_open()?;
        let layout = self.layout()?;
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
                    at_notice: None,
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
            self.ensure_inotify(reactor)?;
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

        let id = reactor.reserve_id();
        self.arm();
        {
            let mut hub = lock(&self.hub);
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
        let hub = &self.hub;
        let mut sources: Vec<(Box<dyn Source>, Registration)> = Vec::new();
        for (fd, what) in v1 {
            let dir = plan.v1_dir.clone().unwrap_or_default();
            sources.push((
                Box::new(V1Part::new(id, fd, what, dir, Arc::clone(hub))),
                Registration::default(),
            ));
        }
        for (fd, t, dir) in psis {
            sources.push((
                Box::new(PsiPart::new(fd, t, Some((id, dir, Arc::clone(hub))))),
                PsiPart::REGISTRATION,
            ));
        }
        let mut ids = Vec::new();
        let mut failed = None;
        for (s, how) in sources {
            if failed.is_some() {
                s.release(Release::LeakPrevented, &mut Released::default());
                continue;
            }
            match reactor.register(s, how) {
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
                reactor.unregister(sid, Release::Normal, &mut Released::default());
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
        let mut out = Events::new();
        let wake = {
            let mut hub = lock(hub);
            let now = monotonic_ns();
            hub.check_oom(id, now, false, &mut out);
            hub.check_events(id, now, &mut out);
            hub.v2_wake()
        };
        if let Some((key, at)) = wake {
            reactor.wake_at(key, at);
        }
        reactor.publish(out);
        Ok(CgroupWatched {
            id,
            parts,
            left_out,
        })
    }

    /// A system-wide PSI trigger on `/proc/pressure/<resource>`: `pressure` events with
    /// no cgroup.
    pub fn watch_pressure(&self, reactor: &Reactor, trigger: PsiTrigger) -> Result<WatchId> {
        reactor.check_open()?;
        let fd = psi::arm(&psi::file(None, trigger.resource), &trigger)?;
        let id = reactor.register(
            Box::new(PsiPart::new(fd, trigger, None)),
            PsiPart::REGISTRATION,
        )?;
        self.system
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
        Ok(id)
    }

    /// Ends a cgroup watch; `None` when `id` is not one.
    pub fn unwatch(&self, reactor: &Reactor, id: WatchId) -> Option<bool> {
        if self
            .system
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
        {
            return Some(reactor.unregister(id, Release::Normal, &mut Released::default()));
        }
        let sources = lock(&self.hub).remove(id)?;
        for sid in sources {
            reactor.unregister(sid, Release::Normal, &mut Released::default());
        }
        Some(true)
    }

    /// Re-reads a watch's counters and `cgroup.events` now and queues what changed; `None`
    /// when `id` is not a cgroup watch. Its owner calls this once the cgroup is empty and
    /// about to be removed: an empty cgroup cannot OOM any more, so this reading is final.
    pub fn check(&self, reactor: &Reactor, id: WatchId) -> Option<()> {
        let mut out = Events::new();
        {
            let mut hub = lock(&self.hub);
            hub.watches.get(&id)?;
            let time = monotonic_ns();
            hub.check_oom(id, time, false, &mut out);
            hub.check_events(id, time, &mut out);
        }
        // Published under the reactor's lock, so after any event a turn in progress produced
        // from an earlier reading.
        reactor.publish(out);
        Some(())
    }

    /// Its owner removed the watched cgroup: the watch ends now, as when the kernel's word of
    /// the removal arrives (a v1 memory cgroup's comes only once the kernel has let go of it,
    /// tens of milliseconds later), with an OOM still waiting for its kill and `removed`.
    /// `None` when `id` is not a cgroup watch.
    pub fn removed(&self, reactor: &Reactor, id: WatchId) -> Option<()> {
        let mut out = Events::new();
        let sources = {
            let mut hub = lock(&self.hub);
            let w = hub.watches.get_mut(&id)?;
            w.parts_left = 1;
            let sources = w.sources.clone();
            hub.part_gone(id, monotonic_ns(), &mut out);
            sources
        };
        for sid in sources {
            reactor.unregister(sid, Release::Normal, &mut Released::default());
        }
        reactor.publish(out);
        Some(())
    }

    /// Active cgroup watches (system-wide PSI watches included).
    pub fn count(&self) -> usize {
        lock(&self.hub).watches.len() + self.system.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// How many times the kernel's inotify queue overflowed (`max_queued_events`) and
    /// every cgroup watch was re-read instead.
    pub fn inotify_overflows(&self) -> u64 {
        lock(&self.hub).overflows
    }

    fn ensure_inotify(&self, reactor: &Reactor) -> Result<()> {
        let _init = self.init.lock().unwrap_or_else(|p| p.into_inner());
        if lock(&self.hub).inotify.is_some() {
            return Ok(());
        }
        let src = InotifySource::open(Arc::clone(&self.hub))?;
        let key = reactor.register(Box::new(src), Registration::default())?;
        if let Some(st) = lock(&self.hub).inotify.as_mut() {
            st.key = key;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ExitSource;
    use smallvec::smallvec;

    fn exit(watch: WatchId) -> Event {
        Event {
            watch,
            time: 1,
            kind: EventKind::Exit {
                pid: 7,
                status: None,
                source: ExitSource::Pidfd,
                ppid: None,
                comm: None,
                cgroup: None,
                remaining: None,
            },
        }
    }

    fn oom(watch: WatchId) -> Event {
        Event {
            watch,
            time: 1,
            kind: EventKind::Oom {
                cgroup: "/job".into(),
                kills: 1,
                deltas: Default::default(),
                counters: Default::default(),
                stats: Default::default(),
                victims: Vec::new(),
            },
        }
    }

    fn populated(watch: WatchId) -> Event {
        Event {
            watch,
            time: 1,
            kind: EventKind::Populated {
                cgroup: "/job".into(),
                value: false,
            },
        }
    }

    #[test]
    fn an_oom_reported_after_an_exit_in_one_turn_moves_ahead_of_it() {
        let mut out = smallvec![populated(1), exit(2), populated(3), oom(4), exit(5), oom(6)];
        ooms_before_exits(&mut out, smallvec![oom(9)]);
        let order: Vec<WatchId> = out.iter().map(|e| e.watch).collect();
        assert_eq!(order, [1, 9, 4, 6, 2, 3, 5]);
        let mut quiet = smallvec![populated(1), oom(2)];
        ooms_before_exits(&mut quiet, Events::new());
        assert_eq!(quiet.len(), 2, "no exit: nothing moves");
    }
}

//! The per-Monitor state of cgroup watches, shared by their reactor sources (v1 eventfds,
//! PSI fds, the one inotify fd) and the Monitor's API. One user-facing watch id may be
//! served by several kernel mechanisms ("parts"); the watch ends, with one `removed`
//! event, when the directories of all its parts are gone.
//!
//! Locking: a turn holds the reactor's lock and then takes the hub lock; API calls take
//! either lock alone, never the reactor's lock while holding the hub lock.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::cgroup::layout::Layout;
use crate::cgroup::path::CgroupPath;
use crate::cgroup::stats::{self, Counters};
use crate::event::{Event, EventKind, Events, WatchId};
use crate::process::kmsg::SharedKmsg;
use crate::reactor::Keep;

/// Which memory counters an OOM watch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomFile {
    /// v1 `memory.oom_control` (`oom_kill`, `under_oom`), woken by an eventfd.
    V1,
    /// v2 `memory.events` or `memory.events.local`, woken by inotify.
    V2,
}

#[derive(Debug)]
pub(crate) struct OomState {
    pub file: PathBuf,
    pub kind: OomFile,
    /// The baseline: counters as of the last event (or of registration).
    pub last: Counters,
    /// An OOM seen without its kill (v2 `oom` counted, or a v1 notification): until this
    /// deadline it waits for the kill, then it is reported alone.
    pub pending: Option<std::time::Instant>,
    /// v1: the statistics read at the OOM's notification, which its event carries. The
    /// kernel notifies hundreds of microseconds before it counts the kill, and reading them
    /// then (a dozen files) keeps that work off the path from the kill to the event.
    pub at_notice: Option<Box<stats::Stats>>,
}

#[derive(Debug)]
pub(crate) struct EventsState {
    pub file: PathBuf,
    pub populated: Option<bool>,
    pub frozen: Option<bool>,
}

#[derive(Debug)]
pub(crate) struct CgWatch {
    pub path: CgroupPath,
    /// Parts whose directory still exists.
    pub parts_left: usize,
    /// Reactor ids of this watch's own sources (eventfds, PSI fds).
    pub sources: Vec<WatchId>,
    /// inotify watch descriptors this watch subscribes to.
    pub wds: Vec<i32>,
    /// The name of the watched unified directory in its parent (removal detection).
    pub dir_name: Option<std::ffi::OsString>,
    pub oom: Option<OomState>,
    pub events: Option<EventsState>,
}

impl CgWatch {
    pub fn name(&self) -> String {
        format!("/{}", self.path.as_str())
    }
}

/// What an inotify watch descriptor watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WdKind {
    /// The cgroup's parent directory: IN_DELETE naming the cgroup means it was removed.
    /// (cgroupfs is kernfs: a removed directory's own inode gets no IN_DELETE_SELF or
    /// IN_IGNORED while watched, but rmdir notifies the parent through the VFS.)
    Parent,
    /// `memory.events[.local]`: IN_MODIFY.
    MemoryEvents,
    /// `cgroup.events`: IN_MODIFY.
    CgroupEvents,
}

#[derive(Debug)]
pub(crate) struct WdEntry {
    pub kind: WdKind,
    /// Several watches of one monitor may watch the same file (the kernel gives them the
    /// same wd); each keeps its own baseline.
    pub subscribers: Vec<WatchId>,
}

#[derive(Debug)]
pub(crate) struct InotifyState {
    /// Owned by the inotify source; cleared (under this lock) before that source closes it.
    pub fd: RawFd,
    /// The source's reactor key (its timed wakes end an OOM's wait for its kill).
    pub key: WatchId,
    pub wds: HashMap<i32, WdEntry>,
}

#[derive(Debug, Default)]
pub struct Hub {
    pub(crate) layout: Option<Layout>,
    pub(crate) watches: HashMap<WatchId, CgWatch>,
    pub(crate) inotify: Option<InotifyState>,
    /// IN_Q_OVERFLOW seen on the inotify fd: each one cost a re-read of every watch.
    pub(crate) overflows: u64,
    /// The monitor's OOM-kill watches, whose victims `oom` events name.
    pub(crate) kmsg: Option<SharedKmsg>,
}

pub type SharedHub = Arc<Mutex<Hub>>;

pub(crate) fn lock(hub: &SharedHub) -> MutexGuard<'_, Hub> {
    hub.lock().unwrap_or_else(|p| p.into_inner())
}

/// The statistics an `oom` or `removed` event carries; empty before the layout is known.
pub(crate) fn snapshot(layout: Option<&Layout>, path: &CgroupPath) -> stats::Stats {
    layout.map(|l| stats::snapshot(l, path)).unwrap_or_default()
}

/// The new value of `cgroup.events` flag `key` when it differs from `seen` (then updated).
fn changed(now: &stats::Counters, key: &str, seen: &mut Option<bool>) -> Option<bool> {
    let value = now.get(key).map(|&v| v != 0)?;
    (*seen != Some(value)).then(|| {
        *seen = Some(value);
        value
    })
}

impl Hub {
    pub(crate) fn push(out: &mut Events, watch: WatchId, time: u64, kind: EventKind) {
        out.push(Event { watch, time, kind });
    }

    /// Reports `populated` / `frozen` changes of `cgroup.events` against the baseline.
    pub(crate) fn check_events(&mut self, watch: WatchId, time: u64, out: &mut Events) {
        let Some(w) = self.watches.get_mut(&watch) else {
            return;
        };
        let cgroup = w.name();
        let Some(ev) = w.events.as_mut() else {
            return;
        };
        let Ok(now) = stats::read_counters(&ev.file) else {
            return;
        };
        if let Some(value) = changed(&now, "populated", &mut ev.populated) {
            let kind = EventKind::Populated {
                cgroup: cgroup.clone(),
                value,
            };
            Self::push(out, watch, time, kind);
        }
        if let Some(value) = changed(&now, "frozen", &mut ev.frozen) {
            Self::push(out, watch, time, EventKind::Frozen { cgroup, value });
        }
    }

    /// One part of a watch saw its directory disappear. When it was the last, the watch
    /// ends: a last look at the counters (an OOM just before removal is still reported),
    /// then `removed` with the final counters, and its inotify wds are dropped.
    pub(crate) fn part_gone(&mut self, watch: WatchId, time: u64, out: &mut Events) -> Keep {
        let Some(w) = self.watches.get_mut(&watch) else {
            return Keep::No;
        };
        w.parts_left = w.parts_left.saturating_sub(1);
        if w.parts_left > 0 {
            return Keep::No;
        }
        self.check_oom(watch, time, false, out);
        self.report_pending(watch, time, out);
        self.check_events(watch, time, out);
        let mut w = self.watches.remove(&watch).expect("present above");
        // The kernel refuses to remove a populated cgroup, so a removed one was emptied; its
        // last `populated 0` is lost when cgroup.events was gone before we could read it.
        if let Some(ev) = w.events.as_mut().filter(|e| e.populated == Some(true)) {
            ev.populated = Some(false);
            Self::push(
                out,
                watch,
                time,
                EventKind::Populated {
                    cgroup: w.name(),
                    value: false,
                },
            );
        }
        let counters = match (&w.oom, &w.events) {
            (Some(o), _) => o.last.clone(),
            (None, Some(e)) => {
                let mut c = Counters::new();
                c.insert("populated".into(), e.populated.unwrap_or(false) as u64);
                c.insert("frozen".into(), e.frozen.unwrap_or(false) as u64);
                c
            }
            (None, None) => Counters::new(),
        };
        let stats = snapshot(self.layout.as_ref(), &w.path);
        Self::push(
            out,
            watch,
            time,
            EventKind::Removed {
                cgroup: w.name(),
                counters,
                stats: Box::new(stats),
            },
        );
        self.drop_wds(watch, &w.wds);
        Keep::No
    }

    /// Takes a watch out (user `unwatch`): returns its reactor sources to unregister.
    pub(crate) fn remove(&mut self, watch: WatchId) -> Option<Vec<WatchId>> {
        let w = self.watches.remove(&watch)?;
        self.drop_wds(watch, &w.wds);
        Some(w.sources)
    }
}

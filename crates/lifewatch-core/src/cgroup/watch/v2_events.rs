//! cgroup v2 events through ONE inotify fd per Monitor (the default limit is 128 inotify
//! instances per user): IN_MODIFY on `memory.events[.local]` (OOM counters) and on
//! `cgroup.events` (populated, frozen), IN_DELETE on the parent directory (removal).
//! The source is created lazily with the first watch that needs it; watch descriptors map
//! to the watches subscribed to them. IN_Q_OVERFLOW re-reads every watched file.

use std::ffi::{OsStr, OsString};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use rustix::event::epoll::EventFlags;
use rustix::fs::inotify::{self, ReadFlags, WatchFlags};
use rustix::io::Errno;

use crate::cgroup::watch::hub::{lock, Hub, InotifyState, SharedHub, WdEntry, WdKind};
use crate::error::{Result, SysResult};
use crate::event::{Events, WatchId};
use crate::fd::{CountedFd, FdKind, Release, Released};
use crate::reactor::{Interest, Keep, Ready, Source};

pub(crate) struct InotifySource {
    fd: CountedFd,
    hub: SharedHub,
}

impl InotifySource {
    /// Opens the monitor's inotify fd and records it in the hub (not yet registered).
    pub(crate) fn open(hub: SharedHub) -> Result<InotifySource> {
        let fd = CountedFd::new(
            crate::failpoint::hit("inotify_init1")
                .and_then(|()| {
                    inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
                })
                .sys("inotify_init1", "watching cgroup v2 event files")?,
            FdKind::Inotify,
        );
        lock(&hub).inotify = Some(InotifyState {
            fd: fd.as_raw_fd(),
            key: 0,
            wds: Default::default(),
        });
        Ok(InotifySource {
            fd: fd.commit(),
            hub,
        })
    }

    /// Everything queued now: (wd, mask, name) triples.
    fn read_all(&self) -> Vec<(i32, ReadFlags, Option<OsString>)> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(self.fd.as_fd(), &mut buf);
        let mut got = Vec::new();
        loop {
            match reader.next() {
                Ok(e) => got.push((
                    e.wd(),
                    e.events(),
                    e.file_name()
                        .map(|n| OsStr::from_bytes(n.to_bytes()).to_os_string()),
                )),
                Err(Errno::INTR) => continue,
                // WOULDBLOCK: drained. Anything else: nothing more to read now.
                Err(_) => break,
            }
        }
        got
    }
}

impl Source for InotifySource {
    fn interest(&self) -> Option<Interest<'_>> {
        Some(Interest {
            fd: self.fd.as_fd(),
            flags: EventFlags::IN,
        })
    }

    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep {
        // Lets a test hold the reactor here while it overflows the kernel's queue.
        crate::failpoint::hook("inotify.ready");
        let events = self.read_all();
        let mut hub = lock(&self.hub);
        hub.on_inotify(&events, cx.time, cx.out);
        hub.expire_v2(cx.time, Instant::now(), cx.out);
        // An OOM waiting for its kill is reported when the wait runs out, even if no further
        // inotify event comes.
        match hub.next_v2_deadline() {
            Some(at) => cx.wake_at(at),
            None => cx.cancel_wake(),
        }
        Keep::Yes
    }

    fn release(self: Box<Self>, how: Release, released: &mut Released) {
        let mut hub = lock(&self.hub);
        hub.inotify = None;
        released.add(self.fd.kind());
        self.fd.close(how);
    }
}

impl Hub {
    /// Adds (or joins) an inotify watch for `watch`. The same file watched twice in one
    /// monitor yields the same wd: both watches subscribe to it.
    pub(crate) fn add_wd(&mut self, watch: WatchId, path: &Path, kind: WdKind) -> Result<i32> {
        let Some(st) = self.inotify.as_mut() else {
            return Err(crate::error::Error::closed());
        };
        let flags = match kind {
            WdKind::Parent => WatchFlags::DELETE | WatchFlags::ONLYDIR,
            _ => WatchFlags::MODIFY,
        };
        // SAFETY: the fd stays open while `inotify` is Some (cleared under this lock
        // before the source closes it).
        let fd = unsafe { BorrowedFd::borrow_raw(st.fd) };
        let wd = crate::failpoint::hit("inotify_add_watch")
            .and_then(|()| inotify::add_watch(fd, path, flags))
            .sys("inotify_add_watch", format!("watching {}", path.display()))
            .map_err(|e| {
                let e = e.with_path(path);
                match e.errno {
                    Some(libc::ENOENT) => e.with_code(crate::error::Code::NoSuchCgroup),
                    _ => e,
                }
            })?;
        let entry = st.wds.entry(wd).or_insert(WdEntry {
            kind,
            subscribers: Vec::new(),
        });
        entry.subscribers.push(watch);
        if let Some(w) = self.watches.get_mut(&watch) {
            w.wds.push(wd);
        }
        Ok(wd)
    }

    /// Unsubscribes a watch from its wds; a wd nobody needs any more is removed.
    pub(crate) fn drop_wds(&mut self, watch: WatchId, wds: &[i32]) {
        let Some(st) = self.inotify.as_mut() else {
            return;
        };
        for wd in wds {
            let Some(entry) = st.wds.get_mut(wd) else {
                continue;
            };
            if let Some(i) = entry.subscribers.iter().position(|&s| s == watch) {
                entry.subscribers.swap_remove(i);
            }
            if entry.subscribers.is_empty() {
                st.wds.remove(wd);
                // SAFETY: as in add_wd. EINVAL when the kernel already dropped it: fine.
                let fd = unsafe { BorrowedFd::borrow_raw(st.fd) };
                let _ = inotify::remove_watch(fd, *wd);
            }
        }
    }

    pub(crate) fn on_inotify(
        &mut self,
        events: &[(i32, ReadFlags, Option<OsString>)],
        time: u64,
        out: &mut Events,
    ) {
        if events
            .iter()
            .any(|(_, m, _)| m.contains(ReadFlags::QUEUE_OVERFLOW))
        {
            // Events were lost: every file may have changed, re-read them all.
            self.overflows += 1;
            self.recheck_all(time, out);
        }
        for (wd, mask, name) in events {
            let (wd, mask) = (*wd, *mask);
            if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
                continue;
            }
            let Some(entry) = self.inotify.as_ref().and_then(|s| s.wds.get(&wd)) else {
                // A wd we removed ourselves: its IN_IGNORED arrives afterwards.
                continue;
            };
            let kind = entry.kind;
            let subs = entry.subscribers.clone();
            // The kernel dropped this wd (its inode went away): forget it.
            if mask.contains(ReadFlags::IGNORED) {
                if let Some(st) = self.inotify.as_mut() {
                    st.wds.remove(&wd);
                }
                continue;
            }
            for id in subs {
                match kind {
                    WdKind::Parent if mask.contains(ReadFlags::DELETE) => {
                        let ours = self
                            .watches
                            .get(&id)
                            .is_some_and(|w| w.dir_name.is_some() && w.dir_name == *name);
                        if ours {
                            self.part_gone(id, time, out);
                        }
                    }
                    WdKind::MemoryEvents => {
                        self.check_oom(id, time, true, out);
                    }
                    WdKind::CgroupEvents => self.check_events(id, time, out),
                    WdKind::Parent => {}
                }
            }
        }
    }

    /// After IN_Q_OVERFLOW: every watch re-reads its files; a watch whose directory has
    /// gone (its removal event may have been lost too) ends.
    pub(crate) fn recheck_all(&mut self, time: u64, out: &mut Events) {
        let ids: Vec<WatchId> = self.watches.keys().copied().collect();
        for id in ids {
            let Some(w) = self.watches.get(&id) else {
                continue;
            };
            let dir_gone = w
                .events
                .as_ref()
                .map(|e| e.file.parent().is_some_and(|d| !d.exists()))
                .unwrap_or(false)
                || w.oom
                    .as_ref()
                    .filter(|o| o.kind == crate::cgroup::watch::hub::OomFile::V2)
                    .map(|o| o.file.parent().is_some_and(|d| !d.exists()))
                    .unwrap_or(false);
            self.check_oom(id, time, false, out);
            self.check_events(id, time, out);
            if dir_gone {
                let wds = self
                    .watches
                    .get(&id)
                    .map(|w| w.wds.clone())
                    .unwrap_or_default();
                let has_dir_wd = wds.iter().any(|wd| {
                    self.inotify
                        .as_ref()
                        .and_then(|s| s.wds.get(wd))
                        .is_some_and(|e| e.kind == WdKind::Parent)
                });
                if has_dir_wd {
                    self.part_gone(id, time, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::watch::hub::{CgWatch, EventsState, OomFile, OomState};
    use crate::cgroup::{CgroupPath, Layout};
    use crate::event::{Event, EventKind};
    use std::sync::{Arc, Mutex};

    /// A watch of the fake tree's `job` as `watch_cgroup` would make it: cgroup.events
    /// baselined at populated 1, frozen 0; with `oom`, memory.events at its current counters.
    fn job_watch(path: CgroupPath, root: &Path, oom: bool) -> CgWatch {
        let memory_events = root.join("job/memory.events");
        CgWatch {
            path,
            parts_left: 1,
            sources: vec![],
            wds: vec![],
            dir_name: Some("job".into()),
            oom: oom.then(|| OomState {
                last: crate::cgroup::stats::read_counters(&memory_events).unwrap(),
                file: memory_events,
                kind: OomFile::V2,
                pending: None,
                at_notice: None,
            }),
            events: Some(EventsState {
                file: root.join("job/cgroup.events"),
                populated: Some(true),
                frozen: Some(false),
            }),
        }
    }

    /// A fake v2 tree and a hub with one watch on it; plain files stand in for cgroupfs
    /// (inotify works the same on them), so overflow and deltas are tested for real.
    fn setup(name: &str) -> (std::path::PathBuf, SharedHub, InotifySource) {
        let root = std::env::temp_dir().join(format!("lw-v2-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("job")).unwrap();
        std::fs::write(root.join("cgroup.controllers"), "memory").unwrap();
        std::fs::write(root.join("job/memory.events"), "oom 1\noom_kill 1\n").unwrap();
        std::fs::write(root.join("job/cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let layout = Layout::from_root(&root).unwrap();
        let path = CgroupPath::parse("job", &layout).unwrap();
        let hub: SharedHub = Arc::new(Mutex::new(Hub {
            layout: Some(layout),
            ..Default::default()
        }));
        let src = InotifySource::open(Arc::clone(&hub)).unwrap();
        {
            let mut h = lock(&hub);
            h.watches.insert(7, job_watch(path, &root, true));
            h.add_wd(7, &root, WdKind::Parent).unwrap();
            h.add_wd(7, &root.join("job/memory.events"), WdKind::MemoryEvents)
                .unwrap();
            h.add_wd(7, &root.join("job/cgroup.events"), WdKind::CgroupEvents)
                .unwrap();
        }
        (root, hub, src)
    }

    fn pump(src: &InotifySource, hub: &SharedHub) -> Events {
        let mut out = Events::new();
        let ev = src.read_all();
        lock(hub).on_inotify(&ev, 1, &mut out);
        out
    }

    #[test]
    fn stale_kills_are_baselined_and_deltas_reported() {
        let (root, hub, src) = setup("delta");
        assert!(
            pump(&src, &hub).is_empty(),
            "the pre-existing kill is the baseline"
        );
        std::fs::write(root.join("job/memory.events"), "oom 2\noom_kill 3\nmax 5\n").unwrap();
        let out = pump(&src, &hub);
        assert_eq!(out.len(), 1, "{out:?}");
        match &out[0].kind {
            EventKind::Oom {
                kills,
                deltas,
                counters,
                cgroup,
                ..
            } => {
                assert_eq!(*kills, 2);
                assert_eq!(deltas["oom"], 1);
                assert_eq!(deltas["max"], 5);
                assert_eq!(counters["oom_kill"], 3);
                assert_eq!(cgroup, "/job");
            }
            k => panic!("{k:?}"),
        }
        std::fs::write(root.join("job/cgroup.events"), "populated 0\nfrozen 1\n").unwrap();
        let out = pump(&src, &hub);
        let kinds: Vec<_> = out.iter().map(|e| e.kind.clone()).collect();
        assert!(kinds.contains(&EventKind::Populated {
            cgroup: "/job".into(),
            value: false
        }));
        assert!(kinds.contains(&EventKind::Frozen {
            cgroup: "/job".into(),
            value: true
        }));
        std::fs::remove_dir_all(&root).unwrap();
        let out = pump(&src, &hub);
        assert!(
            matches!(out.last().map(|e| &e.kind), Some(EventKind::Removed { counters, .. }) if counters["oom_kill"] == 3),
            "{out:?}"
        );
        assert!(lock(&hub).watches.is_empty());
        assert!(lock(&hub).inotify.as_ref().unwrap().wds.is_empty());
        Box::new(src).release(Release::Normal, &mut Released::default());
    }

    fn oom_kills(out: &[Event]) -> Vec<(u64, u64)> {
        out.iter()
            .filter_map(|e| match &e.kind {
                EventKind::Oom { kills, deltas, .. } => {
                    Some((*kills, deltas.get("oom").copied().unwrap_or(0)))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_oom_waits_for_its_kill_and_comes_as_one_event() {
        let (root, hub, src) = setup("oomkill");
        let _ = pump(&src, &hub);
        std::fs::write(root.join("job/memory.events"), "oom 2\noom_kill 1\n").unwrap();
        assert!(pump(&src, &hub).is_empty(), "held for its kill");
        assert!(lock(&hub).next_v2_deadline().is_some());
        std::fs::write(root.join("job/memory.events"), "oom 2\noom_kill 2\n").unwrap();
        assert_eq!(oom_kills(&pump(&src, &hub)), [(1, 1)]);
        assert_eq!(lock(&hub).next_v2_deadline(), None);
        std::fs::remove_dir_all(&root).unwrap();
        Box::new(src).release(Release::Normal, &mut Released::default());
    }

    #[test]
    fn an_oom_without_a_kill_is_reported_when_the_wait_runs_out() {
        let (root, hub, src) = setup("oomalone");
        let _ = pump(&src, &hub);
        std::fs::write(root.join("job/memory.events"), "oom 2\noom_kill 1\n").unwrap();
        assert!(pump(&src, &hub).is_empty());
        let deadline = lock(&hub).next_v2_deadline().expect("waiting");
        let mut out = Events::new();
        lock(&hub).expire_v2(1, deadline - std::time::Duration::from_millis(1), &mut out);
        assert!(out.is_empty(), "not before the deadline");
        lock(&hub).expire_v2(1, deadline, &mut out);
        assert_eq!(oom_kills(&out), [(0, 1)]);
        assert_eq!(lock(&hub).next_v2_deadline(), None, "reported once");
        std::fs::remove_dir_all(&root).unwrap();
        Box::new(src).release(Release::Normal, &mut Released::default());
    }

    #[test]
    fn an_oom_waiting_for_its_kill_is_reported_at_removal() {
        let (root, hub, src) = setup("oomgone");
        let _ = pump(&src, &hub);
        std::fs::write(root.join("job/memory.events"), "oom 2\noom_kill 1\n").unwrap();
        assert!(pump(&src, &hub).is_empty());
        std::fs::remove_dir_all(&root).unwrap();
        let out = pump(&src, &hub);
        assert_eq!(oom_kills(&out), [(0, 0)], "{out:?}");
        assert!(matches!(
            out.last().map(|e| &e.kind),
            Some(EventKind::Removed { .. })
        ));
        Box::new(src).release(Release::Normal, &mut Released::default());
    }

    #[test]
    fn overflow_rereads_everything() {
        let (root, hub, src) = setup("overflow");
        std::fs::write(root.join("job/memory.events"), "oom 1\noom_kill 2\n").unwrap();
        // Drop the real notification and pretend the queue overflowed.
        let _ = src.read_all();
        let mut out = Events::new();
        lock(&hub).on_inotify(&[(-1, ReadFlags::QUEUE_OVERFLOW, None)], 1, &mut out);
        assert_eq!(lock(&hub).overflows, 1);
        assert!(
            matches!(
                &out[..],
                [Event {
                    kind: EventKind::Oom { kills: 1, .. },
                    ..
                }]
            ),
            "{out:?}"
        );
        std::fs::remove_dir_all(&root).unwrap();
        let _ = src.read_all();
        let mut out = Events::new();
        lock(&hub).on_inotify(&[(-1, ReadFlags::QUEUE_OVERFLOW, None)], 1, &mut out);
        assert!(
            matches!(out.last().map(|e| &e.kind), Some(EventKind::Removed { .. })),
            "a removal lost in the overflow is still reported: {out:?}"
        );
        Box::new(src).release(Release::Normal, &mut Released::default());
    }

    #[test]
    fn two_watches_share_one_wd() {
        let (root, hub, src) = setup("shared");
        {
            let mut h = lock(&hub);
            let path = h.watches[&7].path.clone();
            h.watches.insert(8, job_watch(path, &root, false));
            let a = h.watches[&7].wds[2];
            let b = h
                .add_wd(8, &root.join("job/cgroup.events"), WdKind::CgroupEvents)
                .unwrap();
            assert_eq!(a, b);
            assert!(h.remove(8).is_some());
            assert!(
                h.inotify.as_ref().unwrap().wds.contains_key(&a),
                "7 still uses it"
            );
        }
        std::fs::write(root.join("job/cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
        let out = pump(&src, &hub);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].watch, 7);
        std::fs::remove_dir_all(&root).unwrap();
        Box::new(src).release(Release::Normal, &mut Released::default());
    }
}

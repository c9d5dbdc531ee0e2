//! An OOM watch's counters turned into `oom` events: increases against a baseline, an OOM
//! reported together with its kill, and an OOM whose kill never shows reported alone after
//! a bounded wait (or at removal), never held forever.

use std::time::{Duration, Instant};

use crate::cgroup::stats::{self, Counters};
use crate::cgroup::watch::hub::{snapshot, Hub, OomFile, OomState};
use crate::event::{EventKind, Events, OomVictim, WatchId};
use crate::process::kmsg;

/// How long an OOM waits for its kill. The kernel counts the kill microseconds after the
/// OOM (v2) or after notifying (v1), so the wait runs out only when there is no kill: no
/// killable victim, a victim already dying, or the OOM killer disabled.
pub(crate) const KILL_WAIT: Duration = Duration::from_millis(500);

/// The statistics read at a v1 OOM's notification, taken for its event, with the counters
/// they share with it (`memory.oom_control`) as the event has them.
fn at_notice(oom: &mut OomState, counters: &Counters) -> Option<Box<stats::Stats>> {
    let mut s = oom.at_notice.take()?;
    s.memory_events
        .extend(counters.iter().map(|(k, &v)| (k.clone(), v)));
    Some(s)
}

impl Hub {
    /// Re-reads a watch's OOM counters and reports any increase of `oom_kill`, `oom` or
    /// `oom_group_kill` (with the max/high deltas alongside). `notified`: the kernel said
    /// an OOM happened (v1 eventfd). Returns the kills reported.
    pub(crate) fn check_oom(
        &mut self,
        watch: WatchId,
        time: u64,
        notified: bool,
        out: &mut Events,
    ) -> u64 {
        self.check_oom_at(watch, time, notified, Instant::now(), out)
    }

    pub(crate) fn check_oom_at(
        &mut self,
        watch: WatchId,
        time: u64,
        notified: bool,
        now: Instant,
        out: &mut Events,
    ) -> u64 {
        let Some(w) = self.watches.get_mut(&watch) else {
            return 0;
        };
        let Some(oom) = w.oom.as_mut() else {
            return 0;
        };
        let Ok(counters) = stats::read_counters(&oom.file) else {
            return 0;
        };
        let deltas = stats::deltas(&oom.last, &counters);
        let d = |k: &str| deltas.get(k).copied().unwrap_or(0);
        let kills = d("oom_kill");
        // v1 with the OOM killer disabled: the cgroup waits under OOM, no kill will come. (With
        // the killer on, `under_oom` reads 1 for a moment around the notification too.)
        let under = notified
            && oom.kind == OomFile::V1
            && counters.get("oom_kill_disable") == Some(&1)
            && counters.get("under_oom") == Some(&1);
        if kills == 0 && d("oom_group_kill") == 0 && !under {
            let v1_notice = notified && oom.kind == OomFile::V1;
            let started = d("oom") > 0 || v1_notice;
            if started && oom.pending.is_none() {
                oom.pending = Some(now + KILL_WAIT);
                if v1_notice {
                    oom.at_notice = Some(Box::new(snapshot(self.layout.as_ref(), &w.path)));
                }
            }
            match oom.pending {
                // Nothing OOM-like (v2 `max`/`high` moved alone): no event.
                None => return 0,
                // Wait for the kill, baseline unchanged, so one OOM is one event with both.
                Some(deadline) if now < deadline => return 0,
                Some(_) => {}
            }
        }
        oom.pending = None;
        oom.last = counters.clone();
        let at_notice = at_notice(oom, &counters);
        self.push_oom(watch, time, kills, deltas, counters, at_notice, out);
        kills
    }

    /// `stats`: read earlier (`OomState::at_notice`), else now.
    #[allow(clippy::too_many_arguments)]
    fn push_oom(
        &self,
        watch: WatchId,
        time: u64,
        kills: u64,
        deltas: Counters,
        counters: Counters,
        stats: Option<Box<stats::Stats>>,
        out: &mut Events,
    ) {
        let Some(w) = self.watches.get(&watch) else {
            return;
        };
        let stats = stats.unwrap_or_else(|| Box::new(snapshot(self.layout.as_ref(), &w.path)));
        let kind = EventKind::Oom {
            cgroup: w.name(),
            kills,
            deltas,
            counters,
            stats,
            victims: self.victims(watch, kills, time, out),
        };
        Self::push(out, watch, time, kind);
    }

    /// The kills the monitor's OOM-kill watches read for this watch's cgroup, at most
    /// `kills`. The kernel counts a kill, then logs it (`mm/oom_kill.c`): by the time the
    /// count is read the record is normally there, so the log is read right now, before the
    /// `oom` event (its `oomKill` events come first). A victim belongs to a watched cgroup
    /// as the counter it raised does: v1 counts a kill in the victim's own cgroup
    /// (`task_memcg`) only; v2's `memory.events` in that cgroup and every ancestor, and
    /// `memory.events.local` in the victim's own.
    fn victims(&self, watch: WatchId, kills: u64, time: u64, out: &mut Events) -> Vec<OomVictim> {
        let (Some(k), Some(w)) = (self.kmsg.as_ref(), self.watches.get(&watch)) else {
            return Vec::new();
        };
        let Some(oom) = w.oom.as_ref().filter(|_| kills > 0 && kmsg::watching(k)) else {
            return Vec::new();
        };
        kmsg::drain_all(k, time, out);
        let layout = self.layout.as_ref();
        let (root, subtree) = match oom.kind {
            OomFile::V1 => (layout.and_then(|l| l.v1.get("memory")), false),
            OomFile::V2 => (
                layout.and_then(|l| l.unified.as_ref()),
                !oom.file.ends_with("memory.events.local"),
            ),
        };
        // The kernel prints paths from the hierarchy's root, a mount may show less of it.
        let root = root.map_or("", |h| h.root.trim_end_matches('/'));
        let path = format!("{root}{}", w.name()).replace("//", "/");
        kmsg::claim(k, watch, kills, |v| {
            v.cgroup.as_deref().is_some_and(|cg| {
                cg == path
                    || (subtree
                        && (path == "/"
                            || cg
                                .strip_prefix(path.as_str())
                                .is_some_and(|r| r.starts_with('/'))))
            })
        })
    }

    /// The cgroup is gone with an OOM still waiting for its kill: report the OOM alone
    /// (its counters can no longer be read), rather than lose it.
    pub(crate) fn report_pending(&mut self, watch: WatchId, time: u64, out: &mut Events) {
        let Some(oom) = self.watches.get_mut(&watch).and_then(|w| w.oom.as_mut()) else {
            return;
        };
        if oom.pending.take().is_some() {
            let counters = oom.last.clone();
            let at_notice = at_notice(oom, &counters);
            self.push_oom(watch, time, 0, Counters::new(), counters, at_notice, out);
        }
    }

    /// Since when an OOM of `watch` has been waiting for its kill, if one is.
    pub(crate) fn oom_wait_since(&self, watch: WatchId) -> Option<Instant> {
        let deadline = self.watches.get(&watch)?.oom.as_ref()?.pending?;
        Some(deadline - KILL_WAIT)
    }

    /// The v2 OOMs waiting for their kill, with their deadlines (v1 parts keep their own
    /// re-read timer).
    fn v2_waits(&self) -> impl Iterator<Item = (WatchId, Instant)> + '_ {
        self.watches.iter().filter_map(|(&id, w)| {
            let o = w.oom.as_ref().filter(|o| o.kind == OomFile::V2)?;
            Some((id, o.pending?))
        })
    }

    /// When the earliest wait of a v2 OOM runs out.
    pub(crate) fn next_v2_deadline(&self) -> Option<Instant> {
        self.v2_waits().map(|(_, deadline)| deadline).min()
    }

    /// The inotify source's timed wake for the earliest v2 OOM waiting for its kill.
    pub(crate) fn v2_wake(&self) -> Option<(WatchId, Instant)> {
        Some((self.inotify.as_ref()?.key, self.next_v2_deadline()?))
    }

    /// Reports the v2 OOMs whose wait for a kill has run out (a last read first).
    pub(crate) fn expire_v2(&mut self, time: u64, now: Instant, out: &mut Events) {
        let due: Vec<WatchId> = self
            .v2_waits()
            .filter(|&(_, deadline)| deadline <= now)
            .map(|(id, _)| id)
            .collect();
        for id in due {
            self.check_oom_at(id, time, false, now, out);
            // Unreadable now (being removed): report it from what was last read.
            self.report_pending(id, time, out);
        }
    }

    /// Before an exit is reported: a process killed by a cgroup's OOM killer exits after
    /// the kernel raised `oom_kill` (it counts before it signals), but the notification
    /// (inotify work item, eventfd) may reach us after the pidfd. Re-reading every OOM
    /// watch's counters here puts the OOM event first.
    pub fn flush_oom(&mut self, time: u64, out: &mut Events) {
        let ids: Vec<WatchId> = self
            .watches
            .iter()
            .filter(|(_, w)| w.oom.is_some())
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.check_oom(id, time, false, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::watch::hub::{CgWatch, OomState};
    use crate::cgroup::{CgroupPath, Layout};

    /// A fake v1 tree whose `job` has `memory.oom_control` reading `oom_control` and 32 MiB in
    /// use, and a hub with an OOM watch (7) on it, baselined there.
    struct V1Job {
        root: std::path::PathBuf,
        hub: Hub,
    }

    impl V1Job {
        fn new(name: &str, oom_control: &str) -> V1Job {
            let root = std::env::temp_dir().join(format!("lw-oom-{name}-{}", std::process::id()));
            std::fs::create_dir_all(root.join("memory/job")).unwrap();
            let mut job = V1Job {
                root,
                hub: Hub::default(),
            };
            job.write("memory.oom_control", oom_control);
            job.write("memory.usage_in_bytes", "33554432\n");
            let layout = Layout::from_root(&job.root).unwrap();
            let path = CgroupPath::parse("job", &layout).unwrap();
            let file = job.root.join("memory/job/memory.oom_control");
            job.hub.layout = Some(layout);
            let oom = OomState {
                last: stats::read_counters(&file).unwrap(),
                file,
                kind: OomFile::V1,
                pending: None,
                at_notice: None,
            };
            let watch = CgWatch {
                path,
                parts_left: 1,
                sources: vec![],
                wds: vec![],
                dir_name: None,
                oom: Some(oom),
                events: None,
            };
            job.hub.watches.insert(7, watch);
            job
        }

        fn write(&self, file: &str, text: &str) {
            std::fs::write(self.root.join("memory/job").join(file), text).unwrap();
        }
    }

    impl Drop for V1Job {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    fn oom_events(out: &Events) -> Vec<(u64, &Counters, &stats::Stats)> {
        out.iter()
            .filter_map(|e| match &e.kind {
                EventKind::Oom {
                    kills,
                    counters,
                    stats,
                    ..
                } => Some((*kills, counters, &**stats)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_v1_oom_carries_the_statistics_read_at_its_notification() {
        let mut job = V1Job::new("notice", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
        let mut out = Events::new();
        assert_eq!(
            job.hub.check_oom(7, 1, true, &mut out),
            0,
            "notified, no kill yet"
        );
        assert!(out.is_empty() && job.hub.oom_wait_since(7).is_some());
        // The kill: counted, and the victim's memory freed.
        job.write(
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        job.write("memory.usage_in_bytes", "4096\n");
        assert_eq!(job.hub.check_oom(7, 2, false, &mut out), 1);
        let [(1, counters, stats)] = oom_events(&out)[..] else {
            panic!("{out:?}")
        };
        assert_eq!(
            stats.memory_current,
            Some(33554432),
            "the memory at the OOM"
        );
        for (k, v) in counters {
            assert_eq!(
                stats.memory_events.get(k),
                Some(v),
                "{k} as the event has it"
            );
        }
        let oom = job.hub.watches[&7].oom.as_ref().unwrap();
        assert!(oom.pending.is_none() && oom.at_notice.is_none(), "taken");
    }

    /// A job notified while `under_oom` reads 1, the killer on or off (`disable`).
    fn notified_under_oom(disable: u8) -> (V1Job, Events) {
        let control =
            |under: u8| format!("oom_kill_disable {disable}\nunder_oom {under}\noom_kill 0\n");
        let mut job = V1Job::new(&format!("under-{disable}"), &control(0));
        let mut out = Events::new();
        job.write("memory.oom_control", &control(1));
        assert_eq!(
            job.hub.check_oom(7, 1, true, &mut out),
            0,
            "no kill counted"
        );
        (job, out)
    }

    fn kills(out: &Events) -> Vec<u64> {
        oom_events(out).iter().map(|e| e.0).collect()
    }

    #[test]
    fn under_oom_alone_is_reported_only_with_the_killer_disabled() {
        // The killer on: `under_oom` reads 1 for a moment around the notification; the kill
        // follows, and the OOM comes with it, once.
        let (mut job, mut out) = notified_under_oom(0);
        assert!(out.is_empty(), "waits for the kill: {out:?}");
        job.write(
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        job.hub.check_oom(7, 2, false, &mut out);
        assert_eq!(kills(&out), [1]);
        // The killer disabled: the cgroup waits under OOM and no kill will come: at once.
        let (job, out) = notified_under_oom(1);
        assert_eq!(kills(&out), [0]);
        assert_eq!(job.hub.oom_wait_since(7), None);
    }
}

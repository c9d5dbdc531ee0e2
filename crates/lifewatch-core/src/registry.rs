//! The reactor's watches. A source is keyed by the id of the watch that registered it (the
//! id epoll reports); later watches of the same process join that source instead of
//! opening another pidfd, so W watches of N processes hold N fds, not W.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::event::{Event, WatchId};
use crate::source::Source;

/// A process watch's share key: its PID.
pub type ShareKey = i32;

/// What `remove` took out.
pub enum Removed {
    None,
    /// One of several watches of a shared source: the source stays.
    Subscriber,
    /// The last watch of its source: the caller retires the source.
    Source(Box<dyn Source>),
}

struct Entry {
    source: Box<dyn Source>,
    share: Option<ShareKey>,
}

pub struct Registry {
    next: WatchId,
    sources: HashMap<WatchId, Entry>,
    /// Sources that have been joined → their current watches, in join order (the key
    /// itself is absent once its own watch was removed).
    subscribers: HashMap<WatchId, Vec<WatchId>>,
    /// A watch that joined another's source → that source's key.
    joined: HashMap<WatchId, WatchId>,
    /// The source a new watch of this process may join.
    shareable: HashMap<ShareKey, WatchId>,
    /// Timed sources (fallback polling, v1 OOM re-reads): the only ones asked when due.
    polled: HashSet<WatchId>,
    /// The deadline the reactor thread last went to sleep with (`None`: none at all).
    reactor_deadline: Option<Instant>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            next: 1,
            sources: HashMap::new(),
            subscribers: HashMap::new(),
            joined: HashMap::new(),
            shareable: HashMap::new(),
            polled: HashSet::new(),
            reactor_deadline: None,
        }
    }
}

impl Registry {
    pub fn next_id(&mut self) -> WatchId {
        let id = self.next;
        self.next += 1;
        id
    }

    pub fn insert(&mut self, id: WatchId, source: Box<dyn Source>, share: Option<ShareKey>) {
        if let Some(key) = share {
            self.shareable.insert(key, id);
        }
        if source.timed() {
            self.polled.insert(id);
        }
        self.sources.insert(id, Entry { source, share });
    }

    /// A new watch on the registered source for `key`, if that source can still be
    /// shared (its process has not exited).
    pub fn join(&mut self, key: ShareKey) -> Option<WatchId> {
        let &source = self.shareable.get(&key)?;
        if !self
            .sources
            .get(&source)
            .is_some_and(|e| e.source.joinable())
        {
            return None;
        }
        let id = self.next_id();
        self.subscribers
            .entry(source)
            .or_insert_with(|| vec![source])
            .push(id);
        self.joined.insert(id, source);
        Some(id)
    }

    /// The key of the source serving watch `id`, if that watch is active.
    fn source_of(&self, id: WatchId) -> Option<WatchId> {
        if let Some(&key) = self.joined.get(&id) {
            return Some(key);
        }
        let own = self.sources.contains_key(&id)
            && self.subscribers.get(&id).is_none_or(|s| s.contains(&id));
        own.then_some(id)
    }

    pub fn source(&self, id: WatchId) -> Option<&dyn Source> {
        self.source_of(id)
            .and_then(|key| self.sources.get(&key))
            .map(|e| &*e.source)
    }

    pub fn source_mut(&mut self, key: WatchId) -> Option<&mut Box<dyn Source>> {
        self.sources.get_mut(&key).map(|e| &mut e.source)
    }

    /// Removes watch `id`; its source too when no other watch shares it.
    pub fn remove(&mut self, id: WatchId) -> Removed {
        let Some(key) = self.source_of(id) else {
            return Removed::None;
        };
        self.joined.remove(&id);
        if let Some(subs) = self.subscribers.get_mut(&key) {
            subs.retain(|&w| w != id);
            if !subs.is_empty() {
                return Removed::Subscriber;
            }
        }
        match self.remove_source(key) {
            Some(src) => Removed::Source(src),
            None => Removed::None,
        }
    }

    /// Takes a source out with every watch on it (it has ended or the monitor closes).
    pub fn remove_source(&mut self, key: WatchId) -> Option<Box<dyn Source>> {
        for w in self.subscribers.remove(&key).unwrap_or_default() {
            self.joined.remove(&w);
        }
        self.polled.remove(&key);
        let entry = self.sources.remove(&key)?;
        // A newer source of the same PID may have taken the key over: leave that one.
        if let Some(pid) = entry.share {
            if self.shareable.get(&pid) == Some(&key) {
                self.shareable.remove(&pid);
            }
        }
        Some(entry.source)
    }

    /// Copies the events a shared source just pushed (`out[from..]`, for its first watch)
    /// to each of its other watches, right after the originals.
    pub fn fan_out(&self, key: WatchId, out: &mut Vec<Event>, from: usize) {
        let Some(subs) = self.subscribers.get(&key) else {
            return;
        };
        let pushed: Vec<Event> = out[from..].to_vec();
        for &w in &subs[1..] {
            out.extend(pushed.iter().cloned().map(|e| Event { watch: w, ..e }));
        }
    }

    /// The watch a source's events are reported for first (its own, or the oldest joiner).
    pub fn first_watch(&self, key: WatchId) -> WatchId {
        self.subscribers
            .get(&key)
            .and_then(|s| s.first().copied())
            .unwrap_or(key)
    }

    /// Takes every source out (the monitor closes).
    pub fn drain(&mut self) -> Vec<Box<dyn Source>> {
        self.subscribers.clear();
        self.joined.clear();
        self.shareable.clear();
        self.polled.clear();
        self.sources.drain().map(|(_, e)| e.source).collect()
    }

    pub fn due_keys(&self, now: Instant) -> Vec<WatchId> {
        self.polled
            .iter()
            .copied()
            .filter(|id| self.sources[id].source.due().is_some_and(|d| d <= now))
            .collect()
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.polled
            .iter()
            .filter_map(|id| self.sources[id].source.due())
            .min()
    }

    /// The reactor's next deadline, remembered so that `due_sooner` can tell when it must
    /// be woken to wait less.
    pub fn sleep_until(&mut self) -> Option<Instant> {
        self.reactor_deadline = self.next_due();
        self.reactor_deadline
    }

    /// Whether `due` (a timed source's next time) comes before the reactor would wake by
    /// itself.
    pub fn due_sooner(&self, due: Option<Instant>) -> bool {
        match (due, self.reactor_deadline) {
            (Some(due), Some(deadline)) => due < deadline,
            (due, None) => due.is_some(),
            (None, Some(_)) => false,
        }
    }

    /// Active watches (a shared source counts once per watch on it).
    pub fn len(&self) -> usize {
        let orphaned = self
            .subscribers
            .iter()
            .filter(|(key, subs)| !subs.contains(key))
            .count();
        self.sources.len() + self.joined.len() - orphaned
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::BorrowedFd;

    use rustix::event::epoll::EventFlags;

    use super::*;
    use crate::fd::{Release, Released};
    use crate::source::{Keep, Ready};

    /// A process source whose process is alive (joinable) or not.
    struct Stub(bool);

    impl Source for Stub {
        fn interest(&self) -> Option<(BorrowedFd<'_>, EventFlags)> {
            None
        }
        fn ready(&mut self, _: &mut Ready<'_>) -> Keep {
            Keep::No
        }
        fn joinable(&self) -> bool {
            self.0
        }
        fn release(self: Box<Self>, _: Release, _: &mut Released) {}
    }

    /// A timed source (like v1 OOM re-reads) whose due time is set after registration.
    struct Timed(std::sync::Arc<std::sync::Mutex<Option<Instant>>>);

    impl Source for Timed {
        fn interest(&self) -> Option<(BorrowedFd<'_>, EventFlags)> {
            None
        }
        fn ready(&mut self, _: &mut Ready<'_>) -> Keep {
            Keep::Yes
        }
        fn due(&self) -> Option<Instant> {
            *self.0.lock().unwrap()
        }
        fn timed(&self) -> bool {
            true
        }
        fn release(self: Box<Self>, _: Release, _: &mut Released) {}
    }

    #[test]
    fn a_due_time_set_after_registration_is_seen() {
        let mut reg = Registry::default();
        let due = std::sync::Arc::new(std::sync::Mutex::new(None));
        let id = reg.next_id();
        reg.insert(id, Box::new(Timed(due.clone())), None);
        add(&mut reg, true, 7);
        let now = Instant::now();
        assert_eq!(reg.next_due(), None);
        *due.lock().unwrap() = Some(now);
        assert_eq!(reg.next_due(), Some(now));
        assert_eq!(reg.due_keys(now), vec![id]);
    }

    #[test]
    fn the_reactor_is_woken_only_for_a_sooner_deadline() {
        let mut reg = Registry::default();
        let due = std::sync::Arc::new(std::sync::Mutex::new(None));
        let id = reg.next_id();
        reg.insert(id, Box::new(Timed(due.clone())), None);
        assert_eq!(reg.sleep_until(), None);
        assert!(
            !reg.due_sooner(reg.next_due()),
            "nothing due, sleeping without a deadline"
        );
        let later = Instant::now() + std::time::Duration::from_secs(10);
        *due.lock().unwrap() = Some(later);
        assert!(
            reg.due_sooner(reg.next_due()),
            "a deadline appeared while sleeping without one"
        );
        assert_eq!(reg.sleep_until(), Some(later));
        assert!(
            !reg.due_sooner(reg.next_due()),
            "the reactor already sleeps to it"
        );
        *due.lock().unwrap() = Some(later + std::time::Duration::from_secs(1));
        assert!(
            !reg.due_sooner(reg.next_due()),
            "postponed: waking early does no harm, no need to wake"
        );
        *due.lock().unwrap() = Some(later - std::time::Duration::from_secs(1));
        assert!(reg.due_sooner(reg.next_due()), "brought forward");
    }

    fn add(reg: &mut Registry, alive: bool, pid: ShareKey) -> WatchId {
        let id = reg.next_id();
        reg.insert(id, Box::new(Stub(alive)), Some(pid));
        id
    }

    #[test]
    fn an_exited_source_is_not_joined() {
        let mut reg = Registry::default();
        add(&mut reg, false, 7);
        assert_eq!(reg.join(7), None);
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn an_ended_source_leaves_its_successor_shareable() {
        let mut reg = Registry::default();
        let old = add(&mut reg, false, 7);
        let new = add(&mut reg, true, 7);
        assert!(reg.remove_source(old).is_some());
        let joined = reg.join(7).expect("joins the newer source");
        assert_eq!(reg.first_watch(new), new);
        assert!(matches!(reg.remove(new), Removed::Subscriber));
        assert_eq!(reg.first_watch(new), joined, "events now go to the joiner");
        assert!(matches!(reg.remove(joined), Removed::Source(_)));
        assert!(reg.is_empty());
    }

    #[test]
    fn fan_out_copies_each_event_to_every_other_watch() {
        let mut reg = Registry::default();
        let a = add(&mut reg, true, 7);
        let b = reg.join(7).unwrap();
        let c = reg.join(7).unwrap();
        assert!(matches!(reg.remove(b), Removed::Subscriber));
        let ev = |watch| Event {
            watch,
            time: 1,
            kind: crate::event::EventKind::Populated {
                cgroup: "x".into(),
                value: true,
            },
        };
        let mut out = vec![ev(99), ev(a)];
        reg.fan_out(a, &mut out, 1);
        assert_eq!(out.iter().map(|e| e.watch).collect::<Vec<_>>(), [99, a, c]);
    }
}

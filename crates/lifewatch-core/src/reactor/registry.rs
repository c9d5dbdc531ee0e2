//! The reactor's sources by key, and the watches on them. A source is keyed by the id of the
//! watch that registered it (the key epoll reports); later watches may join it (several
//! watches of one process share its pidfd), and each gets its own copy of its events.

use std::collections::HashMap;

use crate::event::{Event, Events, WatchId};
use crate::reactor::source::Source;

/// What `remove` took out.
pub enum Removed {
    None,
    /// One of several watches of a shared source: the source stays.
    Subscriber,
    /// The last watch of its source: the caller retires the source.
    Source(Entry),
}

/// A registered source and how it was registered.
pub struct Entry {
    pub source: Box<dyn Source>,
    /// In the sources' set (false: the reactor's own set).
    pub nested: bool,
}

pub struct Registry {
    next: WatchId,
    sources: HashMap<WatchId, Entry>,
    /// Sources that have been joined → their current watches, in join order (the key itself
    /// is absent once its own watch was removed).
    subscribers: HashMap<WatchId, Vec<WatchId>>,
    /// A watch that joined another's source → that source's key.
    joined: HashMap<WatchId, WatchId>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            next: 1,
            sources: HashMap::new(),
            subscribers: HashMap::new(),
            joined: HashMap::new(),
        }
    }
}

impl Registry {
    pub fn next_id(&mut self) -> WatchId {
        let id = self.next;
        self.next += 1;
        id
    }

    pub fn insert(&mut self, key: WatchId, entry: Entry) {
        self.sources.insert(key, entry);
    }

    /// A new watch on the source `key`, if it is still registered.
    pub fn join(&mut self, key: WatchId) -> Option<WatchId> {
        if !self.sources.contains_key(&key) {
            return None;
        }
        let id = self.next_id();
        self.subscribers
            .entry(key)
            .or_insert_with(|| vec![key])
            .push(id);
        self.joined.insert(id, key);
        Some(id)
    }

    /// The key of the source serving watch `id`, if that watch is active.
    pub fn source_of(&self, id: WatchId) -> Option<WatchId> {
        if let Some(&key) = self.joined.get(&id) {
            return Some(key);
        }
        let own = self.sources.contains_key(&id)
            && self.subscribers.get(&id).is_none_or(|s| s.contains(&id));
        own.then_some(id)
    }

    pub fn entry_mut(&mut self, key: WatchId) -> Option<&mut Entry> {
        self.sources.get_mut(&key)
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
            Some(e) => Removed::Source(e),
            None => Removed::None,
        }
    }

    /// Takes a source out with every watch on it (it has ended or the reactor closes).
    pub fn remove_source(&mut self, key: WatchId) -> Option<Entry> {
        // Shared sources are rare: an empty map is not even hashed into (this runs for every
        // exit, on the path to its delivery, as do `fan_out` and `first_watch`).
        if !self.subscribers.is_empty() {
            for w in self.subscribers.remove(&key).unwrap_or_default() {
                self.joined.remove(&w);
            }
        }
        self.sources.remove(&key)
    }

    /// Copies the events a shared source just pushed (`out[from..]`, for its first watch)
    /// to each of its other watches, right after the originals.
    pub fn fan_out(&self, key: WatchId, out: &mut Events, from: usize) {
        if self.subscribers.is_empty() {
            return;
        }
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
        if self.subscribers.is_empty() {
            return key;
        }
        self.subscribers
            .get(&key)
            .and_then(|s| s.first().copied())
            .unwrap_or(key)
    }

    /// Takes every source out (the reactor closes).
    pub fn drain(&mut self) -> Vec<Entry> {
        self.subscribers.clear();
        self.joined.clear();
        self.sources.drain().map(|(_, e)| e).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fd::{Release, Released};
    use crate::reactor::source::{Interest, Keep, Ready};

    struct Stub;

    impl Source for Stub {
        fn interest(&self) -> Option<Interest<'_>> {
            None
        }
        fn ready(&mut self, _: &mut Ready<'_>) -> Keep {
            Keep::No
        }
        fn release(self: Box<Self>, _: Release, _: &mut Released) {}
    }

    fn add(reg: &mut Registry) -> WatchId {
        let id = reg.next_id();
        reg.insert(
            id,
            Entry {
                source: Box::new(Stub),
                nested: true,
            },
        );
        id
    }

    #[test]
    fn a_removed_source_is_not_joined() {
        let mut reg = Registry::default();
        let a = add(&mut reg);
        assert!(reg.remove_source(a).is_some());
        assert_eq!(reg.join(a), None);
    }

    #[test]
    fn the_oldest_joiner_takes_over_from_a_removed_first_watch() {
        let mut reg = Registry::default();
        let a = add(&mut reg);
        let b = reg.join(a).expect("joins a live source");
        assert_eq!(reg.first_watch(a), a);
        assert!(matches!(reg.remove(a), Removed::Subscriber));
        assert_eq!(reg.first_watch(a), b, "events now go to the joiner");
        assert_eq!(reg.source_of(a), None);
        assert_eq!(reg.source_of(b), Some(a));
        assert!(matches!(reg.remove(b), Removed::Source(_)));
        assert!(reg.drain().is_empty());
    }

    #[test]
    fn fan_out_copies_each_event_to_every_other_watch() {
        let mut reg = Registry::default();
        let a = add(&mut reg);
        let b = reg.join(a).unwrap();
        let c = reg.join(a).unwrap();
        assert!(matches!(reg.remove(b), Removed::Subscriber));
        let ev = |watch| Event {
            watch,
            time: 1,
            kind: crate::event::EventKind::Populated {
                cgroup: "x".into(),
                value: true,
            },
        };
        let mut out = smallvec::smallvec![ev(99), ev(a)];
        reg.fan_out(a, &mut out, 1);
        assert_eq!(out.iter().map(|e| e.watch).collect::<Vec<_>>(), [99, a, c]);
    }
}

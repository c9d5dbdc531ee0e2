//! Processes: pidfds and their syscalls, exits, the process handle, the reactor source
//! that reports an exit, signals, spawning into a cgroup, the child subreaper; the process
//! watches of one monitor (`Processes`), which share one pidfd per process; and the
//! host-wide streams: the process events connector (`cn_proc`, `connector`, `host`) and the
//! kernel log's OOM kills (`kmsg_record`, `kmsg`).

pub mod cn_proc;
pub mod connector;
pub mod exit;
pub mod handle;
pub mod host;
pub mod kmsg;
pub mod kmsg_record;
pub mod pid;
pub mod pidfd;
pub mod procfs;
pub mod procstat;
pub mod signal;
pub mod spawn;
pub mod subreaper;
pub mod wait;
pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::error::{Code, Error, Result};
use crate::event::WatchId;
use crate::fd::{Release, Released};
use crate::reactor::{Reactor, Registration};
pub use handle::Process;
pub use pid::{check_not_thread, check_pid, PID_MAX_LIMIT};
use watch::ProcessWatch;

/// A monitor's process watches: watch id → its process (held by the watch's reactor source; a
/// dead entry means the watch ended), and per PID the source a new watch may join.
#[derive(Default)]
pub struct Processes {
    state: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    by_watch: HashMap<WatchId, Weak<Process>>,
    /// PID → the key of the source serving it, for watches that may share it.
    by_pid: HashMap<i32, (WatchId, Weak<Process>)>,
    /// Inserts since the last sweep of ended entries.
    inserts: usize,
}

impl Table {
    fn insert(&mut self, id: WatchId, p: Weak<Process>) {
        self.by_watch.insert(id, p);
        self.inserts += 1;
        // Ended watches leave dead entries: swept when as many inserts as live entries passed.
        if self.inserts > 64 && self.inserts > self.by_watch.len() / 2 {
            self.inserts = 0;
            self.by_watch.retain(|_, w| w.strong_count() > 0);
            self.by_pid.retain(|_, (_, w)| w.strong_count() > 0);
        }
    }
}

impl Processes {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watches any process, child or not. Another watch of the same live process shares its
    /// pidfd (and gets its own exit event); our own children are watched once, at spawn.
    pub fn watch(&self, reactor: &Reactor, pid: i32, use_pidfd: bool) -> Result<WatchId> {
        reactor.check_open()?;
        if use_pidfd {
            let shared = self
                .table()
                .by_pid
                .get(&pid)
                .and_then(|(key, w)| Some((*key, w.upgrade()?)));
            if let Some((key, p)) = shared.filter(|(_, p)| !p.exited()) {
                if let Some(id) = reactor.join(key)? {
                    self.table().insert(id, Arc::downgrade(&p));
                    return Ok(id);
                }
            }
            let (id, p) = self.register(reactor, Process::open(pid)?, false)?;
            self.table().by_pid.insert(pid, (id, p));
            Ok(id)
        } else {
            Ok(self.register(reactor, Process::by_pid(pid)?, false)?.0)
        }
    }

    /// Watches a child lifewatch started itself (its pidfd taken at creation); the watch reaps
    /// it when it exits.
    pub fn watch_child(&self, reactor: &Reactor, child: Process) -> Result<WatchId> {
        Ok(self.register(reactor, child, true)?.0)
    }

    /// The source owns the process: refused, it closes the pidfd as a prevented leak.
    fn register(
        &self,
        reactor: &Reactor,
        p: Process,
        reap: bool,
    ) -> Result<(WatchId, Weak<Process>)> {
        let p = Arc::new(p);
        let weak = Arc::downgrade(&p);
        let source = ProcessWatch::new(p, reap);
        let how = Registration {
            wake_at: source.first_poll(),
            ..Registration::default()
        };
        let id = reactor.register(Box::new(source), how)?;
        self.table().insert(id, weak.clone());
        Ok((id, weak))
    }

    /// Signals the process of an active watch through its own pidfd.
    pub fn signal(&self, id: WatchId, signo: i32) -> Result<()> {
        let p = self.table().by_watch.get(&id).and_then(Weak::upgrade);
        match p {
            Some(p) => p.signal(signo),
            None => Err(Error::new(
                Code::NoSuchProcess,
                format!("watch {id} is not active (its process exited or it was removed)"),
            )),
        }
    }

    /// Ends a watch (its pidfd closes with its last watch); `false` if it already ended.
    pub fn unwatch(&self, reactor: &Reactor, id: WatchId) -> bool {
        let stopped = reactor.unregister(id, Release::Normal, &mut Released::default());
        self.table().by_watch.remove(&id);
        stopped
    }

    /// Active watches.
    pub fn count(&self) -> usize {
        self.table()
            .by_watch
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    pub fn clear(&self) {
        let mut t = self.table();
        t.by_watch.clear();
        t.by_pid.clear();
    }
}

//! Host-wide process streams on a monitor's reactor: host watches (every exit on the host,
//! optionally forks and execs, optionally only in one cgroup) and tree watches (a process and
//! all its descendants), served by one connector socket per monitor (`connector`).
//!
//! The connector reports tasks, not processes: each thread's exit is a message. A table of
//! the live processes (the ones every watch needs; every process while a host watch exists)
//! keeps each one's threads, so that a process's exit is reported once, when its last thread
//! exits (after an exec from a thread other than the leader, the kernel reports the old
//! leader's death while the process lives on; the table says it is not over). The table
//! also keeps each process's parent, name and cgroup: a child inherits its parent's at fork,
//! an exec re-reads them from /proc, prctl(PR_SET_NAME) arrives as a message. An exit is
//! often reaped before anyone could read /proc, so these are what its event reports.
//!
//! Starting: the socket subscribes first, then /proc is read (under this state's lock, so no
//! message is applied meanwhile). Messages the scan already reflects are recognised by their
//! kernel timestamp (CLOCK_MONOTONIC, like the time the scan took) and not applied twice.
//!
//! Losses (an overrun socket, a gap in a CPU's sequence numbers) are reported to every watch
//! as a `lost` event, then the table is re-read from /proc once the socket is drained: a tree
//! member gone meanwhile is reported as exited (with the zombie's status if it is still one),
//! children it made meanwhile join the tree.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::epoll::EventFlags;

use crate::error::{Code, Error, Result};
use crate::event::{monotonic_ns, Event, EventKind, Events, ExitSource, LossSource, WatchId};
use crate::fd::{CountedFd, FdKind, Release, Released};
use crate::process::cn_proc::{self, Message, Parsed, ProcEvent, Sequences};
use crate::process::{check_not_thread, connector, procfs};
use crate::reactor::{Interest, Keep, Reactor, Ready, Registration, Source};
use crate::status::ExitStatus;

/// What a host watch reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostOptions {
    pub exits: bool,
    pub forks: bool,
    pub execs: bool,
    /// Only processes in this cgroup or below it: a path in the hierarchy that `procfs::
    /// cgroup_of` reads (`/lifewatch/job1`; `/` is every cgroup).
    pub cgroup: Option<String>,
}

/// What a tree watch reports besides exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeOptions {
    pub forks: bool,
    pub execs: bool,
}

/// Messages handled per turn: a turn stays short (level-triggered epoll brings the reactor
/// back at once for the rest).
const BATCH: usize = 1024;

/// Re-reading /proc after a loss costs a scan of every process: at most this often.
const RESYNC_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Proc {
    ppid: i32,
    comm: Option<Arc<str>>,
    cgroup: Option<Arc<str>>,
    /// Live thread IDs, the leader's included until it exits.
    threads: Vec<i32>,
    /// CLOCK_MONOTONIC ns when /proc was read for it: messages the kernel stamped earlier
    /// are already reflected.
    read_at: u64,
}

#[derive(Debug)]
struct Tree {
    options: TreeOptions,
    members: HashSet<i32>,
    /// Members whose exit was reported from /proc (zombies found by a scan): their exit
    /// message, if one is still queued, is not reported again.
    reported: HashSet<i32>,
}

#[derive(Debug)]
enum Sub {
    Host(HostOptions),
    Tree(Tree),
}

#[derive(Debug, Default)]
pub struct HostState {
    procs: HashMap<i32, Proc>,
    /// Every process is in the table (a host watch exists); otherwise only tree members.
    all: bool,
    subs: BTreeMap<WatchId, Sub>,
    seqs: Sequences,
    /// The generation of the source now reading the socket, and its reactor key.
    live: Option<u64>,
    key: Option<WatchId>,
    generation: u64,
    /// A loss happened: /proc is re-read once the socket is drained.
    resync: bool,
    last_resync: Option<Instant>,
}

type Shared = Arc<Mutex<HostState>>;

/// A process found exited by a scan: its PID, what was read of it, its wait status.
type Zombie = (i32, Proc, Option<i32>);

fn lock(s: &Shared) -> MutexGuard<'_, HostState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn arc(s: Option<String>) -> Option<Arc<str>> {
    s.map(Arc::from)
}

fn under(cgroup: Option<&Arc<str>>, filter: &str) -> bool {
    let Some(cg) = cgroup else { return false };
    filter == "/"
        || cg.as_ref() == filter
        || cg
            .strip_prefix(filter)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Sub {
    /// Whether a host watch reports an event of a process in `cgroup`.
    fn host_wants(o: &HostOptions, cgroup: Option<&Arc<str>>) -> bool {
        o.cgroup.as_deref().is_none_or(|f| under(cgroup, f))
    }
}

impl HostState {
    fn read_proc(pid: i32, now: u64) -> Option<(Proc, Option<Option<i32>>)> {
        let seen = procfs::seen(pid)?;
        let p = Proc {
            ppid: seen.ppid,
            comm: arc(seen.comm),
            cgroup: arc(procfs::cgroup(pid)),
            threads: procfs::threads(pid),
            read_at: now,
        };
        Some((p, seen.zombie))
    }

    /// Puts every process of /proc in the table (a host watch starts, or a loss): entries of
    /// processes that are gone are dropped, the others refreshed.
    fn scan_all(&mut self) {
        let now = monotonic_ns();
        let mut fresh = HashMap::new();
        for pid in procfs::pids() {
            if let Some((p, None)) = Self::read_proc(pid, now) {
                fresh.insert(pid, p);
            }
        }
        self.procs = fresh;
    }

    /// Finds the live descendants of `roots` through the `children` files (or a scan of every
    /// process where the kernel has none); zombies come back in `dead` with their status.
    fn descendants(&mut self, roots: &[i32], now: u64) -> (Vec<i32>, Vec<Zombie>) {
        let mut live = Vec::new();
        let mut dead = Vec::new();
        let mut todo: Vec<i32> = roots.to_vec();
        let mut seen: HashSet<i32> = HashSet::new();
        let mut by_parent: Option<HashMap<i32, Vec<i32>>> = None;
        while let Some(pid) = todo.pop() {
            if !seen.insert(pid) {
                continue;
            }
            let Some((p, zombie)) = Self::read_proc(pid, now) else {
                continue;
            };
            let kids = match procfs::children(pid, &p.threads) {
                Some(k) => k,
                None => by_parent
                    .get_or_insert_with(|| {
                        let mut m: HashMap<i32, Vec<i32>> = HashMap::new();
                        for q in procfs::pids() {
                            if let Some(s) = procfs::seen(q) {
                                m.entry(s.ppid).or_default().push(q);
                            }
                        }
                        m
                    })
                    .get(&pid)
                    .cloned()
                    .unwrap_or_default(),
            };
            todo.extend(kids);
            match zombie {
                Some(status) => dead.push((pid, p, status)),
                None => {
                    live.push(pid);
                    self.procs.insert(pid, p);
                }
            }
        }
        (live, dead)
    }

    fn wants_all(&self) -> bool {
        self.subs.values().any(|s| matches!(s, Sub::Host(_)))
    }

    /// Drops table entries no watch needs (the last host watch went).
    fn prune(&mut self) {
        self.all = self.wants_all();
        if self.all {
            return;
        }
        let members: HashSet<i32> = self
            .subs
            .values()
            .filter_map(|s| match s {
                Sub::Tree(t) => Some(t.members.iter().copied()),
                Sub::Host(_) => None,
            })
            .flatten()
            .collect();
        self.procs.retain(|pid, _| members.contains(pid));
    }

    fn push(out: &mut Events, watch: WatchId, time: u64, kind: EventKind) {
        out.push(Event { watch, time, kind });
    }

    fn exit_kind(
        pid: i32,
        status: Option<ExitStatus>,
        ppid: Option<i32>,
        p: Option<&Proc>,
        remaining: Option<u32>,
    ) -> EventKind {
        EventKind::Exit {
            pid,
            status,
            source: ExitSource::Connector,
            ppid,
            comm: p.and_then(|p| p.comm.as_deref()).map(str::to_string),
            cgroup: p.and_then(|p| p.cgroup.as_deref()).map(str::to_string),
            remaining,
        }
    }

    /// Applies one message: updates the table, reports to the watches that want it.
    fn apply(&mut self, m: &Message, time: u64, out: &mut Events) {
        match m.event {
            ProcEvent::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
            } => self.on_fork(
                m.timestamp_ns,
                parent_tgid,
                child_pid,
                child_tgid,
                time,
                out,
            ),
            ProcEvent::Exec { tgid } => self.on_exec(m.timestamp_ns, tgid, time, out),
            ProcEvent::Comm { pid, tgid, comm } if pid == tgid => {
                if let Some(p) = self.procs.get_mut(&tgid) {
                    p.comm = Some(Arc::from(cn_proc::comm_str(&comm)));
                }
            }
            ProcEvent::Exit {
                pid,
                tgid,
                exit_code,
                parent_tgid,
            } => self.on_exit(pid, tgid, exit_code, parent_tgid, time, out),
            ProcEvent::Comm { .. } | ProcEvent::Ack { .. } | ProcEvent::Other { .. } => {}
        }
    }

    fn on_fork(
        &mut self,
        stamp: u64,
        parent: i32,
        pid: i32,
        tgid: i32,
        time: u64,
        out: &mut Events,
    ) {
        if pid != tgid {
            // A thread: one more for its process to outlive.
            if let Some(p) = self.procs.get_mut(&tgid) {
                if stamp >= p.read_at && !p.threads.contains(&pid) {
                    p.threads.push(pid);
                }
            }
            return;
        }
        let in_tree = self
            .subs
            .values()
            .any(|s| matches!(s, Sub::Tree(t) if t.members.contains(&parent)));
        if !self.all && !in_tree {
            return;
        }
        match self.procs.get(&pid) {
            // Already read from /proc after this fork.
            Some(p) if stamp < p.read_at => {}
            _ => {
                let (comm, cgroup) = match self.procs.get(&parent) {
                    Some(pp) => (pp.comm.clone(), pp.cgroup.clone()),
                    None => (arc(procfs::comm(pid)), arc(procfs::cgroup(pid))),
                };
                self.procs.insert(
                    pid,
                    Proc {
                        ppid: parent,
                        comm,
                        cgroup,
                        threads: vec![pid],
                        read_at: 0,
                    },
                );
            }
        }
        let p = &self.procs[&pid];
        for (&id, sub) in self.subs.iter_mut() {
            let report = match sub {
                Sub::Host(o) => o.forks && Sub::host_wants(o, p.cgroup.as_ref()),
                Sub::Tree(t) if t.members.contains(&parent) => {
                    t.members.insert(pid);
                    t.reported.remove(&pid);
                    t.options.forks
                }
                Sub::Tree(_) => false,
            };
            if report {
                Self::push(
                    out,
                    id,
                    time,
                    EventKind::Fork {
                        pid,
                        ppid: parent,
                        comm: p.comm.as_deref().map(str::to_string),
                        cgroup: p.cgroup.as_deref().map(str::to_string),
                    },
                );
            }
        }
    }

    fn on_exec(&mut self, stamp: u64, pid: i32, time: u64, out: &mut Events) {
        if !self.all && !self.procs.contains_key(&pid) {
            return;
        }
        let fresh = self.procs.get(&pid).is_some_and(|p| stamp < p.read_at);
        if !fresh {
            let (comm, cgroup) = (procfs::comm(pid), procfs::cgroup(pid));
            let p = self.procs.entry(pid).or_insert_with(|| Proc {
                ppid: procfs::seen(pid).map_or(0, |s| s.ppid),
                comm: None,
                cgroup: None,
                threads: Vec::new(),
                read_at: 0,
            });
            // The exec'ing thread is the process's only one now, under the leader's ID.
            p.threads = vec![pid];
            // The old name is wrong now; unknown (gone already) is better than wrong.
            p.comm = arc(comm);
            if let Some(cg) = cgroup {
                p.cgroup = Some(Arc::from(cg));
            }
        }
        let p = &self.procs[&pid];
        for (&id, sub) in self.subs.iter() {
            let report = match sub {
                Sub::Host(o) => o.execs && Sub::host_wants(o, p.cgroup.as_ref()),
                Sub::Tree(t) => t.options.execs && t.members.contains(&pid),
            };
            if report {
                Self::push(
                    out,
                    id,
                    time,
                    EventKind::Exec {
                        pid,
                        ppid: (p.ppid > 0).then_some(p.ppid),
                        comm: p.comm.as_deref().map(str::to_string),
                        cgroup: p.cgroup.as_deref().map(str::to_string),
                    },
                );
            }
        }
    }

    fn on_exit(
        &mut self,
        pid: i32,
        tgid: i32,
        code: u32,
        parent: i32,
        time: u64,
        out: &mut Events,
    ) {
        let whole = match self.procs.get_mut(&tgid) {
            Some(p) => {
                p.threads.retain(|&t| t != pid);
                p.threads.is_empty()
            }
            // Not in the table (lost, or not needed): a leader's exit stands for its process.
            None => pid == tgid,
        };
        if !whole {
            return;
        }
        let mut p = self.procs.remove(&tgid);
        if let Some(p) = p.as_mut() {
            // Reaped before anything could be read at its exec: the zombie may still say.
            if p.comm.is_none() {
                p.comm = arc(procfs::comm(tgid));
            }
            // Its cgroup is not read again: an exited task's /proc/<pid>/cgroup says `/` in
            // the v1 memory hierarchy. The one its exec (or fork) left in the table stands.
        }
        let status = Some(cn_proc::exit_status(code));
        let ppid = match parent {
            // Released already (auto-reaped): the parent it had at fork.
            0 => p.as_ref().map(|p| p.ppid).filter(|&pp| pp > 0),
            pp => Some(pp),
        };
        let mut ended = Vec::new();
        for (&id, sub) in self.subs.iter_mut() {
            match sub {
                Sub::Host(o)
                    if o.exits
                        && Sub::host_wants(o, p.as_ref().and_then(|p| p.cgroup.as_ref())) =>
                {
                    Self::push(
                        out,
                        id,
                        time,
                        Self::exit_kind(tgid, status, ppid, p.as_ref(), None),
                    );
                }
                Sub::Host(_) => {}
                Sub::Tree(t) => {
                    if t.members.remove(&tgid) {
                        let left = t.members.len() as u32;
                        Self::push(
                            out,
                            id,
                            time,
                            Self::exit_kind(tgid, status, ppid, p.as_ref(), Some(left)),
                        );
                        if left == 0 {
                            ended.push(id);
                        }
                    } else {
                        t.reported.remove(&tgid);
                    }
                }
            }
        }
        self.end(&ended);
    }

    fn end(&mut self, ended: &[WatchId]) {
        if ended.is_empty() {
            return;
        }
        for id in ended {
            self.subs.remove(id);
        }
        self.prune();
    }

    /// Messages were lost: every watch is told.
    fn lost(&mut self, count: Option<u64>, time: u64, out: &mut Events) {
        for &id in self.subs.keys() {
            Self::push(
                out,
                id,
                time,
                EventKind::Lost {
                    source: LossSource::Connector,
                    count,
                },
            );
        }
        self.resync = true;
    }

    /// After a loss: the table is read again, tree members that are gone are reported as
    /// exited, and their new children join.
    fn resync(&mut self, time: u64, out: &mut Events) {
        self.resync = false;
        self.last_resync = Some(Instant::now());
        if self.all {
            self.scan_all();
        }
        let now = monotonic_ns();
        let mut ended = Vec::new();
        let ids: Vec<WatchId> = self.subs.keys().copied().collect();
        for id in ids {
            let Some(Sub::Tree(t)) = self.subs.get(&id) else {
                continue;
            };
            let roots: Vec<i32> = t.members.iter().copied().collect();
            let (live, dead) = self.descendants(&roots, now);
            let Some(Sub::Tree(t)) = self.subs.get_mut(&id) else {
                continue;
            };
            let live: HashSet<i32> = live.into_iter().collect();
            let gone: Vec<i32> = t.members.difference(&live).copied().collect();
            t.members = live;
            let zombies: HashMap<i32, (Proc, Option<i32>)> = dead
                .into_iter()
                .map(|(pid, p, st)| (pid, (p, st)))
                .collect();
            for pid in gone
                .into_iter()
                .chain(zombies.keys().copied().filter(|z| !roots.contains(z)))
            {
                let (p, status) = match zombies.get(&pid) {
                    Some((p, st)) => (Some(p), st.map(ExitStatus::from_wait_status)),
                    None => (self.procs.get(&pid), None),
                };
                t.reported.insert(pid);
                let left = t.members.len() as u32;
                Self::push(
                    out,
                    id,
                    time,
                    Self::exit_kind(pid, status, p.map(|p| p.ppid), p, Some(left)),
                );
            }
            if t.members.is_empty() {
                ended.push(id);
            }
        }
        self.end(&ended);
    }
}

/// The monitor's host and tree watches, and the connector socket that serves them.
#[derive(Default)]
pub struct HostWatcher {
    state: Shared,
    /// Serializes opening and closing the socket.
    init: Mutex<()>,
}

impl HostWatcher {
    /// Every process exit on the host (and forks, execs) as `options` say.
    pub fn watch_host(&self, reactor: &Reactor, options: HostOptions) -> Result<WatchId> {
        if !(options.exits || options.forks || options.execs) {
            return Err(Error::invalid(
                "a host watch of nothing: exits, forks and execs are all off",
            ));
        }
        self.subscribe(reactor, move |st, _id, _out| {
            if !st.all {
                st.scan_all();
                st.all = true;
            }
            Ok(Some(Sub::Host(options)))
        })
    }

    /// The exits of `pid` and of every descendant, including those forked from now on, until
    /// the last is gone. A root that is already a zombie reports its exit at once.
    pub fn watch_tree(&self, reactor: &Reactor, pid: i32, options: TreeOptions) -> Result<WatchId> {
        check_not_thread(pid)?;
        if procfs::seen(pid).is_none() {
            return Err(Error::new(
                Code::NoSuchProcess,
                format!("watching the tree of pid {pid}: no such process"),
            ));
        }
        self.subscribe(reactor, move |st, id, out| {
            let now = monotonic_ns();
            let (live, dead) = st.descendants(&[pid], now);
            if !live.contains(&pid) && !dead.iter().any(|(p, ..)| *p == pid) {
                return Err(Error::new(
                    Code::NoSuchProcess,
                    format!("watching the tree of pid {pid}: no such process"),
                ));
            }
            let mut tree = Tree {
                options,
                members: live.into_iter().collect(),
                reported: HashSet::new(),
            };
            let left = tree.members.len() as u32;
            for (zpid, p, status) in dead {
                tree.reported.insert(zpid);
                HostState::push(
                    out,
                    id,
                    now,
                    HostState::exit_kind(
                        zpid,
                        status.map(ExitStatus::from_wait_status),
                        Some(p.ppid),
                        Some(&p),
                        Some(left),
                    ),
                );
            }
            Ok((!tree.members.is_empty()).then_some(Sub::Tree(tree)))
        })
    }

    /// Adds a subscription that `make` builds under the state's lock (after the socket
    /// subscribed); `None` from it: the watch ended at once (its events are published).
    fn subscribe(
        &self,
        reactor: &Reactor,
        make: impl FnOnce(&mut HostState, WatchId, &mut Events) -> Result<Option<Sub>>,
    ) -> Result<WatchId> {
        let _init = self.init.lock().unwrap_or_else(|p| p.into_inner());
        reactor.check_open()?;
        let opened = match lock(&self.state).live {
            Some(_) => None,
            None => Some(connector::open()?),
        };
        let id = reactor.reserve_id();
        let mut out = Events::new();
        let generation = {
            let mut st = lock(&self.state);
            let sub = match make(&mut st, id, &mut out) {
                Ok(sub) => sub,
                Err(e) => {
                    // The kernel counts listeners until they say IGNORE, closing or not.
                    if let Some(fd) = opened {
                        connector::close(fd, Release::LeakPrevented);
                    }
                    return Err(e);
                }
            };
            let kept = sub.is_some();
            if let Some(sub) = sub {
                st.subs.insert(id, sub);
            }
            st.prune();
            match opened.as_ref() {
                Some(_) if kept => {
                    st.generation += 1;
                    st.live = Some(st.generation);
                    st.seqs.reset();
                    Some(st.generation)
                }
                _ => None,
            }
        };
        match (opened, generation) {
            (Some(fd), Some(generation)) => {
                let source = ConnectorSource {
                    fd: fd.commit(),
                    state: Arc::clone(&self.state),
                    generation,
                    buf: vec![0; connector::DATAGRAM_MAX],
                };
                match reactor.register(Box::new(source), Registration::default()) {
                    Ok(key) => lock(&self.state).key = Some(key),
                    Err(e) => {
                        let mut st = lock(&self.state);
                        st.subs.remove(&id);
                        st.live = None;
                        st.prune();
                        return Err(e);
                    }
                }
            }
            // The watch ended at once (a zombie root): the socket is not needed.
            (Some(fd), None) => connector::close(fd.commit(), Release::Normal),
            (None, _) => {}
        }
        reactor.publish(out);
        Ok(id)
    }

    /// Ends a host or tree watch; `None` when `id` is not one (or has ended).
    pub fn unwatch(&self, reactor: &Reactor, id: WatchId) -> Option<bool> {
        let _init = self.init.lock().unwrap_or_else(|p| p.into_inner());
        let key = {
            let mut st = lock(&self.state);
            st.subs.remove(&id)?;
            st.prune();
            if !st.subs.is_empty() {
                return Some(true);
            }
            st.live = None;
            st.key.take()
        };
        if let Some(key) = key {
            reactor.unregister(key, Release::Normal, &mut Released::default());
        }
        Some(true)
    }

    /// Active host and tree watches.
    pub fn count(&self) -> usize {
        lock(&self.state).subs.len()
    }

    pub fn clear(&self) {
        let mut st = lock(&self.state);
        st.subs.clear();
        st.procs.clear();
        st.all = false;
        st.live = None;
        st.key = None;
    }
}

/// The connector socket as a reactor source: reads what is queued, applies it to the
/// shared state, reports losses.
struct ConnectorSource {
    fd: CountedFd,
    state: Shared,
    /// Which opening of the socket this is: a source whose watches all ended retires even
    /// if a new socket serves new watches by then.
    generation: u64,
    buf: Vec<u8>,
}

impl Source for ConnectorSource {
    fn interest(&self) -> Option<Interest<'_>> {
        Some(Interest {
            fd: self.fd.as_fd(),
            flags: EventFlags::IN,
        })
    }

    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep {
        let state = Arc::clone(&self.state);
        let mut st = lock(&state);
        if st.live != Some(self.generation) {
            return Keep::No;
        }
        for _ in 0..BATCH {
            match connector::recv(self.fd.as_fd(), &mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    for p in cn_proc::parse(&self.buf[..n]) {
                        if let Parsed::Proc(m) = p {
                            let missed = st.seqs.check(m.cpu, m.seq);
                            if missed > 0 {
                                st.lost(Some(missed), cx.time, cx.out);
                            }
                            st.apply(&m, cx.time, cx.out);
                        }
                    }
                }
                Err(rustix::io::Errno::INTR) => continue,
                // The socket's buffer overran: some messages are gone, which and how many the
                // sequence numbers no longer tell (each CPU's next one is a new baseline).
                Err(rustix::io::Errno::NOBUFS) => {
                    st.seqs.reset();
                    st.lost(None, cx.time, cx.out);
                }
                Err(e) => {
                    for &id in st.subs.keys() {
                        HostState::push(
                            cx.out,
                            id,
                            cx.time,
                            EventKind::Error {
                                code: Code::Io,
                                message: format!("reading the process events connector: recv: {e}"),
                            },
                        );
                    }
                    st.subs.clear();
                    st.prune();
                    break;
                }
            }
        }
        if st.resync {
            let due = st.last_resync.map(|t| t + RESYNC_EVERY);
            match due.filter(|&at| at > Instant::now()) {
                Some(at) => cx.wake_at(at),
                None => st.resync(cx.time, cx.out),
            }
        }
        if st.subs.is_empty() {
            st.live = None;
            st.key = None;
            return Keep::No;
        }
        Keep::Yes
    }

    fn release(self: Box<Self>, how: Release, released: &mut Released) {
        released.add(FdKind::Netlink);
        connector::close(self.fd, how);
    }
}

//! Reliability part 5 (faults): the kernel's inotify queue overflows for real. With a tiny
//! `fs.inotify.max_queued_events`, one Monitor watches many v2 cgroups while its reactor is
//! held (failpoint hook `inotify.ready`) and far more `cgroup.events` / `memory.events`
//! changes happen than the queue holds, including OOM kills and removals. After
//! IN_Q_OVERFLOW the monitor must still report every cgroup's last `populated` value, every
//! OOM kill, one `removed` per cgroup, and release every fd.
//!
//! Only in the cgroup-v2 VM (`LIFEWATCH_VM=1`, see scripts/vm): the sysctl is global, and
//! hybrid hosts have no v2 memory controller.

mod common;
mod reliability;

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use common::{open_fds, serial, Harness};
use lifewatch_core::{failpoint, CgroupWatchOptions, Event, EventKind, MonitorOptions, WatchId};
use reliability::{report, Snapshot};
use rustix::fs::inotify::{self, ReadFlags, WatchFlags};

const SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";
/// The monitor's queue: a handful of events where the flood below makes thousands.
const QUEUE: u32 = 16;
const CGROUPS: usize = 48;
/// Times the hopping process visits every cgroup (two `cgroup.events` changes a move).
const ROUNDS: usize = 6;
/// These cgroups run a memory hog into its OOM kill during the hold.
const OOM: [usize; 2] = [1, 2];
const OOM_LIMIT: &str = "16777216";

/// Cgroup `i`'s role: populated at the end, removed during the hold, or left empty.
fn ends_populated(i: usize) -> bool {
    i % 4 == 0
}
fn removed_in_hold(i: usize) -> bool {
    i % 4 == 3
}

/// Sets the sysctl, restoring the old value on drop (a panic included).
struct QueueLimit(String);

impl QueueLimit {
    fn set(n: u32) -> QueueLimit {
        let old = std::fs::read_to_string(SYSCTL).unwrap();
        std::fs::write(SYSCTL, n.to_string()).unwrap();
        QueueLimit(old.trim().to_string())
    }
}

impl Drop for QueueLimit {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}

/// A parent cgroup with the memory controller for its children, and its `sleep` members;
/// on drop the members are killed and reaped and every directory removed.
struct Tree {
    parent: PathBuf,
    rel: String,
    sleeps: Vec<Child>,
}

impl Tree {
    fn new(mount: &Path) -> Tree {
        let rel = format!("lifewatch-test-{}-overflow", std::process::id());
        let parent = mount.join(&rel);
        std::fs::create_dir(&parent).unwrap();
        let tree = Tree {
            parent,
            rel,
            sleeps: Vec::new(),
        };
        std::fs::write(tree.parent.join("cgroup.subtree_control"), "+memory").unwrap();
        for i in 0..CGROUPS {
            std::fs::create_dir(tree.dir(i)).unwrap();
        }
        for i in OOM {
            std::fs::write(tree.dir(i).join("memory.max"), OOM_LIMIT).unwrap();
            let swap = tree.dir(i).join("memory.swap.max");
            if swap.exists() {
                std::fs::write(swap, "0").unwrap();
            }
        }
        tree
    }

    fn child(&self, i: usize) -> String {
        format!("c{i}")
    }

    fn dir(&self, i: usize) -> PathBuf {
        self.parent.join(self.child(i))
    }

    fn move_to(&self, pid: u32, i: usize) {
        std::fs::write(self.dir(i).join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into c{i}: {e}"));
    }

    /// Runs a memory hog in cgroup `i` until the OOM killer ends it.
    fn oom_kill_in(&self, i: usize) {
        let hog = "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while :; do x=$x$x; done";
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec sh -c '{hog}'",
                self.dir(i).display()
            ))
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "the hog in c{i} is OOM-killed"
        );
    }

    fn rmdir(dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Err(e) = std::fs::remove_dir(dir) {
            if e.kind() == std::io::ErrorKind::NotFound {
                return;
            }
            assert!(Instant::now() < deadline, "rmdir {}: {e}", dir.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn counter(&self, i: usize, file: &str, key: &str) -> u64 {
        let text = std::fs::read_to_string(self.dir(i).join(file)).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in c{i}/{file}"))
    }

    fn kill_sleeps(&mut self) {
        for c in &mut self.sleeps {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.sleeps.clear();
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.kill_sleeps();
        for i in 0..CGROUPS {
            let _ = std::fs::remove_dir(self.dir(i));
        }
        let _ = std::fs::remove_dir(&self.parent);
    }
}

/// An inotify instance made before the limit is lowered, on the same files: it counts what
/// the kernel queued (a lower bound: it merges identical consecutive events too).
fn counting_instance(tree: &Tree) -> OwnedFd {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).unwrap();
    inotify::add_watch(&fd, &tree.parent, WatchFlags::DELETE).unwrap();
    for i in 0..CGROUPS {
        for f in ["cgroup.events", "memory.events"] {
            inotify::add_watch(&fd, tree.dir(i).join(f), WatchFlags::MODIFY).unwrap();
        }
    }
    fd
}

/// Events queued on the counting instance; panics if even it overflowed.
fn count_queued(fd: &OwnedFd) -> usize {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut reader = inotify::Reader::new(fd, &mut buf);
    let mut n = 0;
    while let Ok(e) = reader.next() {
        assert!(
            !e.events().contains(ReadFlags::QUEUE_OVERFLOW),
            "the counting instance overflowed too"
        );
        n += 1;
    }
    n
}

/// Collects events until none came for `quiet` (or `within` passed).
fn collect_until_quiet(h: &Harness, quiet: Duration, within: Duration) -> Vec<Event> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        let more = h.collect(1, quiet);
        if more.is_empty() {
            break;
        }
        got.extend(more);
    }
    got
}

/// Per watch: its last `populated` value, OOM kills summed, `removed` events.
#[derive(Default, Debug, Clone)]
struct Seen {
    populated: Option<bool>,
    kills: u64,
    removed: usize,
}

fn tally(seen: &mut HashMap<WatchId, Seen>, events: &[Event]) {
    for e in events {
        let s = seen.entry(e.watch).or_default();
        match &e.kind {
            EventKind::Populated { value, .. } => s.populated = Some(*value),
            EventKind::Oom { kills, .. } => s.kills += kills,
            EventKind::Removed { .. } => s.removed += 1,
            _ => {}
        }
    }
}

// Ignored means "VM only": the VM runners pass --include-ignored.
#[test]
#[ignore = "cgroup-v2 VM only (npm run test:vm -- --test reliability_overflow): it lowers the global fs.inotify.max_queued_events and needs the v2 memory controller"]
fn inotify_queue_overflow_loses_no_state() {
    let _serial = serial();
    assert!(
        std::env::var_os("LIFEWATCH_VM").is_some(),
        "refusing to lower this machine's fs.inotify.max_queued_events: run it in the VM"
    );
    let mount = PathBuf::from("/sys/fs/cgroup");
    let fds0 = open_fds();
    let snap0 = Snapshot::take();
    let mut tree = Tree::new(&mount);
    let counter = counting_instance(&tree);

    let limit = QueueLimit::set(QUEUE);
    let h = Harness::new(MonitorOptions::default());
    let opts = CgroupWatchOptions {
        oom: Some(true),
        events: Some(true),
        ..Default::default()
    };
    // The first watch creates the monitor's inotify instance: its queue limit is fixed now.
    let ids: Vec<WatchId> = (0..CGROUPS)
        .map(|i| {
            let rel = format!("{}/{}", tree.rel, tree.child(i));
            h.monitor.watch_cgroup(&rel, &opts).unwrap()
        })
        .collect();
    drop(limit);
    assert_eq!(count_queued(&counter), 0, "nothing changed yet");

    // Hold the reactor at its first inotify wakeup until the flood is over.
    let scope = failpoint::scope();
    let (entered_tx, entered_rx) = channel();
    let (release_tx, release_rx) = channel::<()>();
    scope.on_hook("inotify.ready", move || {
        let _ = entered_tx.send(());
        // A failing test drops the sender, which ends the hold at once.
        let _ = release_rx.recv_timeout(Duration::from_secs(120));
    });
    for _ in 0..CGROUPS / 4 {
        let c = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        tree.sleeps.push(c);
    }
    let hopper = tree.sleeps[0].id();
    tree.move_to(hopper, 0);
    entered_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the reactor woke for the first change");

    let flood = Instant::now();
    let mut moves = 1;
    for _ in 0..ROUNDS {
        for i in 0..CGROUPS {
            tree.move_to(hopper, i);
            moves += 1;
        }
    }
    for (k, c) in tree.sleeps.iter().enumerate() {
        tree.move_to(c.id(), 4 * k);
        moves += 1;
    }
    for i in OOM {
        tree.oom_kill_in(i);
    }
    let removed: Vec<usize> = (0..CGROUPS).filter(|&i| removed_in_hold(i)).collect();
    for &i in &removed {
        Tree::rmdir(&tree.dir(i));
    }
    let flood_ms = flood.elapsed().as_millis();
    // Let the kernel's deferred kernfs notifications land before counting them.
    std::thread::sleep(Duration::from_millis(200));
    let produced = count_queued(&counter);

    // What the monitor must end up reporting, read from cgroupfs.
    let truth: Vec<Option<(bool, u64)>> = (0..CGROUPS)
        .map(|i| {
            (!removed_in_hold(i)).then(|| {
                let populated = tree.counter(i, "cgroup.events", "populated") != 0;
                assert_eq!(populated, ends_populated(i), "c{i} as arranged");
                (populated, tree.counter(i, "memory.events", "oom_kill"))
            })
        })
        .collect();
    for i in OOM {
        assert!(truth[i].unwrap().1 >= 1, "c{i} had an OOM kill");
    }

    let recovery = Instant::now();
    drop(release_tx);
    let events = collect_until_quiet(&h, Duration::from_millis(1500), Duration::from_secs(30));
    let recovery_ms = recovery.elapsed().as_millis();
    drop(scope);
    let overflows = h.monitor.inotify_overflows();
    assert!(
        overflows >= 1,
        "IN_Q_OVERFLOW was seen ({produced} events for a queue of {QUEUE})"
    );

    let mut seen: HashMap<WatchId, Seen> = HashMap::new();
    tally(&mut seen, &events);
    for (i, &id) in ids.iter().enumerate() {
        let s = seen.get(&id);
        match truth[i] {
            None => assert_eq!(s.map(|s| s.removed), Some(1), "c{i}: one removed: {s:?}"),
            Some((populated, kills)) => {
                let s = s.cloned().unwrap_or_default();
                assert_eq!(s.removed, 0, "c{i} still exists");
                assert_eq!(
                    s.populated.unwrap_or(false),
                    populated,
                    "c{i}: last populated reported"
                );
                assert_eq!(s.kills, kills, "c{i}: every OOM kill reported");
            }
        }
    }
    assert_eq!(h.monitor.watch_count(), CGROUPS - removed.len());

    // The rest ends normally: one `removed` each, none twice.
    tree.kill_sleeps();
    for i in (0..CGROUPS).filter(|&i| !removed_in_hold(i)) {
        Tree::rmdir(&tree.dir(i));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rest = Vec::new();
    while h.monitor.watch_count() > 0 && Instant::now() < deadline {
        rest.extend(h.collect(1, Duration::from_millis(200)));
    }
    rest.extend(collect_until_quiet(
        &h,
        Duration::from_millis(300),
        Duration::from_secs(5),
    ));
    tally(&mut seen, &rest);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            seen.get(id).map(|s| s.removed),
            Some(1),
            "c{i}: one removed in all"
        );
    }
    assert_eq!(h.monitor.watch_count(), 0);

    h.monitor.close();
    drop(h);
    drop(counter);
    drop(tree);
    let leaked = open_fds() as i64 - fds0 as i64;
    assert_eq!(leaked, 0, "fds after close");
    assert_eq!(
        Snapshot::take().in_use(),
        snap0.in_use(),
        "counted fds after close"
    );

    let kills: u64 = truth.iter().flatten().map(|t| t.1).sum();
    eprintln!(
        "overflow: max_queued_events {QUEUE}, {CGROUPS} cgroups, {moves} moves + {} OOM kills + {} rmdirs in {flood_ms} ms -> {produced} inotify events queued (unlimited instance), {overflows} overflow(s); state recovered from {} events in {recovery_ms} ms",
        kills,
        removed.len(),
        events.len()
    );
    report(
        "faults",
        "core (VM): inotify queue overflow",
        leaked,
        0,
        &format!(
            ",\"scenarios\":1,\"queue\":{QUEUE},\"overflows\":{overflows},\"produced\":{produced},\"floodMs\":{flood_ms}"
        ),
    );
}

//! Reliability parts 1 and 2: the core's fd counters equal what the kernel shows in
//! /proc/self/fd after every scenario, and create/watch/close cycles of every watcher kind
//! end with fds, counters and RSS back at baseline.
//!
//! Everything here runs serially in one test binary: it owns every anon-inode fd of this
//! process, so the counters must match /proc exactly, kind by kind (not just as deltas).

mod common;
mod reliability;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fallback, open_fds, serial, Harness};
use lifewatch_core::cgroup::{Cgroup, Layout};
use lifewatch_core::spawn::{self, SpawnOptions};
use lifewatch_core::{CgroupWatchOptions, EventKind, FdKind, MonitorOptions};
use reliability::{
    only, proc_kind_counts, psi_trigger, report, rss_kib, test_cgroups, Snapshot, TestDir,
};

/// Asserts that the core's in-use count of every kind equals the kernel's count of that
/// kind of fd in this process; returns the number of fds the two disagree on.
fn exact(label: &str) -> u64 {
    let snap = Snapshot::take();
    let kernel = proc_kind_counts();
    let mut off = 0;
    for (i, k) in FdKind::ALL.iter().enumerate() {
        // psi and control fds are regular files (and cgroup directories), told apart by
        // path: see `proc_kind_counts`.
        let counted = snap.0[i].in_use;
        let seen = kernel[i];
        off += counted.abs_diff(seen);
        assert_eq!(
            counted,
            seen,
            "{label}: core counts {counted} {} fds in use, /proc/self/fd shows {seen}",
            k.as_str()
        );
    }
    off
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

fn reap(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

type Scenario = fn(&dyn Fn(&str));

/// One line per scenario; the cgroup watchers add theirs (v1 OOM, v1 pressure, v2 events,
/// PSI) the same way. Each calls `check` at every point where the counts must be exact.
const SCENARIOS: &[(&str, Scenario)] = &[
    ("idle monitor", |check| {
        let h = Harness::new(MonitorOptions::default());
        check("open");
        h.monitor.close();
        check("closed");
    }),
    ("pidfd watch, unwatch, close", |check| {
        let child = sleeper();
        let h = Harness::new(MonitorOptions::default());
        let id = h.monitor.watch_pid(child.id() as i64).unwrap();
        check("watching");
        assert!(h.monitor.unwatch(id).unwrap());
        check("unwatched");
        h.monitor.close();
        check("closed");
        reap(child);
    }),
    ("fallback watch (no fd of its own)", |check| {
        let child = sleeper();
        let h = Harness::new(fallback());
        h.monitor.watch_pid(child.id() as i64).unwrap();
        check("watching");
        h.monitor.close();
        check("closed");
        reap(child);
    }),
    ("watch retired by the exit it reported", |check| {
        let mut child = Command::new("sh").args(["-c", "exit 4"]).spawn().unwrap();
        let h = Harness::new(MonitorOptions::default());
        h.monitor.watch_pid(child.id() as i64).unwrap();
        let evs = h.collect(1, Duration::from_secs(10));
        assert!(matches!(evs[0].kind, EventKind::Exit { .. }));
        check("exit delivered");
        assert_eq!(h.monitor.watch_count(), 0);
        child.wait().unwrap();
        drop(h);
        check("dropped");
    }),
    ("failed watch of a dead pid", |check| {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i64;
        child.wait().unwrap();
        let h = Harness::new(MonitorOptions::default());
        assert!(h.monitor.watch_pid(pid).is_err());
        check("after the error");
        h.monitor.close();
        check("closed");
    }),
    ("200 watches then close with events undrained", |check| {
        let children: Vec<Child> = (0..200).map(|_| sleeper()).collect();
        let h = Harness::new(MonitorOptions::default());
        for c in &children {
            h.monitor.watch_pid(c.id() as i64).unwrap();
        }
        check("200 watching");
        for c in children {
            reap(c);
        }
        // Exits are queued, not drained: close must still release everything.
        std::thread::sleep(Duration::from_millis(100));
        check("exits queued");
        assert_eq!(h.monitor.close().get(FdKind::Epoll), 2);
        check("closed");
    }),
    ("monitor dropped without close", |check| {
        let child = sleeper();
        let h = Harness::new(MonitorOptions::default());
        h.monitor.watch_pid(child.id() as i64).unwrap();
        check("watching");
        drop(h);
        check("dropped");
        reap(child);
    }),
    (
        "cgroup watches: v1 OOM + pressure, v2 events + PSI, unwatch, close",
        |check| {
            let Some(l) = Layout::detect()
                .ok()
                .filter(|_| rustix::process::geteuid().is_root())
            else {
                eprintln!("cgroup scenario skipped: not root or no cgroupfs");
                return;
            };
            let v1 =
                l.v1.get("memory")
                    .and_then(|h| TestDir::new(&h.mount, "cycles-scen-v1"));
            let u = l
                .unified
                .as_ref()
                .and_then(|h| TestDir::new(&h.mount, "cycles-scen-u"));
            let h = Harness::new(MonitorOptions::default());
            let mut ids = Vec::new();
            if let Some(v1) = &v1 {
                let o = CgroupWatchOptions {
                    pressure: Some("medium".into()),
                    ..only(true, false)
                };
                ids.push(h.monitor.watch_cgroup(&v1.rel, &o).unwrap());
                check("v1 watching");
            }
            if let Some(u) = &u {
                let o = CgroupWatchOptions {
                    psi: vec![psi_trigger()],
                    ..only(false, true)
                };
                ids.push(h.monitor.watch_cgroup(&u.rel, &o).unwrap());
                check("unified watching");
            }
            for id in ids {
                assert!(h.monitor.unwatch(id).unwrap());
            }
            check("unwatched");
            h.monitor.close();
            check("closed");
        },
    ),
    ("several monitors on one process", |check| {
        let child = sleeper();
        let hs: Vec<Harness> = (0..5)
            .map(|_| Harness::new(MonitorOptions::default()))
            .collect();
        for h in &hs {
            h.monitor.watch_pid(child.id() as i64).unwrap();
        }
        check("5 monitors watching");
        drop(hs);
        check("all dropped");
        reap(child);
    }),
];

#[test]
fn counters_equal_proc_self_fd_after_every_scenario() {
    let _serial = serial();
    let baseline = open_fds();
    let start = Snapshot::take();
    let mut tried = 0;
    for (name, scenario) in SCENARIOS {
        let before = Snapshot::take();
        scenario(&|label| {
            exact(&format!("{name}: {label}"));
        });
        let after = Snapshot::take();
        assert_eq!(after.in_use(), before.in_use(), "{name}: in use");
        assert_eq!(open_fds(), baseline, "{name}: open fds");
        tried += 1;
    }
    let leaked = (open_fds() as i64 - baseline as i64) + Snapshot::take().in_use() as i64
        - start.in_use() as i64;
    report(
        "fd accounting",
        "core: counters vs /proc/self/fd",
        leaked,
        0,
        &format!(",\"scenarios\":{tried}"),
    );
}

/// How many cycles: 1,000 in `npm test`, 10,000 from `npm run reliability -- --long`.
fn cycles() -> usize {
    std::env::var("LIFEWATCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

struct Ctx {
    child: Child,
    shared: Harness,
    layout: Option<Layout>,
    /// A test cgroup in the v1 memory hierarchy only, and one in the unified hierarchy
    /// only (relative paths, as `watch_cgroup` takes them); `None` where this host has no
    /// such hierarchy or we may not create cgroups.
    v1: Option<TestDir>,
    unified: Option<TestDir>,
}

/// A cycle; returns false (before doing anything) where this host lacks what it needs.
type Cycle = fn(&Ctx) -> bool;

/// One line per watcher kind: the pid kinds, the cgroup watchers (v1 OOM, v1 pressure,
/// v2 events, PSI) and the cgroup manager (create/delete, spawn+kill+delete).
const CYCLES: &[(&str, Cycle)] = &[
    ("pid watch (pidfd)", |cx| {
        let id = cx.shared.monitor.watch_pid(cx.child.id() as i64).unwrap();
        assert!(cx.shared.monitor.unwatch(id).unwrap());
        true
    }),
    ("whole monitor + pid watch, close", |cx| {
        let h = Harness::new(MonitorOptions::default());
        h.monitor.watch_pid(cx.child.id() as i64).unwrap();
        h.monitor.close();
        true
    }),
    ("whole monitor + fallback watch, close", |cx| {
        let h = Harness::new(fallback());
        h.monitor.watch_pid(cx.child.id() as i64).unwrap();
        h.monitor.close();
        true
    }),
    ("whole monitor + pid watch, dropped", |cx| {
        let h = Harness::new(MonitorOptions::default());
        h.monitor.watch_pid(cx.child.id() as i64).unwrap();
        drop(h);
        true
    }),
    ("v1 OOM watch (eventfd), unwatch", |cx| {
        let Some(v1) = &cx.v1 else { return false };
        let id = cx
            .shared
            .monitor
            .watch_cgroup(&v1.rel, &only(true, false))
            .unwrap();
        assert!(cx.shared.monitor.unwatch(id).unwrap());
        true
    }),
    ("v1 pressure watch (eventfd), unwatch", |cx| {
        let Some(v1) = &cx.v1 else { return false };
        let o = CgroupWatchOptions {
            pressure: Some("low".into()),
            ..only(false, false)
        };
        let id = cx.shared.monitor.watch_cgroup(&v1.rel, &o).unwrap();
        assert!(cx.shared.monitor.unwatch(id).unwrap());
        true
    }),
    ("whole monitor + v2 events watch (inotify), close", |cx| {
        let Some(u) = &cx.unified else { return false };
        let h = Harness::new(MonitorOptions::default());
        h.monitor.watch_cgroup(&u.rel, &only(false, true)).unwrap();
        h.monitor.close();
        true
    }),
    ("PSI trigger watch (memory.pressure), unwatch", |cx| {
        let Some(u) = &cx.unified else { return false };
        if !u.dir.join("memory.pressure").exists() {
            return false;
        }
        let o = CgroupWatchOptions {
            psi: vec![psi_trigger()],
            ..only(false, false)
        };
        let id = cx.shared.monitor.watch_cgroup(&u.rel, &o).unwrap();
        assert!(cx.shared.monitor.unwatch(id).unwrap());
        true
    }),
    ("Cgroup create, delete", |cx| {
        let Some(l) = &cx.layout else { return false };
        let n = format!("lifewatch-test-{}-cycles-mgr", std::process::id());
        let cg = Cgroup::create(l, &n, &Default::default()).unwrap();
        cg.delete(false, Some(Duration::from_secs(5))).unwrap();
        true
    }),
    ("Cgroup spawn, kill, delete", |cx| {
        let Some(l) = &cx.layout else { return false };
        let n = format!("lifewatch-test-{}-cycles-spawn", std::process::id());
        let cg = Cgroup::create(l, &n, &Default::default()).unwrap();
        let mut o = SpawnOptions::new("sleep", vec!["30".into()]);
        o.stdio = [spawn::Stdio::Null; 3];
        let s = cx.shared.monitor.spawn(&o, Some(&cg.spawn_dirs())).unwrap();
        cg.delete(true, Some(Duration::from_secs(5))).unwrap();
        // The exit is reaped and delivered by the shared monitor; wait for it here.
        let evs = cx.shared.collect(1, Duration::from_secs(10));
        assert!(
            evs.iter().any(|e| e.watch == s.watch),
            "no exit for the spawned child: {evs:?}"
        );
        true
    }),
];

/// Some kinds cost the kernel milliseconds per cycle: closing an inotify fd or a PSI
/// trigger waits for an RCU grace period (~10 ms), and a spawn forks and reaps. Those run
/// a tenth of the count by default (npm test stays fast); `LIFEWATCH_CYCLES` (the long
/// run) gives the watchers their full count, spawns still a tenth.
fn cycles_of(name: &str, n: usize) -> usize {
    let explicit = std::env::var("LIFEWATCH_CYCLES").is_ok();
    let slow_watcher = name.contains("inotify") || name.contains("PSI");
    if name.contains("spawn") || (slow_watcher && !explicit) {
        (n / 10).max(20)
    } else {
        n
    }
}

/// RSS growth allowed over the measured cycles (after a 10% warm-up): glibc keeps freed
/// thread stacks and arenas around, so a little movement is normal; a leak of even one
/// small allocation per cycle over 9,000 cycles is not.
const RSS_BOUND_KIB: u64 = 2048;

#[test]
fn create_watch_close_cycles_return_to_baseline() {
    let _serial = serial();
    let all = cycles();
    let (layout, v1, unified) = test_cgroups("cycles");
    let cx = Ctx {
        child: sleeper(),
        shared: Harness::new(MonitorOptions::default()),
        layout,
        v1,
        unified,
    };
    for (name, cycle) in CYCLES {
        let n = cycles_of(name, all);
        let warm = n / 10;
        if !cycle(&cx) {
            eprintln!("cycles {name}: skipped (not available on this host, or not root)");
            continue;
        }
        for _ in 1..warm {
            cycle(&cx);
        }
        let fds = open_fds();
        let before = Snapshot::take();
        let rss = rss_kib();
        let t = Instant::now();
        for _ in warm..n {
            cycle(&cx);
        }
        let ms = t.elapsed().as_millis();
        let after = Snapshot::take();
        let grew = rss_kib().saturating_sub(rss);
        let leaked = open_fds() as i64 - fds as i64;
        eprintln!("cycles {name}: {n} in {ms} ms, rss +{grew} KiB, fds {leaked:+}");
        assert_eq!(leaked, 0, "{name}: open fds");
        assert_eq!(after.in_use(), before.in_use(), "{name}: counters in use");
        assert!(
            after.allocated() > before.allocated()
                || name.contains("fallback")
                || name.contains("create, delete"),
            "{name}: the cycle opened nothing"
        );
        assert_eq!(
            after.allocated() - before.allocated(),
            after.released() - before.released(),
            "{name}: every fd opened was released"
        );
        exact(name);
        // AddressSanitizer's quarantine holds freed memory on purpose: RSS means nothing there.
        let rss_checked = std::env::var("LIFEWATCH_RSS_BOUND").as_deref() != Ok("off");
        if !rss_checked {
            eprintln!("{name}: RSS bound not checked (LIFEWATCH_RSS_BOUND=off, sanitizer build)");
        }
        assert!(
            !rss_checked || grew <= RSS_BOUND_KIB,
            "{name}: RSS grew {grew} KiB over {} cycles (bound {RSS_BOUND_KIB} KiB)",
            n - warm
        );
        report(
            "leak cycles",
            &format!("core: {name}"),
            leaked,
            0,
            &format!(",\"cycles\":{n},\"rssGrowthKiB\":{grew},\"rssBoundKiB\":{RSS_BOUND_KIB}"),
        );
    }
    let Ctx { child, shared, .. } = cx;
    shared.monitor.close();
    reap(child);
}

//! Issue 6, parts 1 and 2: the core's fd counters equal what the kernel shows in
//! /proc/self/fd after every scenario, and create/watch/close cycles of every watcher kind
//! end with fds, counters and RSS back at baseline.
//!
//! Everything here runs serially in one test binary: it owns every anon-inode fd of this
//! process, so the counters must match /proc exactly, kind by kind (not just as deltas).

mod common;
mod reliability;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{open_fds, serial, Harness};
use lifewatch_core::{EventKind, FdKind, MonitorOptions};
use reliability::{proc_kind_counts, report, rss_kib, Snapshot};

/// Asserts that the core's in-use count of every kind equals the kernel's count of that
/// kind of fd in this process; returns the number of fds the two disagree on.
fn exact(label: &str) -> u64 {
    let snap = Snapshot::take();
    let kernel = proc_kind_counts();
    let mut off = 0;
    for (i, k) in FdKind::ALL.iter().enumerate() {
        // psi and control fds are regular files, told apart by path only once those
        // watchers exist; until then both must be zero.
        let counted = snap.0[i].in_use;
        let seen = match k {
            FdKind::Psi | FdKind::Control => 0,
            _ => kernel[i],
        };
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
        let h = Harness::new(MonitorOptions {
            force_fallback: true,
            ..Default::default()
        });
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
        assert_eq!(h.monitor.close().get(FdKind::Epoll), 1);
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
}

type Cycle = fn(&Ctx);

/// One line per watcher kind; the cgroup kinds (v1 OOM, v1 pressure, v2 events, PSI) add
/// theirs here.
const CYCLES: &[(&str, Cycle)] = &[
    ("pid watch (pidfd)", |cx| {
        let id = cx.shared.monitor.watch_pid(cx.child.id() as i64).unwrap();
        assert!(cx.shared.monitor.unwatch(id).unwrap());
    }),
    ("whole monitor + pid watch, close", |cx| {
        let h = Harness::new(MonitorOptions::default());
        h.monitor.watch_pid(cx.child.id() as i64).unwrap();
        h.monitor.close();
    }),
    ("whole monitor + fallback watch, close", |cx| {
        let h = Harness::new(MonitorOptions {
            force_fallback: true,
            ..Default::default()
        });
        h.monitor.watch_pid(cx.child.id() as i64).unwrap();
        h.monitor.close();
    }),
    ("whole monitor + pid watch, dropped", |cx| {
        let h = Harness::new(MonitorOptions::default());
        h.monitor.watch_pid(cx.child.id() as i64).unwrap();
        drop(h);
    }),
];

/// RSS growth allowed over the measured cycles (after a 10% warm-up): glibc keeps freed
/// thread stacks and arenas around, so a little movement is normal; a leak of even one
/// small allocation per cycle over 9,000 cycles is not.
const RSS_BOUND_KIB: u64 = 2048;

#[test]
fn create_watch_close_cycles_return_to_baseline() {
    let _serial = serial();
    let n = cycles();
    let cx = Ctx {
        child: sleeper(),
        shared: Harness::new(MonitorOptions::default()),
    };
    for (name, cycle) in CYCLES {
        let warm = n / 10;
        for _ in 0..warm {
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
            after.allocated() > before.allocated() || name.contains("fallback"),
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
    let Ctx { child, shared } = cx;
    shared.monitor.close();
    reap(child);
}

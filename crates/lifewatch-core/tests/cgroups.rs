//! Cgroup watchers on real cgroupfs: whatever this kernel has (v1 memory on hybrid hosts,
//! cgroup.events on any unified hierarchy, v2 memory in the VM). Tests skip, saying why,
//! where a mechanism is missing or the process cannot create cgroups.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{open_fds, serial, Harness, TestCgroup};
use lifewatch_core::cgroup::stats::{Counters, Stats};
use lifewatch_core::cgroup::watch::psi::{PsiTrigger, Resource};
use lifewatch_core::cgroup::Layout;
use lifewatch_core::{CgroupWatchOptions, Code, Event, EventKind, MonitorOptions, WatchId};

fn layout() -> Layout {
    Layout::detect().unwrap()
}

/// A child of the v1 memory hierarchy, if this host has one and we may create cgroups in it.
fn v1_memory_cgroup() -> Option<TestCgroup> {
    let l = layout();
    let Some(h) = l.v1.get("memory") else {
        eprintln!("skip: no v1 memory hierarchy");
        return None;
    };
    TestCgroup::new(&h.mount)
}

/// The unified hierarchy and whether it has the memory controller for children.
fn unified() -> Option<(PathBuf, bool)> {
    let l = layout();
    let h = l.unified.clone()?;
    let ctl = std::fs::read_to_string(h.mount.join("cgroup.subtree_control")).unwrap_or_default();
    Some((h.mount, ctl.split_whitespace().any(|c| c == "memory")))
}

/// A child of the unified hierarchy, controllers or not (the hybrid host's too).
fn unified_cgroup() -> Option<TestCgroup> {
    let Some((mount, _)) = unified() else {
        eprintln!("skip: no unified hierarchy");
        return None;
    };
    TestCgroup::new(&mount)
}

fn wait_for(h: &Harness, pred: impl Fn(&Event) -> bool, within: Duration) -> Vec<Event> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while !got.iter().any(&pred) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        got.extend(h.collect(1, left.min(Duration::from_millis(200))));
    }
    got
}

/// Fails, listing every event, unless one matches `pred`.
#[track_caller]
fn assert_any(got: &[Event], pred: impl Fn(&Event) -> bool) {
    assert!(got.iter().any(pred), "{got:?}");
}

/// Waits for an event of watch `id` that matches `pred`, failing if none came in time.
#[track_caller]
fn expect(h: &Harness, id: WatchId, pred: impl Fn(&Event) -> bool, within: Duration) -> Vec<Event> {
    let ours = |e: &Event| e.watch == id && pred(e);
    let got = wait_for(h, ours, within);
    assert_any(&got, ours);
    got
}

fn is_removed(e: &Event) -> bool {
    matches!(e.kind, EventKind::Removed { .. })
}

fn is_oom(e: &Event) -> bool {
    matches!(e.kind, EventKind::Oom { .. })
}

fn is_pressure(e: &Event) -> bool {
    matches!(e.kind, EventKind::Pressure { .. })
}

fn watch(h: &Harness, cg: &TestCgroup, opts: CgroupWatchOptions) -> WatchId {
    h.monitor.watch_cgroup(&cg.rel, &opts).unwrap()
}

/// Removes `cg`, then waits for watch `id` to end with a `removed` event.
#[track_caller]
fn expect_removed_on_rmdir(h: &Harness, cg: &TestCgroup, id: WatchId) -> Vec<Event> {
    assert!(cg.rmdir());
    expect(h, id, is_removed, Duration::from_secs(5))
}

#[test]
fn populated_goes_to_zero_then_removed() {
    let _s = serial();
    let Some(cg) = unified_cgroup() else { return };
    let h = Harness::new(MonitorOptions::default());
    let mut child = cg.spawn("sleep 0.4");
    while !cg.populated() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let opts = CgroupWatchOptions {
        events: Some(true),
        oom: Some(false),
        ..Default::default()
    };
    let id = watch(&h, &cg, opts);
    let got = wait_for(
        &h,
        |e| matches!(e.kind, EventKind::Populated { value: false, .. }),
        Duration::from_secs(5),
    );
    child.wait().unwrap();
    assert_any(&got, |e| {
        e.watch == id
            && e.kind
                == EventKind::Populated {
                    cgroup: format!("/{}", cg.rel),
                    value: false,
                }
    });
    expect_removed_on_rmdir(&h, &cg, id);
    assert_eq!(h.monitor.watch_count(), 0);
    assert!(!h.monitor.unwatch(id).unwrap(), "the watch ended by itself");
}

#[test]
fn frozen_changes_are_reported() {
    let _s = serial();
    let Some(cg) = unified_cgroup() else { return };
    if !cg.dir.join("cgroup.freeze").exists() {
        eprintln!("skip: no cgroup.freeze");
        return;
    }
    let h = Harness::new(MonitorOptions::default());
    let id = watch(&h, &cg, CgroupWatchOptions::default());
    for (write, value) in [("1", true), ("0", false)] {
        cg.write("cgroup.freeze", write);
        expect(
            &h,
            id,
            |e| matches!(e.kind, EventKind::Frozen { value: v, .. } if v == value),
            Duration::from_secs(5),
        );
    }
}

#[test]
fn bad_input_is_typed_and_leaks_nothing() {
    let _s = serial();
    let h = Harness::new(MonitorOptions::default());
    let before = open_fds();
    let o = CgroupWatchOptions::default();
    let code = |p: &str, o: &CgroupWatchOptions| h.monitor.watch_cgroup(p, o).unwrap_err().code;
    assert_eq!(code("lifewatch-no-such-cgroup-xyz", &o), Code::NoSuchCgroup);
    assert_eq!(code("../etc", &o), Code::InvalidArgument);
    assert_eq!(code("/tmp", &o), Code::InvalidArgument);
    assert_eq!(code("/proc/self/status", &o), Code::InvalidArgument);
    let l = layout();
    if let Some(h1) = l.v1.get("memory").or(l.unified.as_ref()) {
        let file = format!("{}/cgroup.procs", h1.mount.display());
        assert_eq!(code(&file, &o), Code::InvalidArgument, "a regular file");
    }
    let bad_psi = CgroupWatchOptions {
        psi: vec![PsiTrigger {
            resource: Resource::Memory,
            full: false,
            stall_us: 0,
            window_us: 1_000_000,
        }],
        ..Default::default()
    };
    assert_eq!(code("", &bad_psi), Code::InvalidArgument);
    let pressure = |level: &str| CgroupWatchOptions {
        pressure: Some(level.into()),
        ..Default::default()
    };
    assert_eq!(code("", &pressure("extreme")), Code::InvalidArgument);
    if !l.v1.contains_key("memory") {
        assert_eq!(code("", &pressure("low")), Code::UnsupportedKernel);
    }
    // A cgroup root in a plain directory: refused by the statfs check.
    let fake = Harness::new(MonitorOptions {
        cgroup_root: Some(std::env::temp_dir()),
        ..Default::default()
    });
    assert!(fake.monitor.watch_cgroup("x", &o).is_err());
    drop(fake);
    assert_eq!(open_fds(), before);
}

#[test]
fn v1_rmdir_mid_watch_is_removed_not_oom() {
    let _s = serial();
    let Some(cg) = v1_memory_cgroup() else { return };
    let h = Harness::new(MonitorOptions::default());
    let opts = CgroupWatchOptions {
        oom: Some(true),
        pressure: Some("low".into()),
        ..Default::default()
    };
    let id = watch(&h, &cg, opts);
    let got = expect_removed_on_rmdir(&h, &cg, id);
    assert!(!got.iter().any(is_oom), "{got:?}");
    assert_eq!(h.monitor.watch_count(), 0);
}

/// The limit the memory hog runs into: 32 MiB.
const HOG_LIMIT: &str = "33554432";

/// Builds the memory hog: allocates and touches 1 MiB chunks until killed.
fn hog_cmd() -> String {
    // Python may be missing in minimal images; a shell string doubling is enough.
    "sh -c 'x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while :; do x=$x$x; done'".into()
}

/// A hog run to its OOM kill: the events up to its exit and where the OOM and exit stand.
struct OomRun {
    got: Vec<Event>,
    oom: usize,
    exit: usize,
    start: u64,
}

impl OomRun {
    /// Runs the hog in `cg` until its exit event (or `within`); fails unless cgroup watch
    /// `cw` reported an OOM with a kill before that exit, and the exit was a SIGKILL.
    #[track_caller]
    fn new(h: &Harness, cg: &TestCgroup, cw: WatchId, within: Duration) -> OomRun {
        let start = lifewatch_core::monotonic_ns();
        let mut hog = cg.spawn(&hog_cmd());
        let pw = h.monitor.watch_pid(hog.id() as i64).unwrap();
        let mut got = wait_for(h, |e| e.watch == pw, within);
        let _ = hog.wait();
        // The inotify notification may trail the exit: collect a little longer.
        got.extend(h.collect(1, Duration::from_millis(300)));
        let oom = got.iter().position(|e| e.watch == cw && is_oom(e));
        let exit = got.iter().position(|e| e.watch == pw);
        let (Some(oom), Some(exit)) = (oom, exit) else {
            panic!("{got:?}")
        };
        assert!(oom < exit, "OOM before exit: {got:?}");
        let run = OomRun {
            got,
            oom,
            exit,
            start,
        };
        assert!(run.oom_event().0 >= 1, "{:?}", run.got);
        assert!(
            matches!(
                &run.got[exit].kind,
                EventKind::Exit {
                    status: Some(lifewatch_core::ExitStatus::Signal { signo: 9, .. }),
                    ..
                }
            ),
            "{:?}",
            run.got
        );
        run
    }

    /// The OOM event's kills, deltas, counters and stats.
    fn oom_event(&self) -> (u64, &Counters, &Counters, &Stats) {
        let EventKind::Oom {
            kills,
            ref deltas,
            ref counters,
            ref stats,
            ..
        } = self.got[self.oom].kind
        else {
            unreachable!()
        };
        (kills, deltas, counters, stats)
    }

    /// Kills summed over every OOM event.
    fn kills_total(&self) -> u64 {
        self.got
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Oom { kills, .. } => Some(kills),
                _ => None,
            })
            .sum()
    }

    fn report(&self, what: &str) {
        let event = self.got[self.oom].time;
        eprintln!(
            "{what} OOM: event {:.1} ms after the hog started, at {:.6} s CLOCK_MONOTONIC (compare the kernel's \"Killed process\" line); kills {}; exit {:.1} ms",
            (event - self.start) as f64 / 1e6,
            event as f64 / 1e9,
            self.oom_event().0,
            (self.got[self.exit].time - self.start) as f64 / 1e6
        );
    }
}

fn oom_only() -> CgroupWatchOptions {
    CgroupWatchOptions {
        oom: Some(true),
        ..Default::default()
    }
}

#[test]
fn v1_oom_kill_comes_before_the_exit() {
    let _s = serial();
    let Some(cg) = v1_memory_cgroup() else { return };
    cg.limit_v1_memory(HOG_LIMIT);
    let h = Harness::new(MonitorOptions::default());
    let cw = watch(&h, &cg, oom_only());
    let run = OomRun::new(&h, &cg, cw, Duration::from_secs(30));
    let (_, _, counters, stats) = run.oom_event();
    assert!(counters["oom_kill"] >= 1);
    assert!(stats.memory_max.is_some());
    // The statistics are the OOM's: the memory's peak at the limit (read at the notification
    // or after the kill, the peak holds either way), and the counters as the event's.
    assert!(
        stats.memory_peak.unwrap() >= HOG_LIMIT.parse::<u64>().unwrap() / 10 * 9,
        "memory at the OOM: {stats:?}"
    );
    for (k, v) in counters {
        assert_eq!(stats.memory_events.get(k), Some(v), "{k}: {stats:?}");
    }
    let ooms = run.got.iter().filter(|e| is_oom(e)).count();
    assert_eq!(
        run.kills_total(),
        counters["oom_kill"],
        "every kill reported once ({ooms} events)"
    );
    run.report("v1");
}

/// The owner of a cgroup reads its counters once it is empty and, after removing it, ends the
/// watch: `removed` comes at once with the final kill count, not when the kernel has let go of
/// the v1 memory cgroup (tens of milliseconds later), and only once.
#[test]
fn a_watch_its_owner_removed_ends_at_once_with_every_kill() {
    let _s = serial();
    let Some(cg) = v1_memory_cgroup() else { return };
    cg.limit_v1_memory(HOG_LIMIT);
    let h = Harness::new(MonitorOptions::default());
    let cw = watch(&h, &cg, oom_only());
    let status = cg.spawn(&hog_cmd()).wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(h.monitor.check_cgroup(cw).unwrap());
    assert!(cg.rmdir());
    let removed_at = lifewatch_core::monotonic_ns();
    // `false` only if the kernel's word came first (the watch had ended): possible when this
    // thread is held up between the two calls (under valgrind, which runs one thread at a
    // time); the checks below hold either way, and fail if the call ends nothing.
    let _ = h.monitor.cgroup_removed(cw).unwrap();
    let mut got = expect(&h, cw, is_removed, Duration::from_secs(5));
    let removed = got.iter().find(|e| is_removed(e)).unwrap();
    let EventKind::Removed { counters, .. } = &removed.kind else {
        unreachable!()
    };
    let kills: u64 = got
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Oom { kills, .. } => Some(kills),
            _ => None,
        })
        .sum();
    assert!(counters["oom_kill"] >= 1, "{got:?}");
    assert_eq!(
        kills, counters["oom_kill"],
        "every kill reported before removed: {got:?}"
    );
    assert!(
        removed.time.saturating_sub(removed_at) < 5_000_000,
        "removed {} µs after the call",
        removed.time.saturating_sub(removed_at) / 1000
    );
    assert_eq!(h.monitor.watch_count(), 0);
    // The kernel's own word of the removal, when it comes, ends nothing twice.
    got = h.collect(1, Duration::from_millis(300));
    assert!(got.is_empty(), "{got:?}");
    assert!(!h.monitor.check_cgroup(cw).unwrap());
    assert!(!h.monitor.cgroup_removed(cw).unwrap());
}

#[test]
fn stale_oom_kills_are_not_reported() {
    let _s = serial();
    let Some(cg) = v1_memory_cgroup() else { return };
    cg.write("memory.limit_in_bytes", HOG_LIMIT);
    let mut hog = cg.spawn(&hog_cmd());
    let _ = hog.wait();
    let kills: u64 = std::fs::read_to_string(cg.dir.join("memory.oom_control"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ").map(|v| v.parse().unwrap()))
        .unwrap();
    assert!(kills >= 1);
    let h = Harness::new(MonitorOptions::default());
    watch(&h, &cg, oom_only());
    let got = h.collect(1, Duration::from_millis(300));
    assert!(got.is_empty(), "{got:?}");
}

/// Runs `cmd` in `cg` until some watch reports pressure (20 s at most), then kills it.
fn pressure_events(h: &Harness, cg: &TestCgroup, cmd: &str) -> Vec<Event> {
    let mut hog = cg.spawn(cmd);
    let got = wait_for(h, is_pressure, Duration::from_secs(20));
    let _ = hog.kill();
    let _ = hog.wait();
    got
}

#[test]
fn v1_pressure_level_under_reclaim() {
    let _s = serial();
    let Some(cg) = v1_memory_cgroup() else { return };
    cg.write("memory.limit_in_bytes", HOG_LIMIT);
    let h = Harness::new(MonitorOptions::default());
    let opts = CgroupWatchOptions {
        oom: Some(false),
        events: Some(false),
        pressure: Some("low".into()),
        ..Default::default()
    };
    let id = watch(&h, &cg, opts);
    let got = pressure_events(&h, &cg, &hog_cmd());
    assert_any(&got, |e| {
        e.watch == id
            && matches!(&e.kind, EventKind::Pressure { level: Some(l), resource, .. } if l == "low" && resource == "memory")
    });
}

#[test]
fn create_watch_delete_cycles_return_to_baseline() {
    let _s = serial();
    let l = layout();
    let mounts: Vec<PathBuf> =
        l.v1.get("memory")
            .iter()
            .map(|h| h.mount.clone())
            .chain(l.unified.iter().map(|h| h.mount.clone()))
            .collect();
    if mounts.is_empty() {
        return;
    }
    let h = Harness::new(MonitorOptions::default());
    // Warm up: the lazily created inotify fd stays for the monitor's life.
    let n: usize = std::env::var("LIFEWATCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let before = open_fds();
    let mut removed = 0;
    for i in 0..n {
        let rel = format!("lifewatch-test-cycle-{}-{i}", std::process::id());
        for m in &mounts {
            std::fs::create_dir(m.join(&rel)).unwrap();
        }
        let id = h
            .monitor
            .watch_cgroup(&rel, &CgroupWatchOptions::default())
            .unwrap();
        if i % 2 == 0 {
            assert!(h.monitor.unwatch(id).unwrap());
        }
        for m in &mounts {
            std::fs::remove_dir(m.join(&rel)).unwrap();
        }
        if i % 2 == 1 {
            let got = wait_for(
                &h,
                |e| e.watch == id && is_removed(e),
                Duration::from_secs(5),
            );
            assert!(
                got.iter().any(|e| e.watch == id && is_removed(e)),
                "cycle {i}: {got:?}"
            );
            removed += 1;
        }
        if i == 0 {
            // The first watch created the monitor's inotify fd (kept for its life).
            assert!(open_fds() <= before + 1);
        }
    }
    assert_eq!(h.monitor.watch_count(), 0);
    let after = open_fds();
    eprintln!("cycles: {n} ({removed} ended by removal); fds before {before}, after {after}");
    assert!(after <= before + 1, "before {before}, after {after}");
    h.monitor.close();
    assert!(open_fds() <= before);
}

/// A child of the unified hierarchy with the memory controller (a v2 host or the VM), with
/// no swap for its members where the kernel has swap accounting.
fn v2_memory_cgroup() -> Option<TestCgroup> {
    let Some((mount, true)) = unified() else {
        eprintln!("skip: no cgroup v2 memory controller (hybrid host: run `npm run test:vm`)");
        return None;
    };
    let cg = TestCgroup::new(&mount)?;
    if cg.dir.join("memory.swap.max").exists() {
        cg.write("memory.swap.max", "0");
    }
    Some(cg)
}

#[test]
fn v2_oom_kill_delta_one_before_the_exit() {
    let _s = serial();
    let Some(cg) = v2_memory_cgroup() else { return };
    cg.write("memory.max", HOG_LIMIT);
    let h = Harness::new(MonitorOptions::default());
    let opts = CgroupWatchOptions {
        events: Some(true),
        ..oom_only()
    };
    let cw = watch(&h, &cg, opts);
    let run = OomRun::new(&h, &cg, cw, Duration::from_secs(60));
    let (kills, deltas, counters, _) = run.oom_event();
    assert_eq!(kills, 1, "{:?}", run.got);
    assert_eq!(counters["oom_kill"], 1);
    // The OOM and its kill in one event. `oom` may count 2: a charge that fails again while
    // the victim is still exiting is another OOM, with no second kill (seen once in the VM).
    assert!(
        deltas["oom"] >= 1,
        "the OOM and its kill in one event: {deltas:?}"
    );
    assert!(deltas["max"] >= 1, "{deltas:?}");
    assert_eq!(run.kills_total(), 1, "reported once: {:?}", run.got);
    run.report("v2");
    assert!(cg.rmdir());
    expect(
        &h,
        cw,
        |e| matches!(&e.kind, EventKind::Removed { counters, .. } if counters["oom_kill"] == 1),
        Duration::from_secs(5),
    );
}

#[test]
fn v2_psi_fires_under_sustained_pressure() {
    let _s = serial();
    let Some(cg) = v2_memory_cgroup() else { return };
    if !cg.dir.join("memory.pressure").exists() {
        eprintln!("skip: no memory.pressure (kernel without PSI, or psi=0)");
        return;
    }
    // Sustained reclaim: memory.high well below what the hog wants, no OOM limit.
    cg.write("memory.high", "16777216");
    let (h, id) = expect_psi(
        &cg,
        Resource::Memory,
        "sh -c 'x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; i=0; while [ $i -lt 20 ]; do x=$x$x; i=$((i+1)); done; sleep 30'",
    );
    // rmdir wakes the trigger (POLLFREE): the watch ends with `removed`.
    expect_removed_on_rmdir(&h, &cg, id);
}

/// Watches `cg` with one PSI trigger on `resource` (some 50 ms in the shortest window the
/// caller may use), runs `hog` in it and expects the trigger's event; returns the monitor
/// and the watch.
fn expect_psi(cg: &TestCgroup, resource: Resource, hog: &str) -> (Harness, WatchId) {
    let h = Harness::new(MonitorOptions::default());
    let trig = PsiTrigger {
        resource,
        full: false,
        stall_us: 50_000,
        window_us: if lifewatch_core::cgroup::watch::psi::privileged() {
            500_000
        } else {
            2_000_000
        },
    };
    let opts = CgroupWatchOptions {
        oom: Some(false),
        events: Some(false),
        psi: vec![trig],
        ..Default::default()
    };
    let id = watch(&h, cg, opts);
    let got = pressure_events(&h, cg, hog);
    assert_any(&got, |e| {
        e.watch == id
            && matches!(&e.kind, EventKind::Pressure { trigger: Some(t), resource: r, cgroup: Some(_), .. } if *t == trig.spec() && r == resource.as_str())
    });
    (h, id)
}

/// A PSI trigger's poll clears its event: the source must not sit in a nested epoll set (the
/// monitor's ready fd), which polls once to tell its own readiness and again to report. CPU
/// pressure works on any cgroup2 directory, controllers or not (the unified one of a hybrid
/// host too).
#[test]
fn v2_cpu_psi_fires_under_cpu_contention() {
    let _s = serial();
    let Some(cg) = unified_cgroup() else { return };
    if !cg.dir.join("cpu.pressure").exists() {
        eprintln!("skip: no cpu.pressure (kernel without PSI, or psi=0)");
        return;
    }
    // More busy loops than CPUs: runnable tasks of the cgroup wait for a CPU.
    let loops = 2 * std::thread::available_parallelism().map_or(2, |n| n.get()) + 2;
    expect_psi(
        &cg,
        Resource::Cpu,
        &format!("sh -c 'for i in $(seq {loops}); do (while :; do :; done) & done; wait'"),
    );
}

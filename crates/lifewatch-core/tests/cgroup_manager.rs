//! The cgroup manager and spawn against the real kernel: this host (hybrid: v1 memory,
//! pids, cpu, freezer; a controller-less unified hierarchy) and the cgroup-v2 VM
//! (scripts/test-vm.mjs). Needs root; skips (passing, with a note) otherwise.
//! Test cgroups are named `lifewatch-test-<pid>-<name>` and removed at the end.

mod common;

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use common::{open_fds, serial, Harness};
use lifewatch_core::cgroup::manage::kill::KillMethod;
use lifewatch_core::cgroup::manage::limits::{Input, RawLimits};
use lifewatch_core::cgroup::{files, Cgroup, Layout, Mode};
use lifewatch_core::spawn::{spawn, Placement, SpawnOptions, Stdio};
use lifewatch_core::{Code, EventKind, ExitStatus, MonitorOptions};

fn name(what: &str) -> String {
    format!("lifewatch-test-{}-{what}", std::process::id())
}

fn root() -> bool {
    let ok = rustix::process::geteuid().is_root();
    if !ok {
        eprintln!("skipped: needs root to create cgroups");
    }
    ok
}

fn layout() -> Layout {
    Layout::detect().unwrap()
}

fn text(s: &str) -> Option<Input> {
    Some(Input::Text(s.into()))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// Removes a leftover test cgroup (a failed earlier run) so tests start clean.
fn fresh(l: &Layout, n: &str) {
    if let Ok(cg) = Cgroup::open(l, n) {
        let _ = cg.delete(true, Some(Duration::from_secs(5)));
    }
}

/// What a test of one cgroup starts with: the other tests kept out, the layout, and the name
/// `what` gives, with a leftover of that name removed. `None` (the test skips) when not root.
fn setup(what: &str) -> Option<(MutexGuard<'static, ()>, Layout, String)> {
    let g = serial();
    if !root() {
        return None;
    }
    let l = layout();
    let n = name(what);
    fresh(&l, &n);
    Some((g, l, n))
}

/// The orphans a test leaves: this process is their subreaper, so reap them by PID (on
/// machines whose PID 1 does not reap, an orphan reparented there stays a zombie for good).
fn subreaper() {
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

fn reap(pids: &[i32]) {
    for &p in pids {
        unsafe { libc::waitpid(p, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

fn sleeper(cg: &Cgroup, h: &Harness, cmd: &str) -> (u32, i32) {
    let mut o = SpawnOptions::new("sh", vec!["-c".into(), cmd.into()]);
    o.stdio = [Stdio::Null; 3];
    let s = h.monitor.spawn(&o, Some(&cg.spawn_dirs())).unwrap();
    (s.watch, s.pid)
}

/// Waits until the cgroup lists `n` processes, by polling procs (test setup only).
fn until_procs(cg: &Cgroup, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = cg.procs().unwrap();
        if p.len() >= n || Instant::now() > deadline {
            return p;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn create_writes_limits_in_every_hierarchy_and_delete_removes_them() {
    let Some((_g, l, n)) = setup("limits") else {
        return;
    };
    let raw = RawLimits {
        memory: text("64M"),
        swap: Some(Input::Number(0.0)),
        pids: Some(Input::Number(32.0)),
        cpu: Some(Input::Number(0.5)),
        cpu_weight: text("100"),
    };
    let limits = raw.parse().unwrap();
    let cg = Cgroup::create(&l, &n, &limits).unwrap();
    let dirs = cg.dirs();
    eprintln!("mode {} dirs {dirs:?}", l.mode().as_str());
    for (_, d) in &dirs {
        assert!(d.is_dir(), "{}", d.display());
    }
    if let Some(m) = cg.v1_dir("memory") {
        assert_eq!(read(m, "memory.limit_in_bytes"), "67108864");
        if m.join("memory.memsw.limit_in_bytes").exists() {
            assert_eq!(read(m, "memory.memsw.limit_in_bytes"), "67108864");
        }
    } else {
        let u = cg.unified_dir().unwrap();
        assert_eq!(read(u, "memory.max"), "67108864");
        if u.join("memory.swap.max").exists() {
            assert_eq!(read(u, "memory.swap.max"), "0");
        }
    }
    let pids_dir = cg.v1_dir("pids").or(cg.unified_dir()).unwrap();
    assert_eq!(read(pids_dir, "pids.max"), "32");
    if let Some(c) = cg.v1_dir("cpu") {
        assert_eq!(read(c, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(c, "cpu.cfs_period_us"), "100000");
        assert_eq!(read(c, "cpu.shares"), "2597");
    } else {
        let u = cg.unified_dir().unwrap();
        assert_eq!(read(u, "cpu.max"), "50000 100000");
        assert_eq!(read(u, "cpu.weight"), "100");
    }
    if l.mode() == Mode::Hybrid {
        let u = cg.unified_dir().unwrap();
        assert!(u.join("cgroup.kill").exists() && u.join("cgroup.freeze").exists());
    }
    let usage = cg.usage().unwrap();
    assert_eq!(usage.stats.memory_max, Some(64 << 20));
    assert_eq!(usage.pids_max, Some(32));
    assert_eq!(usage.procs, 0);
    cg.delete(false, Some(Duration::from_secs(5))).unwrap();
    for (_, d) in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    // Opened again: it no longer exists anywhere.
    assert_eq!(Cgroup::open(&l, &n).unwrap_err().code, Code::NoSuchCgroup);
}

#[test]
fn bad_limits_and_paths_write_nothing() {
    let _g = serial();
    let l = layout();
    let bad: &[(&str, RawLimits)] = &[
        (
            "memory newline",
            RawLimits {
                memory: text("64M\n1"),
                ..Default::default()
            },
        ),
        (
            "memory negative",
            RawLimits {
                memory: Some(Input::Number(-1.0)),
                ..Default::default()
            },
        ),
        (
            "memory unit",
            RawLimits {
                memory: text("64Q"),
                ..Default::default()
            },
        ),
        (
            "memory overflow",
            RawLimits {
                memory: text("1e400"),
                ..Default::default()
            },
        ),
        (
            "memory NaN",
            RawLimits {
                memory: Some(Input::Number(f64::NAN)),
                ..Default::default()
            },
        ),
        (
            "pids control",
            RawLimits {
                pids: text("5\t"),
                ..Default::default()
            },
        ),
        (
            "cpu zero",
            RawLimits {
                cpu: Some(Input::Number(0.0)),
                ..Default::default()
            },
        ),
        (
            "weight range",
            RawLimits {
                cpu_weight: Some(Input::Number(0.0)),
                ..Default::default()
            },
        ),
    ];
    for (what, raw) in bad {
        assert_eq!(
            raw.parse().unwrap_err().code,
            Code::InvalidArgument,
            "{what}"
        );
    }
    let mut bad = vec!["../escape", "a/../../b", "x\ny", "/tmp", "/proc/self"];
    if root() {
        // A file of the hierarchy given as a cgroup path (mkdir: EEXIST on a file).
        bad.push("cgroup.procs");
        // Only a file where a v1 memory hierarchy is mounted there; on a v2 host the same
        // path is a legitimate new cgroup.
        let v1_file = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
        if std::path::Path::new(v1_file).is_file() {
            bad.push(v1_file);
        }
    }
    for p in bad {
        let e = Cgroup::create(&l, p, &Default::default()).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument, "{p:?}");
    }
    assert_eq!(
        Cgroup::create(&l, "/", &Default::default())
            .unwrap_err()
            .code,
        Code::InvalidArgument
    );
    if root() && l.mode() != Mode::V2 {
        // v1: swap alone cannot be expressed (memsw is memory + swap); refused before mkdir.
        let n = name("swaponly");
        let lim = RawLimits {
            swap: text("0"),
            ..Default::default()
        }
        .parse()
        .unwrap();
        let e = Cgroup::create(&l, &n, &lim).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        assert_eq!(Cgroup::open(&l, &n).unwrap_err().code, Code::NoSuchCgroup);
    }
}

#[test]
fn spawned_child_is_in_the_cgroup_before_it_execs() {
    let Some((_g, l, n)) = setup("spawn") else {
        return;
    };
    let cg = Cgroup::create(&l, &n, &Default::default()).unwrap();
    let out = std::env::temp_dir().join(format!("{n}.out"));
    let f = std::fs::File::create(&out).unwrap();
    // cat is the first program the child runs: what it reads is where it was at exec.
    let mut o = SpawnOptions::new("cat", vec!["/proc/self/cgroup".into()]);
    o.stdio = [Stdio::Null, Stdio::Fd(f.as_raw_fd()), Stdio::Inherit];
    let h = Harness::new(MonitorOptions::default());
    let s = h.monitor.spawn(&o, Some(&cg.spawn_dirs())).unwrap();
    drop(f);
    let ev = h.collect(1, Duration::from_secs(10));
    assert!(
        matches!(
            ev[0].kind,
            EventKind::Exit {
                status: Some(ExitStatus::Code(0)),
                ..
            }
        ),
        "{ev:?}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    eprintln!(
        "placement {} /proc/self/cgroup:\n{text}",
        s.placement.as_str()
    );
    let want = format!("/{n}");
    let line = |pred: &dyn Fn(&str) -> bool| {
        text.lines()
            .find(|l| pred(l))
            .unwrap_or_else(|| panic!("no such line in {text}"))
            .rsplit(':')
            .next()
            .unwrap()
            .to_string()
    };
    if l.unified.is_some() {
        assert_eq!(line(&|l| l.starts_with("0::")), want);
        assert_eq!(s.placement, Placement::CloneIntoCgroup);
    }
    if l.v1.contains_key("memory") {
        assert_eq!(line(&|l| l.split(':').nth(1) == Some("memory")), want);
        assert_eq!(line(&|l| l.split(':').nth(1) == Some("pids")), want);
    }
    cg.delete(true, Some(Duration::from_secs(5))).unwrap();
}

#[test]
fn kill_resolves_only_when_the_whole_tree_is_gone() {
    let Some((_g, l, n)) = setup("tree") else {
        return;
    };
    subreaper();
    let cg = Cgroup::create(&l, &n, &Default::default()).unwrap();
    let h = Harness::new(MonitorOptions::default());
    let (watch, pid) = sleeper(&cg, &h, "for i in $(seq 50); do sleep 1000 & done; wait");
    let members = until_procs(&cg, 51);
    assert_eq!(members.len(), 51, "{members:?}");
    let t = Instant::now();
    let report = cg.kill(Some(Duration::from_secs(10))).unwrap();
    let took = t.elapsed();
    eprintln!("kill of 51 processes: {report:?} in {took:?}");
    if cg.has_cgroup_kill() {
        assert_eq!(report.method, KillMethod::CgroupKill);
    }
    // Empty at once, in every hierarchy, and populated 0.
    assert!(cg.procs().unwrap().is_empty());
    if let Some(u) = cg.unified_dir() {
        assert_eq!(
            files::keyed(&read(u, "cgroup.events"), "populated"),
            Some(0)
        );
    }
    for p in &members {
        if *p != pid {
            let st = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            assert!(
                st.is_empty() || st.contains(") Z "),
                "{p} still running: {st}"
            );
        }
    }
    let ev = h.collect(1, Duration::from_secs(5));
    assert!(
        matches!(
            ev[0].kind,
            EventKind::Exit {
                status: Some(ExitStatus::Signal { signo: 9, .. }),
                ..
            }
        ) && ev[0].watch == watch,
        "{ev:?}"
    );
    reap(&members);
    cg.delete(false, Some(Duration::from_secs(5))).unwrap();
}

#[test]
fn kill_by_signals_through_pidfds_where_there_is_no_cgroup_kill() {
    let _g = serial();
    // A cgroup that exists only in v1 hierarchies (pure-v1 behaviour): no cgroup.kill, no
    // populated events; members are frozen (v1 freezer), signalled and awaited by pidfd.
    if !root() {
        return;
    }
    let l = layout();
    if l.v1("memory").is_err() || l.v1("freezer").is_err() {
        eprintln!("skipped: no v1 memory and freezer hierarchies");
        return;
    }
    subreaper();
    let n = name("v1only");
    fresh(&l, &n);
    let mut dirs = Vec::new();
    for c in ["memory", "pids", "freezer"] {
        if let Ok(h) = l.v1(c) {
            let d = h.mount.join(&n);
            std::fs::create_dir_all(&d).unwrap();
            dirs.push(d);
        }
    }
    let cg = Cgroup::open(&l, &n).unwrap();
    assert!(cg.unified_dir().is_none() && !cg.has_cgroup_kill());
    let h = Harness::new(MonitorOptions::default());
    let (_, _pid) = sleeper(&cg, &h, "for i in $(seq 20); do sleep 1000 & done; wait");
    let members = until_procs(&cg, 21);
    assert_eq!(members.len(), 21);
    // freeze/thaw through freezer.state
    cg.set_state(true, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(cg.usage().unwrap().frozen, Some(true));
    cg.set_state(false, Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    let report = cg.kill(Some(Duration::from_secs(10))).unwrap();
    eprintln!("v1 kill of 21 processes: {report:?} in {:?}", t.elapsed());
    assert_eq!(report.method, KillMethod::Signal);
    assert!(report.signalled >= 21);
    assert!(cg.procs().unwrap().is_empty());
    reap(&members);
    h.collect(1, Duration::from_secs(5));
    cg.delete(false, Some(Duration::from_secs(5))).unwrap();
    for d in dirs {
        assert!(!d.exists());
    }
}

#[test]
fn freeze_and_thaw_report_the_kernels_state() {
    let Some((_g, l, n)) = setup("freeze") else {
        return;
    };
    let cg = Cgroup::create(&l, &n, &Default::default()).unwrap();
    let h = Harness::new(MonitorOptions::default());
    let (_, pid) = sleeper(&cg, &h, "exec sleep 1000");
    until_procs(&cg, 1);
    cg.set_state(true, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(cg.usage().unwrap().frozen, Some(true));
    if let Some(u) = cg.unified_dir() {
        assert_eq!(files::keyed(&read(u, "cgroup.events"), "frozen"), Some(1));
    }
    cg.set_state(false, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(cg.usage().unwrap().frozen, Some(false));
    // Killing a frozen cgroup works too.
    cg.set_state(true, Some(Duration::from_secs(5))).unwrap();
    cg.kill(Some(Duration::from_secs(10))).unwrap();
    let ev = h.collect(1, Duration::from_secs(5));
    assert!(matches!(ev[0].kind, EventKind::Exit { pid: p, .. } if p == pid));
    cg.delete(false, Some(Duration::from_secs(5))).unwrap();
}

#[test]
fn delete_waits_for_the_last_process_then_times_out_as_busy() {
    let Some((_g, l, n)) = setup("busy") else {
        return;
    };
    let cg = Cgroup::create(&l, &n, &Default::default()).unwrap();
    let h = Harness::new(MonitorOptions::default());
    let (watch, _) = sleeper(&cg, &h, "exec sleep 1000");
    until_procs(&cg, 1);
    let t = Instant::now();
    let e = cg
        .delete(false, Some(Duration::from_millis(300)))
        .unwrap_err();
    assert_eq!(e.code, Code::Timeout, "{e:?}");
    assert_eq!(
        e.errno,
        Some(libc::EBUSY),
        "the kernel's refusal stays on the error"
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    // A process that exits while delete waits: delete retries and succeeds.
    let killer = std::thread::spawn({
        let m = &h.monitor as *const _ as usize;
        move || {
            std::thread::sleep(Duration::from_millis(200));
            // SAFETY: the monitor outlives this thread (joined below).
            let m = unsafe { &*(m as *const lifewatch_core::Monitor) };
            m.signal(watch, libc::SIGKILL).unwrap();
        }
    });
    let t = Instant::now();
    cg.delete(false, Some(Duration::from_secs(10))).unwrap();
    killer.join().unwrap();
    eprintln!(
        "delete succeeded {:?} after the kill was sent",
        t.elapsed().saturating_sub(Duration::from_millis(200))
    );
    for (_, d) in cg.dirs() {
        assert!(!d.exists());
    }
}

#[test]
fn an_empty_cgroup_is_deleted_before_delete_async_returns() {
    let Some((_g, l, n)) = setup("inline") else {
        return;
    };
    // The usual deletion (a task's process has exited) needs no kill and no wait: it is done
    // on the calling thread, without a hop to the waiter thread. A busy one still waits there.
    let cg = Cgroup::create(&l, &n, &Default::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    cg.delete_async(true, None, Box::new(move |r| tx.send(r).unwrap()))
        .unwrap();
    let r = rx.try_recv().expect("done before delete_async returned");
    r.unwrap();
    for (_, d) in cg.dirs() {
        assert!(!d.exists(), "{} removed", d.display());
    }

    let busy = Cgroup::create(&l, &n, &Default::default()).unwrap();
    let h = Harness::new(MonitorOptions::default());
    sleeper(&busy, &h, "exec sleep 1000");
    until_procs(&busy, 1);
    let (tx, rx) = std::sync::mpsc::channel();
    busy.delete_async(
        true,
        Some(Duration::from_secs(10)),
        Box::new(move |r| tx.send(r).unwrap()),
    )
    .unwrap();
    assert!(rx.try_recv().is_err(), "a busy cgroup is not done at once");
    rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    for (_, d) in busy.dirs() {
        assert!(!d.exists(), "{} removed", d.display());
    }
}

#[test]
fn wait_empty_is_cancellable_and_resolves_on_exit() {
    let Some((_g, l, n)) = setup("wait") else {
        return;
    };
    let cg = Cgroup::create(&l, &n, &Default::default()).unwrap();
    assert!(
        cg.wait_empty(None).unwrap(),
        "an empty cgroup is empty at once"
    );
    let h = Harness::new(MonitorOptions::default());
    let (watch, _) = sleeper(&cg, &h, "exec sleep 1000");
    until_procs(&cg, 1);
    // A cancelled wait ends at once with ERR_CLOSED, and leaves the waiter able to run others.
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = cg
        .wait_empty_async(None, Box::new(move |r| drop(tx.send(r))))
        .unwrap();
    handle.cancel();
    let r = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(r.unwrap_err().code, Code::Closed);
    assert!(!cg.wait_empty(Some(Duration::from_millis(50))).unwrap());
    h.monitor.signal(watch, libc::SIGKILL).unwrap();
    assert!(cg.wait_empty(Some(Duration::from_secs(10))).unwrap());
    cg.delete(false, Some(Duration::from_secs(5))).unwrap();
}

#[test]
fn pids_max_is_enforced() {
    let Some((_g, l, n)) = setup("pidsmax") else {
        return;
    };
    subreaper();
    let lim = RawLimits {
        pids: Some(Input::Number(5.0)),
        ..Default::default()
    }
    .parse()
    .unwrap();
    let cg = Cgroup::create(&l, &n, &lim).unwrap();
    let h = Harness::new(MonitorOptions::default());
    // 10 background sleepers in a cgroup allowing 5 processes: some forks must fail.
    let out = std::env::temp_dir().join(format!("{n}.out"));
    let f = std::fs::File::create(&out).unwrap();
    let mut o = SpawnOptions::new(
        "sh",
        vec!["-c".into(), "n=0; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1000 & n=$((n+1)); done; echo started; exec sleep 1000".into()],
    );
    o.stdio = [
        Stdio::Null,
        Stdio::Fd(f.as_raw_fd()),
        Stdio::Fd(f.as_raw_fd()),
    ];
    h.monitor.spawn(&o, Some(&cg.spawn_dirs())).unwrap();
    drop(f);
    let members = until_procs(&cg, 5);
    std::thread::sleep(Duration::from_millis(300));
    let usage = cg.usage().unwrap();
    let log = std::fs::read_to_string(&out).unwrap_or_default();
    eprintln!("pids.current {:?}, log: {log}", usage.stats.pids_current);
    assert!(usage.stats.pids_current.unwrap() <= 5);
    assert!(cg.procs().unwrap().len() <= 5);
    assert!(
        log.to_lowercase().contains("fork") || log.contains("Resource temporarily unavailable"),
        "{log}"
    );
    let all: Vec<i32> = cg.procs().unwrap().into_iter().chain(members).collect();
    cg.delete(true, Some(Duration::from_secs(10))).unwrap();
    reap(&all);
    let _ = std::fs::remove_file(&out);
}

#[test]
fn five_hundred_create_delete_cycles_leak_no_fd() {
    let _g = serial();
    if !root() {
        return;
    }
    let l = layout();
    let lim = RawLimits {
        memory: text("64M"),
        pids: Some(Input::Number(16.0)),
        ..Default::default()
    }
    .parse()
    .unwrap();
    let base = open_fds();
    let counted = lifewatch_core::fd::stats(lifewatch_core::FdKind::Control);
    let cycles: usize = std::env::var("LIFEWATCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let t = Instant::now();
    for i in 0..cycles {
        let n = name(&format!("cycle{}", i % 4));
        let cg = Cgroup::create(&l, &n, &lim).unwrap();
        let _ = cg.usage().unwrap();
        cg.delete(true, Some(Duration::from_secs(5))).unwrap();
    }
    let after = open_fds();
    let counted_after = lifewatch_core::fd::stats(lifewatch_core::FdKind::Control);
    eprintln!(
        "{cycles} cycles in {:?}: open fds {base} -> {after}; control fds opened {} (in use {} -> {})",
        t.elapsed(),
        counted_after.allocated - counted.allocated,
        counted.in_use,
        counted_after.in_use
    );
    assert_eq!(after, base);
}

#[test]
fn spawn_reports_exec_failures_and_kills_nothing_else() {
    let Some((_g, l, n)) = setup("execfail") else {
        return;
    };
    let cg = Cgroup::create(&l, &n, &Default::default()).unwrap();
    let e = spawn(
        &SpawnOptions::new("/nonexistent/lifewatch", vec![]),
        Some(&cg.spawn_dirs()),
    )
    .unwrap_err();
    assert_eq!(e.syscall, Some("execve"));
    assert_eq!(e.errno, Some(libc::ENOENT));
    // The failed child was reaped and left the cgroup.
    assert!(cg.procs().unwrap().is_empty());
    let dup: HashSet<i32> = cg.procs().unwrap().into_iter().collect();
    assert!(dup.is_empty());
    let _ = spawn(&SpawnOptions::new("true", vec![]), Some(&cg.spawn_dirs())).map(|c| {
        rustix::process::waitid(
            rustix::process::WaitId::PidFd(c.process.pidfd().unwrap()),
            rustix::process::WaitIdOptions::EXITED,
        )
        .unwrap();
    });
    cg.delete(false, Some(Duration::from_secs(5))).unwrap();
}

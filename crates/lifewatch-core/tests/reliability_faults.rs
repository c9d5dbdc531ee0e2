//! Reliability part 5 (core side): a process that exits before or during its registration is
//! reported once, with what the kernel still knows, and nothing leaks. "During" is forced
//! with failpoint hooks between the steps of `watch_pid`.

mod common;
mod reliability;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{open_fds, serial, Harness};
use lifewatch_core::{failpoint, Code, EventKind, ExitSource, ExitStatus, MonitorOptions};
use reliability::{psi_trigger, report, Snapshot};

const WITHIN: Duration = Duration::from_secs(10);

fn modes() -> [(&'static str, MonitorOptions); 2] {
    [
        ("pidfd", MonitorOptions::default()),
        (
            "fallback",
            MonitorOptions {
                force_fallback: true,
                ..Default::default()
            },
        ),
    ]
}

fn one_exit(h: &Harness) -> (Option<ExitStatus>, ExitSource) {
    let mut evs = h.collect(1, WITHIN);
    // Anything after the first is a duplicate.
    evs.extend(h.collect(1, Duration::from_millis(20)));
    assert_eq!(evs.len(), 1, "exactly one event: {evs:?}");
    match &evs[0].kind {
        EventKind::Exit { status, source, .. } => (*status, *source),
        other => panic!("not an exit: {other:?}"),
    }
}

#[test]
fn exited_before_registration() {
    let _serial = serial();
    let fds = open_fds();
    let before = Snapshot::take();
    for (mode, opts) in modes() {
        // Exited, not reaped: a zombie reports its status at once.
        let mut child = Command::new("sh").args(["-c", "exit 6"]).spawn().unwrap();
        while lifewatch_core::process::procstat::read(child.id() as i32)
            .is_some_and(|s| !s.is_zombie())
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let h = Harness::new(opts);
        h.monitor.watch_pid(child.id() as i64).unwrap();
        let (status, _) = one_exit(&h);
        assert_eq!(status, Some(ExitStatus::Code(6)), "{mode}");
        // Exited and reaped: nothing to watch.
        child.wait().unwrap();
        let err = h.monitor.watch_pid(child.id() as i64).unwrap_err();
        assert_eq!(err.code, Code::NoSuchProcess, "{mode}: {err}");
        h.monitor.close();
    }
    assert_eq!(open_fds(), fds);
    assert_eq!(Snapshot::take().in_use(), before.in_use());
    report(
        "faults",
        "core: process exited before registration",
        0,
        0,
        "",
    );
}

/// Kills and reaps `child` at failpoint hook `at`, i.e. in the middle of `watch_pid`.
fn die_at(scope: &failpoint::Scope, at: &'static str, child: Child) {
    let child = Arc::new(Mutex::new(child));
    scope.on_hook(at, move || {
        let mut c = child.lock().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    });
}

#[test]
fn exits_during_registration_are_reported_once() {
    let _serial = serial();
    let fds = open_fds();
    let before = Snapshot::take();
    let scope = failpoint::scope();
    let cases: [(&str, MonitorOptions, &'static str); 2] = [
        (
            "pidfd: after pidfd_open, before registering",
            MonitorOptions::default(),
            "pid_watch.opened",
        ),
        (
            "fallback: after the existence check, before registering",
            MonitorOptions {
                force_fallback: true,
                ..Default::default()
            },
            "fallback.checked",
        ),
    ];
    let mut statuses = Vec::new();
    for (name, opts, at) in cases {
        for _ in 0..20 {
            scope.reset();
            let child = Command::new("sleep")
                .arg("30")
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            let pid = child.id() as i64;
            die_at(&scope, at, child);
            let h = Harness::new(opts.clone());
            h.monitor.watch_pid(pid).unwrap();
            let (status, source) = one_exit(&h);
            if opts.force_fallback {
                assert_eq!(source, ExitSource::Fallback, "{name}");
                // Reaped by its parent before we could look: gone without a status.
                assert_eq!(status, None, "{name}");
            } else {
                assert_eq!(source, ExitSource::Pidfd, "{name}");
                // Linux 6.15+ keeps the status of a reaped process in its pidfd.
                assert!(
                    status.is_none()
                        || status
                            == Some(ExitStatus::Signal {
                                signo: 9,
                                core: false
                            }),
                    "{name}: {status:?}"
                );
            }
            assert_eq!(h.monitor.watch_count(), 0, "{name}: the watch retired");
            statuses.push(format!("{status:?}"));
            h.monitor.close();
        }
    }
    drop(scope);
    statuses.dedup();
    eprintln!("statuses seen: {statuses:?}");
    assert_eq!(open_fds(), fds);
    assert_eq!(Snapshot::take().in_use(), before.in_use());
    report(
        "faults",
        "core: process exits during registration (40 runs)",
        0,
        0,
        "",
    );
}

/// A cgroup removed while watched, in the v1 memory hierarchy (OOM + pressure eventfds) and
/// in the unified one (cgroup.events through inotify + a PSI trigger): each watch ends with
/// one `removed` event and every fd it held is released without unwatch or close.
#[test]
fn cgroup_removed_mid_watch_ends_the_watch_and_releases_its_fds() {
    use lifewatch_core::cgroup::Layout;
    use lifewatch_core::CgroupWatchOptions;

    let _serial = serial();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to create cgroups");
        return;
    }
    let l = Layout::detect().unwrap();
    let psi = psi_trigger();
    let kinds: Vec<(&str, std::path::PathBuf, CgroupWatchOptions)> = [
        l.v1.get("memory").map(|h| {
            (
                "v1 memory (OOM + pressure)",
                h.mount.clone(),
                CgroupWatchOptions {
                    oom: Some(true),
                    events: Some(false),
                    pressure: Some("low".into()),
                    ..Default::default()
                },
            )
        }),
        l.unified.as_ref().map(|h| {
            let has_psi = h.mount.join("memory.pressure").exists();
            (
                "unified (events + PSI)",
                h.mount.clone(),
                CgroupWatchOptions {
                    oom: Some(false),
                    events: Some(true),
                    psi: if has_psi { vec![psi] } else { vec![] },
                    ..Default::default()
                },
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut tried = 0;
    let mut leaked = 0i64;
    for (what, mount, opts) in kinds {
        let rel = format!("lifewatch-test-{}-removed", std::process::id());
        let dir = mount.join(&rel);
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).unwrap();
        let fds0 = open_fds();
        let h = Harness::new(MonitorOptions::default());
        let fds = open_fds();
        let before = Snapshot::take();
        let id = h.monitor.watch_cgroup(&rel, &opts).unwrap();
        assert!(open_fds() > fds, "{what}: the watch holds fds");
        std::fs::remove_dir(&dir).unwrap();
        let mut evs = Vec::new();
        let deadline = std::time::Instant::now() + WITHIN;
        while !evs
            .iter()
            .any(|e: &lifewatch_core::Event| matches!(e.kind, EventKind::Removed { .. }))
            && std::time::Instant::now() < deadline
        {
            evs.extend(h.collect(1, Duration::from_millis(200)));
        }
        evs.extend(h.collect(1, Duration::from_millis(50)));
        let removed: Vec<_> = evs
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Removed { .. }))
            .collect();
        assert_eq!(removed.len(), 1, "{what}: one removed event: {evs:?}");
        assert_eq!(removed[0].watch, id, "{what}");
        assert_eq!(h.monitor.watch_count(), 0, "{what}: the watch ended");
        // Released by the removal itself, before unwatch or close; only the monitor's own
        // inotify fd (made by the first cgroup.events watch, shared by all) stays open
        // until close.
        let after = Snapshot::take();
        let monitor_inotify = after.kind(lifewatch_core::FdKind::Inotify).in_use
            - before.kind(lifewatch_core::FdKind::Inotify).in_use;
        assert!(monitor_inotify <= 1, "{what}: inotify fds");
        assert_eq!(
            open_fds(),
            fds + monitor_inotify as usize,
            "{what}: fds released on removal"
        );
        for k in [
            lifewatch_core::FdKind::Eventfd,
            lifewatch_core::FdKind::Psi,
            lifewatch_core::FdKind::Control,
        ] {
            assert_eq!(
                after.kind(k).in_use,
                before.kind(k).in_use,
                "{what}: {} in use",
                k.as_str()
            );
        }
        assert!(
            !h.monitor.unwatch(id).unwrap(),
            "{what}: nothing left to unwatch"
        );
        h.monitor.close();
        drop(h);
        leaked += open_fds() as i64 - fds0 as i64;
        assert_eq!(open_fds(), fds0, "{what}: fds after close");
        eprintln!("{what}: removed mid-watch -> {removed:?}");
        tried += 1;
    }
    report(
        "faults",
        "core: cgroup removed mid-watch (v1, unified)",
        leaked,
        0,
        &format!(",\"scenarios\":{tried}"),
    );
}

/// A child one monitor spawned (and reaps) while a fallback one watches it: the watcher's
/// poll that finds the zombie gone, right after the reap and before the reaper recorded the
/// status (held there by a hook), still reports the status, never an exit without one.
#[test]
fn a_child_reaped_by_another_monitor_mid_poll_is_reported_with_its_status() {
    let _serial = serial();
    let scope = failpoint::scope();
    let spawner = Harness::new(MonitorOptions::default());
    let watcher = Harness::new(modes()[1].1.clone());
    // Long enough for the watcher's next poll (its backoff stops at 100 ms) to fall inside.
    scope.on_hook("exit.reaped", || {
        std::thread::sleep(Duration::from_millis(250))
    });
    let opts = lifewatch_core::spawn::SpawnOptions::new(
        "sh",
        vec!["-c".into(), "sleep 0.05; exit 7".into()],
    );
    let spawned = spawner.monitor.spawn(&opts, None).unwrap();
    watcher.monitor.watch_pid(spawned.pid as i64).unwrap();
    // The spawner reaps through the pidfd its clone3 returned; the watcher polls.
    let (status, source) = one_exit(&spawner);
    assert_eq!(
        (status, source),
        (Some(ExitStatus::Code(7)), ExitSource::Waitid)
    );
    let (status, source) = one_exit(&watcher);
    assert_eq!(
        (status, source),
        (Some(ExitStatus::Code(7)), ExitSource::Fallback)
    );
    report(
        "faults",
        "core: a child reaped by another monitor during a fallback poll",
        0,
        0,
        "",
    );
}

//! Issue 6, part 5 (core side): a process that exits before or during its registration is
//! reported once, with what the kernel still knows, and nothing leaks. "During" is forced
//! with failpoint hooks between the steps of `watch_pid`.

mod common;
mod reliability;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{open_fds, serial, Harness};
use lifewatch_core::{failpoint, Code, EventKind, ExitSource, ExitStatus, MonitorOptions};
use reliability::{report, Snapshot};

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
        while lifewatch_core::procstat::read(child.id() as i32).is_some_and(|s| !s.is_zombie()) {
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

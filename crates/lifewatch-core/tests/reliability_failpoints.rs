//! Reliability part 3: every syscall an operation makes fails in turn (failpoints, compiled in
//! for the core's tests only). Each failure must come back as a typed error naming that
//! syscall, leave no fd open, and count every fd it had opened as a prevented leak.
//!
//! The sites an operation goes through are discovered by running it once with recording on,
//! so a new site (a cgroup watcher's eventfd, open, write, inotify_add_watch...) is covered
//! as soon as it has its `failpoint::hit` line; a new operation is one line in `OPERATIONS`.

mod common;
mod reliability;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{added_fds, fallback, fd_table, open_fds, serial, Harness};
use lifewatch_core::cgroup::manage::limits::{Input, RawLimits};
use lifewatch_core::cgroup::{Cgroup, Layout};
use lifewatch_core::{
    failpoint, CgroupWatchOptions, Code, Error, EventKind, FdKind, HostOptions, Monitor,
    MonitorOptions, Result, TreeOptions, WatchId,
};
use reliability::{only, psi_trigger, report, test_cgroups, Snapshot, TestDir};

struct Ctx {
    child: Child,
    /// A monitor made before the failpoints are armed, for operations on an open monitor.
    pidfd: Harness,
    fallback: Harness,
    /// A watch of this test process on `pidfd`, registered before arming (not of `child`:
    /// a second watch of one process shares the first one's pidfd, opening nothing).
    watch: WatchId,
    /// Root on a host with cgroupfs: the layout, and test cgroups (relative paths) in the
    /// v1 memory hierarchy only and in the unified hierarchy only.
    layout: Option<Layout>,
    v1: Option<TestDir>,
    unified: Option<TestDir>,
}

fn manager_name() -> String {
    format!("lifewatch-test-{}-fp-mgr", std::process::id())
}

/// Where the manager's cgroup would be, in every hierarchy.
fn manager_dirs(l: &Layout) -> Vec<std::path::PathBuf> {
    let n = manager_name();
    let mut v: Vec<_> = l.v1.values().map(|h| h.mount.join(&n)).collect();
    v.extend(l.unified.iter().map(|h| h.mount.join(&n)));
    v
}

type Operation = fn(&Ctx) -> Result<Option<Monitor>>;

/// One line per public operation that opens or uses fds. `Ok(Some(m))` hands back a monitor
/// the operation created, closed by the test after the checks.
const OPERATIONS: &[(&str, Operation)] = &[
    ("Monitor::new", |_| {
        Monitor::new(MonitorOptions::default(), Box::new(|| {})).map(Some)
    }),
    ("Monitor::new (fallback)", |_| {
        Monitor::new(fallback(), Box::new(|| {})).map(Some)
    }),
    ("watch_pid (pidfd) + unwatch", |cx| {
        let id = cx.pidfd.monitor.watch_pid(cx.child.id() as i64)?;
        cx.pidfd.monitor.unwatch(id).map(|_| None)
    }),
    ("watch_pid (fallback) + unwatch", |cx| {
        let id = cx.fallback.monitor.watch_pid(cx.child.id() as i64)?;
        cx.fallback.monitor.unwatch(id).map(|_| None)
    }),
    ("new monitor + watch_pid", |cx| {
        let m = Monitor::new(MonitorOptions::default(), Box::new(|| {}))?;
        m.watch_pid(cx.child.id() as i64)?;
        Ok(Some(m))
    }),
    ("watch_host + unwatch", |cx| {
        let o = HostOptions {
            exits: true,
            ..Default::default()
        };
        let id = cx.pidfd.monitor.watch_host(o)?;
        cx.pidfd.monitor.unwatch(id).map(|_| None)
    }),
    ("watch_tree + unwatch", |cx| {
        let id = cx
            .pidfd
            .monitor
            .watch_tree(cx.child.id() as i64, TreeOptions::default())?;
        cx.pidfd.monitor.unwatch(id).map(|_| None)
    }),
    ("watch_oom_kills + unwatch", |cx| {
        let id = cx.pidfd.monitor.watch_oom_kills(false)?;
        cx.pidfd.monitor.unwatch(id).map(|_| None)
    }),
    ("signal through a watch", |cx| {
        cx.pidfd
            .monitor
            .signal(cx.watch, libc::SIGCONT)
            .map(|()| None)
    }),
    ("signal_pid", |cx| {
        lifewatch_core::signal_pid(cx.child.id() as i64, libc::SIGCONT).map(|()| None)
    }),
    // The cgroup operations below go through no failpoint (and are skipped) where this
    // host has no such hierarchy or the test is not root.
    ("cgroup: watch v1 OOM (eventfd) + unwatch", |cx| {
        let Some(v1) = &cx.v1 else { return Ok(None) };
        let id = cx.pidfd.monitor.watch_cgroup(&v1.rel, &only(true, false))?;
        cx.pidfd.monitor.unwatch(id).map(|_| None)
    }),
    ("cgroup: watch v1 pressure (eventfd) + unwatch", |cx| {
        let Some(v1) = &cx.v1 else { return Ok(None) };
        let o = CgroupWatchOptions {
            pressure: Some("critical,local".into()),
            ..only(false, false)
        };
        let id = cx.pidfd.monitor.watch_cgroup(&v1.rel, &o)?;
        cx.pidfd.monitor.unwatch(id).map(|_| None)
    }),
    ("cgroup: new monitor + watch v2 events (inotify)", |cx| {
        let Some(u) = &cx.unified else {
            return Ok(None);
        };
        let m = Monitor::new(MonitorOptions::default(), Box::new(|| {}))?;
        m.watch_cgroup(&u.rel, &only(false, true))?;
        Ok(Some(m))
    }),
    ("cgroup: watch PSI trigger + unwatch", |cx| {
        let Some(u) = &cx.unified else {
            return Ok(None);
        };
        if !u.dir.join("memory.pressure").exists() {
            return Ok(None);
        }
        let o = CgroupWatchOptions {
            psi: vec![psi_trigger()],
            ..only(false, false)
        };
        let id = cx.pidfd.monitor.watch_cgroup(&u.rel, &o)?;
        cx.pidfd.monitor.unwatch(id).map(|_| None)
    }),
    ("cgroup: Cgroup::create with limits + delete", |cx| {
        let Some(l) = &cx.layout else { return Ok(None) };
        let limits = RawLimits {
            memory: Some(Input::Text("64M".into())),
            pids: Some(Input::Text("32".into())),
            ..Default::default()
        }
        .parse()
        .unwrap();
        match Cgroup::create(l, &manager_name(), &limits) {
            Ok(cg) => cg
                .delete(false, Some(Duration::from_secs(5)))
                .map(|()| None)
                .inspect_err(|_| {
                    // The failed step was the delete (starting its wait thread): clean up with
                    // plain rmdirs, which open no fd to count (the cgroup is empty).
                    for (_, d) in cg.dirs() {
                        std::fs::remove_dir(&d).unwrap();
                    }
                }),
            Err(e) => {
                // A failed create leaves no directory behind in any hierarchy.
                for d in manager_dirs(l) {
                    assert!(
                        !d.exists(),
                        "failed create left {} behind: {e}",
                        d.display()
                    );
                }
                Err(e)
            }
        }
    }),
];

fn expected_code(syscall: &'static str, errno: i32) -> Code {
    Error::sys(syscall, errno, "").code
}

#[test]
fn each_syscall_fails_in_turn_typed_and_leak_free() {
    let _serial = serial();
    let child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pidfd = Harness::new(MonitorOptions::default());
    let watch = pidfd.monitor.watch_pid(std::process::id() as i64).unwrap();
    let (layout, v1, unified) = test_cgroups("fp");
    let cx = Ctx {
        child,
        pidfd,
        fallback: Harness::new(fallback()),
        watch,
        layout,
        v1,
        unified,
    };
    let fds = fd_table();
    let scope = failpoint::scope();
    let mut tried = 0;
    let mut leaked = 0i64;
    for (name, op) in OPERATIONS {
        scope.reset();
        if let Some(m) = op(&cx).unwrap_or_else(|e| panic!("{name} without failpoints: {e}")) {
            m.close();
        }
        let sites = scope.hits();
        if sites.is_empty() && name.starts_with("cgroup") {
            eprintln!("{name}: skipped (no such hierarchy on this host, or not root)");
            continue;
        }
        assert!(!sites.is_empty(), "{name} went through no failpoint");
        for (k, &site) in sites.iter().enumerate() {
            scope.reset();
            scope.fail_nth(k, None);
            let before = Snapshot::take();
            let err = match op(&cx) {
                Ok(m) => panic!(
                    "{name}: failing {site} (step {k}) did not fail ({m:?})",
                    m = m.is_some()
                ),
                Err(e) => e,
            };
            let at_error = Snapshot::take();
            let errno = failpoint::default_errno(site);
            assert_eq!(err.syscall, Some(site), "{name} step {k}: {err}");
            assert_eq!(err.errno, Some(errno), "{name} step {k}: {err}");
            assert_eq!(
                err.code,
                expected_code(site, errno),
                "{name} step {k}: {err}"
            );
            let opened = at_error.allocated() - before.allocated();
            assert_eq!(
                at_error.released() - before.released(),
                opened,
                "{name} step {k} ({site}): every fd opened before the failure was closed"
            );
            // Every fd the operation meant to keep is closed as a prevented leak. Control
            // files (cgroup.event_control, the file registered, a limit file) are closed
            // on purpose once used: those closed before the failure count as released,
            // not as prevented leaks.
            for kind in FdKind::ALL {
                let (b, a) = (before.kind(kind), at_error.kind(kind));
                let prevented = a.leak_prevented - b.leak_prevented;
                let opened = a.allocated - b.allocated;
                if kind == FdKind::Control {
                    assert!(prevented <= opened, "{name} step {k} ({site}): control fds");
                } else {
                    assert_eq!(
                        prevented,
                        opened,
                        "{name} step {k} ({site}): each {} fd counted as a prevented leak",
                        kind.as_str()
                    );
                }
            }
            assert_eq!(at_error.in_use(), before.in_use(), "{name} step {k}");
            let added = added_fds(&fds);
            leaked += added.len() as i64;
            assert!(
                added.is_empty(),
                "{name} step {k} ({site}): /proc/self/fd has {added:?}"
            );
            eprintln!(
                "{name}: {site} fails -> {} ({}), {opened} fd(s) closed as prevented leaks",
                err.code, err.message
            );
            tried += 1;
        }
        // Whatever the failure, the shared monitors still work afterwards.
        scope.reset();
        let id = cx.pidfd.monitor.watch_pid(cx.child.id() as i64).unwrap();
        assert!(cx.pidfd.monitor.unwatch(id).unwrap());
    }
    drop(scope);
    assert!(tried >= 10, "only {tried} failure paths");
    report(
        "failpoints",
        "core: each syscall fails in turn",
        leaked,
        0,
        &format!(",\"paths\":{tried}"),
    );
    let Ctx {
        mut child,
        pidfd,
        fallback,
        ..
    } = cx;
    pidfd.monitor.close();
    fallback.monitor.close();
    child.kill().unwrap();
    child.wait().unwrap();
}

/// epoll_wait failing on the reactor thread: reported as an error event, never a panic or
/// an abort; close still releases everything.
#[test]
fn epoll_wait_failure_is_an_event_and_close_still_releases() {
    let _serial = serial();
    let fds = open_fds();
    let before = Snapshot::take();
    let scope = failpoint::scope();
    scope.fail_named("epoll_wait");
    let h = Harness::new(MonitorOptions::default());
    let evs = h.collect(1, Duration::from_secs(5));
    drop(scope);
    assert_eq!(evs.len(), 1, "{evs:?}");
    match &evs[0].kind {
        EventKind::Error { code, message } => {
            assert_eq!(*code, Code::Io);
            assert!(message.contains("epoll_wait"), "{message}");
        }
        other => panic!("not an error event: {other:?}"),
    }
    // The loop stopped: a watch now is refused rather than silently never reported.
    let err = h.monitor.watch_pid(std::process::id() as i64).unwrap_err();
    assert_eq!(err.code, Code::Io, "{err}");
    assert!(err.message.contains("stopped"), "{err}");
    h.monitor.close();
    assert_eq!(open_fds(), fds);
    assert_eq!(Snapshot::take().in_use(), before.in_use());
    report(
        "failpoints",
        "core: epoll_wait fails on the reactor thread",
        open_fds() as i64 - fds as i64,
        0,
        "",
    );
}

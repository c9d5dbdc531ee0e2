//! Real processes, real pidfds: exit events with their statuses.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{fallback, Harness};
use lifewatch_core::{Code, EventKind, ExitSource, ExitStatus, MonitorOptions};

const WITHIN: Duration = Duration::from_secs(10);

fn exit_of(h: &Harness) -> (i32, Option<ExitStatus>, ExitSource) {
    let evs = h.collect(1, WITHIN);
    assert_eq!(evs.len(), 1, "expected one event, got {evs:?}");
    match &evs[0].kind {
        EventKind::Exit {
            pid,
            status,
            source,
            ..
        } => (*pid, *status, *source),
        other => panic!("not an exit: {other:?}"),
    }
}

/// Runs `parent`, which prints on its first stdout line the PID of a process it started
/// (so not a child of ours), watches that process, and checks it exits with `code`, seen
/// through its pidfd.
fn assert_non_child_exit(parent: &mut Command, code: i32) {
    let h = Harness::new(MonitorOptions::default());
    let mut parent = parent.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i64 = line.trim().parse().unwrap();
    h.monitor.watch_pid(pid).unwrap();
    let (got, status, source) = exit_of(&h);
    assert_eq!(got as i64, pid);
    assert_eq!(status, Some(ExitStatus::Code(code)));
    assert_eq!(source, ExitSource::Pidfd);
    parent.wait().unwrap();
}

/// Watches a sleeping child, sends it `signo` through the monitor and checks the exit
/// reports that signal: the child (still to reap) and where the status came from.
fn signal_sleeper(h: &Harness, signo: i32) -> (Child, ExitSource) {
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    let id = h.monitor.watch_pid(child.id() as i64).unwrap();
    h.monitor.signal(id, signo).unwrap();
    let (_, status, source) = exit_of(h);
    assert_eq!(status, Some(ExitStatus::Signal { signo, core: false }));
    (child, source)
}

#[test]
fn child_exit_code() {
    let h = Harness::new(MonitorOptions::default());
    let mut child = Command::new("sh")
        .args(["-c", "sleep 0.1; exit 7"])
        .spawn()
        .unwrap();
    h.monitor.watch_pid(child.id() as i64).unwrap();
    let (pid, status, _) = exit_of(&h);
    assert_eq!(pid, child.id() as i32);
    assert_eq!(status, Some(ExitStatus::Code(7)));
    // lifewatch did not reap someone else's child: its parent still can.
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

#[test]
fn child_killed_by_signal() {
    let h = Harness::new(MonitorOptions::default());
    let (mut child, source) = signal_sleeper(&h, libc::SIGKILL);
    assert_ne!(source, ExitSource::Fallback);
    child.wait().unwrap();
}

/// A grandchild whose parent (a shell that waits) reaps it: a true non-child of ours.
#[test]
fn non_child_exit_code() {
    assert_non_child_exit(
        Command::new("sh").args(["-c", "sh -c 'sleep 0.3; exit 5' & echo $!; wait"]),
        5,
    );
}

/// A zombie whose parent never reaps while we look: the status comes from /proc.
#[test]
fn unreaped_zombie_non_child() {
    assert_non_child_exit(Command::new("perl").args(["-e", "$|=1; my $p = fork // die; if (!$p) { select(undef,undef,undef,0.2); exit 3 } print \"$p\\n\"; sleep 2; waitpid($p, 0)"]), 3);
}

#[test]
fn dead_pid_is_no_such_process() {
    let h = Harness::new(MonitorOptions::default());
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id() as i64;
    child.wait().unwrap();
    let err = h.monitor.watch_pid(pid).unwrap_err();
    assert_eq!(err.code, Code::NoSuchProcess);
    assert_eq!(err.syscall, Some("pidfd_open"));
    assert_eq!(err.errno, Some(libc::ESRCH));
}

#[test]
fn bad_pids_and_signals_are_invalid() {
    let h = Harness::new(MonitorOptions::default());
    for pid in [0, -1, i64::from(i32::MAX) + 1, 1 << 40] {
        assert_eq!(
            h.monitor.watch_pid(pid).unwrap_err().code,
            Code::InvalidArgument,
            "pid {pid}"
        );
    }
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let id = h.monitor.watch_pid(child.id() as i64).unwrap();
    for sig in [0, -1, 65, 1000] {
        assert_eq!(
            h.monitor.signal(id, sig).unwrap_err().code,
            Code::InvalidArgument
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn fallback_reports_code_and_labels_itself() {
    let h = Harness::new(fallback());
    assert!(!h.monitor.uses_pidfd());
    let mut child = Command::new("sh")
        .args(["-c", "sleep 0.2; exit 9"])
        .spawn()
        .unwrap();
    let id = h.monitor.watch_pid(child.id() as i64).unwrap();
    let (_, status, source) = exit_of(&h);
    assert_eq!(source, ExitSource::Fallback);
    assert_eq!(status, Some(ExitStatus::Code(9)));
    child.wait().unwrap();
    assert_eq!(
        h.monitor.signal(id, 15).unwrap_err().code,
        Code::NoSuchProcess
    );
}

#[test]
fn fallback_signal_and_gone_pid() {
    let h = Harness::new(fallback());
    let (mut child, _) = signal_sleeper(&h, libc::SIGTERM);
    child.wait().unwrap();
    let err = h.monitor.watch_pid(child.id() as i64).unwrap_err();
    assert_eq!(err.code, Code::NoSuchProcess);
}

#[test]
fn thousand_watches_all_reported_in_few_batches() {
    let h = Harness::new(MonitorOptions::default());
    let mut children: Vec<_> = (0..1000)
        .map(|_| Command::new("sleep").arg("30").spawn().unwrap())
        .collect();
    for c in &children {
        h.monitor.watch_pid(c.id() as i64).unwrap();
    }
    assert_eq!(h.monitor.watch_count(), 1000);
    for c in &mut children {
        c.kill().unwrap();
    }
    let evs = h.collect(1000, Duration::from_secs(30));
    assert_eq!(evs.len(), 1000);
    let watches = Harness::by_watch(&evs);
    assert_eq!(watches.len(), 1000, "every watch reported exactly once");
    assert!(
        h.monitor.notifications() < 1000,
        "events were batched: {} notifications",
        h.monitor.notifications()
    );
    assert_eq!(h.monitor.watch_count(), 0);
    for c in &mut children {
        c.wait().unwrap();
    }
}

/// Several exit waits on one process handle (a Task's own pidfd: one wait that keeps Node
/// alive, one that does not) each end with the exit: none collides with another in the shared
/// waiter, and closing the handle meanwhile does not end them.
#[test]
fn several_exit_waits_on_one_handle_each_end_with_the_exit() {
    use lifewatch_core::process::wait::wait_exit;
    use lifewatch_core::Process;
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let p = Process::open(child.id() as i32).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..3 {
        let tx = tx.clone();
        wait_exit(
            &p,
            false,
            Box::new(move |r| drop(tx.send(r.map(|e| e.status)))),
        )
        .unwrap();
    }
    p.release(lifewatch_core::fd::Release::Normal, &mut Default::default());
    child.kill().unwrap();
    for _ in 0..3 {
        let got = rx.recv_timeout(WITHIN).expect("each wait ends");
        assert!(
            matches!(got, Ok(Some(ExitStatus::Signal { signo: 9, .. }))),
            "{got:?}"
        );
    }
    child.wait().unwrap();
}

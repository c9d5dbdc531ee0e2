//! Several watches of one process in one monitor share its pidfd: each still gets its own
//! exit event, unwatching one leaves the others, and the pidfd closes with the last.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::time::Duration;

use common::{open_fds, serial, Harness};
use lifewatch_core::fd::{stats, FdKind};
use lifewatch_core::{Code, EventKind, ExitStatus, MonitorOptions, WatchId};

const WITHIN: Duration = Duration::from_secs(10);

fn sleeper() -> Child {
    Command::new("sleep").arg("30").spawn().unwrap()
}

fn pidfds() -> u64 {
    stats(FdKind::Pidfd).in_use
}

/// The watch ids of the exit events collected (each must be an exit of `pid`).
fn exits_of(h: &Harness, pid: u32, n: usize) -> Vec<WatchId> {
    let evs = h.collect(n, WITHIN);
    evs.iter()
        .map(|e| match &e.kind {
            EventKind::Exit { pid: p, status, .. } => {
                assert_eq!(*p, pid as i32);
                assert_eq!(
                    *status,
                    Some(ExitStatus::Signal {
                        signo: 9,
                        core: false
                    })
                );
                e.watch
            }
            other => panic!("not an exit: {other:?}"),
        })
        .collect()
}

#[test]
fn watches_of_one_process_share_one_pidfd_and_each_gets_its_exit() {
    let _serial = serial();
    let (fds0, pidfds0) = (open_fds(), pidfds());
    let h = Harness::new(MonitorOptions::default());
    let mut child = sleeper();
    let ids: Vec<WatchId> = (0..5)
        .map(|_| h.monitor.watch_pid(child.id() as i64).unwrap())
        .collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 5, "distinct ids");
    assert_eq!(h.monitor.watch_count(), 5);
    assert_eq!(pidfds() - pidfds0, 1, "one pidfd for five watches");
    // Signalling through any watch reaches the process.
    h.monitor.signal(ids[3], libc::SIGKILL).unwrap();
    let got = exits_of(&h, child.id(), 5);
    assert_eq!(got, ids, "one exit per watch, in watch order");
    assert!(
        h.collect(1, Duration::from_millis(100)).is_empty(),
        "no duplicates"
    );
    assert_eq!(h.monitor.watch_count(), 0);
    child.wait().unwrap();
    h.monitor.close();
    assert_eq!((open_fds(), pidfds()), (fds0, pidfds0));
}

#[test]
fn unwatching_the_first_watch_keeps_the_others() {
    let _serial = serial();
    let pidfds0 = pidfds();
    let h = Harness::new(MonitorOptions::default());
    let mut child = sleeper();
    let pid = child.id() as i64;
    let (a, b, c) = (
        h.monitor.watch_pid(pid).unwrap(),
        h.monitor.watch_pid(pid).unwrap(),
        h.monitor.watch_pid(pid).unwrap(),
    );
    assert!(h.monitor.unwatch(a).unwrap());
    assert!(!h.monitor.unwatch(a).unwrap(), "already removed");
    assert!(
        h.monitor.signal(a, 0).is_err(),
        "a removed watch cannot signal"
    );
    assert_eq!(h.monitor.watch_count(), 2);
    assert_eq!(
        pidfds() - pidfds0,
        1,
        "the source stays while b and c watch"
    );
    // A watch made now joins the same source.
    let d = h.monitor.watch_pid(pid).unwrap();
    assert_eq!(pidfds() - pidfds0, 1);
    assert!(h.monitor.unwatch(c).unwrap());
    child.kill().unwrap();
    assert_eq!(exits_of(&h, child.id(), 2), vec![b, d]);
    child.wait().unwrap();
    assert_eq!(pidfds(), pidfds0, "pidfd closed after the exit");
}

#[test]
fn unwatching_every_watch_closes_the_pidfd() {
    let _serial = serial();
    let pidfds0 = pidfds();
    let h = Harness::new(MonitorOptions::default());
    let mut child = sleeper();
    let ids: Vec<WatchId> = (0..3)
        .map(|_| h.monitor.watch_pid(child.id() as i64).unwrap())
        .collect();
    for (i, &id) in ids.iter().enumerate().rev() {
        assert_eq!(pidfds() - pidfds0, 1);
        assert!(h.monitor.unwatch(id).unwrap());
        assert_eq!(h.monitor.watch_count(), i);
    }
    assert_eq!(pidfds(), pidfds0);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(h.collect(1, Duration::from_millis(200)).is_empty());
}

#[test]
fn a_watch_after_the_exit_does_not_join_the_dead_source() {
    let _serial = serial();
    let h = Harness::new(MonitorOptions::default());
    let mut child = sleeper();
    let pid = child.id() as i64;
    let first = h.monitor.watch_pid(pid).unwrap();
    child.kill().unwrap();
    // The zombie (not reaped yet) is still this process: a new watch reports its exit too,
    // through a pidfd of its own or the pending source, but once per watch.
    let mut got = exits_of(&h, child.id(), 1);
    let second = h.monitor.watch_pid(pid).unwrap();
    got.extend(exits_of(&h, child.id(), 1));
    assert_eq!(got, vec![first, second]);
    child.wait().unwrap();
    // Reaped: the PID names nothing now (pid_max is far from wrapping within the test).
    let err = h.monitor.watch_pid(pid).unwrap_err();
    assert_eq!(err.code, Code::NoSuchProcess);
}

#[test]
fn separate_monitors_do_not_share() {
    let _serial = serial();
    let pidfds0 = pidfds();
    let (h1, h2) = (
        Harness::new(MonitorOptions::default()),
        Harness::new(MonitorOptions::default()),
    );
    let mut child = sleeper();
    h1.monitor.watch_pid(child.id() as i64).unwrap();
    let b = h2.monitor.watch_pid(child.id() as i64).unwrap();
    assert_eq!(pidfds() - pidfds0, 2);
    h1.monitor.close();
    assert!(h2.monitor.signal(b, libc::SIGKILL).is_ok());
    assert_eq!(exits_of(&h2, child.id(), 1), vec![b]);
    child.wait().unwrap();
}

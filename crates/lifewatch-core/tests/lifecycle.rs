//! Close, fd accounting and cycles: every fd returns, whatever the order of events.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{open_fds, serial, Harness};
use lifewatch_core::spawn::SpawnOptions;
use lifewatch_core::{fd, Code, FdKind, MonitorOptions};

#[test]
fn close_is_idempotent_and_releases_everything() {
    let _serial = serial();
    let before = open_fds();
    let h = Harness::new(MonitorOptions::default());
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let id = h.monitor.watch_pid(child.id() as i64).unwrap();
    assert_eq!(
        open_fds(),
        before + 5,
        "sources epoll + reactor epoll + waker + timerfd + pidfd"
    );
    let released = h.monitor.close();
    assert_eq!(released.get(FdKind::Pidfd), 1);
    assert_eq!(released.get(FdKind::Epoll), 2);
    assert_eq!(released.get(FdKind::Eventfd), 1);
    assert_eq!(released.get(FdKind::Timerfd), 1);
    assert_eq!(
        h.monitor.close().total(),
        0,
        "second close releases nothing"
    );
    assert_eq!(open_fds(), before);
    assert_eq!(
        h.monitor.watch_pid(child.id() as i64).unwrap_err().code,
        Code::Closed
    );
    assert_eq!(h.monitor.signal(id, 15).unwrap_err().code, Code::Closed);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn drop_without_close_counts_prevented_leaks() {
    let _serial = serial();
    let before = fd::stats(FdKind::Epoll).leak_prevented;
    let h = Harness::new(MonitorOptions::default());
    drop(h);
    assert!(fd::stats(FdKind::Epoll).leak_prevented > before);
}

#[test]
fn thousand_watch_unwatch_cycles_return_to_baseline() {
    let _serial = serial();
    let h = Harness::new(MonitorOptions::default());
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let baseline = open_fds();
    for _ in 0..1000 {
        let id = h.monitor.watch_pid(child.id() as i64).unwrap();
        assert!(h.monitor.unwatch(id).unwrap());
        assert!(!h.monitor.unwatch(id).unwrap());
    }
    assert_eq!(open_fds(), baseline);
    assert_eq!(h.monitor.watch_count(), 0);
    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing was left to report: the unwatched process's exit is not delivered.
    assert!(h.collect(1, Duration::from_millis(200)).is_empty());
}

#[test]
fn monitor_cycles_return_to_baseline() {
    let _serial = serial();
    let baseline = open_fds();
    for _ in 0..200 {
        let h = Harness::new(MonitorOptions::default());
        h.monitor.watch_pid(std::process::id() as i64).unwrap();
        h.monitor.close();
    }
    assert_eq!(open_fds(), baseline);
}

/// A child lifewatch spawned is reaped once it exits even when its watch ended first: its
/// monitor closed or dropped, or the watch removed (nothing else in the process waits for it).
#[test]
fn spawned_child_is_reaped_after_its_watch_ended_first() {
    let _serial = serial();
    let before = open_fds();
    for (how, options) in [
        ("close", MonitorOptions::default()),
        ("unwatch", MonitorOptions::default()),
        ("drop", MonitorOptions::default()),
        ("close, polling", common::fallback()),
    ] {
        let h = Harness::new(options);
        let s = h
            .monitor
            .spawn(&SpawnOptions::new("sleep", vec!["30".into()]), None)
            .unwrap();
        match how {
            "unwatch" => assert!(h.monitor.unwatch(s.watch).unwrap()),
            "drop" => drop(h),
            _ => drop(h.monitor.close()),
        }
        // SAFETY: kill(2) of our own child, which keeps its PID until it is reaped.
        assert_eq!(unsafe { libc::kill(s.pid, libc::SIGKILL) }, 0);
        let proc_dir = format!("/proc/{}", s.pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::path::Path::new(&proc_dir).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !std::path::Path::new(&proc_dir).exists(),
            "{how}: pid {} is left a zombie",
            s.pid
        );
    }
    // The shared waiter that reaped them stops and closes its fds after the last one.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_fds() != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(open_fds(), before);
}

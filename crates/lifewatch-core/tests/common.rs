//! Helpers for the integration tests: a monitor whose notifications land on a channel.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use lifewatch_core::{Event, Monitor, MonitorOptions, WatchId};

pub struct Harness {
    pub monitor: Monitor,
    rx: Receiver<()>,
}

impl Harness {
    pub fn new(options: MonitorOptions) -> Harness {
        let (tx, rx) = channel();
        let tx = std::sync::Mutex::new(tx);
        let monitor = Monitor::new(
            options,
            Box::new(move || {
                let _ = tx.lock().unwrap().send(());
            }),
        )
        .unwrap();
        Harness { monitor, rx }
    }

    /// Collects events until `n` arrived or the deadline passed.
    pub fn collect(&self, n: usize, within: Duration) -> Vec<Event> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if self.rx.recv_timeout(left).is_ok() {
                got.extend(self.monitor.drain());
            }
        }
        got
    }

    pub fn by_watch(events: &[Event]) -> HashMap<WatchId, &Event> {
        events.iter().map(|e| (e.watch, e)).collect()
    }
}

/// Options of a monitor that watches processes by polling, as on a kernel without pidfd.
pub fn fallback() -> MonitorOptions {
    MonitorOptions {
        force_fallback: true,
        ..Default::default()
    }
}

/// Tests that count fds hold this: threads of one test binary share the fd table.
pub static FD_COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    FD_COUNTING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Open fds of this process, from /proc/self/fd.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

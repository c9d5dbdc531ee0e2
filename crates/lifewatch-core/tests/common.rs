//! Helpers for the integration tests: a monitor whose notifications land on a channel, and
//! test cgroups.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
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

    /// Waits up to `within` for a notification, then drains: `None` if none came.
    pub fn notified(&self, within: Duration) -> Option<Vec<Event>> {
        self.rx
            .recv_timeout(within)
            .ok()
            .map(|()| self.monitor.drain())
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

/// This process's open fds and what each points to.
pub fn fd_table() -> HashMap<String, String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            // The directory's own fd is closed by the time it is read: skipped.
            let target = std::fs::read_link(e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                target.display().to_string(),
            ))
        })
        .collect()
}

/// The fds open now that were not in `before` (`fd -> target`), once they settle: a live
/// monitor's reactor thread beside the test may hold a file open for a moment (a /proc or
/// cgroupfs read), so only what is still open after a second counts.
pub fn added_fds(before: &HashMap<String, String>) -> Vec<String> {
    let added = || -> Vec<String> {
        fd_table()
            .into_iter()
            .filter(|(fd, target)| before.get(fd) != Some(target))
            .map(|(fd, target)| format!("{fd} -> {target}"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let now = added();
        if now.is_empty() || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A test cgroup in one hierarchy, removed (after killing its members) on drop.
pub struct TestCgroup {
    pub dir: PathBuf,
    pub rel: String,
}

impl TestCgroup {
    pub fn new(mount: &Path) -> Option<TestCgroup> {
        let rel = format!(
            "lifewatch-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let dir = mount.join(&rel);
        match std::fs::create_dir(&dir) {
            Ok(()) => Some(TestCgroup { dir, rel }),
            Err(e) => {
                eprintln!("skip: cannot create {}: {e}", dir.display());
                None
            }
        }
    }

    pub fn write(&self, file: &str, value: &str) {
        std::fs::write(self.dir.join(file), value)
            .unwrap_or_else(|e| panic!("writing {value:?} to {file}: {e}"));
    }

    /// A shell that joins this cgroup, then execs `cmd`.
    pub fn spawn(&self, cmd: &str) -> Child {
        Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec {cmd}",
                self.dir.display()
            ))
            .spawn()
            .unwrap()
    }

    /// A v1 memory limit, swap included where the kernel accounts it.
    pub fn limit_v1_memory(&self, limit: &str) {
        self.write("memory.limit_in_bytes", limit);
        if self.dir.join("memory.memsw.limit_in_bytes").exists() {
            let _ = std::fs::write(self.dir.join("memory.memsw.limit_in_bytes"), limit);
        }
    }

    pub fn populated(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|s| !s.trim().is_empty())
            .unwrap_or(false)
    }

    pub fn rmdir(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => {
                    eprintln!("rmdir {}: {e}", self.dir.display());
                    return false;
                }
            }
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        self.rmdir();
    }
}

//! Timed wakes of sources (fallback polling, OOM re-reads, waits' deadlines) through one
//! timerfd in the sources' set (see `selector`), so the threads sleep in epoll_wait without a
//! timeout and an idle monitor has no wakeups at all.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};

use crate::error::{Result, SysResult};
use crate::event::WatchId;
use crate::fd::{CountedFd, FdKind, Release, Released};

pub struct Timers {
    /// `None` once closed.
    fd: Option<CountedFd>,
    /// Every scheduled time (a key's older times stay here until they come up, then are
    /// skipped: `due` says which one is current).
    heap: BinaryHeap<Reverse<(Instant, WatchId)>>,
    due: HashMap<WatchId, Instant>,
    /// What the timerfd is set to.
    armed: Option<Instant>,
}

impl Timers {
    pub fn new() -> Result<Timers> {
        let fd = crate::failpoint::hit("timerfd_create")
            .and_then(|()| {
                timerfd_create(
                    TimerfdClockId::Monotonic,
                    TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
                )
            })
            .sys("timerfd_create", "creating a monitor's timer")?;
        Ok(Timers {
            fd: Some(CountedFd::new(fd, FdKind::Timerfd)),
            heap: BinaryHeap::new(),
            due: HashMap::new(),
            armed: None,
        })
    }

    /// The timer reached its owner: from now on a close is a normal release.
    pub fn commit(mut self) -> Self {
        self.fd = self.fd.take().map(CountedFd::commit);
        self
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_ref().expect("timer used after close").as_fd()
    }

    /// Closes the timerfd, counting it in `released`; nothing is scheduled after. Idempotent.
    pub fn close(&mut self, how: Release, released: &mut Released) {
        self.heap.clear();
        self.due.clear();
        if let Some(fd) = self.fd.take() {
            released.add(fd.kind());
            fd.close(how);
        }
    }

    /// Wakes `key` at `at`, replacing its earlier time.
    pub fn schedule(&mut self, key: WatchId, at: Instant) {
        if self.fd.is_none() {
            return;
        }
        self.due.insert(key, at);
        self.heap.push(Reverse((at, key)));
        self.arm();
    }

    pub fn cancel(&mut self, key: WatchId) {
        // Called for every source that ends (most never had a timer): not hashed for nothing.
        if !self.due.is_empty() {
            self.due.remove(&key);
        }
    }

    /// The keys whose time has come (each once), after consuming the timerfd's expirations.
    pub fn take_due(&mut self, now: Instant) -> Vec<WatchId> {
        let mut buf = [0u8; 8];
        if let Some(fd) = &self.fd {
            let _ = rustix::io::read(fd, &mut buf);
        }
        let mut out = Vec::new();
        while let Some(&Reverse((at, key))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.due.get(&key) == Some(&at) {
                self.due.remove(&key);
                out.push(key);
            }
        }
        self.armed = None;
        self.arm();
        out
    }

    /// Sets the timerfd to the earliest current time (stale heap entries are dropped here).
    fn arm(&mut self) {
        while let Some(&Reverse((at, key))) = self.heap.peek() {
            if self.due.get(&key) == Some(&at) {
                break;
            }
            self.heap.pop();
        }
        let next = self.heap.peek().map(|Reverse((at, _))| *at);
        if next == self.armed {
            return;
        }
        self.armed = next;
        let value = match next {
            // A zero it_value disarms the timer: a time already past is set to 1 ns.
            Some(at) => {
                let d = at.saturating_duration_since(Instant::now());
                Timespec {
                    tv_sec: d.as_secs() as _,
                    tv_nsec: d.subsec_nanos().max(if d.as_secs() == 0 { 1 } else { 0 }) as _,
                }
            }
            None => Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // Cannot fail for a valid timerfd and a normalised time.
        if let Some(fd) = &self.fd {
            let _ = timerfd_settime(fd, TimerfdTimerFlags::empty(), &spec);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_latest_time_of_a_key_counts_and_each_fires_once() {
        let mut t = Timers::new().unwrap().commit();
        let now = Instant::now();
        t.schedule(1, now + Duration::from_secs(60));
        t.schedule(1, now);
        t.schedule(2, now);
        t.schedule(3, now + Duration::from_secs(60));
        let mut due = t.take_due(now);
        due.sort();
        assert_eq!(due, [1, 2]);
        assert!(t.take_due(now).is_empty());
        t.cancel(3);
        assert!(t.take_due(now + Duration::from_secs(61)).is_empty());
        assert_eq!(t.armed, None, "nothing left: disarmed");
    }

    #[test]
    fn the_timerfd_becomes_readable_when_the_earliest_time_comes() {
        let mut t = Timers::new().unwrap().commit();
        t.schedule(7, Instant::now() + Duration::from_millis(20));
        let mut fds = [rustix::event::PollFd::from_borrowed_fd(
            t.fd(),
            rustix::event::PollFlags::IN,
        )];
        let ts = Timespec {
            tv_sec: 2,
            tv_nsec: 0,
        };
        assert_eq!(rustix::event::poll(&mut fds, Some(&ts)).unwrap(), 1);
        assert_eq!(t.take_due(Instant::now()), [7]);
    }
}

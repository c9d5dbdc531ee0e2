//! A process watch: a reactor source that reports the process's exit once, with its status.
//! Through its pidfd (readable once the whole process has exited), or, without pidfd, by
//! polling on a bounded backoff with a start-time check, so a reused PID is reported as the
//! original's exit instead of being mistaken for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::epoll::EventFlags;

use crate::event::{Event, EventKind, ExitSource};
use crate::fd::{Release, Released};
use crate::process::exit;
use crate::process::handle::Process;
use crate::process::{subreaper, wait};
use crate::reactor::{Interest, Keep, Ready, Source};
use crate::status::ExitStatus;

/// The fallback's first poll and its cap.
const FIRST: Duration = Duration::from_millis(1);
const CAP: Duration = Duration::from_millis(100);

pub struct ProcessWatch {
    process: Arc<Process>,
    /// Our own child (spawned by lifewatch): reap it. Anyone else's zombie is left alone.
    reap: bool,
    /// The exit was reported (and, with `reap`, the child reaped).
    reported: bool,
    /// Without pidfd: the current polling interval.
    interval: Duration,
}

impl ProcessWatch {
    pub fn new(process: Arc<Process>, reap: bool) -> ProcessWatch {
        if reap {
            subreaper::claim(process.pid());
        }
        ProcessWatch {
            process,
            reap,
            reported: false,
            interval: FIRST,
        }
    }

    /// When a watch without pidfd first polls.
    pub fn first_poll(&self) -> Option<Instant> {
        self.process
            .pidfd()
            .is_none()
            .then(|| Instant::now() + FIRST)
    }

    fn report(
        &mut self,
        cx: &mut Ready<'_>,
        status: Option<ExitStatus>,
        source: ExitSource,
    ) -> Keep {
        self.reported = true;
        cx.out.push(Event {
            watch: cx.watch,
            time: cx.time,
            kind: EventKind::Exit {
                pid: self.process.pid(),
                status,
                source,
                ppid: None,
                comm: None,
                cgroup: None,
                remaining: None,
            },
        });
        Keep::No
    }
}

impl Source for ProcessWatch {
    fn interest(&self) -> Option<Interest<'_>> {
        // One-shot: a pidfd stays readable once the process has exited, and the consumer that
        // handled it may close it a moment later (`Reactor::turn_done`); meanwhile it
        // must not keep the sources' set readable.
        self.process.pidfd().map(|fd| Interest {
            fd,
            flags: EventFlags::IN | EventFlags::ONESHOT,
        })
    }

    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep {
        let p = Arc::clone(&self.process);
        match p.pidfd() {
            Some(fd) => {
                let (status, source) = exit::resolve(
                    fd,
                    p.pid(),
                    p.start_time(),
                    self.reap,
                    self.reap || p.is_child(),
                );
                self.report(cx, status, source)
            }
            None => match exit::poll(
                p.pid(),
                p.start_time(),
                self.reap,
                self.reap || p.is_child(),
            ) {
                Some(status) => self.report(cx, status, ExitSource::Fallback),
                None => {
                    self.interval = (self.interval * 2).min(CAP);
                    cx.wake_at(Instant::now() + self.interval);
                    Keep::Yes
                }
            },
        }
    }

    fn release(self: Box<Self>, how: Release, released: &mut Released) {
        if self.reap && !self.reported {
            // Ended before the exit (unwatched, its monitor closed, collected or its worker
            // terminated): nothing else in this process waits for a child lifewatch spawned
            // (Node's libuv waits for its own only), so the shared waiter reaps it when it
            // exits, rather than leaving a zombie.
            wait::reap_when_exited(&self.process);
        }
        if self.reap {
            subreaper::unclaim(self.process.pid());
        }
        // Another owner may hold it a moment longer (a signal in flight): its fd then closes
        // when that owner lets go.
        if let Ok(p) = Arc::try_unwrap(self.process) {
            p.release(how, released);
        }
    }
}

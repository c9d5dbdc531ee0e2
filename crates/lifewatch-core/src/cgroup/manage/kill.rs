//! Killing a whole cgroup, synchronously: it ends only once the cgroup is really empty (no
//! PID listed anywhere, `populated 0`), learnt from `cgroup.events` and pidfd readiness, where runc
//! only signals and polls. `cgroup.kill` where the unified hierarchy has it (Linux 5.14+);
//! otherwise rounds of freeze, SIGKILL through a verified pidfd to every member, thaw.

use std::time::{Duration, Instant};

use crate::cgroup::files;
use crate::cgroup::manage::empty::{deadline, sooner, Members};
use crate::cgroup::manage::manager::Cgroup;
use crate::error::{Code, Error, Result};
use crate::reactor::waiter::{self, Done, Op, OpCx, WaitHandle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KillMethod {
    /// Nothing was running.
    #[default]
    None,
    /// `cgroup.kill` on the unified hierarchy.
    CgroupKill,
    /// SIGKILL through pidfds (with the cgroup frozen while members were listed).
    Signal,
}

impl KillMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            KillMethod::None => "none",
            KillMethod::CgroupKill => "cgroup.kill",
            KillMethod::Signal => "signal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KillReport {
    pub method: KillMethod,
    /// Processes signalled one by one (those the unified `cgroup.kill` could not reach).
    pub signalled: usize,
    /// Checks made until the cgroup was empty (each after a kernel notification).
    pub rounds: usize,
}

/// The kill: each step is one round (list, kill, wait for the next change).
pub(crate) struct Kill {
    cg: Cgroup,
    members: Members,
    cgroup_kill: bool,
    freezer: bool,
    deadline: Option<Instant>,
    report: KillReport,
}

impl Kill {
    pub(crate) fn new(cg: &Cgroup, deadline: Option<Instant>) -> Kill {
        let cgroup_kill = cg.has_cgroup_kill();
        Kill {
            cg: cg.clone(),
            members: Members::new(cg.clone(), !cgroup_kill),
            cgroup_kill,
            freezer: cg.freezer().is_some(),
            deadline,
            report: KillReport::default(),
        }
    }

    /// One round: `Some(true)` once the cgroup is empty.
    fn round(&mut self, cx: &mut OpCx<'_, '_>) -> Result<bool> {
        self.members.watch(cx)?;
        self.report.rounds += 1;
        let (cg, freezer) = (&self.cg, self.freezer);
        let w = &mut self.members;
        if self.cgroup_kill {
            if w.check()? {
                return Ok(true);
            }
            if w.unified_members > 0 {
                // Idempotent: repeated for processes that joined since the last write.
                let dir = cg.unified_dir().expect("has cgroup.kill");
                match files::write(dir, "cgroup.kill", "1", "killing the cgroup") {
                    Err(e) if e.code == Code::NoSuchCgroup => return Ok(true),
                    r => r?,
                }
                self.report.method = KillMethod::CgroupKill;
            }
            // Members outside the unified hierarchy (in a v1 hierarchy only) are tracked by
            // pidfd: signal them one by one.
            if w.tracked() > 0 {
                self.report.signalled += cg.with_frozen(freezer, || {
                    w.check()?;
                    Ok(w.signal_new(libc::SIGKILL))
                })?;
            }
        } else {
            // Listed and signalled in one frozen section: nothing forks in between.
            let (empty, n) = cg.with_frozen(freezer, || {
                let empty = w.check()?;
                Ok((
                    empty,
                    if empty {
                        0
                    } else {
                        w.signal_new(libc::SIGKILL)
                    },
                ))
            })?;
            if empty {
                return Ok(true);
            }
            self.report.signalled += n;
            if self.report.method == KillMethod::None {
                self.report.method = KillMethod::Signal;
            }
        }
        Ok(false)
    }
}

impl Op for Kill {
    type Output = KillReport;

    fn step(&mut self, cx: &mut OpCx<'_, '_>) -> Option<Result<KillReport>> {
        match self.round(cx) {
            Ok(true) => return Some(Ok(self.report)),
            Ok(false) => {}
            Err(e) => return Some(Err(e)),
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            let left = self.cg.procs().map(|p| p.len()).unwrap_or(0);
            return Some(Err(Error::new(
                Code::Timeout,
                format!(
                    "killing cgroup /{}: the timeout passed with {left} processes left",
                    self.cg.path().as_str()
                ),
            )));
        }
        match self.members.arm(cx) {
            Ok(backoff) => {
                if let Some(at) = sooner(backoff, self.deadline) {
                    cx.wake_at(at);
                }
                None
            }
            Err(e) => Some(Err(e)),
        }
    }
}

impl Cgroup {
    /// Whether the unified hierarchy offers `cgroup.kill` for this cgroup.
    pub fn has_cgroup_kill(&self) -> bool {
        self.unified_dir()
            .is_some_and(|d| files::exists(d, "cgroup.kill"))
    }

    /// Kills every process in the cgroup; `done` gets the report once it is empty, or
    /// ERR_TIMEOUT when `timeout` passes first.
    pub fn kill_async(
        &self,
        timeout: Option<Duration>,
        done: Done<KillReport>,
    ) -> Result<WaitHandle> {
        waiter::submit(Kill::new(self, deadline(timeout)), done)
    }

    /// `kill_async`, blocking the calling thread.
    pub fn kill(&self, timeout: Option<Duration>) -> Result<KillReport> {
        waiter::run(Kill::new(self, deadline(timeout)))
    }

    /// Runs `f` with the cgroup frozen (not waiting for the freeze to complete: the rounds
    /// around it converge either way), thawing on every path.
    fn with_frozen<T>(&self, freeze: bool, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if !freeze {
            return f();
        }
        match self.set_frozen(true) {
            Ok(_) => {}
            Err(e) if e.code == Code::NoSuchCgroup => return f(),
            Err(e) => return Err(e),
        }
        let r = f();
        let thawed = self.set_frozen(false);
        match (r, thawed) {
            (Ok(v), Ok(_)) => Ok(v),
            (Ok(v), Err(e)) if e.code == Code::NoSuchCgroup => Ok(v),
            (Ok(_), Err(e)) => Err(e),
            (Err(e), _) => Err(e),
        }
    }
}

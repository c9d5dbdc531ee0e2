//! Waiting for a cgroup state someone else brings about: populated (a process in it) or frozen
//! (its freezer done), resolved at once when it already holds. Notifications only say "look
//! again" (the kernel rate-limits `cgroup.events` notifications, and a quick 0→1→0 may read 0
//! twice): the file is re-read at each one, so a state is never missed for a transition that
//! was coalesced. Without a unified hierarchy (v1 only), `cgroup.procs` and `freezer.state` are
//! re-read on a bounded backoff: v1 notifies neither.

use std::time::{Duration, Instant};

use crate::cgroup::files;
use crate::cgroup::manage::empty::{deadline, sooner};
use crate::cgroup::manage::freezer::Freezer;
use crate::cgroup::manage::manager::Cgroup;
use crate::error::{Code, Error, Result};
use crate::reactor::waiter::{self, Done, Op, OpCx, WaitHandle};

/// A state of a cgroup to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// At least one process in the cgroup (or its subtree, on a unified hierarchy).
    Populated,
    /// Every process frozen (`frozen 1`, or v1 `FROZEN`); `Thawed` its opposite.
    Frozen,
    Thawed,
}

struct WaitState {
    cg: Cgroup,
    state: State,
    deadline: Option<Instant>,
    watching: bool,
    backoff: Duration,
}

impl WaitState {
    /// Whether the state holds now, and whether a notification will say when it changes.
    fn holds(&self) -> Result<(bool, bool)> {
        let unified = self.cg.unified_dir();
        let events = || -> Result<crate::event::Counters> {
            let dir = unified.expect("checked");
            Ok(crate::cgroup::stats::parse_counters(&files::read(
                dir,
                "cgroup.events",
                "reading the cgroup's state",
            )?))
        };
        match self.state {
            State::Populated if unified.is_some() => {
                Ok((events()?.get("populated") == Some(&1), true))
            }
            State::Populated => Ok((!self.cg.procs()?.is_empty(), false)),
            State::Frozen | State::Thawed => {
                let want = self.state == State::Frozen;
                match self.cg.freezer() {
                    Some(Freezer::Unified) => {
                        Ok((events()?.get("frozen") == Some(&(want as u64)), true))
                    }
                    Some(Freezer::V1) => {
                        let dir = self.cg.v1_dir("freezer").expect("has a v1 freezer");
                        let text = files::read(dir, "freezer.state", "reading the freezer state")?;
                        Ok((text.trim() == if want { "FROZEN" } else { "THAWED" }, false))
                    }
                    None => Err(Error::new(
                        Code::UnsupportedKernel,
                        format!(
                            "cgroup /{} has no freezer (no cgroup.freeze, no v1 freezer)",
                            self.cg.path().as_str()
                        ),
                    )),
                }
            }
        }
    }

    fn poll(&mut self, cx: &mut OpCx<'_, '_>) -> Result<Option<bool>> {
        if !self.watching {
            if let Some(dir) = self.cg.unified_dir() {
                cx.watch_file(&dir.join("cgroup.events"))?;
            }
            self.watching = true;
        }
        let (holds, notified) = self.holds()?;
        if holds {
            return Ok(Some(true));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Some(false));
        }
        let backoff = (!notified).then(|| {
            let at = Instant::now() + self.backoff;
            self.backoff = (self.backoff * 2).min(Duration::from_millis(100));
            at
        });
        if let Some(at) = sooner(backoff, self.deadline) {
            cx.wake_at(at);
        }
        Ok(None)
    }
}

impl Op for WaitState {
    type Output = bool;

    fn step(&mut self, cx: &mut OpCx<'_, '_>) -> Option<Result<bool>> {
        self.poll(cx).transpose()
    }
}

impl Cgroup {
    /// Waits until `state` holds: `true` (at once when it already does); `false` when
    /// `timeout` passed first. A cgroup removed meanwhile is `ERR_NO_SUCH_CGROUP`.
    pub fn wait_state_async(
        &self,
        state: State,
        timeout: Option<Duration>,
        done: Done<bool>,
    ) -> Result<WaitHandle> {
        waiter::submit(self.wait_state_op(state, timeout), done)
    }

    /// `wait_state_async`, blocking the calling thread.
    pub fn wait_state(&self, state: State, timeout: Option<Duration>) -> Result<bool> {
        waiter::run(self.wait_state_op(state, timeout))
    }

    fn wait_state_op(&self, state: State, timeout: Option<Duration>) -> WaitState {
        WaitState {
            cg: self.clone(),
            state,
            deadline: deadline(timeout),
            watching: false,
            backoff: Duration::from_millis(1),
        }
    }
}

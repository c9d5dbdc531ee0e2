//! Freezing: `cgroup.freeze` on a unified hierarchy (v2, or hybrid hosts, whose unified
//! children have it), waited for through `cgroup.events` `frozen 1` (it polls `POLLPRI` on change); else the
//! v1 freezer's `freezer.state`, which has no notification and is re-read with a bounded
//! backoff until it says FROZEN.

use std::time::{Duration, Instant};

use crate::cgroup::files;
use crate::cgroup::manage::empty::{deadline, sooner};
use crate::cgroup::manage::manager::Cgroup;
use crate::error::{Code, Error, Result};
use crate::reactor::waiter::{self, Done, Op, OpCx, WaitHandle};

pub enum Freezer {
    Unified,
    /// v1 `freezer.state`.
    V1,
}

impl Cgroup {
    /// Which freezer this cgroup uses, if any.
    pub fn freezer(&self) -> Option<Freezer> {
        if self
            .unified_dir()
            .is_some_and(|d| files::exists(d, "cgroup.freeze"))
        {
            Some(Freezer::Unified)
        } else if self.v1_dir("freezer").is_some() {
            Some(Freezer::V1)
        } else {
            None
        }
    }

    /// Starts freezing or thawing without waiting for it to complete.
    pub fn set_frozen(&self, frozen: bool) -> Result<Freezer> {
        let what = if frozen {
            "freezing the cgroup"
        } else {
            "thawing the cgroup"
        };
        match self.freezer() {
            Some(Freezer::Unified) => {
                let dir = self.unified_dir().expect("checked");
                files::write(dir, "cgroup.freeze", if frozen { "1" } else { "0" }, what)?;
                Ok(Freezer::Unified)
            }
            Some(Freezer::V1) => {
                let dir = self.v1_dir("freezer").expect("checked");
                let state = if frozen { "FROZEN" } else { "THAWED" };
                files::write(dir, "freezer.state", state, what)?;
                Ok(Freezer::V1)
            }
            None => Err(Error::new(
                Code::UnsupportedKernel,
                format!(
                    "{what} /{}: no cgroup.freeze on a unified hierarchy and no v1 freezer hierarchy",
                    self.path().as_str()
                ),
            )),
        }
    }

    /// Freezes every process of the cgroup; `done` is called once the kernel reports it
    /// frozen, or with ERR_TIMEOUT when `timeout` passes first.
    pub fn freeze_async(
        &self,
        frozen: bool,
        timeout: Option<Duration>,
        done: Done<()>,
    ) -> Result<WaitHandle> {
        waiter::submit(Freeze::new(self, frozen, timeout), done)
    }

    /// Freezes (`frozen`) or thaws, blocking the calling thread until the kernel says it is done.
    pub fn set_state(&self, frozen: bool, timeout: Option<Duration>) -> Result<()> {
        waiter::run(Freeze::new(self, frozen, timeout))
    }
}

/// Freezing or thawing, until the kernel reports it done: on a unified hierarchy woken by
/// `cgroup.events` (`frozen`); the v1 freezer has no notification and is re-read on a bounded
/// backoff until `freezer.state` says so.
pub(crate) struct Freeze {
    cg: Cgroup,
    frozen: bool,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    started: bool,
    backoff: Duration,
}

impl Freeze {
    fn new(cg: &Cgroup, frozen: bool, timeout: Option<Duration>) -> Freeze {
        Freeze {
            cg: cg.clone(),
            frozen,
            timeout,
            deadline: deadline(timeout),
            started: false,
            backoff: Duration::from_micros(500),
        }
    }

    /// `Some(())` once the kernel reports the state asked for.
    fn poll(&mut self, cx: &mut OpCx<'_, '_>) -> Result<Option<()>> {
        let unified = matches!(self.cg.freezer(), Some(Freezer::Unified));
        if !self.started {
            if unified {
                cx.watch_file(
                    &self
                        .cg
                        .unified_dir()
                        .expect("checked")
                        .join("cgroup.events"),
                )?;
            }
            self.cg.set_frozen(self.frozen)?;
            self.started = true;
        }
        let done = if unified {
            let dir = self.cg.unified_dir().expect("checked");
            let text = files::read(dir, "cgroup.events", "reading the freezer state")?;
            files::keyed(&text, "frozen") == Some(self.frozen as u64)
        } else {
            let dir = self.cg.v1_dir("freezer").expect("set_frozen checked");
            let state = files::read(dir, "freezer.state", "reading the freezer state")?;
            state.trim() == if self.frozen { "FROZEN" } else { "THAWED" }
        };
        if done {
            return Ok(Some(()));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            let what = if self.frozen { "freezing" } else { "thawing" };
            let within = self
                .timeout
                .map(|t| format!(" within {} ms", t.as_millis()))
                .unwrap_or_default();
            return Err(Error::new(
                Code::Timeout,
                format!(
                    "{what} cgroup /{}: not done{within}",
                    self.cg.path().as_str()
                ),
            ));
        }
        let backoff = (!unified).then(|| {
            let at = Instant::now() + self.backoff;
            self.backoff = (self.backoff * 2).min(Duration::from_millis(20));
            at
        });
        if let Some(at) = sooner(backoff, self.deadline) {
            cx.wake_at(at);
        }
        Ok(None)
    }
}

impl Op for Freeze {
    type Output = ();

    fn step(&mut self, cx: &mut OpCx<'_, '_>) -> Option<Result<()>> {
        self.poll(cx).transpose()
    }
}

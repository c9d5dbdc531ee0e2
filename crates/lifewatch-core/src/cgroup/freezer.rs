//! Freezing: `cgroup.freeze` on a unified hierarchy (v2, or hybrid hosts, whose unified
//! children have it), waited for through `cgroup.events` `frozen 1` with inotify; else the
//! v1 freezer's `freezer.state`, which has no notification and is re-read with a bounded
//! backoff until it says FROZEN.

use std::time::{Duration, Instant};

use crate::cgroup::empty::Cancel;
use crate::cgroup::events_watch::EventsWatch;
use crate::cgroup::files;
use crate::cgroup::manager::Cgroup;
use crate::error::{Code, Error, Result};

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

    /// Freezes every process of the cgroup; returns once the kernel reports it frozen.
    pub fn freeze(&self, timeout: Duration, cancel: Option<&Cancel>) -> Result<()> {
        self.set_state(true, timeout, cancel)
    }

    pub fn thaw(&self, timeout: Duration, cancel: Option<&Cancel>) -> Result<()> {
        self.set_state(false, timeout, cancel)
    }

    fn set_state(&self, frozen: bool, timeout: Duration, cancel: Option<&Cancel>) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let what = if frozen { "freezing" } else { "thawing" };
        let busy = || {
            Error::new(
                Code::CgroupBusy,
                format!(
                    "{what} cgroup /{}: not done within {timeout:?}",
                    self.path().as_str()
                ),
            )
        };
        match self.freezer() {
            Some(Freezer::Unified) => {
                let dir = self.unified_dir().expect("checked");
                let watch = EventsWatch::new(dir)?;
                self.set_frozen(frozen)?;
                loop {
                    let text = files::read(dir, "cgroup.events", "reading the freezer state")?;
                    if files::keyed(&text, "frozen") == Some(frozen as u64) {
                        return Ok(());
                    }
                    if !watch.wait(deadline, cancel)? {
                        return Err(busy());
                    }
                }
            }
            _ => {
                self.set_frozen(frozen)?;
                let dir = self.v1_dir("freezer").expect("set_frozen checked");
                let want = if frozen { "FROZEN" } else { "THAWED" };
                let mut backoff = Duration::from_micros(500);
                loop {
                    let state = files::read(dir, "freezer.state", "reading the freezer state")?;
                    if state.trim() == want {
                        return Ok(());
                    }
                    let now = Instant::now();
                    if now >= deadline || cancel.is_some_and(Cancel::is_cancelled) {
                        return Err(busy());
                    }
                    std::thread::sleep(backoff.min(deadline - now));
                    backoff = (backoff * 2).min(Duration::from_millis(20));
                }
            }
        }
    }
}

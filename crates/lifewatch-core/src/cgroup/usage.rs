//! A cgroup's current usage for `Cgroup::stats()`: memory, pids, population and freezing,
//! from whichever hierarchy holds each controller. Files a kernel lacks are left out.

use std::path::Path;

use crate::cgroup::files;
use crate::cgroup::manager::Cgroup;
use crate::error::{Code, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in use now (v2 `memory.current`, v1 `memory.usage_in_bytes`).
    pub memory_current: Option<u64>,
    /// Highest use seen (v2 `memory.peak`, v1 `memory.max_usage_in_bytes`).
    pub memory_peak: Option<u64>,
    /// The limit; `None` when unlimited or unknown.
    pub memory_max: Option<u64>,
    pub pids_current: Option<u64>,
    pub pids_max: Option<u64>,
    /// Processes listed in `cgroup.procs` across hierarchies.
    pub procs: u64,
    pub populated: Option<bool>,
    pub frozen: Option<bool>,
}

fn number(dir: &Path, name: &str) -> Result<Option<u64>> {
    match files::read(dir, name, "reading the cgroup's usage") {
        // "max" (v2) and PAGE_COUNTER_MAX-ish values (v1) both mean unlimited.
        Ok(s) => Ok(s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&n| n < (i64::MAX as u64) & !0xfff)),
        Err(e) if e.code == Code::NoSuchCgroup && dir.is_dir() => Ok(None),
        Err(e) => Err(e),
    }
}

impl Cgroup {
    pub fn usage(&self) -> Result<Usage> {
        let mut u = Usage {
            procs: self.procs()?.len() as u64,
            ..Default::default()
        };
        if let Some(dir) = self.v1_dir("memory") {
            u.memory_current = number(dir, "memory.usage_in_bytes")?;
            u.memory_peak = number(dir, "memory.max_usage_in_bytes")?;
            u.memory_max = number(dir, "memory.limit_in_bytes")?;
        } else if let Some(dir) = self.unified_dir() {
            u.memory_current = number(dir, "memory.current")?;
            u.memory_peak = number(dir, "memory.peak")?;
            u.memory_max = number(dir, "memory.max")?;
        }
        if let Some(dir) = self.v1_dir("pids").or(self.unified_dir()) {
            u.pids_current = number(dir, "pids.current")?;
            u.pids_max = number(dir, "pids.max")?;
        }
        if let Some(dir) = self.unified_dir() {
            let ev = files::read(dir, "cgroup.events", "reading the cgroup's usage")?;
            u.populated = files::keyed(&ev, "populated").map(|v| v == 1);
            u.frozen = files::keyed(&ev, "frozen").map(|v| v == 1);
        } else if let Some(dir) = self.v1_dir("freezer") {
            let st = files::read(dir, "freezer.state", "reading the cgroup's usage")?;
            u.frozen = Some(st.trim() == "FROZEN");
            u.populated = Some(u.procs > 0);
        }
        Ok(u)
    }
}

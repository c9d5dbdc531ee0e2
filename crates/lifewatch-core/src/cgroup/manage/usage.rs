//! `Cgroup::usage()`: the watchers' resource snapshot (`stats.rs`: memory, memory event
//! counters, pids.current) plus what the manager knows: pids.max, the processes listed,
//! population and freezing.

use crate::cgroup::files;
use crate::cgroup::manage::manager::Cgroup;
use crate::cgroup::stats::{read_u64, snapshot, Stats};
use crate::error::Result;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub stats: Stats,
    /// `pids.max`; `None` when unlimited.
    pub pids_max: Option<u64>,
    /// Processes listed in `cgroup.procs` across hierarchies.
    pub procs: u64,
    /// Unified `cgroup.events` populated (v1 only: whether any process is listed).
    pub populated: Option<bool>,
    pub frozen: Option<bool>,
}

impl Cgroup {
    pub fn usage(&self) -> Result<Usage> {
        // procs first: a cgroup that is gone is ERR_NO_SUCH_CGROUP, not an empty snapshot.
        let procs = self.procs()?.len() as u64;
        let mut u = Usage {
            stats: snapshot(self.layout(), self.path()),
            procs,
            ..Default::default()
        };
        if let Some(dir) = self.v1_dir("pids").or(self.unified_dir()) {
            u.pids_max = read_u64(&dir.join("pids.max"));
        }
        if let Some(dir) = self.unified_dir() {
            let ev = files::read(dir, "cgroup.events", "reading the cgroup's usage")?;
            u.populated = files::keyed(&ev, "populated").map(|v| v == 1);
            u.frozen = files::keyed(&ev, "frozen").map(|v| v == 1);
        } else {
            if let Some(dir) = self.v1_dir("freezer") {
                let st = files::read(dir, "freezer.state", "reading the cgroup's usage")?;
                u.frozen = Some(st.trim() == "FROZEN");
            }
            u.populated = Some(procs > 0);
        }
        Ok(u)
    }
}

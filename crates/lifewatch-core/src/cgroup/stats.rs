//! A cgroup's resource snapshot, read at event time (OOM, exit, removal) and by
//! `Cgroup.stats()`: memory usage, peak and limit, the memory event counters and
//! pids.current, from v2 files or their v1 equivalents. Missing files are `None`, never
//! errors: a snapshot is best effort by nature (the cgroup may be going away).

use std::path::Path;

use crate::cgroup::layout::Layout;
use crate::cgroup::path::CgroupPath;
pub use crate::event::{Counters, Stats};

/// v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (0x7FFFFFFFFFFFF000 on 4K
/// pages); anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// Reads a snapshot of `cg` wherever its controllers live in `layout`.
pub fn snapshot(layout: &Layout, cg: &CgroupPath) -> Stats {
    let mut s = Stats::default();
    let unified = layout.unified.as_ref().map(|h| cg.dir_in(h));
    let v2_memory = unified
        .as_ref()
        .filter(|d| d.join("memory.current").exists());
    if let Some(dir) = v2_memory {
        s.memory_current = read_u64(&dir.join("memory.current"));
        s.memory_peak = read_u64(&dir.join("memory.peak"));
        s.memory_max = read_u64(&dir.join("memory.max"));
        s.memory_events = read_counters(&dir.join("memory.events")).unwrap_or_default();
    } else if let Some(h) = layout.v1.get("memory") {
        let dir = cg.dir_in(h);
        s.memory_current = read_u64(&dir.join("memory.usage_in_bytes"));
        s.memory_peak = read_u64(&dir.join("memory.max_usage_in_bytes"));
        s.memory_max = read_u64(&dir.join("memory.limit_in_bytes")).filter(|&v| v < V1_UNLIMITED);
        s.memory_events = read_counters(&dir.join("memory.oom_control")).unwrap_or_default();
        if let Some(f) = read_u64(&dir.join("memory.failcnt")) {
            s.memory_events.insert("failcnt".into(), f);
        }
    }
    let pids_dir = match layout.v1.get("pids") {
        Some(h) => Some(cg.dir_in(h)),
        None => unified,
    };
    s.pids_current = pids_dir.and_then(|d| read_u64(&d.join("pids.current")));
    s
}

/// A single-number file; `max` (no limit) and unreadable files are `None`.
pub fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A flat-keyed file (`memory.events`, `memory.oom_control`, `cgroup.events`).
pub fn read_counters(path: &Path) -> std::io::Result<Counters> {
    std::fs::read_to_string(path).map(|t| parse_counters(&t))
}

/// `key value` lines; lines whose value is not a number are skipped.
pub fn parse_counters(text: &str) -> Counters {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let (k, v) = (it.next()?, it.next()?);
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Per-key increase from `before` to `after`. A counter that went down (a cgroup removed
/// and recreated under the same name) counts from zero.
pub fn deltas(before: &Counters, after: &Counters) -> Counters {
    after
        .iter()
        .map(|(k, &v)| {
            let b = before.get(k).copied().unwrap_or(0);
            (k.clone(), if v >= b { v - b } else { v })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flat_keyed_files() {
        let c = parse_counters("low 0\nhigh 12\nmax 35\noom 1\noom_kill 1\noom_group_kill 0\n");
        assert_eq!(c["max"], 35);
        assert_eq!(c["oom_kill"], 1);
        let v1 = parse_counters("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
        assert_eq!(v1["oom_kill"], 3);
        assert!(parse_counters("garbage\nx y\n\n").is_empty());
    }

    #[test]
    fn deltas_against_a_baseline() {
        let before = parse_counters("oom 1\noom_kill 1\nmax 10\n");
        let after = parse_counters("oom 2\noom_kill 3\nmax 10\nhigh 4\n");
        let d = deltas(&before, &after);
        assert_eq!(d["oom_kill"], 2);
        assert_eq!(d["oom"], 1);
        assert_eq!(d["max"], 0);
        assert_eq!(d["high"], 4, "a new key counts from zero");
        let reset = deltas(&after, &parse_counters("oom_kill 1\n"));
        assert_eq!(reset["oom_kill"], 1, "a counter that went down restarted");
    }

    #[test]
    fn snapshot_of_fake_trees() {
        let t = std::env::temp_dir().join(format!("lw-stats-{}", std::process::id()));
        let v2 = t.join("v2");
        std::fs::create_dir_all(v2.join("job")).unwrap();
        std::fs::write(v2.join("cgroup.controllers"), "memory pids").unwrap();
        let job = v2.join("job");
        std::fs::write(job.join("memory.current"), "4096\n").unwrap();
        std::fs::write(job.join("memory.peak"), "8192\n").unwrap();
        std::fs::write(job.join("memory.max"), "max\n").unwrap();
        std::fs::write(job.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        std::fs::write(job.join("pids.current"), "3\n").unwrap();
        let l = Layout::from_root(&v2).unwrap();
        let s = snapshot(&l, &CgroupPath::parse("job", &l).unwrap());
        assert_eq!(s.memory_current, Some(4096));
        assert_eq!(s.memory_peak, Some(8192));
        assert_eq!(s.memory_max, None);
        assert_eq!(s.memory_events["oom_kill"], 1);
        assert_eq!(s.pids_current, Some(3));

        let v1 = t.join("v1");
        std::fs::create_dir_all(v1.join("memory/job")).unwrap();
        let job = v1.join("memory/job");
        std::fs::write(job.join("memory.usage_in_bytes"), "100\n").unwrap();
        std::fs::write(job.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        std::fs::write(job.join("memory.oom_control"), "under_oom 0\noom_kill 2\n").unwrap();
        std::fs::write(job.join("memory.failcnt"), "7\n").unwrap();
        let l = Layout::from_root(&v1).unwrap();
        let s = snapshot(&l, &CgroupPath::parse("job", &l).unwrap());
        assert_eq!(s.memory_current, Some(100));
        assert_eq!(s.memory_max, None, "v1 'unlimited'");
        assert_eq!(s.memory_events["oom_kill"], 2);
        assert_eq!(s.memory_events["failcnt"], 7);
        assert_eq!(s.pids_current, None);
        std::fs::remove_dir_all(&t).unwrap();
    }
}

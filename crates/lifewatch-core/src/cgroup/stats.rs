//! A cgroup's resource snapshot, read at event time (OOM, exit, removal) and by
//! `Cgroup.stats()`: memory usage, peak and limit, swap, the memory event counters, pids
//! current and peak, CPU time and PSI averages, from v2 files or their v1 equivalents.
//! Missing files are `None`, never errors: a snapshot is best effort by nature (the cgroup
//! may be going away, the kernel may lack the file).

use std::path::Path;

use crate::cgroup::layout::Layout;
use crate::cgroup::path::CgroupPath;
pub use crate::event::{Counters, Pressure, Stats};
use crate::pseudofile;

/// v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (0x7FFFFFFFFFFFF000 on 4K
/// pages); anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// Reads a snapshot of `cg` wherever its controllers live in `layout`.
pub fn snapshot(layout: &Layout, cg: &CgroupPath) -> Stats {
    let mut s = Stats::default();
    let unified = layout.unified.as_ref().map(|h| cg.dir_in(h));
    // A unified directory with memory.current has the v2 memory controller.
    let v2_memory = unified.as_ref().and_then(|d| {
        Some((
            d,
            parse_u64(&pseudofile::read(d.join("memory.current")).ok()?),
        ))
    });
    if let Some((dir, current)) = v2_memory {
        s.memory_current = current;
        s.memory_peak = read_u64(&dir.join("memory.peak"));
        s.memory_max = read_u64(&dir.join("memory.max"));
        s.memory_events = read_counters(&dir.join("memory.events")).unwrap_or_default();
        s.swap_current = read_u64(&dir.join("memory.swap.current"));
    } else if let Some(h) = layout.v1.get("memory") {
        let dir = cg.dir_in(h);
        s.memory_current = read_u64(&dir.join("memory.usage_in_bytes"));
        s.memory_peak = read_u64(&dir.join("memory.max_usage_in_bytes"));
        s.memory_max = read_u64(&dir.join("memory.limit_in_bytes")).filter(|&v| v < V1_UNLIMITED);
        s.memory_events = read_counters(&dir.join("memory.oom_control")).unwrap_or_default();
        if let Some(f) = read_u64(&dir.join("memory.failcnt")) {
            s.memory_events.insert("failcnt".into(), f);
        }
        let memsw = read_u64(&dir.join("memory.memsw.usage_in_bytes"));
        s.swap_current = memsw
            .zip(s.memory_current)
            .map(|(all, mem)| all.saturating_sub(mem));
    }
    let pids_dir = match layout.v1.get("pids") {
        Some(h) => Some(cg.dir_in(h)),
        None => unified.clone(),
    };
    if let Some(d) = pids_dir {
        s.pids_current = read_u64(&d.join("pids.current"));
        s.pids_peak = read_u64(&d.join("pids.peak"));
    }
    let cpu_stat = unified
        .as_ref()
        .and_then(|d| read_counters(&d.join("cpu.stat")).ok());
    if let Some(c) = cpu_stat.filter(|c| c.contains_key("user_usec")) {
        s.cpu_user_usec = c.get("user_usec").copied();
        s.cpu_system_usec = c.get("system_usec").copied();
    } else if let Some(h) = layout.v1.get("cpuacct") {
        let dir = cg.dir_in(h);
        s.cpu_user_usec = read_u64(&dir.join("cpuacct.usage_user")).map(|ns| ns / 1000);
        s.cpu_system_usec = read_u64(&dir.join("cpuacct.usage_sys")).map(|ns| ns / 1000);
    }
    if let Some(d) = unified {
        s.psi_cpu = read_pressure(&d.join("cpu.pressure"));
        s.psi_memory = read_pressure(&d.join("memory.pressure"));
        s.psi_io = read_pressure(&d.join("io.pressure"));
    }
    s
}

/// A PSI file's avg10 and total figures; `None` when the file is absent or unreadable (PSI off).
fn read_pressure(path: &Path) -> Option<Pressure> {
    pseudofile::read(path).ok().map(|t| parse_pressure(&t))
}

/// `12.34` to 1234; at most two decimals, as the kernel prints.
fn hundredths(v: &str) -> Option<u32> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u32 = format!("{frac:0<2}").parse().ok()?;
    int.parse::<u32>().ok()?.checked_mul(100)?.checked_add(frac)
}

/// `some avg10=1.50 avg60=… total=…` and `full …` lines: avg10 and total.
pub fn parse_pressure(text: &str) -> Pressure {
    let mut p = Pressure::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let kind = it.next();
        let (mut avg10, mut total) = (None, None);
        for f in it {
            if let Some(v) = f.strip_prefix("avg10=") {
                avg10 = hundredths(v);
            } else if let Some(v) = f.strip_prefix("total=") {
                total = v.parse().ok();
            }
        }
        match kind {
            Some("some") => (p.some_avg10, p.some_total) = (avg10, total),
            Some("full") => (p.full_avg10, p.full_total) = (avg10, total),
            _ => {}
        }
    }
    p
}

/// A single-number file; `max` (no limit) and unreadable files are `None`.
pub fn read_u64(path: &Path) -> Option<u64> {
    parse_u64(&pseudofile::read(path).ok()?)
}

fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// A flat-keyed file (`memory.events`, `memory.oom_control`, `cgroup.events`).
pub fn read_counters(path: &Path) -> std::io::Result<Counters> {
    pseudofile::read(path).map(|t| parse_counters(&t))
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
    fn parses_pressure_files() {
        let p = parse_pressure("some avg10=12.34 avg60=1.00 avg300=0.10 total=99\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=7\n");
        assert_eq!((p.some_avg10, p.full_avg10), (Some(1234), Some(50)));
        assert_eq!((p.some_total, p.full_total), (Some(99), Some(7)));
        assert_eq!(
            parse_pressure("garbage\nsome avg60=1\n"),
            Pressure::default()
        );
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
        std::fs::write(job.join("pids.peak"), "5\n").unwrap();
        std::fs::write(job.join("memory.swap.current"), "1024\n").unwrap();
        std::fs::write(
            job.join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnice_usec 0\n",
        )
        .unwrap();
        std::fs::write(
            job.join("memory.pressure"),
            "some avg10=1.25 avg60=0.50 avg300=0.00 total=123\nfull avg10=0.75 avg60=0.00 avg300=0.00 total=45\n",
        )
        .unwrap();
        std::fs::write(
            job.join("cpu.pressure"),
            "some avg10=3.00 avg60=0.00 avg300=0.00 total=9\n",
        )
        .unwrap();
        let l = Layout::from_root(&v2).unwrap();
        let s = snapshot(&l, &CgroupPath::parse("job", &l).unwrap());
        assert_eq!(s.memory_current, Some(4096));
        assert_eq!(s.memory_peak, Some(8192));
        assert_eq!(s.memory_max, None);
        assert_eq!(s.memory_events["oom_kill"], 1);
        assert_eq!(s.pids_current, Some(3));
        assert_eq!(s.pids_peak, Some(5));
        assert_eq!(s.swap_current, Some(1024));
        assert_eq!(
            (s.cpu_user_usec, s.cpu_system_usec),
            (Some(1000), Some(500))
        );
        let mem = s.psi_memory.unwrap();
        assert_eq!((mem.some_avg10, mem.full_avg10), (Some(125), Some(75)));
        let cpu = s.psi_cpu.unwrap();
        assert_eq!(
            (cpu.some_avg10, cpu.full_avg10),
            (Some(300), None),
            "no full line"
        );
        assert_eq!(s.psi_io, None, "no io.pressure file");

        let v1 = t.join("v1");
        std::fs::create_dir_all(v1.join("memory/job")).unwrap();
        let job = v1.join("memory/job");
        std::fs::write(job.join("memory.usage_in_bytes"), "100\n").unwrap();
        std::fs::write(job.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        std::fs::write(job.join("memory.oom_control"), "under_oom 0\noom_kill 2\n").unwrap();
        std::fs::write(job.join("memory.failcnt"), "7\n").unwrap();
        std::fs::write(job.join("memory.memsw.usage_in_bytes"), "164\n").unwrap();
        std::fs::create_dir_all(v1.join("cpuacct/job")).unwrap();
        std::fs::write(v1.join("cpuacct/job/cpuacct.usage_user"), "7000000\n").unwrap();
        std::fs::write(v1.join("cpuacct/job/cpuacct.usage_sys"), "2000\n").unwrap();
        std::fs::create_dir_all(v1.join("pids/job")).unwrap();
        std::fs::write(v1.join("pids/job/pids.current"), "2\n").unwrap();
        std::fs::write(v1.join("pids/job/pids.peak"), "4\n").unwrap();
        let l = Layout::from_root(&v1).unwrap();
        let s = snapshot(&l, &CgroupPath::parse("job", &l).unwrap());
        assert_eq!(s.memory_current, Some(100));
        assert_eq!(s.memory_max, None, "v1 'unlimited'");
        assert_eq!(s.memory_events["oom_kill"], 2);
        assert_eq!(s.memory_events["failcnt"], 7);
        assert_eq!(s.swap_current, Some(64), "memsw less memory");
        assert_eq!((s.cpu_user_usec, s.cpu_system_usec), (Some(7000), Some(2)));
        assert_eq!((s.pids_current, s.pids_peak), (Some(2), Some(4)));
        assert_eq!(s.psi_memory, None, "no unified hierarchy: no PSI");

        // Hybrid: memory in v1, CPU time and PSI from the unified directory, whose cpu.stat
        // wins over cpuacct.
        std::fs::create_dir_all(v1.join("unified/job")).unwrap();
        std::fs::write(v1.join("unified/cgroup.controllers"), "").unwrap();
        std::fs::write(
            v1.join("unified/job/cpu.stat"),
            "usage_usec 9\nuser_usec 6\nsystem_usec 3\n",
        )
        .unwrap();
        std::fs::write(v1.join("unified/job/io.pressure"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
        let l = Layout::from_root(&v1).unwrap();
        let s = snapshot(&l, &CgroupPath::parse("job", &l).unwrap());
        assert_eq!(s.memory_current, Some(100), "memory still from v1");
        assert_eq!((s.cpu_user_usec, s.cpu_system_usec), (Some(6), Some(3)));
        assert_eq!(
            s.psi_io,
            Some(Pressure {
                some_avg10: Some(0),
                full_avg10: Some(0),
                some_total: Some(0),
                full_total: Some(0),
            })
        );
        assert_eq!(s.psi_cpu, None);
        std::fs::remove_dir_all(&t).unwrap();
    }
}

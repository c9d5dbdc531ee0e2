//! `/dev/kmsg` records and the OOM killer's lines in them, as text. No syscalls: the parser
//! takes any text (it is fuzzed) and says what it understood.
//!
//! A record is `<prefix>,<seq>,<µs since boot>,<flags>[,…];<message>` then optional
//! ` KEY=value` lines. An OOM kill prints, in order (Linux 6.x, `mm/oom_kill.c`; the exact
//! lines seen on this project's machines are in the tests):
//!
//! 1. `<comm> invoked oom-killer: gfp_mask=…, order=…, oom_score_adj=…`, then the dump;
//! 2. the one-line summary: `oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=…,cpuset=…,
//!    mems_allowed=…,oom_memcg=<cgroup>,task_memcg=<cgroup>,task=<comm>,pid=<pid>,uid=<uid>`
//!    (`global_oom` instead of `oom_memcg=` for a system-wide OOM). The dump and this line are
//!    rate-limited (10 per 5 s): under many OOMs they may be missing;
//! 3. `Memory cgroup out of memory: Killed process <pid> (<comm>) total-vm:<n>kB,
//!    anon-rss:<n>kB, file-rss:<n>kB, shmem-rss:<n>kB, UID:<uid> pgtables:<n>kB
//!    oom_score_adj:<n>` (`Out of memory` for a system-wide one), never rate-limited; with
//!    `memory.oom.group`, once more for each other process of the group, without a summary.

use crate::event::OomVictim;

/// One record's sequence number and first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    pub message: &'a str,
}

pub fn record(raw: &str) -> Option<Record<'_>> {
    let (prefix, rest) = raw.split_once(';')?;
    let seq = prefix.split(',').nth(1)?.parse().ok()?;
    let message = rest.split('\n').next().unwrap_or(rest);
    Some(Record { seq, message })
}

/// The summary line's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub constraint: Option<String>,
    pub oom_memcg: Option<String>,
    pub task_memcg: Option<String>,
    pub comm: String,
    pub pid: i32,
    pub uid: Option<u32>,
}

/// What a line of the log is to the OOM parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// An OOM begins: what follows until the next one belongs to it.
    Invoked,
    Summary(Summary),
    Killed(OomVictim),
    Other,
}

pub fn classify(message: &str) -> Line {
    if message.contains(" invoked oom-killer: ") {
        return Line::Invoked;
    }
    if let Some(s) = message.strip_prefix("oom-kill:") {
        return summary(s).map_or(Line::Other, Line::Summary);
    }
    if let Some(i) = message.find(": Killed process ") {
        let memcg = message[..i].starts_with("Memory cgroup");
        return killed(&message[i + ": Killed process ".len()..], memcg)
            .map_or(Line::Other, Line::Killed);
    }
    Line::Other
}

/// `CONSTRAINT_MEMCG` → `memcg`.
fn constraint(s: &str) -> String {
    s.strip_prefix("CONSTRAINT_")
        .unwrap_or(s)
        .to_ascii_lowercase()
}

/// `constraint=…,…,task=<comm>,pid=<pid>,uid=<uid>`. The command name and cgroup paths may
/// hold commas: the fixed fields are found from the end.
fn summary(s: &str) -> Option<Summary> {
    let u = s.rfind(",uid=")?;
    let uid = s[u + ",uid=".len()..].trim().parse().ok();
    let p = s[..u].rfind(",pid=")?;
    let pid = s[p + ",pid=".len()..u].parse().ok()?;
    let t = s[..p].rfind(",task=")?;
    let comm = s[t + ",task=".len()..p].to_string();
    let head = &s[..t];
    let task_at = head.find(",task_memcg=");
    let task_memcg = task_at.map(|i| head[i + ",task_memcg=".len()..].to_string());
    let before_task = &head[..task_at.unwrap_or(head.len())];
    let oom_memcg = before_task
        .find(",oom_memcg=")
        .map(|i| before_task[i + ",oom_memcg=".len()..].to_string());
    let constraint = s
        .strip_prefix("constraint=")
        .map(|c| constraint(c.split(',').next().unwrap_or(c)));
    Some(Summary {
        constraint,
        oom_memcg,
        task_memcg,
        comm,
        pid,
        uid,
    })
}

/// `<n>kB` in bytes.
fn kb(v: &str) -> Option<u64> {
    v.strip_suffix("kB")?.parse::<u64>().ok()?.checked_mul(1024)
}

/// `<pid> (<comm>) total-vm:…kB, anon-rss:…kB, …`: the name may hold `)` and spaces, so it
/// ends at the last `) total-vm:`.
fn killed(s: &str, memcg: bool) -> Option<OomVictim> {
    let (pid, rest) = s.split_once(" (")?;
    let end = rest.rfind(") total-vm:")?;
    let mut v = OomVictim {
        pid: pid.parse().ok()?,
        comm: rest[..end].to_string(),
        constraint: memcg.then(|| "memcg".to_string()),
        ..OomVictim::default()
    };
    for field in rest[end + 2..].split([' ', ',']).filter(|f| !f.is_empty()) {
        let Some((k, val)) = field.split_once(':') else {
            continue;
        };
        match k {
            "total-vm" => v.total_vm = kb(val),
            "anon-rss" => v.anon_rss = kb(val),
            "file-rss" => v.file_rss = kb(val),
            "shmem-rss" => v.shmem_rss = kb(val),
            "UID" => v.uid = val.parse().ok(),
            "oom_score_adj" => v.oom_score_adj = val.parse().ok(),
            _ => {}
        }
    }
    Some(v)
}

/// Puts an OOM's lines together: a kill with the summary printed for it (same PID) gets its
/// cgroups and constraint; the other kills of one OOM (a `memory.oom.group`'s) get the OOM's
/// cgroup and constraint.
#[derive(Debug, Default)]
pub struct OomLines {
    summary: Option<Summary>,
}

impl OomLines {
    /// The victim a line completes, if any.
    pub fn feed(&mut self, message: &str) -> Option<OomVictim> {
        match classify(message) {
            Line::Invoked => {
                self.summary = None;
                None
            }
            Line::Summary(s) => {
                self.summary = Some(s);
                None
            }
            Line::Killed(mut v) => {
                if let Some(s) = &self.summary {
                    if s.pid == v.pid {
                        v.cgroup = s.task_memcg.clone();
                        v.uid = v.uid.or(s.uid);
                    }
                    v.oom_cgroup = s.oom_memcg.clone();
                    v.constraint = s.constraint.clone().or(v.constraint);
                }
                Some(v)
            }
            Line::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Read from /dev/kmsg on this project's machine (Linux 6.18, v1 memory cgroup of 16 MiB,
    // memory.memsw.limit_in_bytes equal, `tail /dev/zero`).
    const INVOKED: &str = "4,48881,10936665212,-;tail invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n";
    const SUMMARY: &str = "6,48958,10936665434,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/probe-oom,task_memcg=/probe-oom,task=tail,pid=20700,uid=0\n";
    const KILLED: &str = "3,48959,10936665452,-;Memory cgroup out of memory: Killed process 20700 (tail) total-vm:19076kB, anon-rss:16256kB, file-rss:1492kB, shmem-rss:0kB, UID:0 pgtables:80kB oom_score_adj:0\n";

    fn message(raw: &str) -> &str {
        record(raw).unwrap().message
    }

    #[test]
    fn records_as_the_kernel_writes_them() {
        let r = record(SUMMARY).unwrap();
        assert_eq!(r.seq, 48958);
        assert!(r.message.starts_with("oom-kill:"));
        assert!(!r.message.ends_with('\n'));
        let dict = "6,7,8,-;line one\n SUBSYSTEM=memory\n DEVICE=x\n";
        assert_eq!(record(dict).unwrap().message, "line one");
        assert_eq!(record("no semicolon"), None);
        assert_eq!(record("6,x,8,-;m"), None);
    }

    #[test]
    fn a_memcg_oom_kill_end_to_end() {
        let mut lines = OomLines::default();
        assert_eq!(lines.feed(message(INVOKED)), None);
        assert_eq!(lines.feed("Tasks state (memory values in pages):"), None);
        assert_eq!(lines.feed(message(SUMMARY)), None);
        let v = lines.feed(message(KILLED)).unwrap();
        assert_eq!(
            v,
            OomVictim {
                pid: 20700,
                comm: "tail".into(),
                uid: Some(0),
                cgroup: Some("/probe-oom".into()),
                oom_cgroup: Some("/probe-oom".into()),
                constraint: Some("memcg".into()),
                total_vm: Some(19076 * 1024),
                anon_rss: Some(16256 * 1024),
                file_rss: Some(1492 * 1024),
                shmem_rss: Some(0),
                oom_score_adj: Some(0),
            }
        );
    }

    #[test]
    fn a_global_oom_and_odd_names() {
        let s = "constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice/a,b,task=we,ird) x,pid=77,uid=1000";
        let Line::Summary(sum) = classify(&format!("oom-kill:{s}")) else {
            panic!()
        };
        assert_eq!(sum.constraint.as_deref(), Some("none"));
        assert_eq!(sum.oom_memcg, None);
        assert_eq!(sum.task_memcg.as_deref(), Some("/user.slice/a,b"));
        assert_eq!(
            (sum.comm.as_str(), sum.pid, sum.uid),
            ("we,ird) x", 77, Some(1000))
        );
        let Line::Killed(v) = classify("Out of memory: Killed process 77 (a) total-vm:1kB) total-vm:8kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:4kB oom_score_adj:-17")
        else {
            panic!()
        };
        assert_eq!(v.comm, "a) total-vm:1kB");
        assert_eq!(
            (v.total_vm, v.oom_score_adj, v.constraint),
            (Some(8192), Some(-17), None)
        );
    }

    #[test]
    fn a_group_kill_and_a_rate_limited_summary() {
        let mut lines = OomLines::default();
        lines.feed(message(INVOKED));
        lines.feed(message(SUMMARY));
        lines.feed(message(KILLED)).unwrap();
        let other = lines
            .feed("Memory cgroup out of memory: Killed process 20701 (sh) total-vm:100kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0")
            .unwrap();
        assert_eq!(
            (
                other.pid,
                other.cgroup.as_deref(),
                other.oom_cgroup.as_deref()
            ),
            (20701, None, Some("/probe-oom"))
        );
        // A new OOM whose summary was rate-limited away: nothing from the old one is reused.
        lines.feed("x invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0");
        let alone = lines.feed(message(KILLED)).unwrap();
        assert_eq!(
            (alone.cgroup, alone.oom_cgroup, alone.constraint.as_deref()),
            (None, None, Some("memcg"))
        );
    }

    #[test]
    fn an_older_kernel_without_uid_or_pgtables() {
        let Line::Killed(v) = classify("Memory cgroup out of memory: Killed process 5 (x) total-vm:12kB, anon-rss:8kB, file-rss:4kB, shmem-rss:0kB") else {
            panic!()
        };
        assert_eq!((v.pid, v.uid, v.anon_rss), (5, None, Some(8192)));
    }

    #[test]
    fn garbage_is_other() {
        for m in [
            "",
            "oom-kill:",
            "oom-kill:constraint=X,pid=1",
            "Killed process 1 (x)",
            ": Killed process x (y) total-vm:1kB",
            "oom-kill:,task=a,pid=b,uid=0",
        ] {
            assert_eq!(classify(m), Line::Other, "{m:?}");
        }
    }
}

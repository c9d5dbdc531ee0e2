//! What /proc says about processes, for the host and tree watches: every PID, a process's
//! name, cgroup, threads and children. Each read is best effort: a process may be gone by the
//! time its files are read, which is `None` (or empty), never an error.

use std::path::Path;

use crate::process::procstat;

/// Every PID listed in /proc (threads are not listed there).
pub fn pids() -> Vec<i32> {
    numeric_entries(Path::new("/proc"))
}

/// The thread IDs of a process (its `task/` directory); empty when it is gone.
pub fn threads(pid: i32) -> Vec<i32> {
    numeric_entries(Path::new(&format!("/proc/{pid}/task")))
}

fn numeric_entries(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The children of each of `tids` (threads of `pid`): `None` when the kernel has no
/// `children` files (CONFIG_PROC_CHILDREN), as opposed to no children.
pub fn children(pid: i32, tids: &[i32]) -> Option<Vec<i32>> {
    let mut out = Vec::new();
    for tid in tids {
        match crate::pseudofile::read(format!("/proc/{pid}/task/{tid}/children")) {
            Ok(text) => out.extend(
                text.split_ascii_whitespace()
                    .filter_map(|w| w.parse::<i32>().ok()),
            ),
            // The thread (or process) exited meanwhile: it has no children to report.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(_) if Path::new(&format!("/proc/{pid}/task/{tid}")).exists() => return None,
            Err(_) => {}
        }
    }
    Some(out)
}

/// A process's name (`/proc/<pid>/comm`, at most 15 bytes).
pub fn comm(pid: i32) -> Option<String> {
    let text = crate::pseudofile::read_bytes(format!("/proc/{pid}/comm")).ok()?;
    Some(String::from_utf8_lossy(text.strip_suffix(b"\n").unwrap_or(&text)).into_owned())
}

/// The cgroup a process is in, from `/proc/<pid>/cgroup` (see `cgroup_of`).
pub fn cgroup(pid: i32) -> Option<String> {
    cgroup_of(&crate::pseudofile::read(format!("/proc/{pid}/cgroup")).ok()?)
}

/// The path of the memory controller's hierarchy where it is a v1 one (a hybrid or v1 host:
/// the path an OOM kill reports as `task_memcg`), else the unified hierarchy's (`0::/...`).
pub fn cgroup_of(text: &str) -> Option<String> {
    let mut unified = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some(path.to_string());
        }
        if id == "0" && controllers.is_empty() {
            unified = Some(path.to_string());
        }
    }
    unified
}

/// What a scan learns of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub ppid: i32,
    pub comm: Option<String>,
    /// The whole thread group has exited; its wait status, when the kernel shows it.
    pub zombie: Option<Option<i32>>,
}

/// Reads `/proc/<pid>/stat`: the parent, the name and whether the process is a zombie.
pub fn seen(pid: i32) -> Option<Seen> {
    let (st, comm) = procstat::read_named(pid)?;
    Some(Seen {
        ppid: st.ppid,
        comm: Some(comm),
        zombie: st.is_zombie().then_some(st.exit_code),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_hierarchy_wins_over_the_unified_one() {
        let hybrid = "9:name=systemd:/\n4:memory:/process_api/a7f6\n1:cpu,cpuacct:/\n0::/\n";
        assert_eq!(cgroup_of(hybrid).as_deref(), Some("/process_api/a7f6"));
        assert_eq!(
            cgroup_of("0::/lifewatch/job1\n").as_deref(),
            Some("/lifewatch/job1")
        );
        assert_eq!(cgroup_of("5:cpu,memory:/a:b\n").as_deref(), Some("/a:b"));
        assert_eq!(cgroup_of("1:name=systemd:/\n"), None);
        assert_eq!(cgroup_of("garbage"), None);
    }

    #[test]
    fn this_process_as_a_scan_sees_it() {
        let me = std::process::id() as i32;
        assert!(pids().contains(&me));
        assert!(threads(me).contains(&me));
        let s = seen(me).unwrap();
        assert_eq!(s.ppid as u32, std::os::unix::process::parent_id());
        assert_eq!(s.zombie, None);
        assert_eq!(s.comm, comm(me));
        assert!(cgroup(me).is_some());
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let kids = children(me, &threads(me)).expect("children files");
        assert!(kids.contains(&(child.id() as i32)), "{kids:?}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(seen(child.id() as i32), None);
    }
}

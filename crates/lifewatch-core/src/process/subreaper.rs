//! Child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`), as runc and the containerd shim use it:
//! orphaned descendants are reparented to this process instead of PID 1 (which on some
//! machines never reaps them), so they can be reaped and reported.
//!
//! Only opt-in, and only zombies are ever reaped: a running child is never waited for, nor a
//! child a lifewatch watch reaps itself (a spawned child: `claim`), nor one the caller names
//! (one Node's libuv waits for). A zombie child cannot be replaced by another process under the
//! same PID until it is reaped, so checking its start time and then `waitid(P_PID)` on it is
//! race-free.

use std::collections::BTreeMap;
use std::fs;
use std::sync::{Mutex, MutexGuard};

use rustix::process::Pid;

use crate::error::{Result, SysResult};
use crate::process::exit;
use crate::process::procstat;
use crate::status::ExitStatus;

/// Children that lifewatch reaps itself (a watch, an exit wait), never the subreaper's: by
/// PID, how many owners claimed it (a watch hands its child to an exit wait, which claims it
/// before the watch lets go).
static CLAIMED: Mutex<BTreeMap<i32, usize>> = Mutex::new(BTreeMap::new());

fn claimed() -> MutexGuard<'static, BTreeMap<i32, usize>> {
    CLAIMED.lock().unwrap_or_else(|p| p.into_inner())
}

/// A child a lifewatch owner will reap (until it calls `unclaim`).
pub(crate) fn claim(pid: i32) {
    *claimed().entry(pid).or_insert(0) += 1;
}

pub(crate) fn unclaim(pid: i32) {
    let mut c = claimed();
    if let Some(n) = c.get_mut(&pid) {
        *n -= 1;
        if *n == 0 {
            c.remove(&pid);
        }
    }
}

/// Marks (or unmarks) this process as a child subreaper for its descendants.
pub fn set(on: bool) -> Result<()> {
    let me = if on { Pid::from_raw(1) } else { None };
    rustix::process::set_child_subreaper(me).sys("prctl", "PR_SET_CHILD_SUBREAPER")
}

/// Whether this process is a child subreaper.
pub fn get() -> Result<bool> {
    Ok(rustix::process::child_subreaper()
        .sys("prctl", "PR_GET_CHILD_SUBREAPER")?
        .is_some())
}

/// One of our children that has died and waits to be reaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zombie {
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`: with the PID, identifies the process for good.
    pub start_time: u64,
    pub comm: String,
}

/// A zombie that was reaped: its wait status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub pid: i32,
    pub comm: String,
    pub status: ExitStatus,
}

/// PIDs of this process's children: `/proc/self/task/*/children` (CONFIG_PROC_CHILDREN), or a
/// scan of `/proc/*/stat` for our PID as parent where that file does not exist.
fn children() -> Vec<i32> {
    let mut out = Vec::new();
    let mut have_children_files = false;
    if let Ok(tasks) = fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(text) = crate::pseudofile::read(t.path().join("children")) {
                have_children_files = true;
                out.extend(
                    text.split_ascii_whitespace()
                        .filter_map(|s| s.parse::<i32>().ok()),
                );
            }
        }
    }
    if !have_children_files {
        let me = std::process::id() as i32;
        if let Ok(procs) = fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                if procstat::read(pid).is_some_and(|s| s.ppid == me) {
                    out.push(pid);
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Our children, except the claimed ones and those in `exclude`.
fn unclaimed_children(exclude: &[i32]) -> Vec<i32> {
    let claimed = claimed().clone();
    children()
        .into_iter()
        .filter(|pid| !exclude.contains(pid) && !claimed.contains_key(pid))
        .collect()
}

/// Our children that are zombies now (their whole thread group exited), except the claimed
/// ones and those in `exclude`.
pub fn zombies(exclude: &[i32]) -> Vec<Zombie> {
    unclaimed_children(exclude)
        .into_iter()
        .filter_map(|pid| {
            let (st, comm) = procstat::read_named(pid)?;
            st.is_zombie().then_some(Zombie {
                pid,
                start_time: st.start_time,
                comm,
            })
        })
        .collect()
}

/// Our children that are still running, except the claimed ones and those in `exclude`: for a
/// subreaper, the orphans it adopted and has yet to reap.
pub fn running_children(exclude: &[i32]) -> Vec<i32> {
    unclaimed_children(exclude)
        .into_iter()
        .filter(|&pid| procstat::read(pid).is_some_and(|s| !s.is_zombie()))
        .collect()
}

/// Reaps one zombie child if it is still the same process (start time) and still unreaped.
/// `None` when someone else reaped it first.
pub fn reap(zombie: &Zombie) -> Option<Reaped> {
    let st = procstat::read(zombie.pid)?;
    if !st.is_zombie() || st.start_time != zombie.start_time {
        return None;
    }
    // Recorded as every reap by lifewatch is: a watch of the orphan learns its status there.
    let status = exit::waited(zombie.pid, Some(zombie.start_time), true, || {
        exit::wait_pid(zombie.pid, true)
    })?;
    Some(Reaped {
        pid: zombie.pid,
        comm: zombie.comm.clone(),
        status,
    })
}

/// Reaps every zombie child not in `exclude`.
pub fn reap_zombies(exclude: &[i32]) -> Vec<Reaped> {
    zombies(exclude).iter().filter_map(reap).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// An orphan (the grandchild of a shell that exits at once) is reparented to us while we
    /// are a subreaper, and reaped with its own exit status.
    #[test]
    fn reaps_a_reparented_orphan() {
        let was = get().unwrap();
        set(true).unwrap();
        assert!(get().unwrap());
        let out = Command::new("sh")
            .args(["-c", "(sleep 0.2; exit 7) & echo $!"])
            .output()
            .unwrap();
        let orphan: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut reaped = None;
        while reaped.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            let zs: Vec<Zombie> = zombies(&[])
                .into_iter()
                .filter(|z| z.pid == orphan)
                .collect();
            reaped = zs.first().and_then(reap);
        }
        set(was).unwrap();
        let r = reaped.expect("the orphan was reparented to us and reaped");
        assert_eq!(r.status, ExitStatus::Code(7));
        assert!(!r.comm.is_empty());
        // Reaped once: it is gone now, and reaping again finds nothing.
        assert!(zombies(&[]).iter().all(|z| z.pid != orphan));
    }

    #[test]
    fn excluded_and_running_children_are_left_alone() {
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !zombies(&[]).iter().any(|z| z.pid == pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(zombies(&[pid]).iter().all(|z| z.pid != pid));
        // (No reap_zombies here: tests share this process, and it would reap other tests' children.)
        // Its real waiter still gets the status.
        assert_eq!(child.wait().unwrap().code(), Some(3));
    }
}

//! PIDs as lifewatch accepts them.

use crate::error::{Error, Result};

/// Linux's PID_MAX_LIMIT (2^22): no PID is ever larger.
pub const PID_MAX_LIMIT: i64 = 1 << 22;

pub fn check_pid(pid: i64) -> Result<i32> {
    if pid <= 0 || pid > PID_MAX_LIMIT {
        return Err(Error::invalid(format!(
            "pid {pid} is out of range (1..={PID_MAX_LIMIT})"
        )));
    }
    Ok(pid as i32)
}

/// The thread group a task ID belongs to: threads have /proc entries of their own (unlisted),
/// whose `Tgid:` names their process. `None` when the task is gone or /proc is unreadable.
fn thread_group(id: i32) -> Option<i32> {
    let status = crate::pseudofile::read(format!("/proc/{id}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Tgid:"))?;
    line["Tgid:".len()..].trim().parse().ok()
}

/// Refuses the ID of a thread that is not its process's leader: kill(2) and cgroup.procs would
/// silently act on its whole process, and pidfd_open refuses it with a bare ENOENT or EINVAL.
pub fn check_not_thread(pid: i32) -> Result<()> {
    match thread_group(pid) {
        Some(tgid) if tgid != pid => Err(Error::invalid(format!(
            "pid {pid} is a thread of process {tgid}, not a process"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_not_a_process() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(rustix::thread::gettid().as_raw_nonzero().get())
                .unwrap();
            let _ = stop_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let me = std::process::id() as i32;
        let err = check_not_thread(tid).unwrap_err();
        assert_eq!(err.code, crate::error::Code::InvalidArgument);
        assert_eq!(
            err.message,
            format!("pid {tid} is a thread of process {me}, not a process")
        );
        assert!(check_not_thread(me).is_ok());
        stop_tx.send(()).unwrap();
        t.join().unwrap();
    }
}

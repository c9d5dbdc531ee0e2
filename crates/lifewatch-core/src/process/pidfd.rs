//! pidfd primitives: open, signal, and the three ways to learn an exit status.

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::process::{pidfd_open, Pid, PidfdFlags, WaitId, WaitIdOptions};

use crate::error::{Code, Error, Result, SysResult};
use crate::fd::{CountedFd, FdKind};
use crate::process::pid::check_not_thread;
use crate::status::ExitStatus;

/// Opens a pidfd (CLOEXEC by the kernel's own rule) for any process, child or not.
pub fn open(pid: i32) -> Result<CountedFd> {
    let p = Pid::from_raw(pid).ok_or_else(|| Error::invalid(format!("pid {pid} is not valid")))?;
    let fd = crate::failpoint::hit("pidfd_open")
        .and_then(|()| pidfd_open(p, PidfdFlags::empty()))
        .map_err(|e| {
            // A thread's ID: ENOENT since Linux 6.9, EINVAL before. Say so.
            if matches!(e, rustix::io::Errno::NOENT | rustix::io::Errno::INVAL) {
                if let Err(thread) = check_not_thread(pid) {
                    return thread;
                }
            }
            Error::sys(
                "pidfd_open",
                e.raw_os_error(),
                format!("watching pid {pid}"),
            )
        })?;
    Ok(CountedFd::new(fd, FdKind::Pidfd))
}

/// Sends `signo` to exactly the process the pidfd was opened for: no PID-reuse race.
/// `signo` 0 only checks that the process is still there.
pub fn send_signal(pidfd: BorrowedFd<'_>, signo: i32, pid: i32) -> Result<()> {
    if let Err(e) = crate::failpoint::hit("pidfd_send_signal") {
        let what = format!("sending signal {signo} to pid {pid}");
        return Err(Error::sys("pidfd_send_signal", e.raw_os_error(), what));
    }
    raw_send_signal(pidfd, signo, pid)
}

/// `send_signal` without its failpoint, for the internal liveness probe.
fn raw_send_signal(pidfd: BorrowedFd<'_>, signo: i32, pid: i32) -> Result<()> {
    // rustix's `Signal` has no safe constructor for real-time signals: call the syscall.
    let null: *const libc::siginfo_t = std::ptr::null();
    // SAFETY: a valid fd, a validated signal number, a null siginfo and zero flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signo,
            null,
            0u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()).sys(
            "pidfd_send_signal",
            format!("sending signal {signo} to pid {pid}"),
        )
    }
}

/// `waitid(P_PIDFD)`: works for our own children only (ECHILD otherwise).
/// With `reap = false` the zombie stays for its real parent (Node's libuv, a shell...).
pub fn wait_child(pidfd: BorrowedFd<'_>, reap: bool) -> Option<ExitStatus> {
    let mut opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    if !reap {
        opts |= WaitIdOptions::NOWAIT;
    }
    let st = rustix::process::waitid(WaitId::PidFd(pidfd), opts).ok()??;
    ExitStatus::from_wait(&st)
}

/// `struct pidfd_info` up to `exit_code` (PIDFD_INFO_SIZE_VER0, include/uapi/linux/pidfd.h).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    ids: [u32; 11],
    exit_code: i32,
}

const PIDFD_INFO_EXIT: u64 = 1 << 3;
/// `_IOWR(PIDFS_IOCTL_MAGIC = 0xFF, 11, struct pidfd_info)` with the 64-byte size.
const PIDFD_GET_INFO: libc::c_ulong = (3 << 30) | (64 << 16) | (0xFF << 8) | 11;

#[derive(Debug, PartialEq, Eq)]
pub enum InfoExit {
    Status(ExitStatus),
    /// The ioctl works but the process was not reaped yet.
    NotYet,
    /// Kernel before 6.13 (no ioctl) or 6.13/6.14 (no EXIT field).
    Unsupported,
}

/// `PIDFD_GET_INFO` with `PIDFD_INFO_EXIT` (Linux 6.15+): the status of a reaped non-child.
pub fn info_exit(pidfd: BorrowedFd<'_>) -> InfoExit {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_EXIT,
        ..Default::default()
    };
    const _: () = assert!(std::mem::size_of::<PidfdInfo>() == 64);
    // SAFETY: the kernel writes at most the 64 bytes the request encodes.
    let rc = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_INFO as _, &mut info) };
    if rc != 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            // ESRCH: the process is gone and this kernel keeps no exit info for it.
            Some(libc::ENOTTY) | Some(libc::EINVAL) => InfoExit::Unsupported,
            _ => InfoExit::NotYet,
        };
    }
    if info.mask & PIDFD_INFO_EXIT != 0 {
        InfoExit::Status(ExitStatus::from_wait_status(info.exit_code))
    } else {
        InfoExit::NotYet
    }
}

/// Whether the kernel has pidfd_open at all (ENOSYS before Linux 5.3); probed once.
pub fn supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| match open(std::process::id() as i32) {
        Ok(fd) => {
            fd.commit().close(crate::fd::Release::Normal);
            true
        }
        Err(e) => e.code != Code::UnsupportedKernel,
    })
}

/// The process is still there (alive or a zombie): signal 0 checks without sending.
pub fn alive(pidfd: BorrowedFd<'_>) -> bool {
    match raw_send_signal(pidfd, 0, 0) {
        Ok(()) => true,
        Err(e) => e.code == Code::Permission,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::Command;

    #[test]
    fn child_status_without_reaping_then_with() {
        let mut child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let fd = open(child.id() as i32).unwrap().commit();
        let mut st = None;
        for _ in 0..2000 {
            st = wait_child(fd.as_fd(), false);
            if st.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(st, Some(ExitStatus::Code(7)));
        // WNOWAIT left the zombie: the real parent still reaps it with its status.
        assert_eq!(child.wait().unwrap().code(), Some(7));
        // Reaped: the exit info now lives in the pidfd (Linux 6.15+).
        match info_exit(fd.as_fd()) {
            InfoExit::Status(s) => assert_eq!(s, ExitStatus::Code(7)),
            InfoExit::Unsupported => eprintln!("PIDFD_INFO_EXIT unsupported on this kernel"),
            InfoExit::NotYet => panic!("reaped process has no exit info"),
        }
    }

    #[test]
    fn signal_reaches_the_process() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let fd = open(pid).unwrap().commit();
        assert!(alive(fd.as_fd()));
        send_signal(fd.as_fd(), libc::SIGKILL, pid).unwrap();
        let st = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL));
        // Once reaped, the pidfd refuses signals instead of hitting a reused PID.
        let err = send_signal(fd.as_fd(), libc::SIGTERM, pid).unwrap_err();
        assert_eq!(err.code, Code::NoSuchProcess);
        assert!(!alive(fd.as_fd()));
    }

    #[test]
    fn open_reports_missing_and_invalid_pids() {
        assert_eq!(open(0).unwrap_err().code, Code::InvalidArgument);
        // PIDs above pid_max never exist.
        assert_eq!(open(4_194_304 + 1).unwrap_err().code, Code::NoSuchProcess);
        assert!(supported());
    }
}

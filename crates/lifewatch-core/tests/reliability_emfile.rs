//! Reliability part 5: EMFILE for real. RLIMIT_NOFILE is lowered so that only k fds are left
//! (k = 0..5) and a monitor plus a watch is attempted: each shortfall is a clear
//! ERR_TOO_MANY_FILES naming the syscall, with nothing half-open left behind.
//! Its own test binary: the limit is process-wide.

mod reliability;

use lifewatch_core::{Code, Monitor, MonitorOptions};
use reliability::{report, Snapshot};

/// The open fd numbers, without the directory fd used to list them.
fn fd_numbers() -> Vec<u64> {
    let listed: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own fd is closed by now: its link no longer resolves.
    let mut n: Vec<u64> = listed
        .into_iter()
        .filter(|&fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok())
        .collect();
    n.sort();
    n
}

fn open_fds() -> u64 {
    fd_numbers().len() as u64
}

/// The soft limit that leaves exactly `free` fd numbers below it unused: the kernel
/// limits the fd number, not the count.
fn limit_leaving(free: usize) -> u64 {
    let used = fd_numbers();
    (0u64..).filter(|n| !used.contains(n)).nth(free).unwrap()
}

fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on a local struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

fn set_nofile(soft: u64) {
    let mut lim = nofile();
    lim.rlim_cur = soft;
    // SAFETY: setrlimit with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

#[test]
fn too_many_files_is_typed_and_leaves_nothing_open() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    // Warm up once-only fds (the pidfd support probe) and the thread machinery.
    Monitor::new(MonitorOptions::default(), Box::new(|| {}))
        .unwrap()
        .close();
    let original = nofile().rlim_cur;
    let mut failures = Vec::new();
    for free in 0..=5u64 {
        let fds = open_fds();
        let before = Snapshot::take();
        set_nofile(limit_leaving(free as usize));
        let result = Monitor::new(MonitorOptions::default(), Box::new(|| {})).and_then(|m| {
            m.watch_pid(child.id() as i64)?;
            Ok(m)
        });
        let after_error = Snapshot::take();
        set_nofile(original);
        match (free, result) {
            (0..=4, Err(e)) => {
                assert_eq!(e.code, Code::TooManyFiles, "{free} free: {e}");
                assert_eq!(e.errno, Some(libc::EMFILE), "{free} free: {e}");
                let want = [
                    "timerfd_create",
                    "epoll_create1",
                    "epoll_create1",
                    "eventfd",
                    "pidfd_open",
                ][free as usize];
                assert_eq!(e.syscall, Some(want), "{free} free: {e}");
                assert_eq!(after_error.in_use(), before.in_use(), "{free} free");
                assert_eq!(
                    after_error.leak_prevented() - before.leak_prevented(),
                    after_error.allocated() - before.allocated(),
                    "{free} free: every fd opened before EMFILE closed as a prevented leak"
                );
                failures.push(format!("{free} free: {}", e.message));
            }
            (5, Ok(m)) => {
                m.close();
            }
            (free, Ok(_)) => panic!("{free} free fds were enough for 5"),
            (free, Err(e)) => panic!("{free} free: {e}"),
        }
        assert_eq!(
            open_fds(),
            fds,
            "{free} free: /proc/self/fd back to baseline"
        );
    }
    eprintln!("{failures:#?}");
    child.kill().unwrap();
    child.wait().unwrap();
    report(
        "faults",
        "core: EMFILE at each step (RLIMIT_NOFILE)",
        0,
        0,
        "",
    );
}

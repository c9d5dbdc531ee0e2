//! `oom <memory cgroup dir>`: one OOM kill, observed with the kernel's own notification.
//! The directory's files pick the mechanism: `cgroup.event_control` is v1 (an eventfd on
//! `memory.oom_control`), `memory.events` is v2 (inotify IN_MODIFY on it). Both answer
//! `ready <kills>` once blocked in epoll_wait, then `oom <wake_ns> <seen_ns> <kills>`; the
//! fds are closed on return, which drops them from the epoll set.

use std::io;
use std::path::Path;

use lifewatch_floor::{monotonic_ns, os_error, say};

use crate::sys::{add, cstr, owned, wait, Fd};

fn oom_kills(file: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(file)?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no oom_kill counter in {file}")))
}

pub fn watch(ep: &Fd, dir: &str) -> io::Result<()> {
    if Path::new(dir).join("cgroup.event_control").exists() {
        watch_v1(ep, dir)
    } else if Path::new(dir).join("memory.events").exists() {
        watch_v2(ep, dir)
    } else {
        Err(io::Error::other(format!(
            "{dir}: neither cgroup.event_control (v1) nor memory.events (v2)"
        )))
    }
}

/// v1 signals at OOM, before the kill is counted: `wake_ns` is the first eventfd wake,
/// `seen_ns` when `oom_kill` had grown (re-read after each wake and every 50 µs for 1 s).
fn watch_v1(ep: &Fd, dir: &str) -> io::Result<()> {
    let control = format!("{dir}/memory.oom_control");
    let c = cstr(&control)?;
    // SAFETY: a NUL-terminated path.
    let ofd = owned(
        unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) },
        &format!("open {control}"),
    )?;
    // SAFETY: plain syscall.
    let efd = owned(
        unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
        "eventfd",
    )?;
    std::fs::write(
        format!("{dir}/cgroup.event_control"),
        format!("{} {}", efd.0, ofd.0),
    )?;
    let base = oom_kills(&control)?;
    add(ep, &efd, 0)?;
    say(&format!("ready {base}"));
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 1];
    let mut wake = 0;
    loop {
        wait(ep, &mut events)?;
        let t = monotonic_ns();
        if wake == 0 {
            wake = t;
        }
        let mut n = 0u64;
        // SAFETY: reading the 8-byte counter into a u64 (non-blocking fd).
        unsafe { libc::read(efd.0, &mut n as *mut u64 as *mut libc::c_void, 8) };
        let deadline = t + 1_000_000_000;
        loop {
            let kills = oom_kills(&control).unwrap_or(base);
            if kills > base {
                let seen = monotonic_ns();
                say(&format!("oom {wake} {seen} {}", kills - base));
                return Ok(());
            }
            if monotonic_ns() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

/// v2 notifies every change of memory.events, `max` and `oom` before `oom_kill` (and at
/// most once per 10 ms per file: later changes arrive from a kernel timer). Wakes whose
/// re-read shows no kill are skipped, so `wake_ns` is the wake that brought the kill and
/// `seen_ns` the moment the re-read showed it.
fn watch_v2(ep: &Fd, dir: &str) -> io::Result<()> {
    let file = format!("{dir}/memory.events");
    // SAFETY: plain syscall.
    let ifd = owned(
        unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) },
        "inotify_init1",
    )?;
    let c = cstr(&file)?;
    // SAFETY: an open inotify fd and a NUL-terminated path.
    if unsafe { libc::inotify_add_watch(ifd.0, c.as_ptr(), libc::IN_MODIFY) } < 0 {
        return Err(os_error(&format!("inotify_add_watch {file}")));
    }
    let base = oom_kills(&file)?;
    add(ep, &ifd, 0)?;
    say(&format!("ready {base}"));
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 1];
    let mut buf = [0u8; 4096];
    loop {
        wait(ep, &mut events)?;
        let wake = monotonic_ns();
        // SAFETY: `buf` is valid for its length; the fd is non-blocking, so this drains.
        while unsafe { libc::read(ifd.0, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        let kills = oom_kills(&file)?;
        if kills > base {
            let seen = monotonic_ns();
            say(&format!("oom {wake} {seen} {}", kills - base));
            return Ok(());
        }
    }
}

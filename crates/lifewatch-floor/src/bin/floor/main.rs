//! The native floor: what the kernel alone costs between a process's exit and a user-space
//! program noticing it. One thread blocked in `epoll_wait` on pidfds, no runtime, no batching
//! layer, no status lookup. Driven by the bench over a line protocol on stdin/stdout:
//!
//! - `watch <pid>`  → `ready <pid>`, then blocks until the pidfd is readable → `exit <pid> <ns>`
//! - `burst <file>` (one PID a line) → `ready <n>`, then blocks until every pidfd has been
//!   readable once → `burst <first_ns> <last_ns> <epoll_wait returns>`
//!
//! - `oom <memory cgroup dir>` (v1 eventfd or v2 inotify, see `oom.rs`) → `ready <kills>`,
//!   then blocks until `oom_kill` has grown → `oom <wake_ns> <seen_ns> <kills>`
//!
//! `<ns>` is CLOCK_MONOTONIC right after `epoll_wait` returned.

use std::io::{self, BufRead};

mod oom;
mod sys;

use lifewatch_floor::{monotonic_ns, raise_nofile, say};
use sys::{add, epoll, owned, wait, Fd};

fn pidfd_open(pid: i32) -> io::Result<Fd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    owned(fd as i32, &format!("pidfd_open({pid})"))
}

fn watch_one(ep: &Fd, pid: i32) -> io::Result<()> {
    let fd = pidfd_open(pid)?;
    add(ep, &fd, pid as u64)?;
    say(&format!("ready {pid}"));
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 1];
    wait(ep, &mut events)?;
    let t = monotonic_ns();
    say(&format!("exit {pid} {t}"));
    Ok(()) // dropping the pidfd removes it from the epoll set
}

fn burst(ep: &Fd, path: &str) -> io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut fds: Vec<Option<Fd>> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let pid: i32 = line
            .trim()
            .parse()
            .map_err(|_| io::Error::other(format!("bad pid {line:?} in {path}")))?;
        let fd = pidfd_open(pid)?;
        add(ep, &fd, fds.len() as u64)?;
        fds.push(Some(fd));
    }
    let n = fds.len();
    say(&format!("ready {n}"));
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let (mut seen, mut wakeups, mut first) = (0usize, 0u64, 0u64);
    let mut last = 0;
    while seen < n {
        let k = wait(ep, &mut events)?;
        last = monotonic_ns();
        if first == 0 {
            first = last;
        }
        wakeups += 1;
        for ev in &events[..k] {
            // Closing the pidfd drops it from the (level-triggered) set.
            if fds[ev.u64 as usize].take().is_some() {
                seen += 1;
            }
        }
    }
    say(&format!("burst {first} {last} {wakeups}"));
    Ok(())
}

fn main() {
    raise_nofile();
    let ep = match epoll() {
        Ok(ep) => ep,
        Err(e) => {
            eprintln!("lifewatch-floor: {e}");
            std::process::exit(1);
        }
    };
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let r = match (words.next(), words.next()) {
            (Some("watch"), Some(pid)) => match pid.parse() {
                Ok(pid) => watch_one(&ep, pid),
                Err(_) => Err(io::Error::other(format!("bad pid {pid:?}"))),
            },
            (Some("burst"), Some(path)) => burst(&ep, path),
            (Some("oom"), Some(dir)) => oom::watch(&ep, dir),
            _ => Err(io::Error::other(format!("unknown command {line:?}"))),
        };
        if let Err(e) = r {
            say(&format!("error {e}"));
        }
    }
}

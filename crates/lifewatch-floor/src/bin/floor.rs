//! The native floor: what the kernel alone costs between a process's exit and a user-space
//! program noticing it. One thread blocked in `epoll_wait` on pidfds, no runtime, no batching
//! layer, no status lookup. Driven by the bench over a line protocol on stdin/stdout:
//!
//! - `watch <pid>`  → `ready <pid>`, then blocks until the pidfd is readable → `exit <pid> <ns>`
//! - `burst <file>` (one PID a line) → `ready <n>`, then blocks until every pidfd has been
//!   readable once → `burst <first_ns> <last_ns> <epoll_wait returns>`
//!
//! - `oom <v1 memory cgroup dir>` → registers an eventfd on `memory.oom_control` through
//!   `cgroup.event_control`, reads the `oom_kill` baseline → `ready <kills>`, then blocks in
//!   `epoll_wait` on the eventfd until `oom_kill` has grown → `oom <wake_ns> <seen_ns> <kills>`
//!   (`wake_ns`: the first eventfd wake; `seen_ns`: when the counter was seen grown, re-read
//!   after each wake and, when v1 notified before counting the kill, every 50 µs for up to 1 s).
//!
//! `<ns>` is CLOCK_MONOTONIC right after `epoll_wait` returned.

use std::io::{self, BufRead};

use lifewatch_floor::{monotonic_ns, os_error, raise_nofile, say};

struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: an fd this program opened and owns.
        unsafe { libc::close(self.0) };
    }
}

fn pidfd_open(pid: i32) -> io::Result<Fd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(os_error(&format!("pidfd_open({pid})")));
    }
    Ok(Fd(fd as i32))
}

fn epoll() -> io::Result<Fd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(os_error("epoll_create1"));
    }
    Ok(Fd(fd))
}

fn add(ep: &Fd, fd: &Fd, data: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: data,
    };
    // SAFETY: both fds are open; `ev` is valid for the call.
    if unsafe { libc::epoll_ctl(ep.0, libc::EPOLL_CTL_ADD, fd.0, &mut ev) } != 0 {
        return Err(os_error("epoll_ctl(ADD)"));
    }
    Ok(())
}

/// Blocks until at least one event; EINTR is retried.
fn wait(ep: &Fd, events: &mut [libc::epoll_event]) -> io::Result<usize> {
    loop {
        // SAFETY: `events` is a valid buffer of the length passed.
        let n = unsafe { libc::epoll_wait(ep.0, events.as_mut_ptr(), events.len() as i32, -1) };
        if n >= 0 {
            return Ok(n as usize);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(os_error("epoll_wait"));
        }
    }
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

fn oom_kills(control: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(control)?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no oom_kill counter in {control}")))
}

fn watch_oom(ep: &Fd, dir: &str) -> io::Result<()> {
    let control = format!("{dir}/memory.oom_control");
    let c = std::ffi::CString::new(control.clone()).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated path.
    let ofd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if ofd < 0 {
        return Err(os_error(&format!("open {control}")));
    }
    let ofd = Fd(ofd);
    // SAFETY: plain syscall.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(os_error("eventfd"));
    }
    let efd = Fd(efd);
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
                // SAFETY: removing our own registration.
                unsafe { libc::epoll_ctl(ep.0, libc::EPOLL_CTL_DEL, efd.0, std::ptr::null_mut()) };
                return Ok(());
            }
            if monotonic_ns() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
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
            (Some("oom"), Some(dir)) => watch_oom(&ep, dir),
            _ => Err(io::Error::other(format!("unknown command {line:?}"))),
        };
        if let Err(e) = r {
            say(&format!("error {e}"));
        }
    }
}

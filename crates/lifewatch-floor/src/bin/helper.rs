//! The processes the bench observes, and the reaper it runs its scenarios under.
//!
//! - `die <stampfile> <slot>`: prints `r` (started), waits for one byte on stdin, then stores CLOCK_MONOTONIC ns
//!   into slot `<slot>` (u64, native endian) of the shared file and calls `_exit(0)`. Between
//!   the clock read and `exit_group` there is one store into an already-faulted page: no syscall.
//! - `parent <stampfile> <slot>`: forks a `die` child, prints its PID (the child prints its
//!   `r` on the same stdout, in either order), waits for (reaps) it.
//!   The child is then nobody's but this parent's: the non-child case for the observer.
//! - `sleepers <n> <pidfile>`: forks `n` children that sleep in `pause()`, all in one new
//!   process group, writes their PIDs to `<pidfile>`, prints `ready <n>`. On the line `kill`
//!   it reads the clock, SIGKILLs the whole group in one `kill(-pgid)`, prints `killed <ns>`,
//!   reaps every child and prints `reaped <ns>`. On EOF it kills and reaps silently.
//! - `hog <stampfile> <slot>`: maps slot `<slot>` (already faulted in), then allocates and
//!   touches anonymous memory 1 MiB at a time, storing CLOCK_MONOTONIC ns into the slot after
//!   every touched page (so at least every 1 ms: a page takes microseconds) until the OOM
//!   killer ends it. Exits 4 if it got to 4 GiB without being killed.
//! - `term <stampfile> <slot> exit|ignore`: `exit`: on SIGTERM stores CLOCK_MONOTONIC ns into
//!   the slot and calls `_exit(0)`; `ignore`: ignores SIGTERM (only SIGKILL ends it). Once the
//!   disposition is set it stores 1 into slot + 1 (ready), then sleeps in `pause()`.
//! - `reaper <cmd> [args]`: runs `cmd` as a child subreaper and reaps every orphan below it,
//!   so a crashed scenario leaves no zombie behind (PID 1 does not reap on these machines).

use std::io::{self, BufRead, Write};
use std::process::Command;

use lifewatch_floor::{monotonic_ns, os_error, say};

fn fail(e: io::Error) -> ! {
    eprintln!("lifewatch-bench-helper: {e}");
    std::process::exit(2)
}

/// A pointer to `slot` in a MAP_SHARED mapping of the stamp file, already faulted in.
fn stamp_slot(path: &str, slot: usize) -> io::Result<*mut u64> {
    let c = std::ffi::CString::new(path).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(os_error(&format!("open {path}")));
    }
    let page = 4096usize;
    let offset = (slot * 8) & !(page - 1);
    // SAFETY: mapping one page of an open file; the mapping outlives the fd by design.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    };
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };
    if base == libc::MAP_FAILED {
        return Err(os_error(&format!("mmap {path} at {offset}")));
    }
    // SAFETY: `slot * 8 - offset` is inside the page, and u64-aligned.
    let p = unsafe { (base as *mut u8).add(slot * 8 - offset) as *mut u64 };
    // SAFETY: a valid, aligned pointer into the mapping; the write faults the page in now.
    unsafe { std::ptr::write_volatile(p, 0) };
    Ok(p)
}

fn die(path: &str, slot: usize) -> ! {
    let p = stamp_slot(path, slot).unwrap_or_else(|e| fail(e));
    // Tells the observer we are about to block on the trigger: startup is over.
    say("r");
    let mut b = [0u8; 1];
    // SAFETY: reading into a 1-byte buffer.
    let n = unsafe { libc::read(0, b.as_mut_ptr() as *mut libc::c_void, 1) };
    if n != 1 {
        // No trigger (the observer went away): exit without a stamp.
        // SAFETY: ends the process.
        unsafe { libc::_exit(3) };
    }
    let t = monotonic_ns();
    // SAFETY: `p` is valid (see `stamp_slot`); then the process ends at once.
    unsafe {
        std::ptr::write_volatile(p, t);
        libc::_exit(0)
    }
}

fn hog(path: &str, slot: usize) -> ! {
    let p = stamp_slot(path, slot).unwrap_or_else(|e| fail(e));
    const CHUNK: usize = 1 << 20;
    const PAGE: usize = 4096;
    for _ in 0..4096 {
        // SAFETY: a fresh private anonymous mapping, never unmapped (the process dies).
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHUNK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if m == libc::MAP_FAILED {
            fail(os_error("mmap"));
        }
        for off in (0..CHUNK).step_by(PAGE) {
            // SAFETY: `off` is inside the mapping; `p` is valid (see `stamp_slot`).
            unsafe {
                std::ptr::write_volatile((m as *mut u8).add(off), 1);
                std::ptr::write_volatile(p, monotonic_ns());
            }
        }
    }
    std::process::exit(4)
}

static TERM_STAMP: std::sync::atomic::AtomicPtr<u64> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_term(_: libc::c_int) {
    let t = monotonic_ns();
    let p = TERM_STAMP.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: `p` was set before the handler was installed; async-signal-safe calls only.
    unsafe {
        std::ptr::write_volatile(p, t);
        libc::_exit(0)
    }
}

fn term(path: &str, slot: usize, mode: &str) -> ! {
    let p = stamp_slot(path, slot).unwrap_or_else(|e| fail(e));
    let ready = stamp_slot(path, slot + 1).unwrap_or_else(|e| fail(e));
    TERM_STAMP.store(p, std::sync::atomic::Ordering::Relaxed);
    let handler = if mode == "ignore" {
        libc::SIG_IGN
    } else {
        on_term as extern "C" fn(libc::c_int) as libc::sighandler_t
    };
    // SAFETY: installing a handler that only makes async-signal-safe calls (or SIG_IGN).
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        std::ptr::write_volatile(ready, 1);
    }
    loop {
        // SAFETY: plain syscall.
        unsafe { libc::pause() };
    }
}

fn fork() -> io::Result<i32> {
    // SAFETY: this program is single-threaded when it forks.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_error("fork"));
    }
    Ok(pid)
}

fn reap(pid: i32) -> i32 {
    let mut st = 0;
    loop {
        // SAFETY: valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return if r < 0 { -1 } else { st };
        }
    }
}

fn parent(path: &str, slot: usize) -> ! {
    match fork().unwrap_or_else(|e| fail(e)) {
        0 => die(path, slot),
        child => {
            say(&child.to_string());
            let st = reap(child);
            std::process::exit(if libc::WIFEXITED(st) {
                libc::WEXITSTATUS(st)
            } else {
                1
            })
        }
    }
}

fn sleepers(n: usize, pidfile: &str) -> ! {
    // SAFETY: ignoring SIGINT: a ^C reaches the bench, whose exit closes our stdin, and we
    // then kill and reap the sleepers instead of leaving them to PID 1.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    // SAFETY: getpid never fails.
    let me = unsafe { libc::getpid() };
    let mut pids: Vec<i32> = Vec::with_capacity(n);
    let mut pgid = 0;
    let mut error = None;
    for _ in 0..n {
        match fork() {
            Ok(0) => {
                // SAFETY: async-signal-safe calls only, in the forked child.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != me {
                        libc::_exit(1);
                    }
                    libc::setpgid(0, pgid);
                    loop {
                        libc::pause();
                    }
                }
            }
            Ok(pid) => {
                // Set from both sides so the group exists before anyone signals it.
                // SAFETY: plain syscall.
                unsafe { libc::setpgid(pid, if pgid == 0 { pid } else { pgid }) };
                if pgid == 0 {
                    pgid = pid;
                }
                pids.push(pid);
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let kill_all = |pids: &[i32]| -> u64 {
        let t = monotonic_ns();
        if !pids.is_empty() {
            // SAFETY: signalling the group this program created.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        t
    };
    if let Some(e) = error {
        kill_all(&pids);
        pids.iter().for_each(|&p| {
            reap(p);
        });
        fail(io::Error::new(
            e.kind(),
            format!("after {} sleepers: {e}", pids.len()),
        ));
    }
    let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
    if let Err(e) = std::fs::write(pidfile, text) {
        kill_all(&pids);
        pids.iter().for_each(|&p| {
            reap(p);
        });
        fail(e);
    }
    say(&format!("ready {n} {pgid}"));
    let mut line = String::new();
    let got = io::stdin().lock().read_line(&mut line).unwrap_or(0);
    let t0 = kill_all(&pids);
    if got > 0 && line.trim() == "kill" {
        say(&format!("killed {t0}"));
    }
    for &p in &pids {
        reap(p);
    }
    if got > 0 {
        say(&format!("reaped {}", monotonic_ns()));
    }
    std::process::exit(0)
}

/// Direct children of this process, from /proc (orphans reparented to us included).
fn children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 2..];
                    Some(rest.split(' ').nth(1)? == me)
                })
                .unwrap_or(false)
        })
        .collect()
}

fn reaper(cmd: &str, args: &[String]) -> ! {
    // SAFETY: plain prctl.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } != 0 {
        fail(os_error("prctl(PR_SET_CHILD_SUBREAPER)"));
    }
    let main = match Command::new(cmd).args(args).spawn() {
        Ok(c) => c.id() as i32,
        Err(e) => fail(io::Error::new(e.kind(), format!("spawning {cmd}: {e}"))),
    };
    // After the spawn, so the child keeps default dispositions: ^C goes to it directly.
    // SAFETY: plain signal dispositions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    let mut status = 1;
    loop {
        let mut st = 0;
        // SAFETY: valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut st, 0) };
        if pid == main {
            status = if libc::WIFEXITED(st) {
                libc::WEXITSTATUS(st)
            } else {
                128 + libc::WTERMSIG(st)
            };
            break;
        }
        if pid < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            break;
        }
    }
    // Whatever the scenario left running now belongs to us: end and reap it.
    for _ in 0..200 {
        let left = children();
        if left.is_empty() {
            break;
        }
        for pid in &left {
            // SAFETY: signalling our own children.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        // SAFETY: valid status pointer; WNOHANG never blocks.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = io::stderr().flush();
    std::process::exit(status)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let slot = |s: Option<&String>| -> usize {
        s.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fail(io::Error::other("expected a number")))
    };
    match args.first().map(String::as_str) {
        Some("die") if args.len() == 3 => die(&args[1], slot(args.get(2))),
        Some("parent") if args.len() == 3 => parent(&args[1], slot(args.get(2))),
        Some("sleepers") if args.len() == 3 => sleepers(slot(args.get(1)), &args[2]),
        Some("hog") if args.len() == 3 => hog(&args[1], slot(args.get(2))),
        Some("term") if args.len() == 4 && (args[3] == "exit" || args[3] == "ignore") => {
            term(&args[1], slot(args.get(2)), &args[3])
        }
        Some("reaper") if args.len() >= 2 => reaper(&args[1], &args[2..]),
        _ => fail(io::Error::other(
            "usage: die <stampfile> <slot> | parent <stampfile> <slot> | hog <stampfile> <slot> | term <stampfile> <slot> exit|ignore | sleepers <n> <pidfile> | reaper <cmd> [args...]",
        )),
    }
}

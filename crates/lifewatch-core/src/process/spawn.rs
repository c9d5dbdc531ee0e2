//! Spawning a command with its pidfd taken atomically at creation (`clone3` with
//! `CLONE_PIDFD`), placed in a cgroup before it execs anything: `CLONE_INTO_CGROUP` for the
//! unified hierarchy, and a write of "0" to each v1 hierarchy's `cgroup.procs` in the child
//! (hybrid hosts keep memory, pids and cpu in v1). No PID is ever looked up after the fact,
//! so no other process can be mistaken for the child: a PID looked up later may already
//! name another process, once the child has exited, been reaped and its PID reused.
//!
//! Between clone and exec the child runs only async-signal-safe system calls on data
//! prepared beforehand; a failure there travels to the parent through a CLOEXEC pipe as
//! (stage, errno), and the child `_exit(127)`s.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::process::{WaitId, WaitIdOptions};

use crate::error::{Code, Error, Result, SysResult};
use crate::fd::{CountedFd, FdKind};
use crate::process::handle::Process;

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2, include/uapi/linux/sched.h).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    Inherit,
    /// /dev/null
    Null,
    /// An fd of this process, duplicated onto the child's stdio slot.
    Fd(RawFd),
}

#[derive(Debug, Clone)]
pub struct SpawnOptions {
    pub program: String,
    pub args: Vec<String>,
    /// argv[0] (default: `program` as given).
    pub argv0: Option<String>,
    /// The whole environment; `None` inherits this process's.
    pub env: Option<Vec<(String, String)>>,
    pub cwd: Option<PathBuf>,
    pub stdio: [Stdio; 3],
}

impl SpawnOptions {
    pub fn new(program: impl Into<String>, args: Vec<String>) -> Self {
        SpawnOptions {
            program: program.into(),
            args,
            argv0: None,
            env: None,
            cwd: None,
            stdio: [Stdio::Inherit; 3],
        }
    }
}

/// How the child got into its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// No cgroup asked for.
    None,
    /// `CLONE_INTO_CGROUP` for the unified hierarchy, plus v1 joins in the child if any.
    CloneIntoCgroup,
    /// Every hierarchy joined in the child before exec (no `CLONE_INTO_CGROUP`).
    JoinedInChild,
}

impl Placement {
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::None => "none",
            Placement::CloneIntoCgroup => "clone_into_cgroup",
            Placement::JoinedInChild => "joined_in_child",
        }
    }
}

/// The directories of the cgroup a child is spawned into (the cgroup manager's `Cgroup`
/// gives them): the unified one, joined with `CLONE_INTO_CGROUP`, and one per v1 hierarchy,
/// joined by the child itself before it execs.
#[derive(Debug, Clone, Default)]
pub struct CgroupDirs {
    pub unified: Option<PathBuf>,
    pub v1: Vec<PathBuf>,
}

#[derive(Debug)]
pub struct Child {
    /// The child, with the pidfd clone3 returned.
    pub process: Process,
    pub placement: Placement,
}

/// Where a failure in the child happened.
const STAGE_JOIN: i32 = 1;
const STAGE_STDIO: i32 = 2;
const STAGE_CHDIR: i32 = 3;
const STAGE_EXEC: i32 = 4;

fn cstring(what: &str, s: impl AsRef<[u8]>) -> Result<CString> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| Error::invalid(format!("{what} contains a NUL byte")))
}

/// `execvp`'s lookup, done before cloning: the child only calls execve.
fn resolve(program: &str, env: Option<&[(String, String)]>) -> Result<PathBuf> {
    if program.is_empty() {
        return Err(Error::invalid("the command is empty"));
    }
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = match env {
        Some(env) => env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone()),
        None => std::env::var("PATH").ok(),
    }
    .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if rustix::fs::access(&candidate, rustix::fs::Access::EXEC_OK).is_ok()
            && candidate.is_file()
        {
            return Ok(candidate);
        }
    }
    Err(Error::sys(
        "execve",
        libc::ENOENT,
        format!("spawning {program:?}: not found in PATH"),
    )
    .with_code(Code::NoSuchCommand)
    .with_path(program))
}

/// Why `program` could not be executed, however it was spawned: a command that is not there
/// (ENOENT, or ENOTDIR for a path through a file) is its own code, as a shell tells 127 from 126.
pub fn exec_error(program: &str, errno: i32) -> Error {
    let e = Error::sys(
        "execve",
        errno,
        format!("spawning {program:?}: executing the command"),
    )
    .with_path(program);
    if matches!(errno, libc::ENOENT | libc::ENOTDIR) {
        e.with_code(Code::NoSuchCommand)
    } else {
        e
    }
}

/// Why the child could not change to its working directory `cwd`: one that is not there (or
/// not a directory) is the caller's argument, not an I/O failure.
pub fn chdir_error(program: &str, cwd: &Path, errno: i32) -> Error {
    let e = Error::sys(
        "chdir",
        errno,
        format!("spawning {program:?}: changing to the working directory"),
    )
    .with_path(cwd);
    if matches!(errno, libc::ENOENT | libc::ENOTDIR) {
        e.with_code(Code::InvalidArgument)
    } else {
        e
    }
}

fn control(fd: OwnedFd) -> CountedFd {
    CountedFd::new(fd, FdKind::Control).commit()
}

/// Everything the child needs, prepared in the parent: no allocation after clone.
struct Prepared {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    /// Source fd per stdio slot (`-1`: inherit).
    stdio: [RawFd; 3],
    /// `cgroup.procs` of each hierarchy the child joins itself (written "0").
    joins: Vec<CountedFd>,
    err_write: RawFd,
}

/// Opens a cgroup's `cgroup.procs` for writing, before the clone.
fn procs_file(dir: &Path, what: &str) -> Result<CountedFd> {
    let p = dir.join("cgroup.procs");
    let fd = rustix::fs::open(&p, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
        .sys("open", format!("{what}: opening {}", p.display()))
        .map_err(|e| e.with_path(&p))?;
    Ok(control(fd))
}

/// Spawns a command; the child is placed in `cgroup` (if any) before it execs.
pub fn spawn(opts: &SpawnOptions, cgroup: Option<&CgroupDirs>) -> Result<Child> {
    let what = format!("spawning {:?}", opts.program);
    let path = resolve(&opts.program, opts.env.as_deref())?;
    let mut argv = vec![cstring(
        "argv0",
        opts.argv0.as_deref().unwrap_or(&opts.program),
    )?];
    for a in &opts.args {
        argv.push(cstring("an argument", a)?);
    }
    let envp: Vec<CString> = match &opts.env {
        Some(env) => env
            .iter()
            .map(|(k, v)| {
                if k.is_empty() || k.contains('=') {
                    return Err(Error::invalid(format!(
                        "environment variable name {k:?} is empty or contains '='"
                    )));
                }
                cstring("an environment variable", format!("{k}={v}"))
            })
            .collect::<Result<_>>()?,
        None => std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring("an environment variable", kv)
            })
            .collect::<Result<_>>()?,
    };
    let cwd = opts
        .cwd
        .as_ref()
        .map(|c| cstring("cwd", c.as_os_str().as_bytes()))
        .transpose()?;

    let mut null = None;
    let mut stdio = [-1; 3];
    for (i, s) in opts.stdio.iter().enumerate() {
        stdio[i] = match *s {
            Stdio::Inherit => -1,
            Stdio::Fd(fd) if fd < 0 => {
                return Err(Error::invalid(format!("stdio[{i}]: fd {fd} is negative")))
            }
            Stdio::Fd(fd) => fd,
            Stdio::Null => {
                if null.is_none() {
                    let fd = rustix::fs::open(
                        "/dev/null",
                        OFlags::RDWR | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .sys("open", format!("{what}: opening /dev/null"))?;
                    null = Some(control(fd));
                }
                null.as_ref().expect("just set").as_raw_fd()
            }
        };
    }

    // The cgroup: the unified directory as an O_PATH fd for CLONE_INTO_CGROUP, and the
    // cgroup.procs of every v1 hierarchy for the child to join.
    let mut joins = Vec::new();
    let mut into = None;
    if let Some(cg) = cgroup {
        for dir in &cg.v1 {
            joins.push(procs_file(dir, &what)?);
        }
        if let Some(dir) = &cg.unified {
            let fd = rustix::fs::open(
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .sys("open", format!("{what}: opening {}", dir.display()))
            .map_err(|e| e.with_path(dir))?;
            into = Some(control(fd));
        }
    }

    let (err_read, err_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).sys("pipe2", &what)?;
    let (err_read, err_write) = (control(err_read), control(err_write));

    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let mut prepared = Prepared {
        path: cstring("the command path", path.as_os_str().as_bytes())?,
        _argv: argv,
        argv_ptrs,
        _envp: envp,
        envp_ptrs,
        cwd,
        stdio,
        joins,
        err_write: err_write.as_raw_fd(),
    };

    let (pid, pidfd, placement) = match &into {
        Some(cgfd) => match clone_child(&prepared, Some(cgfd.as_raw_fd())) {
            Ok((pid, fd)) => (pid, fd, Placement::CloneIntoCgroup),
            // No clone3 (before 5.3) or no CLONE_INTO_CGROUP (before 5.7): the child joins
            // the unified hierarchy itself, like the v1 ones.
            Err(e)
                if matches!(
                    e.errno,
                    Some(libc::ENOSYS) | Some(libc::E2BIG) | Some(libc::EINVAL)
                ) =>
            {
                let dir = cgroup
                    .and_then(|c| c.unified.as_deref())
                    .expect("into is set");
                prepared.joins.push(procs_file(dir, &what)?);
                let (pid, fd) = clone_child(&prepared, None)?;
                (pid, fd, Placement::JoinedInChild)
            }
            Err(e) => return Err(e),
        },
        None => {
            let (pid, fd) = clone_child(&prepared, None)?;
            let placement = if cgroup.is_some() {
                Placement::JoinedInChild
            } else {
                Placement::None
            };
            (pid, fd, placement)
        }
    };
    drop(err_write);
    drop(prepared);
    drop(into);
    drop(null);

    // EOF: the exec succeeded (the pipe closed on exec). Eight bytes: a failure report.
    let mut report = [0u8; 8];
    let mut got = 0;
    while got < report.len() {
        match rustix::io::read(&err_read, &mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                got = 0;
                let _ = e;
                break;
            }
        }
    }
    if got == 0 {
        return Ok(Child {
            process: Process::from_pidfd(pid, pidfd),
            placement,
        });
    }
    // The child failed before exec and _exit(127)ed: reap it, report why.
    let _ = rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED);
    let stage = i32::from_ne_bytes(report[..4].try_into().expect("4 bytes"));
    let errno = i32::from_ne_bytes(report[4..].try_into().expect("4 bytes"));
    let (syscall, step) = match stage {
        STAGE_JOIN => ("write", "joining the cgroup in the child"),
        STAGE_STDIO => ("dup2", "setting up stdio in the child"),
        STAGE_CHDIR => ("chdir", "changing to the working directory"),
        _ => ("execve", "executing the command"),
    };
    if stage == STAGE_EXEC {
        return Err(exec_error(&opts.program, errno).with_path(path));
    }
    if let (STAGE_CHDIR, Some(cwd)) = (stage, &opts.cwd) {
        return Err(chdir_error(&opts.program, cwd, errno));
    }
    Err(Error::sys(syscall, errno, format!("{what}: {step}")))
}

/// Clones the child (with all signals blocked around it, so no handler of this process
/// ever runs in the child) and returns its PID and pidfd.
fn clone_child(p: &Prepared, cgroup_fd: Option<RawFd>) -> Result<(i32, CountedFd)> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: sigset manipulation on locals.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: clone3 without CLONE_VM is fork: the child gets a copy of this address space
    // with one thread and runs only `child` (async-signal-safe calls on prepared data).
    let mut rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let mut errno = if rc < 0 { last_errno() } else { 0 };
    if rc < 0 && errno == libc::ENOSYS && cgroup_fd.is_none() {
        // Before clone3 (5.3): the classic clone with CLONE_PIDFD (5.2); the pidfd is
        // returned through parent_tid, the third argument on every architecture.
        rc = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (CLONE_PIDFD as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
                0usize,
                &mut pidfd as *mut RawFd,
                0usize,
                0usize,
            )
        };
        errno = if rc < 0 { last_errno() } else { 0 };
    }
    if rc == 0 {
        child(p);
    }
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    if rc < 0 {
        let e = Error::sys(
            "clone3",
            errno,
            format!("creating the child process for {:?}", p.path),
        );
        return Err(e);
    }
    // SAFETY: the kernel just returned this fd for the new child; nothing else owns it.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    Ok((rc as i32, CountedFd::new(fd, FdKind::Pidfd)))
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The child between clone and exec: async-signal-safe system calls only, no allocation,
/// no locks, no panics. Never returns.
fn child(p: &Prepared) -> ! {
    // SAFETY: plain system calls on fds and C strings prepared before the clone.
    unsafe {
        let fail = |stage: i32| -> ! {
            let errno = *libc::__errno_location();
            let mut msg = [0u8; 8];
            msg[..4].copy_from_slice(&stage.to_ne_bytes());
            msg[4..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(p.err_write, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        };
        // Default dispositions (Node ignores SIGPIPE; handlers do not survive exec, but
        // ignored signals would).
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        for j in &p.joins {
            if libc::write(j.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                fail(STAGE_JOIN);
            }
        }
        // Move sources out of the way first (F_DUPFD_CLOEXEC above 2), so that one slot's
        // source is never clobbered by another slot's dup2.
        let mut tmp = [-1; 3];
        for (t, &src) in tmp.iter_mut().zip(&p.stdio) {
            if src >= 0 {
                *t = libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 3);
                if *t < 0 {
                    fail(STAGE_STDIO);
                }
            }
        }
        for (i, &t) in tmp.iter().enumerate() {
            if t >= 0 {
                if libc::dup2(t, i as i32) < 0 {
                    fail(STAGE_STDIO);
                }
            } else {
                // Inherited as is. Node opens its own stdio close-on-exec, so without this
                // the child would lose fds 0-2 at exec (EBADF on its first write). A slot that
                // is not open at all stays closed (EBADF here is fine).
                libc::fcntl(i as i32, libc::F_SETFD, 0);
            }
        }
        if let Some(cwd) = &p.cwd {
            if libc::chdir(cwd.as_ptr()) != 0 {
                fail(STAGE_CHDIR);
            }
        }
        // Nothing but stdio crosses exec: mark every other fd close-on-exec (Linux 5.11+;
        // on older kernels fds not opened CLOEXEC stay inherited, as with any fork+exec).
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(p.path.as_ptr(), p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr());
        fail(STAGE_EXEC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_options_fail_before_cloning() {
        let e = spawn(&SpawnOptions::new("", vec![]), None).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        let e = spawn(&SpawnOptions::new("sh", vec!["a\0b".into()]), None).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        let e = spawn(
            &SpawnOptions::new("lifewatch-no-such-command", vec![]),
            None,
        )
        .unwrap_err();
        assert_eq!(e.errno, Some(libc::ENOENT));
        assert_eq!(e.code, Code::NoSuchCommand);
        let e = spawn(
            &SpawnOptions::new("/nonexistent-lifewatch/cmd", vec![]),
            None,
        )
        .unwrap_err();
        assert_eq!((e.code, e.syscall), (Code::NoSuchCommand, Some("execve")));
    }

    #[test]
    fn exec_and_chdir_failures_come_back_as_errno() {
        // Not executable (mode 0644, even for root): EACCES from execve in the child.
        let file = std::env::temp_dir().join(format!("lifewatch-noexec-{}", std::process::id()));
        std::fs::write(&file, "not a program\n").unwrap();
        let mut o = SpawnOptions::new(file.to_str().unwrap(), vec![]);
        let e = spawn(&o, None).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(e.syscall, Some("execve"));
        assert_eq!(e.errno, Some(libc::EACCES), "{e:?}");
        o = SpawnOptions::new("true", vec![]);
        o.cwd = Some("/nonexistent-lifewatch".into());
        let e = spawn(&o, None).unwrap_err();
        assert_eq!(e.syscall, Some("chdir"));
        assert_eq!(e.errno, Some(libc::ENOENT));
        assert_eq!(
            e.code,
            Code::InvalidArgument,
            "a missing cwd is the caller's argument"
        );
        assert_eq!(e.path.as_deref(), Some(Path::new("/nonexistent-lifewatch")));
    }

    #[test]
    fn spawns_with_pidfd_and_exit_status() {
        let mut o = SpawnOptions::new("sh", vec!["-c".into(), "exit 3".into()]);
        o.stdio = [Stdio::Null; 3];
        let c = spawn(&o, None).unwrap();
        assert!(c.process.pid() > 0);
        let st = rustix::process::waitid(
            WaitId::PidFd(c.process.pidfd().unwrap()),
            WaitIdOptions::EXITED,
        )
        .unwrap()
        .unwrap();
        assert_eq!(st.exit_status(), Some(3));
        assert_eq!(c.placement, Placement::None);
    }
}

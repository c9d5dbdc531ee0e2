//! Failpoints: named spots right before a fallible syscall, where tests make that syscall
//! fail (or run a hook) to prove that every error path returns a typed error, closes what
//! it opened and counts it as a prevented leak.
//!
//! Only with the `failpoints` cargo feature (the core's own tests turn it on through a
//! dev-dependency on itself). Without it `hit` is an inlined `Ok(())` and `hook` does
//! nothing: production builds carry no trace of it.
//!
//! A site is one line: `failpoint::hit("eventfd").and_then(|()| eventfd(..))`. The name is
//! the syscall the resulting `Error` reports, so a test can check that the error names the
//! step that failed. New kernel mechanisms (cgroup v1 eventfd, v2 inotify, PSI) add their
//! syscalls to `POINTS` and a `hit` before each call: the failpoint test discovers the
//! sequence of sites an operation goes through and fails each in turn by itself.

/// Every failpoint name with the errno it fails with unless a test says otherwise: what
/// the kernel really returns there when resources run out.
pub const POINTS: &[(&str, i32)] = &[
    ("timerfd_create", libc::EMFILE),
    ("epoll_create1", libc::EMFILE),
    ("eventfd", libc::EMFILE),
    ("epoll_ctl", libc::ENOMEM),
    // Starting the reactor thread (std reports clone's errno).
    ("clone", libc::EAGAIN),
    ("pidfd_open", libc::EMFILE),
    ("pidfd_send_signal", libc::EPERM),
    // An exit wait's own duplicate of a pidfd.
    ("fcntl", libc::EMFILE),
    // The fallback's `kill(pid, 0)` existence check.
    ("kill", libc::ESRCH),
    // Cgroups: v1 eventfd registration (open memory.oom_control / memory.pressure_level and
    // cgroup.event_control, write the registration), PSI triggers (open, write the
    // trigger), cgroup.events through inotify, and the manager's mkdir and file writes.
    ("open", libc::EMFILE),
    ("write", libc::ENOSPC),
    ("inotify_init1", libc::EMFILE),
    ("inotify_add_watch", libc::ENOSPC),
    ("mkdir", libc::ENOSPC),
    // Host-wide streams: the process events connector's netlink socket (socket, bind, the
    // LISTEN message), /dev/kmsg (its `open` is the one above; the seek to its end).
    ("socket", libc::EMFILE),
    ("bind", libc::ENOMEM),
    ("sendto", libc::ENOBUFS),
    ("lseek", libc::EINVAL),
    // Run on the reactor thread: armed by name, not by position.
    ("epoll_wait", libc::EBADF),
    // The connector's receive, failing as it does when the socket's buffer overran.
    ("recv", libc::ENOBUFS),
    // A /dev/kmsg read, failing as it does when records were overwritten before being read.
    ("read", libc::EPIPE),
];

/// The default errno of a failpoint; panics on a name missing from `POINTS` so that a new
/// site cannot be added without its line there.
pub fn default_errno(name: &str) -> i32 {
    POINTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, e)| e)
        .unwrap_or_else(|| panic!("failpoint {name:?} is not listed in failpoint::POINTS"))
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &'static str) -> rustix::io::Result<()> {
    Ok(())
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hook(_name: &'static str) {}

#[cfg(feature = "failpoints")]
pub use armed::*;

#[cfg(feature = "failpoints")]
mod armed {
    use std::sync::{Mutex, MutexGuard};
    use std::thread::ThreadId;

    type Hook = Box<dyn FnOnce() + Send>;

    #[derive(Default)]
    struct State {
        /// The test thread whose hits are recorded and counted for `fail_nth`.
        thread: Option<ThreadId>,
        hits: Vec<&'static str>,
        fail_nth: Option<(usize, Option<i32>)>,
        /// Fails the first hit of a name on any thread (sites on the reactor thread).
        fail_named: Vec<(&'static str, i32)>,
        hooks: Vec<(&'static str, Hook)>,
    }

    static STATE: Mutex<Option<State>> = Mutex::new(None);
    /// One failpoint test at a time: the state is process-wide.
    static SCOPE: Mutex<()> = Mutex::new(());

    fn state() -> MutexGuard<'static, Option<State>> {
        STATE.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms failpoints for the calling thread until dropped; serialises failpoint tests.
    pub struct Scope {
        _serial: MutexGuard<'static, ()>,
    }

    pub fn scope() -> Scope {
        let serial = SCOPE.lock().unwrap_or_else(|p| p.into_inner());
        *state() = Some(State {
            thread: Some(std::thread::current().id()),
            ..Default::default()
        });
        Scope { _serial: serial }
    }

    impl Scope {
        /// Forgets hits and armed failures (not the thread).
        pub fn reset(&self) {
            let mut st = state();
            let s = st.as_mut().expect("scope is active");
            s.hits.clear();
            s.fail_nth = None;
            s.fail_named.clear();
            s.hooks.clear();
        }

        /// The failpoints this thread went through since the last reset, in order.
        pub fn hits(&self) -> Vec<&'static str> {
            state().as_ref().expect("scope is active").hits.clone()
        }

        /// Makes the `n`th hit (0-based) on this thread fail, with `errno` or the default.
        pub fn fail_nth(&self, n: usize, errno: Option<i32>) {
            state().as_mut().expect("scope is active").fail_nth = Some((n, errno));
        }

        /// Makes the first hit of `name` on any thread fail with its default errno.
        pub fn fail_named(&self, name: &'static str) {
            let errno = super::default_errno(name);
            state()
                .as_mut()
                .expect("scope is active")
                .fail_named
                .push((name, errno));
        }

        /// Runs `f` once, at the first `hook(name)` on any thread.
        pub fn on_hook(&self, name: &'static str, f: impl FnOnce() + Send + 'static) {
            state()
                .as_mut()
                .expect("scope is active")
                .hooks
                .push((name, Box::new(f)));
        }
    }

    impl Drop for Scope {
        fn drop(&mut self) {
            *state() = None;
        }
    }

    pub fn hit(name: &'static str) -> rustix::io::Result<()> {
        let errno = super::default_errno(name);
        let mut st = state();
        let Some(s) = st.as_mut() else {
            return Ok(());
        };
        if let Some(i) = s.fail_named.iter().position(|(n, _)| *n == name) {
            let (_, e) = s.fail_named.remove(i);
            return Err(rustix::io::Errno::from_raw_os_error(e));
        }
        if s.thread != Some(std::thread::current().id()) {
            return Ok(());
        }
        let index = s.hits.len();
        s.hits.push(name);
        match s.fail_nth {
            Some((n, e)) if n == index => {
                s.fail_nth = None;
                Err(rustix::io::Errno::from_raw_os_error(e.unwrap_or(errno)))
            }
            _ => Ok(()),
        }
    }

    /// A spot between two steps where a test may act (kill a process mid-registration).
    pub fn hook(name: &'static str) {
        let f = {
            let mut st = state();
            let Some(s) = st.as_mut() else { return };
            match s.hooks.iter().position(|(n, _)| *n == name) {
                Some(i) => s.hooks.remove(i).1,
                None => return,
            }
        };
        f();
    }
}

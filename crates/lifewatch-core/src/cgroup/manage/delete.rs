//! Deleting a cgroup: a kill first (when asked), then each directory removed, waiting out a
//! busy one (event-driven while processes are left, then a short bounded backoff for the lag
//! after the last exit on v1), then the parents `create` made.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroup::files;
use crate::cgroup::manage::empty::{deadline, sooner, Members};
use crate::cgroup::manage::kill::Kill;
use crate::cgroup::manage::manager::Cgroup;
use crate::error::{Code, Error, Result};
use crate::reactor::waiter::{self, Done, Op, OpCx, WaitHandle};

impl Cgroup {
    /// Removes the cgroup from every hierarchy (and the parents `create` made); `done` is
    /// called once it is gone. A busy cgroup (EBUSY: processes or child cgroups left) is
    /// retried until `timeout`: first by waiting for it to empty, then, for the short lag after
    /// the last exit on v1, with a bounded backoff; after that ERR_TIMEOUT. With `kill`,
    /// kills everything first. A cgroup already removed (by someone else) is what delete
    /// wants: that is a success, and the parents `create` made are removed all the same.
    pub fn delete_async(
        &self,
        kill: bool,
        timeout: Option<Duration>,
        done: Done<()>,
    ) -> Result<WaitHandle> {
        waiter::submit(Delete::new(self, kill, timeout), done)
    }

    /// `delete_async`, blocking the calling thread.
    pub fn delete(&self, kill: bool, timeout: Option<Duration>) -> Result<()> {
        waiter::run(Delete::new(self, kill, timeout))
    }
}

/// The deletion: a kill first (with `kill`), then each directory removed, waiting out a busy
/// one, then the parents `create` made.
struct Delete {
    cg: Cgroup,
    kill: Option<Kill>,
    /// Directories still to remove (v1 ones, then the unified one).
    leaves: Vec<PathBuf>,
    deadline: Option<Instant>,
    /// After the first EBUSY: waiting for the cgroup to empty.
    emptying: Option<Members>,
    waited: bool,
    backoff: Duration,
}

impl Delete {
    fn new(cg: &Cgroup, kill: bool, timeout: Option<Duration>) -> Delete {
        let deadline = deadline(timeout);
        let mut leaves: Vec<PathBuf> = cg.v1_dirs().into_iter().map(Path::to_path_buf).collect();
        leaves.extend(cg.unified_dir().map(Path::to_path_buf));
        Delete {
            cg: cg.clone(),
            kill: kill.then(|| Kill::new(cg, deadline)),
            leaves,
            deadline,
            emptying: None,
            waited: false,
            backoff: Duration::from_millis(1),
        }
    }

    fn poll(&mut self, cx: &mut OpCx<'_, '_>) -> Result<Option<()>> {
        if let Some(k) = &mut self.kill {
            match k.step(cx) {
                None => return Ok(None),
                Some(r) => r?,
            };
            self.kill = None;
        }
        loop {
            let errno = match self.remove_leaves() {
                Ok(()) => return Ok(Some(())),
                Err(errno) => errno,
            };
            let err = || self.rmdir_error(errno);
            if errno != rustix::io::Errno::BUSY {
                return Err(err());
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                let left = self.cg.procs().map(|p| p.len()).unwrap_or(0);
                return Err(err().with_code(Code::Timeout).with_message(format!(
                    "deleting cgroup /{}: still busy after the timeout ({left} processes left; child cgroups also keep it busy)",
                    self.cg.path().as_str()
                )));
            }
            // Event-driven first: the usual cause is processes still running.
            if !self.waited {
                self.waited = true;
                self.emptying = Some(Members::new(self.cg.clone(), false));
            }
            let next = match &mut self.emptying {
                Some(m) => {
                    m.watch(cx)?;
                    if m.check()? {
                        self.emptying = None;
                        continue;
                    }
                    m.arm(cx)?
                }
                // Emptied but still busy: the short lag after the last exit on v1.
                None => {
                    let at = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(Duration::from_millis(50));
                    Some(at)
                }
            };
            if let Some(at) = sooner(next, self.deadline) {
                cx.wake_at(at);
            }
            return Ok(None);
        }
    }

    /// Removes the directories left, in order, and then the cgroup's created parents; stops at
    /// the first that refuses, which stays first in `leaves`, and says why.
    fn remove_leaves(&mut self) -> std::result::Result<(), rustix::io::Errno> {
        while let Some(dir) = self.leaves.first() {
            match files::rmdir(dir) {
                // Removed, or already gone: either way what delete wants.
                Ok(_) | Err(rustix::io::Errno::NOENT) => {
                    self.leaves.remove(0);
                }
                Err(e) => return Err(e),
            }
        }
        self.cg.remove_created();
        Ok(())
    }

    /// The error of the directory `remove_leaves` stopped at.
    fn rmdir_error(&self, errno: rustix::io::Errno) -> Error {
        let dir = &self.leaves[0];
        Error::sys(
            "rmdir",
            errno.raw_os_error(),
            format!(
                "deleting cgroup /{} ({})",
                self.cg.path().as_str(),
                dir.display()
            ),
        )
        .with_path(dir)
    }
}

impl Op for Delete {
    type Output = ();

    fn step(&mut self, cx: &mut OpCx<'_, '_>) -> Option<Result<()>> {
        self.poll(cx).transpose()
    }

    /// An empty cgroup (the usual one once a task's process has exited) is removed at once:
    /// nothing to kill (rmdir refuses a directory with a process left: EBUSY), nothing to
    /// wait for. A busy one goes to the waiter, its removed directories staying removed.
    fn now(&mut self) -> Option<Result<()>> {
        match self.remove_leaves() {
            Ok(()) => Some(Ok(())),
            Err(rustix::io::Errno::BUSY) => None,
            Err(errno) => Some(Err(self.rmdir_error(errno))),
        }
    }
}

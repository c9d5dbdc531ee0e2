//! PSI triggers: open `<cgroup>/{memory,cpu,io}.pressure` or `/proc/pressure/*`, write
//! `some|full <stall us> <window us>`, wait for EPOLLPRI. The trigger lives as long as the
//! fd. Arguments are checked against the kernel's own rules (kernel/sched/psi.c,
//! psi_trigger_create): window 500 ms..10 s, 0 < stall <= window, and without
//! CAP_SYS_RESOURCE (the opener's credentials) the window must be a multiple of 2 s.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::event::epoll::EventFlags;
use rustix::fs::{open, Mode, OFlags};

use crate::cgroup::watch::hub::{lock, SharedHub};
use crate::error::{Code, Error, Result, SysResult};
use crate::event::{Event, EventKind, WatchId};
use crate::fd::{CountedFd, FdKind, Release, Released};
use crate::reactor::{Interest, Keep, Ready, Registration, Source};

pub const WINDOW_MIN_US: u64 = 500_000;
pub const WINDOW_MAX_US: u64 = 10_000_000;
pub const UNPRIVILEGED_WINDOW_US: u64 = 2_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Memory,
    Cpu,
    Io,
}

impl Resource {
    pub fn parse(s: &str) -> Result<Resource> {
        match s {
            "memory" => Ok(Resource::Memory),
            "cpu" => Ok(Resource::Cpu),
            "io" => Ok(Resource::Io),
            _ => Err(Error::invalid(format!(
                "PSI resource {s:?} is not memory, cpu or io"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Cpu => "cpu",
            Resource::Io => "io",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PsiTrigger {
    pub resource: Resource,
    /// `full` (all non-idle tasks stalled) instead of `some`.
    pub full: bool,
    pub stall_us: u64,
    pub window_us: u64,
}

impl PsiTrigger {
    /// From loosely typed input (the binding's numbers and strings): `kind` is `some` or
    /// `full`; stall and window are whole microseconds.
    pub fn from_parts(
        resource: &str,
        kind: &str,
        stall_us: f64,
        window_us: f64,
    ) -> Result<PsiTrigger> {
        let whole = |v: f64, what: &str| {
            if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
                Ok(v as u64)
            } else {
                Err(Error::invalid(format!(
                    "PSI {what} must be a whole number of microseconds, got {v}"
                )))
            }
        };
        let full = match kind {
            "some" => false,
            "full" => true,
            _ => {
                return Err(Error::invalid(format!(
                    "PSI kind {kind:?} is not some or full"
                )))
            }
        };
        Ok(PsiTrigger {
            resource: Resource::parse(resource)?,
            full,
            stall_us: whole(stall_us, "stall")?,
            window_us: whole(window_us, "window")?,
        })
    }

    /// Checks the arguments as the kernel will; `privileged` is CAP_SYS_RESOURCE.
    pub fn validate(&self, privileged: bool) -> Result<()> {
        if !(WINDOW_MIN_US..=WINDOW_MAX_US).contains(&self.window_us) {
            return Err(Error::invalid(format!(
                "PSI window {} us is outside {WINDOW_MIN_US}..={WINDOW_MAX_US} us",
                self.window_us
            )));
        }
        if self.stall_us == 0 || self.stall_us > self.window_us {
            return Err(Error::invalid(format!(
                "PSI stall {} us must be > 0 and <= the window ({} us)",
                self.stall_us, self.window_us
            )));
        }
        if !privileged && self.window_us % UNPRIVILEGED_WINDOW_US != 0 {
            return Err(Error::new(
                Code::Permission,
                format!(
                    "PSI window {} us: without CAP_SYS_RESOURCE the kernel accepts only multiples of 2 s",
                    self.window_us
                ),
            ));
        }
        Ok(())
    }

    /// What is written to the pressure file, and reported in events.
    pub fn spec(&self) -> String {
        format!(
            "{} {} {}",
            if self.full { "full" } else { "some" },
            self.stall_us,
            self.window_us
        )
    }
}

/// Whether this process may create triggers with any window (CAP_SYS_RESOURCE).
pub fn privileged() -> bool {
    rustix::thread::capabilities(None)
        .map(|c| {
            c.effective
                .contains(rustix::thread::CapabilitySet::SYS_RESOURCE)
        })
        .unwrap_or(false)
}

/// The pressure file of a cgroup directory, or the system-wide one.
pub fn file(dir: Option<&Path>, resource: Resource) -> PathBuf {
    match dir {
        Some(d) => d.join(format!("{}.pressure", resource.as_str())),
        None => PathBuf::from(format!("/proc/pressure/{}", resource.as_str())),
    }
}

/// Opens the pressure file and arms the trigger.
pub fn arm(path: &Path, trigger: &PsiTrigger) -> Result<CountedFd> {
    trigger.validate(privileged())?;
    let what = format!(
        "arming PSI trigger {:?} on {}",
        trigger.spec(),
        path.display()
    );
    let fd = CountedFd::new(
        crate::failpoint::hit("open")
            .and_then(|()| {
                open(
                    path,
                    OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                )
            })
            .sys("open", &what)
            .map_err(|e| {
                let e = e.with_path(path);
                match e.errno {
                    Some(libc::ENOENT) if path.starts_with("/proc") => {
                        e.with_code(Code::UnsupportedKernel)
                    }
                    Some(libc::ENOENT) => e.with_code(Code::NoSuchCgroup),
                    // psi=0 on the kernel command line: the files exist but refuse opens.
                    Some(libc::EOPNOTSUPP) => e.with_code(Code::UnsupportedKernel),
                    _ => e,
                }
            })?,
        FdKind::Psi,
    );
    // The kernel parses a NUL-terminated string.
    let mut spec = trigger.spec().into_bytes();
    spec.push(0);
    crate::failpoint::hit("write")
        .and_then(|()| rustix::io::write(&fd, &spec))
        .sys("write", &what)
        .map_err(|e| e.with_path(path))?;
    Ok(fd)
}

/// One armed trigger: of a cgroup watch (`owner`), or a system-wide watch of its own.
pub(crate) struct PsiPart {
    pub fd: CountedFd,
    pub trigger: PsiTrigger,
    pub owner: Option<(WatchId, PathBuf, SharedHub)>,
}

impl PsiPart {
    /// Outside the sources' set that a consumer may watch: the kernel clears a trigger's event
    /// when its fd is polled, so the nested set's extra poll would consume it.
    pub(crate) const REGISTRATION: Registration = Registration {
        unnested: true,
        wake_at: None,
    };

    pub(crate) fn new(
        fd: CountedFd,
        trigger: PsiTrigger,
        owner: Option<(WatchId, PathBuf, SharedHub)>,
    ) -> Self {
        PsiPart {
            fd: fd.commit(),
            trigger,
            owner,
        }
    }
}

impl Source for PsiPart {
    fn interest(&self) -> Option<Interest<'_>> {
        Some(Interest {
            fd: self.fd.as_fd(),
            flags: EventFlags::PRI,
        })
    }

    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep {
        let mut kind = EventKind::Pressure {
            cgroup: None,
            resource: self.trigger.resource.as_str().into(),
            level: None,
            trigger: Some(self.trigger.spec()),
        };
        let watch = match &self.owner {
            None => cx.watch,
            Some((watch, dir, hub)) => {
                let mut hub = lock(hub);
                let Some(w) = hub.watches.get(watch) else {
                    return Keep::No;
                };
                // A removed cgroup wakes its triggers (EPOLLERR / POLLFREE).
                if !dir.exists() {
                    return hub.part_gone(*watch, cx.time, cx.out);
                }
                if let EventKind::Pressure { cgroup, .. } = &mut kind {
                    *cgroup = Some(w.name());
                }
                *watch
            }
        };
        cx.out.push(Event {
            watch,
            time: cx.time,
            kind,
        });
        Keep::Yes
    }

    fn release(self: Box<Self>, how: Release, released: &mut Released) {
        released.add(self.fd.kind());
        self.fd.close(how);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(stall_us: u64, window_us: u64) -> PsiTrigger {
        PsiTrigger {
            resource: Resource::Memory,
            full: false,
            stall_us,
            window_us,
        }
    }

    #[test]
    fn kernel_rules() {
        assert!(t(150_000, 1_000_000).validate(true).is_ok());
        assert!(t(1, 500_000).validate(true).is_ok());
        assert!(t(10_000_000, 10_000_000).validate(true).is_ok());
        assert_eq!(
            t(1, 499_999).validate(true).unwrap_err().code,
            Code::InvalidArgument
        );
        assert_eq!(
            t(1, 10_000_001).validate(true).unwrap_err().code,
            Code::InvalidArgument
        );
        assert_eq!(
            t(0, 1_000_000).validate(true).unwrap_err().code,
            Code::InvalidArgument
        );
        assert_eq!(
            t(2_000_000, 1_000_000).validate(true).unwrap_err().code,
            Code::InvalidArgument
        );
        assert_eq!(
            t(150_000, 1_000_000).validate(false).unwrap_err().code,
            Code::Permission
        );
        assert!(t(150_000, 2_000_000).validate(false).is_ok());
        assert!(t(150_000, 4_000_000).validate(false).is_ok());
        assert_eq!(t(150_000, 1_000_000).spec(), "some 150000 1000000");
        assert_eq!(
            Resource::parse("disk").unwrap_err().code,
            Code::InvalidArgument
        );
    }

    #[test]
    fn system_trigger_arms_and_closes() {
        let path = file(None, Resource::Memory);
        if !path.exists() {
            return;
        }
        let trig = t(100_000, 2_000_000);
        let fd = arm(&path, &trig).unwrap();
        drop(fd.commit());
    }
}

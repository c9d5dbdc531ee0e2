//! Typed errors with stable codes; every kernel error keeps its syscall, errno and path.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Stable error codes, shared with the TypeScript layer (`LifewatchError.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    NoSuchProcess,
    NoSuchCgroup,
    /// A command to spawn that does not exist (not found in PATH, or no such file).
    NoSuchCommand,
    Permission,
    UnsupportedKernel,
    Closed,
    CgroupBusy,
    /// A cgroup to create exists already.
    CgroupExists,
    TooManyFiles,
    /// A wait's `timeout` passed first.
    Timeout,
    Io,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "ERR_INVALID_ARGUMENT",
            Code::NoSuchProcess => "ERR_NO_SUCH_PROCESS",
            Code::NoSuchCgroup => "ERR_NO_SUCH_CGROUP",
            Code::NoSuchCommand => "ERR_NO_SUCH_COMMAND",
            Code::Permission => "ERR_PERMISSION",
            Code::UnsupportedKernel => "ERR_UNSUPPORTED_KERNEL",
            Code::Closed => "ERR_CLOSED",
            Code::CgroupBusy => "ERR_CGROUP_BUSY",
            Code::CgroupExists => "ERR_CGROUP_EXISTS",
            Code::TooManyFiles => "ERR_TOO_MANY_FILES",
            Code::Timeout => "ERR_TIMEOUT",
            Code::Io => "ERR_IO",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: Code,
    pub message: String,
    pub syscall: Option<&'static str>,
    pub errno: Option<i32>,
    pub path: Option<PathBuf>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            syscall: None,
            errno: None,
            path: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn closed() -> Self {
        Self::new(Code::Closed, "the monitor is closed")
    }

    /// Wraps a failed syscall: `what` says what was being done, on which PID or path.
    pub fn sys(syscall: &'static str, errno: i32, what: impl fmt::Display) -> Self {
        let code = code_for_errno(errno);
        let text = strerror(errno);
        Error {
            code,
            message: format!("{what}: {syscall}: {text}"),
            syscall: Some(syscall),
            errno: Some(errno),
            path: None,
        }
    }

    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn with_code(mut self, code: Code) -> Self {
        self.code = code;
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}

/// The C library's words for an errno ("No such process"), without the "(os error 3)" that
/// Rust's `io::Error` adds: the errno is a property of the error already.
fn strerror(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn code_for_errno(errno: i32) -> Code {
    match errno {
        libc::ESRCH => Code::NoSuchProcess,
        libc::EPERM | libc::EACCES => Code::Permission,
        libc::ENOSYS => Code::UnsupportedKernel,
        libc::EMFILE | libc::ENFILE => Code::TooManyFiles,
        libc::EBUSY => Code::CgroupBusy,
        libc::EINVAL => Code::InvalidArgument,
        _ => Code::Io,
    }
}

/// `rustix` and `nix` report errno values; both convert through this.
pub trait SysResult<T> {
    fn sys(self, syscall: &'static str, what: impl fmt::Display) -> Result<T>;
}

impl<T> SysResult<T> for rustix::io::Result<T> {
    fn sys(self, syscall: &'static str, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::sys(syscall, e.raw_os_error(), what))
    }
}

impl<T> SysResult<T> for io::Result<T> {
    fn sys(self, syscall: &'static str, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::sys(syscall, e.raw_os_error().unwrap_or(libc::EIO), what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_maps_to_stable_codes() {
        assert_eq!(
            Error::sys("kill", libc::ESRCH, "pid 5").code,
            Code::NoSuchProcess
        );
        assert_eq!(Error::sys("open", libc::EACCES, "x").code, Code::Permission);
        assert_eq!(
            Error::sys("pidfd_open", libc::ENOSYS, "x").code,
            Code::UnsupportedKernel
        );
        assert_eq!(
            Error::sys("open", libc::EMFILE, "x").code,
            Code::TooManyFiles
        );
        let e = Error::sys("pidfd_open", libc::ESRCH, "watching pid 42");
        assert_eq!(e.syscall, Some("pidfd_open"));
        assert_eq!(e.errno, Some(libc::ESRCH));
        assert_eq!(e.message, "watching pid 42: pidfd_open: No such process");
    }
}

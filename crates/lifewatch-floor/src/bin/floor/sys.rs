//! The few syscalls the floor is made of: owned fds, an epoll set, a blocking wait.

use std::io;

use lifewatch_floor::os_error;

pub struct Fd(pub i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: an fd this program opened and owns.
        unsafe { libc::close(self.0) };
    }
}

/// Wraps a syscall's fd result, or the OS error with what was being done.
pub fn owned(fd: i32, what: &str) -> io::Result<Fd> {
    if fd < 0 {
        return Err(os_error(what));
    }
    Ok(Fd(fd))
}

pub fn epoll() -> io::Result<Fd> {
    // SAFETY: plain syscall.
    owned(
        unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
        "epoll_create1",
    )
}

pub fn add(ep: &Fd, fd: &Fd, data: u64) -> io::Result<()> {
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
pub fn wait(ep: &Fd, events: &mut [libc::epoll_event]) -> io::Result<usize> {
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

pub fn cstr(path: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path).map_err(io::Error::other)
}

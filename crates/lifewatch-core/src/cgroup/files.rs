//! Reading and writing cgroup control files: each open is a counted `Control` fd, closed on
//! every path, and every error says which file was being read or written and why.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::error::{Code, Error, Result, SysResult};
use crate::fd::{CountedFd, FdKind};

/// ENOENT on a control file of an existing cgroup object means the cgroup went away.
fn gone(e: Error) -> Error {
    match e.errno {
        Some(libc::ENOENT) | Some(libc::ENODEV) => e.with_code(Code::NoSuchCgroup),
        _ => e,
    }
}

pub fn open(path: &Path, flags: OFlags, what: &str) -> Result<CountedFd> {
    let fd = crate::failpoint::hit("open")
        .and_then(|()| rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()))
        .sys("open", format!("{what}: opening {}", path.display()))
        .map_err(|e| gone(e).with_path(path))?;
    Ok(CountedFd::new(fd, FdKind::Control).commit())
}

/// Writes `value` to `dir/name` in one write(2), as the kernel expects.
pub fn write(dir: &Path, name: &str, value: &str, what: &str) -> Result<()> {
    let path = dir.join(name);
    let fd = open(&path, OFlags::WRONLY, what)?;
    // A v1 memory limit write reclaims down to the new limit and returns EINTR when a
    // signal arrives meanwhile (seen under the stress test): the write is simply retried.
    let n = crate::failpoint::hit("write")
        .and_then(|()| loop {
            match rustix::io::write(&fd, value.as_bytes()) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r,
            }
        })
        .sys(
            "write",
            format!("{what}: writing {value:?} to {}", path.display()),
        )
        .map_err(|e| gone(e).with_path(&path))?;
    if n != value.len() {
        return Err(Error::new(
            Code::Io,
            format!(
                "{what}: short write of {value:?} to {} ({n} bytes)",
                path.display()
            ),
        )
        .with_path(&path));
    }
    Ok(())
}

pub fn read(dir: &Path, name: &str, what: &str) -> Result<String> {
    let path = dir.join(name);
    let fd = open(&path, OFlags::RDONLY, what)?;
    let out = crate::pseudofile::read_fd(fd.as_fd())
        .sys("read", format!("{what}: reading {}", path.display()))
        .map_err(|e| gone(e).with_path(&path))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The PIDs listed in `cgroup.procs` (exited processes, zombies included, are not listed).
pub fn procs(dir: &Path) -> Result<Vec<i32>> {
    let text = read(dir, "cgroup.procs", "listing the cgroup's processes")?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// A `key value` line of a flat-keyed file such as `cgroup.events`.
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

pub fn exists(dir: &Path, name: &str) -> bool {
    dir.join(name).exists()
}

/// mkdir; `Ok(false)` when it already existed.
pub fn mkdir(dir: &Path, what: &str) -> Result<bool> {
    match crate::failpoint::hit("mkdir")
        .and_then(|()| rustix::fs::mkdir(dir, Mode::from_raw_mode(0o755)))
    {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) if dir.is_dir() => Ok(false),
        // A file of that name (`cgroup.procs`, `memory.max`...): not a cgroup path.
        Err(rustix::io::Errno::EXIST) => Err(Error::invalid(format!(
            "{what} {}: a file, not a cgroup directory, is in the way",
            dir.display()
        ))
        .with_path(dir)),
        Err(e) => Err(Error::sys(
            "mkdir",
            e.raw_os_error(),
            format!("{what} {}", dir.display()),
        )
        .with_path(dir)),
    }
}

/// rmdir; `Ok(false)` when it was already gone.
pub fn rmdir(dir: &Path) -> std::result::Result<bool, rustix::io::Errno> {
    match rustix::fs::rmdir(dir) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every ancestor of `leaf` below `mount`, outermost first, then `leaf` itself.
pub fn chain(mount: &Path, leaf: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = leaf
        .ancestors()
        .take_while(|p| p.starts_with(mount) && *p != mount)
        .map(Path::to_path_buf)
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_chain() {
        let ev = "populated 1\nfrozen 0\n";
        assert_eq!(keyed(ev, "populated"), Some(1));
        assert_eq!(keyed(ev, "frozen"), Some(0));
        assert_eq!(keyed(ev, "x"), None);
        let c = chain(Path::new("/m"), Path::new("/m/a/b"));
        assert_eq!(c, vec![PathBuf::from("/m/a"), PathBuf::from("/m/a/b")]);
    }

    #[test]
    fn errors_name_the_file() {
        let e = write(
            Path::new("/nonexistent-lw"),
            "memory.max",
            "1",
            "setting memory",
        )
        .unwrap_err();
        assert_eq!(e.code, Code::NoSuchCgroup);
        assert!(
            e.message.contains("/nonexistent-lw/memory.max"),
            "{}",
            e.message
        );
        assert_eq!(
            e.path.as_deref(),
            Some(Path::new("/nonexistent-lw/memory.max"))
        );
    }
}

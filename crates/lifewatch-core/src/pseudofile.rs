//! Kernel pseudo-files (cgroupfs, procfs) read whole in three syscalls: open, one read into a
//! stack buffer, close. The kernel produces these files through seq_file, which fills the
//! reader's buffer unless the file ends, so a read that comes back short is the end. std's
//! `read_to_string` also asks for the file's size and reads once more to see the end: two
//! more syscalls per file, and an event's cgroup snapshot reads a dozen files on the thread
//! that delivers it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// Larger than any single-value or flat-keyed cgroup file; a longer file takes more reads.
const CHUNK: usize = 4096;

/// The file's text.
pub fn read(path: impl AsRef<Path>) -> io::Result<String> {
    String::from_utf8(read_bytes(path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The file's bytes (a process name need not be UTF-8).
pub fn read_bytes(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let fd = rustix::fs::open(
        path.as_ref(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(read_fd(fd.as_fd())?)
}

/// Everything left to read from an open pseudo-file, until a short read.
pub fn read_fd(fd: BorrowedFd<'_>) -> rustix::io::Result<Vec<u8>> {
    let mut buf = [0u8; CHUNK];
    let mut bytes = Vec::new();
    loop {
        let n = match rustix::io::read(fd, &mut buf) {
            Err(rustix::io::Errno::INTR) => continue,
            r => r?,
        };
        bytes.extend_from_slice(&buf[..n]);
        if n < CHUNK {
            return Ok(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_files_whole() {
        let dir = std::env::temp_dir().join(format!("lifewatch-pseudofile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let path = dir.join(format!("f{len}"));
            std::fs::write(&path, &text).unwrap();
            assert_eq!(read(&path).unwrap(), text, "{len} bytes");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_kernel_file_reads_as_std_reads_it() {
        let path = Path::new("/proc/self/mountinfo");
        // Both read the same process's table: equal unless a mount changed in between.
        let (a, b) = (read(path).unwrap(), std::fs::read_to_string(path).unwrap());
        assert!(!a.is_empty() && a.lines().count() == b.lines().count());
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let e = read(Path::new("/nonexistent/lifewatch")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}

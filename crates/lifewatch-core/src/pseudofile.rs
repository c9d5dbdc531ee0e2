//! Kernel pseudo-files (cgroupfs, procfs) read whole into a stack buffer: open, reads until
//! one returns nothing, close. std's `read_to_string` also asks for the file's size first (a
//! `statx` the kernel answers with 0 or 4096 for these files), one more syscall per file, and
//! an event's cgroup snapshot reads a dozen files on the thread that delivers it. A short read
//! is not the end: a file printed record by record (`cgroup.procs`, a task's `children`)
//! comes in reads of whole records, each shorter than the buffer.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// Larger than any single-value or flat-keyed cgroup file.
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

/// Everything left to read from an open pseudo-file.
pub fn read_fd(fd: BorrowedFd<'_>) -> rustix::io::Result<Vec<u8>> {
    let mut buf = [0u8; CHUNK];
    let mut bytes = Vec::new();
    loop {
        match rustix::io::read(fd, &mut buf) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(0) => return Ok(bytes),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e),
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
    fn a_file_printed_record_by_record_is_read_whole() {
        // A task's `children` comes in reads of whole records, each shorter than the buffer:
        // 1,000 children print about 6 KB, more than one read returns.
        let mut kids: Vec<_> = (0..1000)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("30")
                    .spawn()
                    .unwrap()
            })
            .collect();
        let path = format!(
            "/proc/self/task/{}/children",
            rustix::thread::gettid().as_raw_nonzero()
        );
        let text = read(&path).unwrap();
        let listed: std::collections::HashSet<u32> = text
            .split_ascii_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        for k in &mut kids {
            k.kill().unwrap();
            k.wait().unwrap();
        }
        assert!(text.len() > CHUNK, "{} bytes", text.len());
        assert!(
            kids.iter().all(|k| listed.contains(&k.id())),
            "every child listed"
        );
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let e = read(Path::new("/nonexistent/lifewatch")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}

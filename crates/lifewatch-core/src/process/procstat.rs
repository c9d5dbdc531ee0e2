//! `/proc/<pid>/stat`: state, parent, start time (identity against PID reuse) and a zombie's
//! exit code.

use rustix::fs::{Mode, OFlags};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    /// Field 4: the parent's PID.
    pub ppid: i32,
    /// Field 20: threads in the thread group, the exited leader included until it is reaped.
    pub threads: u32,
    /// Field 22, in clock ticks since boot: with the PID, identifies one process for good.
    pub start_time: u64,
    /// Field 52 (Linux 3.5+): the wait status, meaningful once the process is a zombie.
    pub exit_code: Option<i32>,
}

impl ProcStat {
    /// The whole thread group has exited and waits to be reaped. A leader that called
    /// pthread_exit() shows `Z` too while its other threads run on: that is not an exit.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X') && self.threads <= 1
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 (state); field n is fields[n - 3].
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(4 - 3)?.parse().ok()?;
    let threads = fields.get(20 - 3)?.parse().ok()?;
    let start_time = fields.get(22 - 3)?.parse().ok()?;
    let exit_code = fields.get(52 - 3).and_then(|s| s.parse().ok());
    Some(ProcStat {
        state,
        ppid,
        threads,
        start_time,
        exit_code,
    })
}

/// The longest line the kernel writes: 52 fields of at most 20 digits plus a 16-byte name.
const LINE_MAX: usize = 2048;

/// `None` when the process is gone (or /proc is unreadable for it). One open, one read, one
/// close: this runs on the reactor thread for every exit of a non-child.
pub fn read(pid: i32) -> Option<ProcStat> {
    let fd = rustix::fs::open(
        format!("/proc/{pid}/stat"),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; LINE_MAX];
    let n = rustix::io::read(&fd, &mut buf).ok()?;
    parse(std::str::from_utf8(&buf[..n]).ok()?)
}

/// A process's stat fields and its name (`comm`).
pub fn read_named(pid: i32) -> Option<(ProcStat, String)> {
    let text = crate::pseudofile::read(format!("/proc/{pid}/stat")).ok()?;
    Some((parse(&text)?, comm(&text)?.to_string()))
}

/// The name in a stat line: between the first `(` and the last `)` (it may hold either).
fn comm(text: &str) -> Option<&str> {
    text.get(text.find('(')? + 1..text.rfind(')')?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(comm: &str, state: char, start: u64, exit: i32) -> String {
        let mut f: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        f[0] = state.to_string();
        f[4 - 3] = "77".into();
        f[20 - 3] = "1".into();
        f[22 - 3] = start.to_string();
        f[52 - 3] = exit.to_string();
        format!("1234 ({comm}) {}", f.join(" "))
    }

    #[test]
    fn names_with_parentheses() {
        assert_eq!(comm("12 (a) (b)) S 1"), Some("a) (b)"));
        assert_eq!(comm("12 a S"), None);
    }

    #[test]
    fn parses_state_start_and_exit_code() {
        let s = parse(&line("sleep", 'Z', 987654, 1792)).unwrap();
        assert_eq!(s.state, 'Z');
        assert!(s.is_zombie());
        assert_eq!(s.start_time, 987654);
        assert_eq!(s.ppid, 77);
        assert_eq!(s.exit_code, Some(1792));
    }

    #[test]
    fn a_zombie_leader_with_live_threads_has_not_exited() {
        let mut text = line("server", 'Z', 5, 0);
        assert!(parse(&text).unwrap().is_zombie());
        text = text.replacen(" 1 21 ", " 3 21 ", 1);
        let s = parse(&text).unwrap();
        assert_eq!(s.threads, 3);
        assert!(
            !s.is_zombie(),
            "the leader called pthread_exit; two threads run on"
        );
    }

    #[test]
    fn command_names_with_spaces_and_parens() {
        let s = parse(&line("a) b (c) ", 'S', 42, 0)).unwrap();
        assert_eq!((s.state, s.start_time), ('S', 42));
    }

    #[test]
    fn truncated_or_garbage_is_none() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("1 (x) S 1 2"), None);
        assert_eq!(parse("no paren here"), None);
    }

    #[test]
    fn reads_own_process() {
        let s = read(std::process::id() as i32).unwrap();
        assert!(s.start_time > 0);
        assert_eq!(s.ppid as u32, std::os::unix::process::parent_id());
        assert!(!s.is_zombie());
    }
}

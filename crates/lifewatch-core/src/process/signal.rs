//! Signal numbers and names accepted by lifewatch.

use crate::error::{Error, Result, SysResult};

const NAMES: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGSTKFLT", libc::SIGSTKFLT),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    ("SIGPWR", libc::SIGPWR),
    ("SIGSYS", libc::SIGSYS),
];

/// Other names the C library gives to signals above: `kill -l` accepts them too.
const ALIASES: &[(&str, i32)] = &[
    ("SIGIOT", libc::SIGABRT),
    ("SIGPOLL", libc::SIGIO),
    ("SIGCLD", libc::SIGCHLD),
    ("SIGUNUSED", libc::SIGSYS),
];

/// kill(2): for kernels without pidfd, after the caller checked the process's identity.
/// rustix's `Signal` has no safe constructor for real-time signals: the syscall is called.
pub fn kill(pid: i32, signo: i32) -> Result<()> {
    // SAFETY: plain kill(2); a negative or zero PID is refused before it.
    if pid > 0 && unsafe { libc::kill(pid, signo) } == 0 {
        return Ok(());
    }
    let what = format!("sending signal {} to pid {pid}", display_name(signo));
    if pid <= 0 {
        return Err(Error::invalid(format!("{what}: not a process ID")));
    }
    Err(std::io::Error::last_os_error()).sys("kill", what)
}

/// The highest signal number Linux delivers (SIGRTMAX on x86_64 and aarch64).
pub const MAX_SIGNAL: i32 = 64;

/// Validates a signal number: 1..=64 (0 is not a signal to send here).
pub fn check(signo: i32) -> Result<i32> {
    if (1..=MAX_SIGNAL).contains(&signo) {
        Ok(signo)
    } else {
        Err(Error::invalid(format!(
            "signal {signo} is out of range (1..={MAX_SIGNAL})"
        )))
    }
}

/// The real-time range as the C library defines it: it keeps the kernel's first two or three
/// for its threads, so `SIGRTMIN` means what it means to `kill -l` and to the process signalled.
fn realtime() -> (i32, i32) {
    (libc::SIGRTMIN(), libc::SIGRTMAX())
}

/// A signal name or number as `kill -l` spells them, with or without `SIG`, in any case:
/// `SIGTERM`, `term`, `15`, `SIGIOT`, `SIGRTMIN`, `RTMIN+3`, `SIGRTMAX-2`, `SIG32`.
pub fn parse(name: &str) -> Result<i32> {
    let unknown = || Error::invalid(format!("unknown signal {name:?}"));
    if let Ok(n) = name.parse::<i32>() {
        return check(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let full = format!("SIG{bare}");
    if let Some(&(_, s)) = NAMES.iter().chain(ALIASES).find(|(n, _)| *n == full) {
        return Ok(s);
    }
    let (min, max) = realtime();
    let offset = |digits: &str| -> Option<i32> {
        // Only plain digits: `+3`, not `+ 3`, `++3` or `+0x3`.
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<i32>().ok())
            .flatten()
            .filter(|&k| k <= max - min)
    };
    let signo = match bare {
        "RTMIN" => Some(min),
        "RTMAX" => Some(max),
        _ => {
            if let Some(k) = bare.strip_prefix("RTMIN+") {
                offset(k).map(|k| min + k)
            } else if let Some(k) = bare.strip_prefix("RTMAX-") {
                offset(k).map(|k| max - k)
            } else if upper.starts_with("SIG") && bare.bytes().all(|b| b.is_ascii_digit()) {
                // `SIG32`: how a number without a name is displayed.
                bare.parse::<i32>()
                    .ok()
                    .filter(|n| (1..=MAX_SIGNAL).contains(n))
            } else {
                None
            }
        }
    };
    signo.ok_or_else(unknown)
}

/// The conventional name of a standard signal (not its aliases, not a real-time signal).
pub fn name(signo: i32) -> Option<&'static str> {
    NAMES.iter().find(|&&(_, s)| s == signo).map(|&(n, _)| n)
}

/// A name for any signal number, as `kill -l` shows it and `parse` reads it back: `SIGKILL`;
/// `SIGRTMIN`, `SIGRTMIN+1`.. up to the middle of the real-time range, then `SIGRTMAX-14`..
/// `SIGRTMAX`; `SIG32` for the numbers the C library keeps for itself.
pub fn display_name(signo: i32) -> String {
    if let Some(n) = name(signo) {
        return n.to_string();
    }
    let (min, max) = realtime();
    match signo {
        s if s == min => "SIGRTMIN".to_string(),
        s if s == max => "SIGRTMAX".to_string(),
        s if s > min && s - min <= (max - min) / 2 => format!("SIGRTMIN+{}", s - min),
        s if s > min && s < max => format!("SIGRTMAX-{}", max - s),
        s => format!("SIG{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("SIGTERM").unwrap(), 15);
        assert_eq!(parse("term").unwrap(), 15);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("SIGIOT").unwrap(), libc::SIGABRT);
        assert_eq!(parse("poll").unwrap(), libc::SIGIO);
        assert_eq!(parse("SIGCLD").unwrap(), libc::SIGCHLD);
        let (min, max) = realtime();
        assert_eq!(parse("SIGRTMIN").unwrap(), min);
        assert_eq!(parse("rtmin+0").unwrap(), min);
        assert_eq!(parse("SIGRTMIN+3").unwrap(), min + 3);
        assert_eq!(parse("SIGRTMAX").unwrap(), max);
        assert_eq!(parse("SIGRTMAX-2").unwrap(), max - 2);
        assert_eq!(parse("SIG32").unwrap(), 32);
        assert_eq!(name(9), Some("SIGKILL"));
        assert_eq!(name(40), None);
        let too_far = format!("SIGRTMIN+{}", max - min + 1);
        for bad in [
            "SIGNOPE",
            "",
            "0",
            "65",
            "-1",
            "SIG",
            "SIG0",
            "SIG65",
            "SIGRTMIN+",
            "SIGRTMIN-1",
            "SIGRTMAX+1",
            "SIGRTMIN+-1",
            "SIGRTMIN++1",
            "SIGRTMIN+ 1",
            &too_far,
            "SIGSIGTERM",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_number_round_trips_through_its_name() {
        for n in 1..=MAX_SIGNAL {
            let shown = display_name(n);
            assert_eq!(parse(&shown).unwrap(), n, "{n} shown as {shown}");
        }
        let (min, max) = realtime();
        assert_eq!(display_name(min), "SIGRTMIN");
        assert_eq!(display_name(min + 1), "SIGRTMIN+1");
        assert_eq!(display_name(max - 1), "SIGRTMAX-1");
        assert_eq!(display_name(max), "SIGRTMAX");
    }
}

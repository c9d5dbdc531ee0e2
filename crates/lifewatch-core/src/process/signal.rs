//! Signal numbers and names accepted by lifewatch.

use crate::error::{Error, Result};

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

/// `SIGTERM`, `TERM`, `sigterm` or a number in range.
pub fn parse(name: &str) -> Result<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return check(n);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    NAMES
        .iter()
        .find(|(n, _)| *n == full)
        .map(|&(_, s)| s)
        .ok_or_else(|| Error::invalid(format!("unknown signal {name:?}")))
}

/// The conventional name of a signal number, when it has one.
pub fn name(signo: i32) -> Option<&'static str> {
    NAMES.iter().find(|&&(_, s)| s == signo).map(|&(n, _)| n)
}

/// A name for any signal number: `SIGKILL`, or `SIGRTMIN+6` for real-time signals.
pub fn display_name(signo: i32) -> String {
    match name(signo) {
        Some(n) => n.to_string(),
        None if signo >= libc::SIGRTMIN() => format!("SIGRTMIN+{}", signo - libc::SIGRTMIN()),
        None => format!("SIG{signo}"),
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
        assert_eq!(name(9), Some("SIGKILL"));
        assert_eq!(name(40), None);
        for bad in ["SIGNOPE", "", "0", "65", "-1", "SIG"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

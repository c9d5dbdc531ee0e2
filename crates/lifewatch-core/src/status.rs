//! Wait statuses as the kernel encodes them (waitid, PIDFD_INFO_EXIT, /proc stat exit_code).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal { signo: i32, core: bool },
}

impl ExitStatus {
    /// What `waitid` reported for an exited child.
    pub fn from_wait(st: &rustix::process::WaitIdStatus) -> Option<ExitStatus> {
        match (st.exit_status(), st.terminating_signal()) {
            (Some(code), _) => Some(ExitStatus::Code(code)),
            (None, Some(signo)) => Some(ExitStatus::Signal {
                signo,
                core: st.dumped(),
            }),
            _ => None,
        }
    }

    /// Decodes a `wait(2)` status word.
    pub fn from_wait_status(w: i32) -> Self {
        let signo = w & 0x7f;
        if signo == 0 {
            ExitStatus::Code((w >> 8) & 0xff)
        } else {
            ExitStatus::Signal {
                signo,
                core: w & 0x80 != 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_codes_and_signals() {
        // Values seen on these machines: `exit 7` -> 1792, SIGKILL -> 9.
        assert_eq!(ExitStatus::from_wait_status(1792), ExitStatus::Code(7));
        assert_eq!(ExitStatus::from_wait_status(0), ExitStatus::Code(0));
        assert_eq!(
            ExitStatus::from_wait_status(9),
            ExitStatus::Signal {
                signo: 9,
                core: false
            }
        );
        assert_eq!(
            ExitStatus::from_wait_status(0x80 | 11),
            ExitStatus::Signal {
                signo: 11,
                core: true
            }
        );
    }
}

//! cgroup v1 memory pressure: `memory.pressure_level` through the same eventfd +
//! `cgroup.event_control` registration as the OOM watcher, with the argument
//! `low|medium|critical[,hierarchy|local]`, validated here before anything is opened.

use crate::error::{Error, Result};

/// A validated `memory.pressure_level` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PressureLevel {
    pub level: &'static str,
    /// `None`: the kernel's default propagation; `hierarchy` or `local` otherwise.
    pub mode: Option<&'static str>,
}

impl PressureLevel {
    pub fn parse(s: &str) -> Result<PressureLevel> {
        let mut it = s.split(',');
        let level = match it.next() {
            Some("low") => "low",
            Some("medium") => "medium",
            Some("critical") => "critical",
            _ => return Err(bad(s)),
        };
        let mode = match it.next() {
            None => None,
            Some("hierarchy") => Some("hierarchy"),
            Some("local") => Some("local"),
            Some("default") => None,
            Some(_) => return Err(bad(s)),
        };
        if it.next().is_some() {
            return Err(bad(s));
        }
        Ok(PressureLevel { level, mode })
    }

    /// The argument written to `cgroup.event_control`.
    pub fn arg(&self) -> String {
        match self.mode {
            Some(m) => format!("{},{m}", self.level),
            None => self.level.to_string(),
        }
    }
}

fn bad(s: &str) -> Error {
    Error::invalid(format!(
        "pressure level {s:?} is not low, medium or critical, optionally followed by ,hierarchy or ,local"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_modes() {
        assert_eq!(PressureLevel::parse("low").unwrap().arg(), "low");
        assert_eq!(
            PressureLevel::parse("critical,local").unwrap().arg(),
            "critical,local"
        );
        assert_eq!(
            PressureLevel::parse("medium,hierarchy").unwrap().arg(),
            "medium,hierarchy"
        );
        for bad in [
            "",
            "high",
            "low,",
            "low,up",
            "low,local,x",
            "low 1",
            "low\n",
        ] {
            assert!(PressureLevel::parse(bad).is_err(), "{bad:?}");
        }
    }
}

//! Resource limits as users write them (`64M`, `1.5G`, `max`, `0.5` CPUs, `"50000 100000"`),
//! validated completely before a single cgroup file is written.

use crate::error::{Error, Result};
use crate::process::PID_MAX_LIMIT;

/// A value as it comes from JavaScript: a number or a string.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Number(f64),
    Text(String),
}

/// A byte or count limit, or none (`max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Max {
    Value(u64),
    Unlimited,
}

impl Max {
    /// As cgroup v2 files write it.
    pub fn v2(self) -> String {
        match self {
            Max::Value(n) => n.to_string(),
            Max::Unlimited => "max".into(),
        }
    }

    /// As cgroup v1 files write it (`-1` is unlimited).
    pub fn v1(self) -> String {
        match self {
            Max::Value(n) => n.to_string(),
            Max::Unlimited => "-1".into(),
        }
    }
}

/// CFS bandwidth: `quota` microseconds of CPU time per `period` (None: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    pub quota: Option<u64>,
    pub period: u64,
}

impl CpuMax {
    pub fn v2(self) -> String {
        match self.quota {
            Some(q) => format!("{q} {}", self.period),
            None => format!("max {}", self.period),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory: Option<Max>,
    /// Swap on top of memory (v2 `memory.swap.max`; v1 memsw = memory + swap).
    pub swap: Option<Max>,
    pub pids: Option<Max>,
    pub cpu: Option<CpuMax>,
    /// v2 `cpu.weight`, 1..=10000 (v1 `cpu.shares` is derived from it).
    pub cpu_weight: Option<u64>,
}

/// The limits as JavaScript gives them, every field optional.
#[derive(Debug, Clone, Default)]
pub struct RawLimits {
    pub memory: Option<Input>,
    pub swap: Option<Input>,
    pub pids: Option<Input>,
    pub cpu: Option<Input>,
    pub cpu_weight: Option<Input>,
}

impl RawLimits {
    pub fn parse(&self) -> Result<Limits> {
        Ok(Limits {
            memory: self
                .memory
                .as_ref()
                .map(|v| bytes("memory", v))
                .transpose()?,
            swap: self.swap.as_ref().map(|v| bytes("swap", v)).transpose()?,
            pids: self.pids.as_ref().map(pids).transpose()?,
            cpu: self.cpu.as_ref().map(cpu_max).transpose()?,
            cpu_weight: self.cpu_weight.as_ref().map(cpu_weight).transpose()?,
        })
    }
}

/// The kernel's page counters are signed 64-bit: nothing above this is a byte limit.
pub const BYTES_MAX: u64 = i64::MAX as u64;
/// Largest integer a JavaScript number holds exactly.
const SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
pub const CPU_PERIOD_DEFAULT: u64 = 100_000;
const CPU_PERIOD_MIN: u64 = 1_000;
const CPU_PERIOD_MAX: u64 = 1_000_000;
const CPU_QUOTA_MIN: u64 = 1_000;

fn invalid(what: &str, v: impl std::fmt::Debug, why: &str) -> Error {
    Error::invalid(format!("{what} limit {v:?} is invalid: {why}"))
}

/// Refuses anything that could smuggle a second value into a cgroup file.
fn clean<'a>(what: &str, s: &'a str) -> Result<&'a str> {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(invalid(
            what,
            s,
            &format!("contains the control character {c:?}"),
        ));
    }
    if s.is_empty() {
        return Err(invalid(what, s, "empty"));
    }
    Ok(s)
}

fn whole_number(what: &str, n: f64, max: u64) -> Result<u64> {
    if n.is_nan() {
        return Err(invalid(what, n, "not a number"));
    }
    if n < 0.0 {
        return Err(invalid(what, n, "negative"));
    }
    if !n.is_finite() || n > SAFE_INTEGER || n > max as f64 {
        return Err(invalid(what, n, &format!("larger than {max}")));
    }
    if n.fract() != 0.0 {
        return Err(invalid(what, n, "not a whole number"));
    }
    Ok(n as u64)
}

/// Bytes: a whole number, `max`, or a decimal with a binary unit: `512k`, `64M`, `1.5G`,
/// `2T` (also `64Mi`, `64MiB`, `64MB`; `b`/`B` alone is bytes). Units are powers of 1024.
pub fn bytes(what: &str, v: &Input) -> Result<Max> {
    let s = match v {
        Input::Number(n) => return Ok(Max::Value(whole_number(what, *n, BYTES_MAX)?)),
        Input::Text(s) => clean(what, s)?,
    };
    if s == "max" {
        return Ok(Max::Unlimited);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "ki" | "kb" | "kib" => 10,
        "m" | "mi" | "mb" | "mib" => 20,
        "g" | "gi" | "gb" | "gib" => 30,
        "t" | "ti" | "tb" | "tib" => 40,
        "p" | "pi" | "pb" | "pib" => 50,
        _ if s.starts_with('-') => return Err(invalid(what, s, "negative")),
        _ => {
            return Err(invalid(
                what,
                s,
                "expected a number with an optional unit k, M, G, T or P, or \"max\"",
            ))
        }
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() || (num.contains('.') && frac.is_empty()) || frac.contains('.') {
        return Err(invalid(what, s, "malformed number"));
    }
    let too_big = || invalid(what, s, &format!("larger than {BYTES_MAX} bytes"));
    let int: u64 = int.parse().map_err(|_| too_big())?;
    let mut total = (int as u128) << shift;
    if !frac.is_empty() {
        // Exact decimal arithmetic: "1.5G" is 1610612736, not a float's approximation.
        let digits = frac.len().min(18);
        let f: u128 = frac[..digits].parse().map_err(|_| too_big())?;
        let scale = 10u128.pow(digits as u32);
        let part = (f << shift) / scale;
        if (f << shift) % scale != 0 && shift == 0 {
            return Err(invalid(what, s, "not a whole number of bytes"));
        }
        total += part;
    }
    if total > BYTES_MAX as u128 {
        return Err(too_big());
    }
    Ok(Max::Value(total as u64))
}

/// A process count: a whole number up to PID_MAX_LIMIT, or `max`.
pub fn pids(v: &Input) -> Result<Max> {
    let max = PID_MAX_LIMIT as u64;
    match v {
        Input::Number(n) => Ok(Max::Value(whole_number("pids", *n, max)?)),
        Input::Text(s) => {
            let s = clean("pids", s)?;
            if s == "max" {
                return Ok(Max::Unlimited);
            }
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    "pids",
                    s,
                    if s.starts_with('-') {
                        "negative"
                    } else {
                        "expected a whole number or \"max\""
                    },
                ));
            }
            match s.parse::<u64>() {
                Ok(n) if n <= max => Ok(Max::Value(n)),
                _ => Err(invalid("pids", s, &format!("larger than {max}"))),
            }
        }
    }
}

/// CPU bandwidth: a number of CPUs (`0.5`, `2`, as a number or a string), `max`, or the
/// v2 file's own form `"<quota> <period>"` / `"max <period>"` in microseconds.
pub fn cpu_max(v: &Input) -> Result<CpuMax> {
    let cores = |n: f64, shown: &dyn std::fmt::Debug| -> Result<CpuMax> {
        if n.is_nan() || !n.is_finite() || n <= 0.0 || n > 1024.0 {
            return Err(invalid(
                "cpu",
                shown,
                "expected a positive number of CPUs (at most 1024)",
            ));
        }
        let quota = (n * CPU_PERIOD_DEFAULT as f64).round() as u64;
        if quota < CPU_QUOTA_MIN {
            return Err(invalid("cpu", shown, "less than 0.01 CPU"));
        }
        Ok(CpuMax {
            quota: Some(quota),
            period: CPU_PERIOD_DEFAULT,
        })
    };
    let s = match v {
        Input::Number(n) => return cores(*n, n),
        Input::Text(s) => clean("cpu", s)?,
    };
    if s == "max" {
        return Ok(CpuMax {
            quota: None,
            period: CPU_PERIOD_DEFAULT,
        });
    }
    let number = |t: &str| -> Result<u64> {
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse().map_err(|_| invalid("cpu", s, "number too large"))
        } else {
            Err(invalid(
                "cpu",
                s,
                "expected CPUs (\"0.5\"), \"max\" or \"<quota> <period>\" in microseconds",
            ))
        }
    };
    match s.split_once(' ') {
        Some((q, p)) => {
            let period = number(p)?;
            if !(CPU_PERIOD_MIN..=CPU_PERIOD_MAX).contains(&period) {
                return Err(invalid(
                    "cpu",
                    s,
                    "period must be 1000..=1000000 microseconds",
                ));
            }
            let quota = if q == "max" {
                None
            } else {
                let q = number(q)?;
                if !(CPU_QUOTA_MIN..=BYTES_MAX / 1000).contains(&q) {
                    return Err(invalid(
                        "cpu",
                        s,
                        "quota must be at least 1000 microseconds",
                    ));
                }
                Some(q)
            };
            Ok(CpuMax { quota, period })
        }
        None => {
            let ok = s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && s.bytes().filter(|&b| b == b'.').count() <= 1
                && !s.starts_with('.')
                && !s.ends_with('.');
            if !ok {
                return Err(invalid(
                    "cpu",
                    s,
                    if s.starts_with('-') {
                        "negative"
                    } else {
                        "expected CPUs (\"0.5\"), \"max\" or \"<quota> <period>\" in microseconds"
                    },
                ));
            }
            cores(s.parse().unwrap_or(f64::NAN), &s)
        }
    }
}

/// `cpu.weight`: 1..=10000 (100 is the default share).
pub fn cpu_weight(v: &Input) -> Result<u64> {
    let n = match v {
        Input::Number(n) => whole_number("cpuWeight", *n, 10_000)?,
        Input::Text(s) => {
            let s = clean("cpuWeight", s)?;
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("cpuWeight", s, "expected a whole number 1..=10000"));
            }
            s.parse()
                .map_err(|_| invalid("cpuWeight", s, "larger than 10000"))?
        }
    };
    if !(1..=10_000).contains(&n) {
        return Err(invalid("cpuWeight", n, "expected a whole number 1..=10000"));
    }
    Ok(n)
}

/// v1 `cpu.shares` for a v2 weight (runc's conversion: 1 -> 2, 100 -> 2623... 10000 -> 262144).
pub fn weight_to_shares(weight: u64) -> u64 {
    2 + ((weight - 1) * 262_142) / 9_999
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Input {
        Input::Text(s.into())
    }

    #[test]
    fn byte_sizes() {
        let ok = [
            ("64M", 64 << 20),
            ("1.5G", 3 << 29),
            ("512k", 512 << 10),
            ("512K", 512 << 10),
            ("64MiB", 64 << 20),
            ("1048576", 1 << 20),
            ("0", 0),
            ("2T", 2 << 40),
            ("0.5k", 512),
        ];
        for (s, n) in ok {
            assert_eq!(bytes("memory", &t(s)).unwrap(), Max::Value(n), "{s}");
        }
        assert_eq!(bytes("memory", &t("max")).unwrap(), Max::Unlimited);
        assert_eq!(
            bytes("memory", &Input::Number(67108864.0)).unwrap(),
            Max::Value(64 << 20)
        );
    }

    #[test]
    fn bad_values_are_invalid_argument() {
        let bad_text = [
            "-1",
            "-64M",
            "64X",
            "64 M",
            "1e400",
            "1e3",
            "64M\n1",
            "64M\n",
            "\n",
            "64\0",
            "",
            "NaN",
            "Infinity",
            "1.5",
            "1..5G",
            ".5G",
            "5.G",
            "max\n",
            " 64M",
            "99999999999999999999999",
            "9000000P",
        ];
        for s in bad_text {
            let e = bytes("memory", &t(s)).unwrap_err();
            assert_eq!(e.code, crate::Code::InvalidArgument, "{s:?}");
        }
        for n in [
            -1.0,
            f64::NAN,
            f64::INFINITY,
            "1e400".parse().unwrap(),
            1.5,
            1e300,
        ] {
            let e = bytes("memory", &Input::Number(n)).unwrap_err();
            assert_eq!(e.code, crate::Code::InvalidArgument, "{n}");
        }
        assert!(bytes("memory", &t("-5"))
            .unwrap_err()
            .message
            .contains("negative"));
        for s in ["-1", "10k", "1.5", "5000000", "max\n", "12\r"] {
            assert!(pids(&t(s)).is_err(), "{s:?}");
        }
        for s in [
            "0",
            "-1",
            "1e400",
            "NaN",
            "50000",
            "50000 100",
            "50000 100000 1",
            "max 99",
        ] {
            assert!(cpu_max(&t(s)).is_err(), "{s:?}");
        }
        for n in [0.0, -0.5, f64::NAN, f64::INFINITY, 0.001] {
            assert!(cpu_max(&Input::Number(n)).is_err(), "{n}");
        }
        for s in ["0", "10001", "1.5", "x"] {
            assert!(cpu_weight(&t(s)).is_err(), "{s:?}");
        }
    }

    #[test]
    fn pids_cpu_weight() {
        assert_eq!(pids(&t("64")).unwrap(), Max::Value(64));
        assert_eq!(pids(&Input::Number(10.0)).unwrap(), Max::Value(10));
        assert_eq!(pids(&t("max")).unwrap(), Max::Unlimited);
        let half = cpu_max(&Input::Number(0.5)).unwrap();
        assert_eq!(half.v2(), "50000 100000");
        assert_eq!(cpu_max(&t("1.5")).unwrap().v2(), "150000 100000");
        assert_eq!(cpu_max(&t("50000 100000")).unwrap().v2(), "50000 100000");
        assert_eq!(cpu_max(&t("max 50000")).unwrap().v2(), "max 50000");
        assert_eq!(cpu_max(&t("max")).unwrap().quota, None);
        assert_eq!(cpu_weight(&Input::Number(100.0)).unwrap(), 100);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
        assert_eq!(weight_to_shares(100), 2597);
    }
}

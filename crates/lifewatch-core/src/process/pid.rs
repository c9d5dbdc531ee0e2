//! PIDs as lifewatch accepts them.

use crate::error::{Error, Result};

/// Linux's PID_MAX_LIMIT (2^22): no PID is ever larger.
pub const PID_MAX_LIMIT: i64 = 1 << 22;

pub fn check_pid(pid: i64) -> Result<i32> {
    if pid <= 0 || pid > PID_MAX_LIMIT {
        return Err(Error::invalid(format!(
            "pid {pid} is out of range (1..={PID_MAX_LIMIT})"
        )));
    }
    Ok(pid as i32)
}

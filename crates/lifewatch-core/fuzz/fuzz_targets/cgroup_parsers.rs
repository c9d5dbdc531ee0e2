//! The cgroup parsers: mountinfo (`Layout::from_mountinfo`), `/proc/<pid>/cgroup`
//! (`Layout::parse_cgroups`), `key value` counters (memory.events) and limit strings never
//! panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifewatch_core::cgroup::manage::limits::{bytes, pids, Input};
use lifewatch_core::cgroup::stats::parse_counters;
use lifewatch_core::cgroup::Layout;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line picks the target, the rest is its input.
    let (head, rest) = text.split_once('\n').unwrap_or((&text, ""));
    match head.len() % 4 {
        0 => {
            if let Ok(l) = Layout::from_mountinfo(rest.as_bytes()) {
                let _ = l.parse_cgroups(rest.as_bytes());
            }
        }
        1 => {
            let mi = "26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                      28 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
            let l = Layout::from_mountinfo(mi.as_bytes()).expect("the sample parses");
            let _ = l.parse_cgroups(rest.as_bytes());
        }
        2 => {
            let _ = parse_counters(rest);
        }
        _ => {
            let _ = bytes("memory", &Input::Text(rest.to_string()));
            let _ = pids(&Input::Text(rest.to_string()));
        }
    }
});

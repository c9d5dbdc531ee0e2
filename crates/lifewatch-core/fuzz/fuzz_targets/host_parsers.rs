//! The host-wide streams' parsers: process events connector datagrams (`cn_proc::parse`, the
//! per-CPU sequence check) and `/dev/kmsg` records put together into OOM victims
//! (`kmsg_record`) never panic on any input, and a datagram never yields more messages than
//! it has room for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifewatch_core::process::cn_proc::{self, Parsed, Sequences};
use lifewatch_core::process::kmsg_record::{self, OomLines};

fuzz_target!(|data: &[u8]| {
    let mut seqs = Sequences::default();
    let parsed: Vec<Parsed> = cn_proc::parse(data).collect();
    // Each message takes at least a netlink header (16 bytes).
    assert!(parsed.len() <= data.len() / 16 + 1);
    for p in parsed {
        if let Parsed::Proc(m) = p {
            seqs.check(m.cpu, m.seq);
        }
    }
    let text = String::from_utf8_lossy(data);
    let mut lines = OomLines::default();
    for raw in text.split('\0') {
        if let Some(r) = kmsg_record::record(raw) {
            let _ = lines.feed(r.message);
        }
        let _ = lines.feed(raw);
    }
});

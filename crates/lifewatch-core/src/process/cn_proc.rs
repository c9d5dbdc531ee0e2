//! The process events connector's messages, as bytes: the LISTEN/IGNORE request lifewatch
//! sends, and the parsing of what the kernel multicasts (`drivers/connector/cn_proc.c`). No
//! syscalls here: the parser takes any bytes (it is fuzzed) and says what it understood.
//!
//! A datagram is a netlink header (16 bytes: length, type, flags, sequence, port), a
//! `cn_msg` (20 bytes: the connector id `{idx, val}`, `seq`, `ack`, the payload's length,
//! flags) and the payload, a `proc_event`: `what`, `cpu`, a u64 CLOCK_MONOTONIC timestamp
//! and a 24-byte union whose layout `what` decides. Integers are in the host's byte order.

use crate::status::ExitStatus;

const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;
/// `what`, `cpu` and the timestamp before the event's union.
const EVENT_HEAD: usize = 16;
/// The union's largest member (exit: six u32s; comm: two u32s and 16 bytes).
const EVENT_DATA: usize = 24;

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const CN_IDX_PROC: u32 = libc::CN_IDX_PROC;
const CN_VAL_PROC: u32 = libc::CN_VAL_PROC;

const PROC_EVENT_NONE: u32 = libc::PROC_EVENT_NONE;
const PROC_EVENT_FORK: u32 = libc::PROC_EVENT_FORK;
const PROC_EVENT_EXEC: u32 = libc::PROC_EVENT_EXEC;
const PROC_EVENT_COMM: u32 = libc::PROC_EVENT_COMM;
const PROC_EVENT_EXIT: u32 = libc::PROC_EVENT_EXIT;

/// Subscribe (`PROC_CN_MCAST_LISTEN`) or unsubscribe (`PROC_CN_MCAST_IGNORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McastOp {
    Listen,
    Ignore,
}

/// The request: a netlink message to the kernel (port 0) carrying a `cn_msg` for the proc
/// connector whose payload is the bare 4-byte operation (every kernel since 2.6.15 accepts
/// it; the 8-byte form with an event filter is 6.6+, and a filter would hide the messages
/// whose sequence numbers tell losses).
pub fn request(op: McastOp, seq: u32, port: u32) -> [u8; NLMSG_HDRLEN + CN_MSG_LEN + 4] {
    let mut b = [0u8; NLMSG_HDRLEN + CN_MSG_LEN + 4];
    let len = b.len() as u32;
    let op = match op {
        McastOp::Listen => libc::PROC_CN_MCAST_LISTEN,
        McastOp::Ignore => libc::PROC_CN_MCAST_IGNORE,
    };
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b[12..16].copy_from_slice(&port.to_ne_bytes());
    b[16..20].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
    b[20..24].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
    b[24..28].copy_from_slice(&seq.to_ne_bytes());
    // The answer's `ack` is this field plus one (its `seq`, the CPU's counter).
    b[28..32].copy_from_slice(&seq.to_ne_bytes());
    b[32..34].copy_from_slice(&4u16.to_ne_bytes());
    b[36..40].copy_from_slice(&op.to_ne_bytes());
    b
}

/// One event the connector reported (the kinds lifewatch uses; the rest are `Other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcEvent {
    /// The answer to a LISTEN or IGNORE (anyone's: it is multicast): `err` is a positive errno.
    Ack { err: u32 },
    /// A task was created: a process (`child_pid == child_tgid`) or a thread of `child_tgid`.
    /// `parent_tgid` is the child's real parent.
    Fork {
        parent_tgid: i32,
        child_pid: i32,
        child_tgid: i32,
    },
    /// A task called execve; it is the thread-group leader from then on (`pid == tgid`).
    Exec { tgid: i32 },
    /// prctl(PR_SET_NAME): the thread's new name.
    Comm { pid: i32, tgid: i32, comm: [u8; 16] },
    /// A task exited: a thread (`pid != tgid`) or a leader. `exit_code` is the task's wait
    /// status; `parent_tgid` is 0 when the task had already been released (an auto-reaped
    /// thread or process).
    Exit {
        pid: i32,
        tgid: i32,
        exit_code: u32,
        parent_tgid: i32,
    },
    /// uid, gid, sid, ptrace, coredump: not used.
    Other { what: u32 },
}

/// One message: the event, and the per-CPU sequence number that tells losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// `cn_msg.seq`: a counter of the CPU that sent it, shared by every listener.
    pub seq: u32,
    /// `cn_msg.ack`: on an `Ack`, the request's `ack` plus one.
    pub ack: u32,
    pub cpu: u32,
    /// CLOCK_MONOTONIC ns when the kernel made the event.
    pub timestamp_ns: u64,
    pub event: ProcEvent,
}

/// What one netlink message in a datagram was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Proc(Message),
    /// Not a proc connector message, or a netlink control message: skipped.
    Ignored,
    /// A truncated or inconsistent message: the rest of the datagram is not trusted.
    Malformed,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The netlink messages of one datagram, in order (the connector sends one per datagram,
/// but netlink allows several).
pub fn parse(datagram: &[u8]) -> impl Iterator<Item = Parsed> + '_ {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32_at(rest, 0)? as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            rest = &[];
            return Some(Parsed::Malformed);
        }
        let (msg, tail) = rest.split_at(len);
        // Messages are 4-byte aligned within a datagram.
        rest = tail.get(len.next_multiple_of(4) - len..).unwrap_or(&[]);
        Some(one(msg))
    })
}

fn one(msg: &[u8]) -> Parsed {
    let Some(kind) = u16_at(msg, 4) else {
        return Parsed::Malformed;
    };
    if matches!(kind, NLMSG_NOOP | NLMSG_ERROR) {
        return Parsed::Ignored;
    }
    let cn = &msg[NLMSG_HDRLEN..];
    let (Some(idx), Some(val), Some(seq), Some(ack), Some(len)) = (
        u32_at(cn, 0),
        u32_at(cn, 4),
        u32_at(cn, 8),
        u32_at(cn, 12),
        u16_at(cn, 16),
    ) else {
        return Parsed::Malformed;
    };
    if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) {
        return Parsed::Ignored;
    }
    let data = &cn[CN_MSG_LEN.min(cn.len())..];
    if (len as usize) < EVENT_HEAD + EVENT_DATA || data.len() < EVENT_HEAD + EVENT_DATA {
        return Parsed::Malformed;
    }
    let what = u32_at(data, 0).unwrap_or_default();
    let cpu = u32_at(data, 4).unwrap_or_default();
    let timestamp_ns = u64_at(data, 8).unwrap_or_default();
    let d = &data[EVENT_HEAD..EVENT_HEAD + EVENT_DATA];
    let int = |i: usize| u32_at(d, i * 4).unwrap_or_default() as i32;
    let event = match what {
        PROC_EVENT_NONE => ProcEvent::Ack { err: int(0) as u32 },
        PROC_EVENT_FORK => ProcEvent::Fork {
            parent_tgid: int(1),
            child_pid: int(2),
            child_tgid: int(3),
        },
        PROC_EVENT_EXEC => ProcEvent::Exec { tgid: int(1) },
        PROC_EVENT_COMM => {
            let mut comm = [0u8; 16];
            comm.copy_from_slice(&d[8..24]);
            ProcEvent::Comm {
                pid: int(0),
                tgid: int(1),
                comm,
            }
        }
        PROC_EVENT_EXIT => ProcEvent::Exit {
            pid: int(0),
            tgid: int(1),
            exit_code: int(2) as u32,
            parent_tgid: int(5),
        },
        what => ProcEvent::Other { what },
    };
    Parsed::Proc(Message {
        seq,
        ack,
        cpu,
        timestamp_ns,
        event,
    })
}

/// A task's name as the kernel stores it: up to 16 bytes, NUL-padded.
pub fn comm_str(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// An exit message's status as a wait status (`exit 7` is 0x700, SIGKILL 9).
pub fn exit_status(exit_code: u32) -> ExitStatus {
    ExitStatus::from_wait_status(exit_code as i32)
}

/// Losses told by sequence numbers: each CPU numbers the messages it sends, one after the
/// other, for all listeners; a gap in one CPU's numbers is messages this socket never got
/// (its buffer was full, or the kernel could not allocate them).
#[derive(Debug, Default)]
pub struct Sequences {
    /// The last number seen, per CPU.
    last: Vec<Option<u32>>,
}

/// CPU numbers above this are not believed (a fuzzed or corrupted message).
const MAX_CPUS: u32 = 1 << 16;

impl Sequences {
    /// Records message `seq` from `cpu`; returns how many of that CPU's messages were missed
    /// just before it. The first message from a CPU sets its baseline.
    pub fn check(&mut self, cpu: u32, seq: u32) -> u64 {
        if cpu >= MAX_CPUS {
            return 0;
        }
        let i = cpu as usize;
        if self.last.len() <= i {
            self.last.resize(i + 1, None);
        }
        let missed = match self.last[i] {
            // Wrapping: the counter is a u32. A number that went backwards (more than half
            // the range ahead) is not a loss: the baseline moves.
            Some(last) => match seq.wrapping_sub(last).wrapping_sub(1) {
                gap if gap < 1 << 31 => gap as u64,
                _ => 0,
            },
            None => 0,
        };
        self.last[i] = Some(seq);
        missed
    }

    /// Forgets every baseline (after an overrun, the next message of each CPU starts anew).
    pub fn reset(&mut self) {
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as the kernel builds it (`cn_proc.c`).
    fn kernel_msg(what: u32, cpu: u32, seq: u32, ack: u32, data: [u32; 6]) -> Vec<u8> {
        let mut b = vec![0u8; NLMSG_HDRLEN + CN_MSG_LEN + EVENT_HEAD + EVENT_DATA];
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        b[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        b[16..20].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
        b[20..24].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
        b[24..28].copy_from_slice(&seq.to_ne_bytes());
        b[28..32].copy_from_slice(&ack.to_ne_bytes());
        b[32..34].copy_from_slice(&((EVENT_HEAD + EVENT_DATA) as u16).to_ne_bytes());
        b[36..40].copy_from_slice(&what.to_ne_bytes());
        b[40..44].copy_from_slice(&cpu.to_ne_bytes());
        b[44..52].copy_from_slice(&123_456_789u64.to_ne_bytes());
        for (i, v) in data.iter().enumerate() {
            b[52 + i * 4..56 + i * 4].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }

    fn only(b: &[u8]) -> Parsed {
        let all: Vec<Parsed> = parse(b).collect();
        assert_eq!(all.len(), 1, "{all:?}");
        all[0]
    }

    #[test]
    fn the_request_is_76_bytes_less_the_event() {
        let r = request(McastOp::Listen, 9, 1234);
        assert_eq!(r.len(), 40);
        assert_eq!(u32_at(&r, 0), Some(40));
        assert_eq!(u32_at(&r, 36), Some(1));
        assert_eq!(u32_at(&request(McastOp::Ignore, 9, 0), 36), Some(2));
    }

    #[test]
    fn an_exit_as_the_kernel_sends_it() {
        // `sh -c 'exit 7'` as seen on this project's machines: exit_code 1792.
        let b = kernel_msg(PROC_EVENT_EXIT, 1, 41, 0, [500, 500, 1792, 17, 400, 400]);
        assert_eq!(b.len(), 76);
        let Parsed::Proc(m) = only(&b) else { panic!() };
        assert_eq!((m.cpu, m.seq, m.timestamp_ns), (1, 41, 123_456_789));
        assert_eq!(
            m.event,
            ProcEvent::Exit {
                pid: 500,
                tgid: 500,
                exit_code: 1792,
                parent_tgid: 400
            }
        );
        assert_eq!(exit_status(1792), ExitStatus::Code(7));
        assert_eq!(
            exit_status(9),
            ExitStatus::Signal {
                signo: 9,
                core: false
            }
        );
    }

    #[test]
    fn forks_execs_comms_acks_and_others() {
        let fork = kernel_msg(PROC_EVENT_FORK, 0, 1, 0, [10, 10, 11, 11, 0, 0]);
        assert!(matches!(
            only(&fork),
            Parsed::Proc(Message {
                event: ProcEvent::Fork {
                    parent_tgid: 10,
                    child_pid: 11,
                    child_tgid: 11
                },
                ..
            })
        ));
        let exec = kernel_msg(PROC_EVENT_EXEC, 0, 2, 0, [11, 11, 0, 0, 0, 0]);
        assert!(matches!(
            only(&exec),
            Parsed::Proc(Message {
                event: ProcEvent::Exec { tgid: 11 },
                ..
            })
        ));
        let mut comm = kernel_msg(PROC_EVENT_COMM, 0, 3, 0, [12, 11, 0, 0, 0, 0]);
        comm[60..65].copy_from_slice(b"hello");
        let Parsed::Proc(Message {
            event: ProcEvent::Comm { pid, tgid, comm },
            ..
        }) = only(&comm)
        else {
            panic!()
        };
        assert_eq!((pid, tgid, comm_str(&comm)), (12, 11, "hello".to_string()));
        let ack = kernel_msg(PROC_EVENT_NONE, 1, 4, 10, [1, 0, 0, 0, 0, 0]);
        assert!(matches!(
            only(&ack),
            Parsed::Proc(Message {
                ack: 10,
                event: ProcEvent::Ack { err: 1 },
                ..
            })
        ));
        let uid = kernel_msg(libc::PROC_EVENT_UID, 1, 5, 0, [0; 6]);
        assert!(matches!(
            only(&uid),
            Parsed::Proc(Message {
                event: ProcEvent::Other { what: 4 },
                ..
            })
        ));
    }

    #[test]
    fn other_connectors_control_messages_and_garbage() {
        let mut other = kernel_msg(PROC_EVENT_EXIT, 0, 1, 0, [0; 6]);
        other[16..20].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(only(&other), Parsed::Ignored);
        let mut err = kernel_msg(PROC_EVENT_EXIT, 0, 1, 0, [0; 6]);
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(only(&err), Parsed::Ignored);
        let full = kernel_msg(PROC_EVENT_EXIT, 0, 1, 0, [0; 6]);
        assert_eq!(only(&full[..60]), Parsed::Malformed, "shorter than it says");
        let mut short = full.clone();
        short[0..4].copy_from_slice(&60u32.to_ne_bytes());
        assert_eq!(
            only(&short[..60]),
            Parsed::Malformed,
            "no room for the event"
        );
        assert_eq!(parse(&full[..10]).count(), 0);
        let mut zero = full.clone();
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(only(&zero), Parsed::Malformed);
    }

    #[test]
    fn several_messages_in_one_datagram() {
        let mut b = kernel_msg(PROC_EVENT_FORK, 0, 1, 0, [1, 1, 2, 2, 0, 0]);
        b.extend(kernel_msg(PROC_EVENT_EXIT, 0, 2, 0, [2, 2, 0, 17, 1, 1]));
        let all: Vec<Parsed> = parse(&b).collect();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|p| matches!(p, Parsed::Proc(_))));
    }

    #[test]
    fn sequence_gaps_per_cpu() {
        let mut s = Sequences::default();
        assert_eq!(s.check(0, 10), 0, "a CPU's first message is its baseline");
        assert_eq!(s.check(1, 500), 0);
        assert_eq!(s.check(0, 11), 0);
        assert_eq!(s.check(0, 15), 3, "12, 13 and 14 were missed");
        assert_eq!(s.check(1, 501), 0, "CPUs are counted apart");
        assert_eq!(s.check(1, 1000), 498);
        assert_eq!(s.check(1, 1000), 0, "a repeat or a step back is no loss");
        assert_eq!(s.check(1, 900), 0);
        assert_eq!(s.check(2, u32::MAX - 1), 0);
        assert_eq!(
            s.check(2, 1),
            2,
            "the counter wraps: u32::MAX and 0 were missed"
        );
        assert_eq!(s.check(MAX_CPUS, 1), 0);
        s.reset();
        assert_eq!(s.check(0, 99), 0);
    }
}

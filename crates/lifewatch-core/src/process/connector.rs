//! The process events connector's socket: a `NETLINK_CONNECTOR` datagram socket bound to the
//! `CN_IDX_PROC` multicast group, subscribed with `PROC_CN_MCAST_LISTEN`. Every fork, exec,
//! exit (and a few more) on the host then arrives as one datagram (`cn_proc` parses them).
//!
//! The kernel's rules, checked on this project's machines: the LISTEN request is handled
//! synchronously, and its answer (an ack, multicast like every event) is queued on the socket
//! before `sendto` returns; a kernel that ignores the request (no CONFIG_PROC_EVENTS, or a
//! requester outside the initial user and PID namespaces) sends no ack at all. Before Linux
//! 6.6 binding to the group and subscribing needed CAP_NET_ADMIN; since then any user may.
//! The kernel keeps a count of subscribers and sends nothing while it is zero: the socket
//! says IGNORE before it closes, so a host stops paying for events nobody reads.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::error::{Code, Error, Result, SysResult};
use crate::fd::{CountedFd, FdKind, Release};
use crate::process::cn_proc::{self, McastOp, Parsed, ProcEvent};

/// Bytes of socket buffer asked for: a burst of tens of thousands of messages (one datagram
/// costs about 1 KiB of buffer, its skb included) while the reader is busy. Only what is
/// queued is ever allocated. Without CAP_NET_ADMIN the kernel caps it at
/// `net.core.rmem_max`.
pub const RECEIVE_BUFFER: usize = 32 << 20;

/// Room for one datagram (76 bytes today; the kernel may grow the event).
pub const DATAGRAM_MAX: usize = 512;

/// Requests are numbered per process, so an ack is told apart from other subscribers' acks.
static REQUEST_SEQ: AtomicU32 = AtomicU32::new(1);

/// The initial namespaces' inode numbers (`PROC_USER_INIT_INO`, `PROC_PID_INIT_INO`).
const INIT_USER_NS: &str = "user:[4026531837]";
const INIT_PID_NS: &str = "pid:[4026531836]";

const WHAT: &str = "listening to the process events connector";

/// Opens, binds and subscribes a connector socket (non-blocking, close-on-exec). Messages
/// queued before the subscription's ack are read and dropped: whatever they said, the
/// caller reads /proc after this returns.
pub fn open() -> Result<CountedFd> {
    let fd = CountedFd::new(
        crate::failpoint::hit("socket")
            .and_then(|()| {
                rustix::net::socket_with(
                    AddressFamily::NETLINK,
                    SocketType::DGRAM,
                    SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                    Some(rustix::net::netlink::CONNECTOR),
                )
            })
            .sys("socket", WHAT)
            .map_err(|e| match e.errno {
                Some(libc::EPROTONOSUPPORT) | Some(libc::EAFNOSUPPORT) => {
                    e.with_code(Code::UnsupportedKernel).with_message(format!(
                        "{WHAT}: this kernel has no netlink connector (CONFIG_CONNECTOR)"
                    ))
                }
                _ => e,
            })?,
        FdKind::Netlink,
    );
    // Root may go beyond net.core.rmem_max; anyone else gets at most that. Neither failing
    // matters: the default buffer works, losses are then only likelier (and reported).
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&fd, RECEIVE_BUFFER).is_err() {
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, RECEIVE_BUFFER);
    }
    crate::failpoint::hit("bind")
        .and_then(|()| rustix::net::bind(&fd, &SocketAddrNetlink::new(0, libc::CN_IDX_PROC)))
        .sys("bind", WHAT)
        .map_err(needs_net_admin)?;
    let seq = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    request(fd.as_fd(), McastOp::Listen, seq).map_err(needs_net_admin)?;
    match find_ack(fd.as_fd(), seq) {
        Ack::Ok => Ok(fd),
        Ack::Refused(errno) => Err(needs_net_admin(Error::sys(
            "sendto",
            errno as i32,
            format!("{WHAT} (its answer)"),
        ))),
        Ack::None => Err(unanswered()),
    }
}

/// A refusal says what is missing; other errors pass unchanged.
fn needs_net_admin(e: Error) -> Error {
    if e.code != Code::Permission {
        return e;
    }
    let m = format!(
        "{}: this kernel lets only CAP_NET_ADMIN listen (Linux 6.6 and later let any user)",
        e.message
    );
    e.with_message(m)
}

/// Why a LISTEN went unanswered: the kernel ignores requests from outside the initial
/// namespaces (it reports events with their PIDs), or it has no process events connector.
fn unanswered() -> Error {
    let ns = |kind: &str| {
        std::fs::read_link(format!("/proc/self/ns/{kind}"))
            .map(|p| p.to_string_lossy().into_owned())
            .ok()
    };
    let outside = [("user", INIT_USER_NS), ("pid", INIT_PID_NS)]
        .into_iter()
        .any(|(kind, init)| ns(kind).is_some_and(|n| n != init));
    if outside {
        Error::new(
            Code::Permission,
            format!("{WHAT}: the kernel answers only processes in the initial user and PID namespaces, and this one is in another"),
        )
    } else {
        Error::new(
            Code::UnsupportedKernel,
            format!("{WHAT}: the kernel did not answer the subscription: it has no process events connector (CONFIG_PROC_EVENTS)"),
        )
    }
}

/// Sends LISTEN or IGNORE to the kernel.
fn request(fd: BorrowedFd<'_>, op: McastOp, seq: u32) -> Result<()> {
    let msg = cn_proc::request(op, seq, 0);
    crate::failpoint::hit("sendto")
        .and_then(|()| {
            rustix::net::sendto(fd, &msg, SendFlags::empty(), &SocketAddrNetlink::new(0, 0))
        })
        .sys("sendto", WHAT)
        .map(|_| ())
}

enum Ack {
    Ok,
    /// The kernel's errno (positive).
    Refused(u32),
    None,
}

/// Reads what is queued up to the answer to request `seq`.
fn find_ack(fd: BorrowedFd<'_>, seq: u32) -> Ack {
    let mut buf = [0u8; DATAGRAM_MAX];
    // Bounded: the ack is queued already, behind at most what arrived since the bind.
    for _ in 0..1 << 16 {
        let n = match rustix::net::recv(fd, &mut buf[..], RecvFlags::DONTWAIT) {
            Ok((n, _)) => n,
            Err(rustix::io::Errno::INTR) => continue,
            // The buffer overran before the ack was read: the subscription is in place (the
            // kernel sent to this socket), only its answer was lost.
            Err(rustix::io::Errno::NOBUFS) => return Ack::Ok,
            Err(_) => return Ack::None,
        };
        for p in cn_proc::parse(&buf[..n]) {
            if let Parsed::Proc(m) = p {
                if let ProcEvent::Ack { err } = m.event {
                    if m.ack == seq.wrapping_add(1) {
                        return if err == 0 { Ack::Ok } else { Ack::Refused(err) };
                    }
                }
            }
        }
    }
    Ack::None
}

/// One datagram, without blocking: `Ok(0)` when none is queued.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> rustix::io::Result<usize> {
    crate::failpoint::hit("recv")?;
    match rustix::net::recv(fd, buf, RecvFlags::DONTWAIT) {
        Ok((n, _)) => Ok(n),
        Err(rustix::io::Errno::AGAIN) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Unsubscribes (best effort: the socket is going away either way) and closes.
pub fn close(fd: CountedFd, how: Release) {
    let seq = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    let msg = cn_proc::request(McastOp::Ignore, seq, 0);
    let _ = rustix::net::sendto(
        &fd,
        &msg,
        SendFlags::DONTWAIT,
        &SocketAddrNetlink::new(0, 0),
    );
    fd.close(how);
}

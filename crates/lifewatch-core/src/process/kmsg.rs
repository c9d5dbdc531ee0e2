//! OOM-kill watches: `/dev/kmsg` read record by record (as cAdvisor's oomparser and the
//! kubelet do), one fd per watch on the monitor's reactor, each record's OOM lines put
//! together by `kmsg_record` into `oomKill` events.
//!
//! The kernel's rules, checked on this project's machines: each `read` returns exactly one
//! record; `lseek(fd, 0, SEEK_END)` skips every record already logged; a reader whose next
//! record was overwritten in the ring buffer gets EPIPE once, then reads on from the oldest
//! record left (the sequence numbers tell how many were lost); epoll reports the fd readable
//! while a record is waiting. With `kernel.dmesg_restrict = 1`, opening needs CAP_SYSLOG.
//!
//! Cgroup OOM watches of the same monitor read the victims from here (`drain` then `claim`),
//! so that an `oom` event names the kills it counts: see `Hub::push_oom`.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::event::epoll::EventFlags;
use rustix::fs::{Mode, OFlags, SeekFrom};

use crate::error::{Code, Result, SysResult};
use crate::event::{Event, EventKind, Events, LossSource, OomVictim, WatchId};
use crate::fd::{CountedFd, FdKind, Release, Released};
use crate::process::kmsg_record::{self, OomLines};
use crate::process::procfs;
use crate::reactor::{Interest, Keep, Reactor, Ready, Registration, Source};

const PATH: &str = "/dev/kmsg";

/// The longest record: the kernel's line limit (1 KiB) plus its dictionary lines.
const RECORD_MAX: usize = 8192;

/// Records read per turn and reader.
const BATCH: usize = 512;

/// Recent victims kept for cgroup OOM watches to claim (kills come a few at a time).
const RECENT: usize = 64;

/// One watch's reader. Its fd is owned by its reactor source, which removes the reader (under
/// the lock) before closing it.
#[derive(Debug)]
struct Reader {
    fd: RawFd,
    lines: OomLines,
    /// The sequence number the next record should have.
    next: Option<u64>,
    /// EPIPE was read: the loss is reported with the next record (which tells how many).
    overrun: bool,
    /// Its fd failed for good (reported once as an error event).
    failed: bool,
}

#[derive(Debug)]
struct Recent {
    seq: u64,
    victim: OomVictim,
    /// The cgroup OOM watches that reported it.
    claimed: Vec<WatchId>,
}

#[derive(Debug, Default)]
pub struct KmsgState {
    readers: BTreeMap<WatchId, Reader>,
    recent: VecDeque<Recent>,
}

pub type SharedKmsg = Arc<Mutex<KmsgState>>;

fn lock(s: &SharedKmsg) -> MutexGuard<'_, KmsgState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens `/dev/kmsg` positioned after the last record, or at the oldest one kept (`replay`).
pub fn open(replay: bool) -> Result<CountedFd> {
    let what = "reading the kernel log for OOM kills";
    let fd = CountedFd::new(
        crate::failpoint::hit("open")
            .and_then(|()| rustix::fs::open(PATH, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty()))
            .sys("open", what)
            .map_err(|e| {
                let e = e.with_path(PATH);
                match e.errno {
                    Some(libc::EPERM) | Some(libc::EACCES) => {
                        let m = format!("{}: needs CAP_SYSLOG while kernel.dmesg_restrict is 1 (or read access to {PATH})", e.message);
                        e.with_code(Code::Permission).with_message(m)
                    }
                    Some(libc::ENOENT) => e.with_code(Code::UnsupportedKernel),
                    _ => e,
                }
            })?,
        FdKind::Kmsg,
    );
    if !replay {
        crate::failpoint::hit("lseek")
            .and_then(|()| rustix::fs::seek(&fd, SeekFrom::End(0)))
            .sys(
                "lseek",
                format!("{what} (skipping the records already logged)"),
            )
            .map_err(|e| e.with_path(PATH))?;
    }
    Ok(fd)
}

/// Reads every record waiting for one reader: `oomKill` events (and victims kept for cgroup
/// watches to claim), `lost` after an overrun. `false` when the fd failed for good (an error
/// event was reported).
fn drain(
    watch: WatchId,
    r: &mut Reader,
    recent: &mut VecDeque<Recent>,
    time: u64,
    out: &mut Events,
) -> bool {
    if r.failed {
        return false;
    }
    let mut buf = [0u8; RECORD_MAX];
    // SAFETY: the reader is in the shared state only while its source holds the fd open.
    let fd = unsafe { BorrowedFd::borrow_raw(r.fd) };
    let push = |out: &mut Events, kind| out.push(Event { watch, time, kind });
    for _ in 0..BATCH {
        let n = match crate::failpoint::hit("read").and_then(|()| rustix::io::read(fd, &mut buf)) {
            Ok(n) => n,
            Err(rustix::io::Errno::AGAIN) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::PIPE) => {
                r.overrun = true;
                continue;
            }
            Err(e) => {
                push(
                    out,
                    EventKind::Error {
                        code: Code::Io,
                        message: format!("reading {PATH}: read: {e}"),
                    },
                );
                r.failed = true;
                return false;
            }
        };
        let Some(rec) = kmsg_record::record(&String::from_utf8_lossy(&buf[..n]))
            .map(|r| (r.seq, r.message.to_string()))
        else {
            continue;
        };
        let (seq, message) = rec;
        let gap = r
            .next
            .map(|next| seq.saturating_sub(next))
            .filter(|&g| g > 0);
        if r.overrun || gap.is_some() {
            r.overrun = false;
            push(
                out,
                EventKind::Lost {
                    source: LossSource::Kmsg,
                    count: gap,
                },
            );
        }
        r.next = Some(seq + 1);
        let Some(mut v) = r.lines.feed(&message) else {
            continue;
        };
        if v.cgroup.is_none() {
            // No summary for it (rate-limited, or a group kill): the dying process may
            // still say where it was.
            v.cgroup = procfs::cgroup(v.pid);
        }
        if !recent.iter().any(|k| k.seq == seq) {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(Recent {
                seq,
                victim: v.clone(),
                claimed: Vec::new(),
            });
        }
        push(out, EventKind::OomKill(Box::new(v)));
    }
    if r.overrun {
        r.overrun = false;
        push(
            out,
            EventKind::Lost {
                source: LossSource::Kmsg,
                count: None,
            },
        );
    }
    true
}

/// Reads what every OOM-kill watch has waiting (before an `oom` event or an exit is
/// published, so a kill's record comes first when the kernel has written it).
pub fn drain_all(state: &SharedKmsg, time: u64, out: &mut Events) {
    let mut st = lock(state);
    let KmsgState { readers, recent } = &mut *st;
    for (&watch, r) in readers.iter_mut() {
        drain(watch, r, recent, time, out);
    }
}

/// Whether any OOM-kill watch is open.
pub fn watching(state: &SharedKmsg) -> bool {
    !lock(state).readers.is_empty()
}

/// Up to `max` victims read recently that `matches` accepts and that cgroup watch `watch` has
/// not reported yet, oldest first; they count as reported by it from now on.
pub fn claim(
    state: &SharedKmsg,
    watch: WatchId,
    max: u64,
    matches: impl Fn(&OomVictim) -> bool,
) -> Vec<OomVictim> {
    let mut st = lock(state);
    let mut out = Vec::new();
    for k in st.recent.iter_mut() {
        if out.len() as u64 >= max {
            break;
        }
        if !k.claimed.contains(&watch) && matches(&k.victim) {
            k.claimed.push(watch);
            out.push(k.victim.clone());
        }
    }
    out
}

/// The monitor's OOM-kill watches.
#[derive(Default)]
pub struct OomKillWatcher {
    state: SharedKmsg,
    /// Each watch's reactor key.
    keys: Mutex<BTreeMap<WatchId, WatchId>>,
}

impl OomKillWatcher {
    pub fn shared(&self) -> SharedKmsg {
        Arc::clone(&self.state)
    }

    /// Every OOM kill on the host from now on (`replay`: also those still in the kernel's
    /// log).
    pub fn watch(&self, reactor: &Reactor, replay: bool) -> Result<WatchId> {
        reactor.check_open()?;
        let fd = open(replay)?;
        let watch = reactor.reserve_id();
        lock(&self.state).readers.insert(
            watch,
            Reader {
                fd: fd.as_raw_fd(),
                lines: OomLines::default(),
                next: None,
                overrun: false,
                failed: false,
            },
        );
        let source = KmsgSource {
            fd: fd.commit(),
            watch,
            state: Arc::clone(&self.state),
        };
        // Refused, the source is released, and takes its reader out.
        let key = reactor.register(Box::new(source), Registration::default())?;
        self.keys().insert(watch, key);
        Ok(watch)
    }

    fn keys(&self) -> MutexGuard<'_, BTreeMap<WatchId, WatchId>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends an OOM-kill watch; `None` when `id` is not one.
    pub fn unwatch(&self, reactor: &Reactor, id: WatchId) -> Option<bool> {
        let key = self.keys().remove(&id)?;
        Some(reactor.unregister(key, Release::Normal, &mut Released::default()))
    }

    /// Active OOM-kill watches.
    pub fn count(&self) -> usize {
        lock(&self.state).readers.len()
    }

    pub fn clear(&self) {
        self.keys().clear();
        lock(&self.state).recent.clear();
    }
}

struct KmsgSource {
    fd: CountedFd,
    watch: WatchId,
    state: SharedKmsg,
}

impl Source for KmsgSource {
    fn interest(&self) -> Option<Interest<'_>> {
        Some(Interest {
            fd: self.fd.as_fd(),
            flags: EventFlags::IN,
        })
    }

    fn ready(&mut self, cx: &mut Ready<'_>) -> Keep {
        let mut st = lock(&self.state);
        let KmsgState { readers, recent } = &mut *st;
        let alive = readers
            .get_mut(&self.watch)
            .is_some_and(|r| drain(self.watch, r, recent, cx.time, cx.out));
        if alive {
            Keep::Yes
        } else {
            Keep::No
        }
    }

    fn release(self: Box<Self>, how: Release, released: &mut Released) {
        lock(&self.state).readers.remove(&self.watch);
        released.add(FdKind::Kmsg);
        self.fd.close(how);
    }
}

//! Host-wide streams on real processes and real OOM kills: host watches (the process events
//! connector) and tree watches, OOM-kill watches (`/dev/kmsg`) joined with cgroup OOM
//! watches. OOM tests need root and a memory controller (v1 on hybrid hosts, v2 in the VM);
//! they skip, saying why, without them.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{serial, Harness, TestCgroup};
use lifewatch_core::cgroup::Layout;
use lifewatch_core::{
    failpoint, CgroupWatchOptions, Code, Event, EventKind, ExitSource, ExitStatus, HostOptions,
    LossSource, MonitorOptions, OomVictim, TreeOptions, WatchId,
};

fn exits() -> HostOptions {
    HostOptions {
        exits: true,
        ..Default::default()
    }
}

/// Collects events until `done` accepts one (or `within` passes), returning all of them.
fn until(h: &Harness, within: Duration, done: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + within;
    let mut got: Vec<Event> = Vec::new();
    while Instant::now() < deadline {
        let more = h.collect(1, Duration::from_millis(50));
        let hit = more.iter().any(&done);
        got.extend(more);
        if hit {
            return got;
        }
    }
    panic!("not seen within {within:?}: {got:#?}")
}

fn exit_of(e: &Event, who: i32) -> bool {
    matches!(e.kind, EventKind::Exit { pid, .. } if pid == who)
}

fn sh(script: &str) -> Child {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .spawn()
        .unwrap()
}

#[test]
fn a_host_exit_nobody_watched_by_pid_with_its_code_and_signal() {
    let _s = serial();
    let h = Harness::new(MonitorOptions::default());
    let id = h.monitor.watch_host(exits()).unwrap();
    let mut coded = sh("exit 7");
    let mut signalled = sh("kill -TERM $$");
    let (a, b) = (coded.id() as i32, signalled.id() as i32);
    coded.wait().unwrap();
    signalled.wait().unwrap();
    let mut got = until(&h, Duration::from_secs(10), |e| exit_of(e, a));
    if !got.iter().any(|e| exit_of(e, b)) {
        got.extend(until(&h, Duration::from_secs(10), |e| exit_of(e, b)));
    }
    let me = std::process::id() as i32;
    for (pid, want) in [
        (a, ExitStatus::Code(7)),
        (
            b,
            ExitStatus::Signal {
                signo: libc::SIGTERM,
                core: false,
            },
        ),
    ] {
        let e = got.iter().find(|e| exit_of(e, pid)).unwrap();
        assert_eq!(e.watch, id);
        let EventKind::Exit {
            status,
            source,
            ppid,
            cgroup,
            remaining,
            ..
        } = &e.kind
        else {
            unreachable!()
        };
        assert_eq!(*status, Some(want), "{e:?}");
        assert_eq!(*source, ExitSource::Connector);
        assert_eq!(*ppid, Some(me));
        assert!(cgroup.is_some(), "{e:?}");
        assert_eq!(*remaining, None);
    }
    h.monitor.close();
}

#[test]
fn forks_and_execs_with_names() {
    let _s = serial();
    let h = Harness::new(MonitorOptions::default());
    let opts = HostOptions {
        exits: false,
        forks: true,
        execs: true,
        cgroup: None,
    };
    h.monitor.watch_host(opts).unwrap();
    // Lives long enough for its name to be read at its exec.
    let mut child = sh("read x");
    let pid = child.id() as i32;
    let me = std::process::id() as i32;
    let got = until(
        &h,
        Duration::from_secs(10),
        |e| matches!(e.kind, EventKind::Exec { pid: p, .. } if p == pid),
    );
    drop(child.stdin.take());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        got.iter().any(
            |e| matches!(&e.kind, EventKind::Fork { pid: p, ppid, .. } if *p == pid && *ppid == me)
        ),
        "{got:#?}"
    );
    let exec = got
        .iter()
        .find(|e| matches!(e.kind, EventKind::Exec { pid: p, .. } if p == pid))
        .unwrap();
    assert!(
        matches!(&exec.kind, EventKind::Exec { comm: Some(c), ppid: Some(pp), .. } if c == "sh" && *pp == me),
        "{exec:?}"
    );
    assert!(
        !got.iter().any(|e| matches!(e.kind, EventKind::Exit { .. })),
        "exits are off"
    );
    h.monitor.close();
}

/// Reads a line from the child's stdout (it says it is ready).
/// A shell running `script`, once it has printed its first line (it says it is ready by
/// then); it reads its next step from stdin.
fn ready_sh(script: &str) -> Child {
    use std::io::Read;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.as_mut().unwrap();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap() == 1 && b[0] != b'\n' {}
    child
}

/// Watches the tree of a `ready_sh`, lets it go on, and collects events until the tree's last
/// exit.
fn tree_to_its_end(
    h: &Harness,
    sh: &mut Child,
    opts: TreeOptions,
    within: Duration,
) -> (WatchId, Vec<Event>) {
    let id = h.monitor.watch_tree(sh.id() as i64, opts).unwrap();
    sh.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    let got = until(h, within, |e| {
        e.watch == id
            && matches!(
                e.kind,
                EventKind::Exit {
                    remaining: Some(0),
                    ..
                }
            )
    });
    sh.wait().unwrap();
    (id, got)
}

fn tree_exits(got: &[Event], id: WatchId) -> Vec<(i32, Option<ExitStatus>, Option<i32>, u32)> {
    got.iter()
        .filter(|e| e.watch == id)
        .filter_map(|e| match &e.kind {
            EventKind::Exit {
                pid,
                status,
                ppid,
                remaining: Some(r),
                ..
            } => Some((*pid, *status, *ppid, *r)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_tree_with_forks_after_the_watch_ends_with_its_last_member() {
    let _s = serial();
    let h = Harness::new(MonitorOptions::default());
    // One descendant before the watch; the rest forked after it, on a line on stdin.
    let mut sh =
        ready_sh("sleep 0.4 & echo; read x; (sleep 0.1; exit 3) & sleep 0.05 & wait; exit 4");
    let root = sh.id() as i32;
    let opts = TreeOptions {
        forks: true,
        execs: false,
    };
    let (id, got) = tree_to_its_end(&h, &mut sh, opts, Duration::from_secs(10));
    let exits = tree_exits(&got, id);
    let forked: HashSet<i32> = got
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Fork { pid, .. } if e.watch == id => Some(pid),
            _ => None,
        })
        .collect();
    let pids: HashSet<i32> = exits.iter().map(|e| e.0).collect();
    assert_eq!(pids.len(), exits.len(), "each member exits once: {exits:?}");
    assert!(
        forked.len() >= 3,
        "subshell, its sleep, sleep 0.05: {forked:?}"
    );
    assert!(
        forked.is_subset(&pids),
        "every member forked after the watch exits: {got:#?}"
    );
    assert_eq!(
        pids.len(),
        forked.len() + 2,
        "plus the root and the sleep forked before: {exits:?}"
    );
    let root_exit = exits.iter().find(|e| e.0 == root).unwrap();
    assert_eq!(root_exit.1, Some(ExitStatus::Code(4)));
    assert!(
        exits.iter().any(|e| e.1 == Some(ExitStatus::Code(3))),
        "the subshell: {exits:?}"
    );
    assert!(
        exits.iter().all(|e| e.2.is_some()),
        "each with its parent: {exits:?}"
    );
    assert_eq!(exits.last().unwrap().3, 0);
    assert!(
        exits.iter().rev().skip(1).all(|e| e.3 > 0),
        "only the last says 0: {exits:?}"
    );
    assert_eq!(h.monitor.watch_count(), 0, "the tree watch ended");
    h.monitor.close();
}

#[test]
fn fork_then_exit_races_lose_no_member() {
    let _s = serial();
    let h = Harness::new(MonitorOptions::default());
    let mut sh =
        ready_sh("echo; read x; i=0; while [ $i -lt 300 ]; do (exit 1) & i=$((i+1)); done; wait");
    let root = sh.id() as i32;
    let (id, got) = tree_to_its_end(&h, &mut sh, TreeOptions::default(), Duration::from_secs(30));
    let exits = tree_exits(&got, id);
    let ones = exits
        .iter()
        .filter(|e| e.1 == Some(ExitStatus::Code(1)))
        .count();
    assert_eq!(ones, 300, "every subshell: {} exits", exits.len());
    assert_eq!(exits.last().unwrap().0, root);
    assert!(!got.iter().any(|e| matches!(e.kind, EventKind::Lost { .. })));
    h.monitor.close();
}

#[test]
fn a_tree_of_a_zombie_ends_at_once_and_bad_pids_are_refused() {
    let _s = serial();
    let h = Harness::new(MonitorOptions::default());
    let mut z = sh("exit 9");
    let pid = z.id() as i32;
    // A zombie until reaped below.
    while lifewatch_core::process::procfs::seen(pid).is_some_and(|s| s.zombie.is_none()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let id = h
        .monitor
        .watch_tree(pid as i64, TreeOptions::default())
        .unwrap();
    let got = h.collect(1, Duration::from_secs(5));
    assert!(
        matches!(got[0].kind, EventKind::Exit { pid: p, status: Some(ExitStatus::Code(9)), remaining: Some(0), .. } if p == pid),
        "{got:?}"
    );
    assert_eq!(got[0].watch, id);
    assert_eq!(h.monitor.watch_count(), 0);
    z.wait().unwrap();
    let gone = h
        .monitor
        .watch_tree(pid as i64, TreeOptions::default())
        .unwrap_err();
    assert_eq!(gone.code, lifewatch_core::Code::NoSuchProcess, "{gone}");
    let nothing = h.monitor.watch_host(HostOptions::default()).unwrap_err();
    assert_eq!(
        nothing.code,
        lifewatch_core::Code::InvalidArgument,
        "{nothing}"
    );
    h.monitor.close();
}

#[test]
fn unwatching_closes_the_socket_and_a_new_watch_opens_another() {
    let _s = serial();
    let before = lifewatch_core::fd::stats(lifewatch_core::FdKind::Netlink);
    let h = Harness::new(MonitorOptions::default());
    let a = h.monitor.watch_host(exits()).unwrap();
    let b = h
        .monitor
        .watch_tree(std::process::id() as i64, TreeOptions::default())
        .unwrap();
    assert_eq!(
        lifewatch_core::fd::stats(lifewatch_core::FdKind::Netlink).in_use,
        before.in_use + 1,
        "one socket per monitor"
    );
    assert!(h.monitor.unwatch(a).unwrap());
    assert!(h.monitor.unwatch(b).unwrap());
    assert!(!h.monitor.unwatch(b).unwrap());
    let unwatched_at = lifewatch_core::monotonic_ns();
    assert_eq!(
        lifewatch_core::fd::stats(lifewatch_core::FdKind::Netlink).in_use,
        before.in_use
    );
    let c = h.monitor.watch_host(exits()).unwrap();
    let mut child = sh("exit 2");
    let pid = child.id() as i32;
    child.wait().unwrap();
    let got = until(&h, Duration::from_secs(10), |e| exit_of(e, pid));
    // The host watch saw other tests' exits too: those queued before its unwatch may still
    // arrive; nothing of `a` or `b` was seen after it.
    let late: Vec<_> = got
        .iter()
        .filter(|e| e.watch != c && e.time >= unwatched_at)
        .collect();
    assert!(late.is_empty(), "{late:?}");
    assert!(got.iter().any(|e| e.watch == c && exit_of(e, pid)));
    let released = h.monitor.close();
    assert_eq!(released.get(lifewatch_core::FdKind::Netlink), 1);
    assert_eq!(
        lifewatch_core::fd::stats(lifewatch_core::FdKind::Netlink).in_use,
        before.in_use
    );
}

/// Where the kernel refuses (CAP_NET_ADMIN before Linux 6.6, CAP_SYSLOG under
/// dmesg_restrict, no connector): a typed error naming what is missing, nothing registered, no
/// fd left. The kernel's answers are made by failpoints: this host lets any user listen.
#[test]
fn refusals_name_what_is_missing_and_leave_nothing() {
    let _s = serial();
    let h = Harness::new(MonitorOptions::default());
    let scope = failpoint::scope();
    let kinds = [
        lifewatch_core::FdKind::Netlink,
        lifewatch_core::FdKind::Kmsg,
    ];
    let in_use = || kinds.map(|k| lifewatch_core::fd::stats(k).in_use);
    let before = in_use();
    type Call = fn(&Harness) -> lifewatch_core::Result<WatchId>;
    let host: Call = |h| h.monitor.watch_host(exits());
    let kmsg: Call = |h| h.monitor.watch_oom_kills(false);
    let cases: [(&str, Call, &str, i32, Code, &str); 4] = [
        (
            "host",
            host,
            "bind",
            libc::EPERM,
            Code::Permission,
            "CAP_NET_ADMIN",
        ),
        (
            "host",
            host,
            "sendto",
            libc::EPERM,
            Code::Permission,
            "CAP_NET_ADMIN",
        ),
        (
            "host",
            host,
            "socket",
            libc::EPROTONOSUPPORT,
            Code::UnsupportedKernel,
            "CONFIG_CONNECTOR",
        ),
        (
            "kmsg",
            kmsg,
            "open",
            libc::EPERM,
            Code::Permission,
            "CAP_SYSLOG while kernel.dmesg_restrict",
        ),
    ];
    for (what, call, site, errno, code, names) in cases {
        scope.reset();
        let id = call(&h).unwrap();
        assert!(h.monitor.unwatch(id).unwrap());
        let step = scope
            .hits()
            .iter()
            .position(|&s| s == site)
            .unwrap_or_else(|| panic!("{what}: no {site} in {:?}", scope.hits()));
        scope.reset();
        scope.fail_nth(step, Some(errno));
        let e = call(&h).expect_err(site);
        assert_eq!(e.code, code, "{what} {site}: {e}");
        assert!(e.message.contains(names), "{what} {site}: {e}");
        assert_eq!(
            h.monitor.watch_count(),
            0,
            "{what} {site}: nothing registered"
        );
        assert_eq!(in_use(), before, "{what} {site}: no fd left");
    }
}

#[test]
fn an_overrun_socket_is_reported_as_lost() {
    let _s = serial();
    let h = Harness::new(MonitorOptions::default());
    let id = h.monitor.watch_host(exits()).unwrap();
    let scope = failpoint::scope();
    // The next receive on the reactor thread fails as an overrun socket's does.
    scope.fail_named("recv");
    let mut child = sh("exit 0");
    child.wait().unwrap();
    let got = until(&h, Duration::from_secs(10), |e| {
        matches!(e.kind, EventKind::Lost { .. })
    });
    drop(scope);
    let lost = got
        .iter()
        .find(|e| matches!(e.kind, EventKind::Lost { .. }))
        .unwrap();
    assert_eq!(lost.watch, id);
    assert_eq!(
        lost.kind,
        EventKind::Lost {
            source: LossSource::Connector,
            count: None
        }
    );
    // And the stream goes on.
    let mut after = sh("exit 5");
    let pid = after.id() as i32;
    after.wait().unwrap();
    until(&h, Duration::from_secs(10), |e| exit_of(e, pid));
    h.monitor.close();
}

// ---- OOM kills ----

/// A memory cgroup of 16 MiB, swap included: v2 where the unified hierarchy has the memory
/// controller (the VM), else v1 (hybrid hosts). Removed on drop.
struct MemCgroup {
    cg: TestCgroup,
    v2: bool,
}

impl MemCgroup {
    fn new() -> Option<MemCgroup> {
        let l = Layout::detect().ok()?;
        let v2 = l.unified.as_ref().filter(|u| {
            std::fs::read_to_string(u.mount.join("cgroup.subtree_control"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
        });
        let (mount, v2) = match (v2, l.v1.get("memory")) {
            (Some(u), _) => (&u.mount, true),
            (None, Some(m)) => (&m.mount, false),
            _ => {
                eprintln!("skip: no memory controller");
                return None;
            }
        };
        let cg = TestCgroup::new(mount)?;
        let limit = "16777216";
        if v2 {
            cg.write("memory.max", limit);
            if cg.dir.join("memory.swap.max").exists() {
                cg.write("memory.swap.max", "0");
            }
        } else {
            cg.limit_v1_memory(limit);
        }
        Some(MemCgroup { cg, v2 })
    }
}

fn victim(e: &Event) -> Option<&OomVictim> {
    match &e.kind {
        EventKind::OomKill(v) => Some(v),
        _ => None,
    }
}

#[test]
fn an_oom_victim_with_its_pid_and_cgroup_joined_with_the_cgroup_watch() {
    let _s = serial();
    let Some(MemCgroup { cg, v2 }) = MemCgroup::new() else {
        return;
    };
    let h = Harness::new(MonitorOptions::default());
    let kills = h.monitor.watch_oom_kills(false).unwrap();
    let opts = CgroupWatchOptions {
        oom: Some(true),
        events: Some(false),
        ..Default::default()
    };
    let cw = h.monitor.watch_cgroup(&cg.rel, &opts).unwrap();
    let mut hog = cg.spawn("tail /dev/zero");
    let pid = hog.id() as i32;
    let pw = h.monitor.watch_pid(pid as i64).unwrap();
    let mut got = until(&h, Duration::from_secs(60), |e| e.watch == pw);
    hog.wait().unwrap();
    if !got
        .iter()
        .any(|e| e.watch == cw && matches!(e.kind, EventKind::Oom { .. }))
    {
        got.extend(until(&h, Duration::from_secs(5), |e| {
            e.watch == cw && matches!(e.kind, EventKind::Oom { .. })
        }));
    }
    let at =
        |p: &dyn Fn(&Event) -> bool| got.iter().position(p).unwrap_or_else(|| panic!("{got:#?}"));
    let kill = at(&|e| e.watch == kills && victim(e).is_some_and(|v| v.pid == pid));
    let exit = at(&|e| e.watch == pw);
    assert!(
        kill < exit,
        "the kill's record before the victim's exit: {got:#?}"
    );
    let v = victim(&got[kill]).unwrap();
    let path = format!("/{}", cg.rel);
    assert_eq!(v.comm, "tail");
    assert_eq!(v.cgroup.as_deref(), Some(path.as_str()), "{v:?}");
    assert_eq!(v.oom_cgroup.as_deref(), Some(path.as_str()), "{v:?}");
    assert_eq!(v.constraint.as_deref(), Some("memcg"));
    assert_eq!(v.uid, Some(0));
    assert!(v.anon_rss.unwrap() > 8 << 20, "{v:?}");
    assert!(v.total_vm.unwrap() >= v.anon_rss.unwrap());
    let oom = got
        .iter()
        .find(|e| e.watch == cw && matches!(e.kind, EventKind::Oom { .. }))
        .unwrap();
    let EventKind::Oom {
        victims, kills: n, ..
    } = &oom.kind
    else {
        unreachable!()
    };
    assert!(*n >= 1);
    assert!(
        victims.iter().any(|x| x.pid == pid),
        "the oom event names its victim: {oom:?}"
    );
    eprintln!("{} OOM kill: {v:?}", if v2 { "v2" } else { "v1" });
    h.monitor.close();

    // A new watch skips what the log holds already, unless asked to replay it.
    let h = Harness::new(MonitorOptions::default());
    h.monitor.watch_oom_kills(false).unwrap();
    let replay = h.monitor.watch_oom_kills(true).unwrap();
    let got = until(&h, Duration::from_secs(30), |e| {
        victim(e).is_some_and(|v| v.pid == pid)
    });
    assert!(
        got.iter()
            .filter(|e| victim(e).is_some())
            .all(|e| e.watch == replay),
        "{got:#?}"
    );
    h.monitor.close();
}

#[test]
fn an_overwritten_log_is_reported_as_lost() {
    let _s = serial();
    let h = Harness::new(MonitorOptions::default());
    let id = match h.monitor.watch_oom_kills(false) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("skip: {e}");
            return;
        }
    };
    let scope = failpoint::scope();
    scope.fail_named("read");
    // Root may write to the log: a record makes the fd readable.
    if let Err(e) = std::fs::write("/dev/kmsg", "lifewatch test: an overrun\n") {
        eprintln!("skip: writing /dev/kmsg: {e}");
        return;
    }
    let got = until(&h, Duration::from_secs(10), |e| {
        matches!(e.kind, EventKind::Lost { .. })
    });
    drop(scope);
    let lost = got
        .iter()
        .find(|e| matches!(e.kind, EventKind::Lost { .. }))
        .unwrap();
    assert_eq!(
        (lost.watch, &lost.kind),
        (
            id,
            &EventKind::Lost {
                source: LossSource::Kmsg,
                count: None
            }
        )
    );
    h.monitor.close();
}

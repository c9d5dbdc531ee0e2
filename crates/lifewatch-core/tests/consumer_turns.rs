//! Direct mode (`ready_fd`, `set_direct`, `turn_now`): a consumer's own event loop (Node's,
//! through the binding) handles readiness on its thread, and the reactor thread handles what
//! the consumer leaves. Every event must be reported exactly once, whichever thread takes it.

mod common;

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{open_fds, serial, Harness};
use lifewatch_core::reactor::direct::GRACE;
use lifewatch_core::{monotonic_ns, Event, EventKind, Monitor, MonitorOptions, WatchId};
use rustix::event::{poll, PollFd, PollFlags};

/// Whether `fd` becomes readable within `ms`.
fn readable_within(fd: BorrowedFd<'_>, ms: i64) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = rustix::time::Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    poll(&mut fds, Some(&timeout)).unwrap() > 0
}

/// What the binding's uv_poll does: poll the ready fd, turn when readable, until `stop`.
/// Returns the events the turns delivered, and how many turns found the fd readable.
fn consumer_loop(monitor: &Monitor, stop: &AtomicBool) -> (Vec<Event>, usize) {
    // SAFETY: the monitor stays open until this loop has returned.
    let fd = unsafe { BorrowedFd::borrow_raw(monitor.ready_fd()) };
    let (mut got, mut turns) = (Vec::new(), 0);
    while !stop.load(Ordering::SeqCst) {
        if readable_within(fd, 10) {
            turns += 1;
            got.extend(monitor.turn_now());
            monitor.turn_done();
        }
    }
    (got, turns)
}

fn spawn_dying(n: usize) -> Vec<std::process::Child> {
    (0..n)
        .map(|i| {
            Command::new("sh")
                .args(["-c", &format!("sleep 0.{:03}; exit {}", i % 200, i % 100)])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect()
}

#[test]
fn exits_shared_between_the_consumer_and_the_reactor_are_reported_once() {
    let _serial = serial();
    let fds = open_fds();
    let h = Harness::new(MonitorOptions::default());
    assert!(h.monitor.set_direct(true));
    let stop = AtomicBool::new(false);
    let mut children = spawn_dying(300);
    let ((direct, turns), queued) = std::thread::scope(|s| {
        let consumer = s.spawn(|| consumer_loop(&h.monitor, &stop));
        for c in &children {
            h.monitor.watch_pid(c.id() as i64).unwrap();
        }
        for c in &mut children {
            c.wait().unwrap();
        }
        // The consumer keeps turning until every exit came out of one door or the other.
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::SeqCst);
        let direct = consumer.join().unwrap();
        (
            direct,
            h.collect(children.len(), Duration::from_millis(500)),
        )
    });
    let mut seen = HashMap::new();
    for e in direct.iter().chain(&queued) {
        assert!(matches!(e.kind, EventKind::Exit { .. }), "{e:?}");
        *seen.entry(e.watch).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), children.len(), "every exit reported");
    assert!(seen.values().all(|&n| n == 1), "none twice: {seen:?}");
    assert!(
        !direct.is_empty(),
        "the consumer's turns delivered ({turns} turns)"
    );
    eprintln!(
        "{} exits: {} through {turns} consumer turns, {} from the reactor's queue",
        seen.len(),
        direct.len(),
        queued.len()
    );
    assert!(h.monitor.set_direct(false));
    h.monitor.close();
    assert_eq!(open_fds(), fds);
}

/// A monitor in direct mode whose consumer is the test itself.
fn direct() -> Harness {
    let h = Harness::new(MonitorOptions::default());
    assert!(h.monitor.set_direct(true));
    h
}

/// A watched process killed and reaped: its watch, and the time just before the kill.
struct Killed {
    id: WatchId,
    before: u64,
}

/// Starts a process, watches it, kills it and reaps it.
fn watched_and_killed(h: &Harness) -> Killed {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let id = h.monitor.watch_pid(child.id() as i64).unwrap();
    let before = monotonic_ns();
    child.kill().unwrap();
    child.wait().unwrap();
    Killed { id, before }
}

/// The one event the reactor queues when nobody turns: it comes at least the grace period
/// (5 ms) after the exit (load can only widen the gap), and its timestamp, taken by the turn
/// that handled it, is never before the exit nor after its delivery.
fn one_left_to_the_reactor(h: &Harness, k: &Killed) -> Event {
    let mut events = h.collect(1, Duration::from_secs(5));
    let received = monotonic_ns();
    assert_eq!(events.len(), 1, "delivered after the grace period");
    let ev = events.remove(0);
    assert_eq!(ev.watch, k.id);
    let waited = received - k.before;
    assert!(waited >= 4_000_000, "delivered {waited} ns after the exit");
    assert!(
        ev.time >= k.before && ev.time <= received,
        "stamped {} ns after the exit",
        ev.time as i64 - k.before as i64
    );
    ev
}

#[test]
fn a_consumer_that_does_not_turn_still_gets_its_events_from_the_reactor() {
    let _serial = serial();
    let h = direct();
    let k = watched_and_killed(&h);
    one_left_to_the_reactor(&h, &k);
    h.monitor.close();
}

#[test]
fn the_ready_fd_is_quiet_unless_a_watch_has_something_to_report() {
    let _serial = serial();
    let h = direct();
    // SAFETY: the monitor is open for the whole test.
    let fd = unsafe { BorrowedFd::borrow_raw(h.monitor.ready_fd()) };
    let mut live = Command::new("sleep").arg("30").spawn().unwrap();
    h.monitor.watch_pid(live.id() as i64).unwrap();
    assert!(!readable_within(fd, 200), "no readiness for a live process");
    watched_and_killed(&h);
    // Readable until someone handles it: this thread, or (if it looks too late, under load)
    // the reactor after its grace period. Either way the exit comes out once.
    let mut events = if readable_within(fd, 2000) {
        let got = h.monitor.turn_now().into_vec();
        h.monitor.turn_done();
        got
    } else {
        Vec::new()
    };
    if events.is_empty() {
        events = h.collect(1, Duration::from_secs(2));
    }
    events.extend(h.collect(1, Duration::from_millis(100))); // a second copy, if any
    assert_eq!(events.len(), 1, "{events:?}");
    // Handled: a level-triggered loop watching the fd does not spin.
    assert!(!readable_within(fd, 200), "quiet once the exit was handled");
    h.monitor.close();
    live.kill().unwrap();
    live.wait().unwrap();
}

#[test]
fn after_a_burst_left_to_the_reactor_it_waits_for_the_consumer_again() {
    let _serial = serial();
    let h = direct();
    // A burst nobody turns for: the reactor takes it after its grace period and from then on
    // handles readiness at once (eager), until readiness pauses.
    let mut burst: Vec<_> = (0..50)
        .map(|_| Command::new("sleep").arg("30").spawn().unwrap())
        .collect();
    for c in &burst {
        h.monitor.watch_pid(c.id() as i64).unwrap();
    }
    for c in &mut burst {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    assert_eq!(h.collect(50, Duration::from_secs(10)).len(), 50);
    std::thread::sleep(Duration::from_millis(100));
    // After the pause a single exit is the consumer's again for the grace period (a reactor
    // stuck in eager mode would deliver it at once).
    let k = watched_and_killed(&h);
    one_left_to_the_reactor(&h, &k);
    h.monitor.close();
}

#[test]
fn direct_mode_calls_after_close_touch_nothing() {
    let _serial = serial();
    let fds = open_fds();
    let h = direct();
    h.monitor.close();
    // The closed monitor's fd numbers may already belong to someone else: an epoll of
    // another monitor here, which must keep working.
    let other = direct();
    assert!(
        !h.monitor.set_direct(true),
        "closed: direct mode cannot be on"
    );
    assert!(!h.monitor.set_direct(false)); // on `other`'s reused fds it would end its direct mode
    assert!(h.monitor.turn_now().is_empty());
    let k = watched_and_killed(&other);
    one_left_to_the_reactor(&other, &k);
    other.monitor.close();
    assert_eq!(open_fds(), fds);
}

#[test]
fn a_timed_wake_is_the_consumers_turn_too() {
    let _serial = serial();
    // Polling watches have no fd: only their timer makes them run. It sits in the sources'
    // set, so the ready fd turns readable when a poll is due and the consumer's turn polls
    // (one thread hop from the kernel's timer to the consumer, as for an fd's readiness).
    let h = Harness::new(MonitorOptions {
        force_fallback: true,
        ..MonitorOptions::default()
    });
    assert!(h.monitor.set_direct(true));
    // SAFETY: the monitor is open for the whole test.
    let fd = unsafe { BorrowedFd::borrow_raw(h.monitor.ready_fd()) };
    // Polled at 1, 2, 4 ... ms while it lives: several polls, each the consumer's unless this
    // thread pauses for longer than the reactor's grace (then that one is the reactor's).
    let mut child = Command::new("sleep").arg("0.3").spawn().unwrap();
    let id = h.monitor.watch_pid(child.id() as i64).unwrap();
    let (mut readable, mut events) = (0, Vec::new());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !events.iter().any(|e: &Event| e.watch == id) && std::time::Instant::now() < deadline {
        if readable_within(fd, 10) {
            readable += 1;
            events.extend(h.monitor.turn_now());
            h.monitor.turn_done();
        }
        events.extend(h.monitor.drain());
    }
    events.extend(h.collect(1, Duration::from_millis(300)));
    assert!(readable > 0, "the polls' times made the ready fd readable");
    let exits: Vec<_> = events.iter().filter(|e| e.watch == id).collect();
    assert_eq!(exits.len(), 1, "reported once: {events:?}");
    assert!(matches!(exits[0].kind, EventKind::Exit { .. }));
    h.monitor.close();
    child.wait().unwrap();
}

#[test]
fn what_a_quiet_reactor_turn_queued_reaches_a_consumer_that_stopped_turning() {
    let _serial = serial();
    let h = direct();
    // While the consumer turns, the reactor's own turns queue their events without notifying
    // it (it drains them with its next turn). When it stops turning, nothing may stay queued:
    // the reactor notifies after its grace. Each round: a burst nobody turns for makes the
    // reactor eager, the consumer turns once, then more exits come for the eager reactor to
    // take quietly, and the consumer never turns again.
    for round in 0..5 {
        let mut first: Vec<_> = (0..20)
            .map(|_| Command::new("sleep").arg("30").spawn().unwrap())
            .collect();
        let mut second: Vec<_> = (0..20)
            .map(|_| Command::new("sleep").arg("30").spawn().unwrap())
            .collect();
        let ids: Vec<WatchId> = first
            .iter()
            .chain(&second)
            .map(|c| h.monitor.watch_pid(c.id() as i64).unwrap())
            .collect();
        for c in &mut first {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        let mut got = h.collect(20, Duration::from_secs(10));
        got.extend(h.monitor.turn_now());
        h.monitor.turn_done();
        for c in &mut second {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        got.extend(h.collect(40 - got.len(), Duration::from_secs(5)));
        let mut seen: Vec<WatchId> = got.iter().map(|e| e.watch).collect();
        seen.sort();
        assert_eq!(seen, ids, "round {round}: every exit once");
    }
    h.monitor.close();
}

/// The threads of this process with this name, by task id.
fn threads_named(name: &str) -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let tid = t.ok()?.file_name().into_string().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
            (comm.trim_end() == name).then_some(tid)
        })
        .collect()
}

/// A field of a thread's `status` (`voluntary_ctxt_switches`: times it went to sleep).
fn status_field(tid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The nice value of a thread (`stat` field 19).
fn nice(tid: &str) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split(' ').nth(16).unwrap().parse().unwrap()
}

#[test]
fn the_reactor_thread_sleeps_through_exits_the_consumer_takes() {
    let _serial = serial();
    // This monitor's threads: those that were not there before it (names are cut at 15 bytes).
    // A new thread names itself once it runs: wait for it.
    let new_since = |before: &[String], name| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut now = threads_named(name);
            now.retain(|t| !before.contains(t));
            if !now.is_empty() || std::time::Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let (reactors, backstops) = (
        threads_named("lifewatch-react"),
        threads_named("lifewatch-backs"),
    );
    let h = direct();
    let (reactor, backstop) = (
        new_since(&reactors, "lifewatch-react"),
        new_since(&backstops, "lifewatch-backs"),
    );
    assert_eq!((reactor.len(), backstop.len()), (1, 1), "one of each");
    // It lowers its priority first thing, right after it has named itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while nice(&backstop[0]) != 5 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        nice(&backstop[0]),
        5,
        "the backstop runs at a lower priority"
    );
    assert_eq!(nice(&reactor[0]), 0, "the reactor keeps its priority");
    // SAFETY: the monitor is open for the whole test.
    let fd = unsafe { BorrowedFd::borrow_raw(h.monitor.ready_fd()) };
    let switches = || status_field(&reactor[0], "voluntary_ctxt_switches");
    // Each exit the consumer takes well within the grace must not wake the reactor. One it
    // takes later may rightly be handed over (a slow machine: the VM's emulated CPUs), so it
    // is not counted.
    let (mut checked, mut late) = (0, Vec::new());
    for _ in 0..5 {
        std::thread::sleep(GRACE * 2);
        let before = switches();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let id = h.monitor.watch_pid(child.id() as i64).unwrap();
        let killed = std::time::Instant::now();
        child.kill().unwrap();
        assert!(
            readable_within(fd, 2000),
            "the exit made the ready fd readable"
        );
        let got = h.monitor.turn_now();
        h.monitor.turn_done();
        let took = killed.elapsed();
        let mut ids: Vec<WatchId> = got.iter().map(|e| e.watch).collect();
        let by_turn = !ids.is_empty();
        if !by_turn {
            // A turn that slow (the VM's emulated CPUs) may find the exit already handed to
            // the reactor: it comes through the queue.
            ids = h
                .collect(1, Duration::from_secs(5))
                .iter()
                .map(|e| e.watch)
                .collect();
        }
        assert_eq!(ids, [id]);
        child.wait().unwrap();
        // Past the backstop's grace: had the reactor been woken, it would have slept again.
        std::thread::sleep(GRACE * 4);
        if by_turn && took < GRACE / 2 {
            assert_eq!(switches(), before, "the reactor thread never woke");
            checked += 1;
        } else {
            late.push(took);
        }
    }
    if checked == 0 {
        eprintln!("not checked: every turn came {late:?} after its kill, past half the grace");
    }
    h.monitor.close();
    assert!(
        !threads_named("lifewatch-backs").contains(&backstop[0]),
        "close joined the backstop"
    );
}

#[test]
fn a_consumer_that_drains_notified_batches_gets_a_burst_in_few_of_them() {
    let _serial = serial();
    // The JS thread busy elsewhere does not turn: the reactor takes the exits over and
    // notifies, and the binding drains each notified batch on the JS thread, telling the
    // monitor (`consumer_drained`). Drains in quick succession say the consumer is awake in
    // a burst, so the reactor's next turns queue quietly until a grace without a drain or a
    // turn: a notification per grace or so, not one per exit (the reactor, eager in a burst,
    // turns on every exit).
    let h = direct();
    let n = 60;
    let mut children: Vec<_> = (0..n)
        .map(|_| Command::new("sleep").arg("30").spawn().unwrap())
        .collect();
    let ids: Vec<_> = children
        .iter()
        .map(|c| h.monitor.watch_pid(c.id() as i64).unwrap())
        .collect();
    // Killed 1 ms apart by a thread of their own, while this one drains.
    let pids: Vec<_> = children.iter().map(|c| c.id() as i32).collect();
    let killer = std::thread::spawn(move || {
        for pid in pids {
            let pid = rustix::process::Pid::from_raw(pid).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let (mut got, mut notifications) = (Vec::new(), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.len() < n && std::time::Instant::now() < deadline {
        if let Some(events) = h.notified(Duration::from_millis(100)) {
            notifications += 1;
            got.extend(events);
            h.monitor.consumer_drained();
        }
    }
    println!("{notifications} notifications for {n} exits");
    let by_watch = Harness::by_watch(&got);
    assert_eq!(got.len(), n, "every exit once: {got:?}");
    assert!(ids.iter().all(|id| by_watch.contains_key(id)));
    // About 60 ms of exits: a dozen graces. Here 21 to 23 notifications in three runs (21
    // and 22 in the cgroup-v2 VM), and 56 in two without the drains counting as turns.
    assert!(
        notifications <= n / 2,
        "{notifications} notifications for {n} exits 1 ms apart"
    );
    killer.join().unwrap();
    for c in &mut children {
        c.wait().unwrap();
    }
    h.monitor.close();
}

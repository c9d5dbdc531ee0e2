//! Direct wake: a consumer with an event loop of its own (Node's) watches the sources' set and
//! turns on its own thread when it is readable, so an exit wakes the consumer's thread directly
//! instead of waking the reactor, which then wakes the consumer (two scheduler wakeups in a
//! row).
//!
//! The reactor thread does not hear that readiness then: the backstop does (`backstop`), a
//! thread of a lower priority, so waking it beside the consumer does not take a CPU from the
//! consumer or from the process's parent (a reactor thread woken on every exit cost the exit's
//! delivery about 5 µs). It leaves ready sources to the consumer for `GRACE`; a consumer that
//! turned meanwhile keeps up (it may take a burst in batches at its own pace) and keeps them.
//! What a consumer that did not turn at all left (one busy elsewhere) it hands over to the
//! reactor, which handles it and then, while readiness keeps coming within `EAGER`, handles
//! readiness at once, beside the consumer's deliveries; after such a pause readiness is the
//! consumer's again.
//!
//! While the consumer keeps turning (it turned within `GRACE`), what the reactor's turns find
//! is queued without a notification: the consumer's next turn drains it with its own, so a
//! burst handled by both threads still reaches JS in the consumer's few large deliveries, not
//! in one small delivery per reactor turn. Events queued so are notified once the consumer
//! has not turned for `GRACE` (it is busy elsewhere, or the burst ended).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::event::monotonic_ns;

/// How long ready sources are left to the consumer's turn: a consumer that is awake takes
/// them well within it; a busy one gets them from the reactor's queue.
pub const GRACE: Duration = Duration::from_millis(5);
/// How long after finding work left by the consumer the reactor keeps handling readiness at
/// once: a burst keeps renewing it; a single exit after a pause is the consumer's again.
pub const EAGER: Duration = Duration::from_millis(10);
/// Drains of notified batches this close together are a burst's (`Consumer::drained`).
pub const DRAIN_BURST: Duration = Duration::from_millis(2);

/// What the reactor, the backstop and the consumer's turns share.
#[derive(Debug, Default)]
pub struct Consumer {
    /// Turns the consumer took: one since sources were left to it says it keeps up.
    turns: AtomicU64,
    /// CLOCK_MONOTONIC ns of its last turn (0: none yet).
    turned_at: AtomicU64,
    /// The backstop found sources the consumer left for a whole grace: the reactor's now.
    handed_over: AtomicBool,
    /// CLOCK_MONOTONIC ns of its last drain of a notified batch (0: none yet).
    drained_at: AtomicU64,
}

impl Consumer {
    /// The consumer took a turn (counted once it has delivered the turn's events, see
    /// `Reactor::turn_done`).
    pub fn turned(&self) {
        self.turns.fetch_add(1, Ordering::SeqCst);
        self.turned_at.store(monotonic_ns(), Ordering::SeqCst);
    }

    /// The consumer drained a notified batch: whether it drained one within `DRAIN_BURST`
    /// before (a burst's drains).
    pub fn drained(&self) -> bool {
        let now = monotonic_ns();
        let last = self.drained_at.swap(now, Ordering::SeqCst);
        last != 0 && now.saturating_sub(last) < DRAIN_BURST.as_nanos() as u64
    }

    /// The consumer gathers a burst's readiness for `hold` before its next turn (its timer
    /// will turn then): it counts as turning until then, so neither the backstop nor the
    /// reactor's quiet turns take it for one that stopped, however long the hold. A consumer
    /// stuck past the hold is handed over a grace later, as one that stopped turning.
    pub fn hold(&self, hold: Duration) {
        let until = monotonic_ns().saturating_add(hold.as_nanos() as u64);
        self.turned_at.store(until, Ordering::SeqCst);
    }

    pub fn turns(&self) -> u64 {
        self.turns.load(Ordering::SeqCst)
    }

    /// How long ago the consumer last turned (zero while it holds); `None` if it never did.
    pub fn since_turn(&self) -> Option<Duration> {
        let at = self.turned_at.load(Ordering::SeqCst);
        (at != 0).then(|| Duration::from_nanos(monotonic_ns().saturating_sub(at)))
    }

    pub fn hand_over(&self) {
        self.handed_over.store(true, Ordering::SeqCst);
    }

    /// Whether the backstop handed sources over since the last call.
    pub fn take_handover(&self) -> bool {
        self.handed_over.swap(false, Ordering::SeqCst)
    }
}

/// Whether a reactor turn may queue its events without notifying the consumer, given how long
/// ago the consumer last turned: it turned within the grace, so it keeps draining the queue.
pub fn quiet(since_consumer_turn: Option<Duration>) -> bool {
    since_consumer_turn.is_some_and(|d| d < GRACE)
}

/// The backstop's view of ready sources it left to the consumer.
#[derive(Debug, Default)]
pub struct Grace {
    /// Since then, when the consumer had taken that many turns.
    left: Option<(Instant, u64)>,
}

impl Grace {
    /// The sources' set was seen readable: left to the consumer from `now`.
    pub fn leave(&mut self, now: Instant, turns: u64) {
        self.left.get_or_insert((now, turns));
    }

    pub fn is_left(&self) -> bool {
        self.left.is_some()
    }

    /// When the grace of the sources left to the consumer runs out.
    pub fn deadline(&self) -> Option<Instant> {
        self.left.map(|(at, _)| at + GRACE)
    }

    /// At `now`, with the consumer's `turns` so far and how long ago it last turned: `None`
    /// while the grace runs, else whether the consumer keeps the sources: it turned since they
    /// were left to it, or it is holding a burst (`Consumer::hold`). Either way they are no
    /// longer left. A turn counts once delivered: a consumer still in a delivery that outlasts
    /// the grace is a busy one, and new readiness goes to the reactor.
    pub fn over(&mut self, now: Instant, turns: u64, since_turn: Option<Duration>) -> Option<bool> {
        let (at, then) = self.left?;
        if now < at + GRACE {
            return None;
        }
        self.left = None;
        Some(turns != then || quiet(since_turn))
    }

    pub fn clear(&mut self) {
        self.left = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_only_while_the_consumer_turns() {
        assert!(!quiet(None), "a consumer that never turned drains nothing");
        assert!(quiet(Some(Duration::ZERO)), "it just turned");
        assert!(quiet(Some(GRACE / 2)));
        assert!(!quiet(Some(GRACE)), "no turn for a whole grace");
    }

    #[test]
    fn the_grace_runs_from_the_first_sight_and_asks_for_a_turn_since() {
        let mut g = Grace::default();
        let t0 = Instant::now();
        g.leave(t0, 7);
        g.leave(t0 + GRACE / 2, 9);
        assert_eq!(g.deadline(), Some(t0 + GRACE), "from the first sight");
        let long_ago = Some(2 * GRACE);
        assert_eq!(g.over(t0 + GRACE / 2, 8, long_ago), None, "the grace runs");
        assert_eq!(
            g.over(t0 + GRACE, 8, long_ago),
            Some(true),
            "it turned once since"
        );
        assert!(!g.is_left());
        g.leave(t0 + GRACE, 8);
        assert_eq!(
            g.over(t0 + 2 * GRACE, 8, long_ago),
            Some(false),
            "no turn since"
        );
        assert_eq!(
            g.over(t0 + 3 * GRACE, 8, long_ago),
            None,
            "nothing left any more"
        );
        g.leave(t0 + 3 * GRACE, 8);
        assert_eq!(
            g.over(t0 + 4 * GRACE, 8, Some(Duration::ZERO)),
            Some(true),
            "it holds a burst"
        );
    }

    #[test]
    fn drains_in_quick_succession_are_a_bursts() {
        let c = Consumer::default();
        assert!(!c.drained(), "a first drain");
        assert!(c.drained(), "another right after it");
        std::thread::sleep(DRAIN_BURST);
        assert!(!c.drained(), "one after a pause");
    }

    #[test]
    fn a_consumer_holding_a_burst_counts_as_turning_until_the_hold_ends() {
        let c = Consumer::default();
        c.hold(3 * GRACE);
        assert_eq!(
            c.since_turn(),
            Some(Duration::ZERO),
            "the hold outlasts a grace"
        );
        assert!(quiet(c.since_turn()));
        c.hold(Duration::ZERO);
        std::thread::sleep(GRACE);
        assert!(
            !quiet(c.since_turn()),
            "a grace after the hold without a turn"
        );
    }

    #[test]
    fn a_handover_is_taken_once() {
        let c = Consumer::default();
        assert!(!c.take_handover());
        c.hand_over();
        assert!(c.take_handover());
        assert!(!c.take_handover());
        assert_eq!(c.since_turn(), None);
        c.turned();
        assert_eq!(c.turns(), 1);
        assert!(c.since_turn().is_some_and(|d| d < GRACE));
    }
}

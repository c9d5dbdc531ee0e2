//! Direct wake: a consumer with an event loop of its own (Node's) watches the sources' set and
//! turns on its own thread when it is readable, so an exit wakes the consumer's thread directly
//! instead of waking the reactor, which then wakes the consumer (two scheduler wakeups in a
//! row). The reactor then leaves ready sources to the consumer for `GRACE`; a consumer that
//! turned meanwhile keeps up (it may take a burst in batches at its own pace) and keeps them.
//! The reactor handles only what a consumer that did not turn at all left (one busy
//! elsewhere). When it did find something left, it stops waiting and handles readiness at
//! once, beside the consumer's deliveries, until readiness pauses for `EAGER`.
//!
//! While the consumer keeps turning (it turned within `GRACE`), what the reactor's turns find
//! is queued without a notification: the consumer's next turn drains it with its own, so a
//! burst handled by both threads still reaches JS in the consumer's few large deliveries, not
//! in one small delivery per reactor turn. Events queued so are notified once the consumer
//! has not turned for `GRACE` (it is busy elsewhere, or the burst ended).

use std::time::{Duration, Instant};

/// How long ready sources are left to the consumer's turn: a consumer that is awake takes
/// them well within it; a busy one gets them from the reactor's queue.
pub const GRACE: Duration = Duration::from_millis(5);
/// How long after finding work left by the consumer the reactor keeps handling readiness at
/// once: a burst keeps renewing it; a single exit after a pause is the consumer's again.
pub const EAGER: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
pub struct Policy {
    /// Ready sources left to the consumer since then, when it had taken that many turns.
    left: Option<(Instant, u64)>,
    /// The consumer left work for the reactor lately: no grace until then.
    eager_until: Option<Instant>,
}

impl Policy {
    /// The reactor saw the sources' set readable (and, with `alone`, nothing else): whether it
    /// leaves them to the consumer for now.
    /// `turns`: the consumer's turns so far.
    pub fn leave(&mut self, now: Instant, alone: bool, turns: u64) -> bool {
        if self.left.is_some() {
            return false;
        }
        self.left = Some((now, turns));
        alone && self.eager_until.is_none_or(|until| now >= until)
    }

    /// When the grace of the sources left to the consumer runs out.
    pub fn deadline(&self) -> Option<Instant> {
        self.left.map(|(at, _)| at + GRACE)
    }

    /// Whether a reactor turn may queue its events without notifying the consumer, given
    /// how long ago the consumer last turned: it turned within the grace, so it keeps
    /// draining the queue.
    pub fn quiet(since_consumer_turn: Option<Duration>) -> bool {
        since_consumer_turn.is_some_and(|d| d < GRACE)
    }

    /// The grace ran out: whether the consumer turned since the sources were left to it, given
    /// its turns so far. If so it keeps them: the reactor waits for their next readiness
    /// (its one-shot entry must be re-armed) instead of turning.
    pub fn kept_up(&mut self, turns: u64) -> bool {
        match self.left {
            Some((_, then)) if turns != then => {
                self.left = None;
                true
            }
            _ => false,
        }
    }

    /// The reactor ran a turn: whether it was one whose readiness had been left to the
    /// consumer (its one-shot entry must then be re-armed), given whether it found work.
    pub fn turned(&mut self, found: bool) -> bool {
        let was_left = self.left.take().is_some();
        if was_left {
            self.eager_until = found.then(|| Instant::now() + EAGER);
        }
        was_left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_only_while_the_consumer_turns() {
        assert!(
            !Policy::quiet(None),
            "a consumer that never turned drains nothing"
        );
        assert!(Policy::quiet(Some(Duration::ZERO)), "it just turned");
        assert!(Policy::quiet(Some(GRACE / 2)));
        assert!(!Policy::quiet(Some(GRACE)), "no turn for a whole grace");
    }

    #[test]
    fn leaves_once_then_turns_eagerly_after_finding_work() {
        let mut p = Policy::default();
        let t0 = Instant::now();
        assert!(p.leave(t0, true, 0), "the consumer's turn first");
        assert_eq!(p.deadline(), Some(t0 + GRACE));
        assert!(!p.leave(t0, true, 0), "already left: the grace runs");
        assert!(!p.kept_up(0), "the consumer did not turn");
        assert!(p.turned(true), "the grace ran out and work was left");
        assert!(
            !p.leave(Instant::now(), true, 0),
            "eager: no grace during a burst"
        );
        assert!(p.turned(false));
        assert!(
            !p.leave(Instant::now() + EAGER, false, 0),
            "something else ready too: turn now"
        );
    }

    #[test]
    fn a_consumer_that_turned_during_the_grace_keeps_the_sources() {
        let mut p = Policy::default();
        let t0 = Instant::now();
        assert!(p.leave(t0, true, 7));
        assert!(p.kept_up(8), "it turned once since");
        assert_eq!(p.deadline(), None, "nothing left to it any more");
        assert!(
            !p.turned(false),
            "no turn of the reactor's own to re-arm for"
        );
        assert!(
            p.leave(t0 + GRACE, true, 8),
            "the next readiness is left to it again"
        );
        assert!(!p.kept_up(8), "no turn since: the reactor takes over");
    }
}

//! Direct wake: a consumer with an event loop of its own (Node's) watches the sources' set and
//! turns on its own thread when it is readable, so an exit wakes the consumer's thread directly
//! instead of waking the reactor, which then wakes the consumer (two scheduler wakeups in a
//! row). The reactor then leaves ready sources to the consumer for `GRACE` and handles only
//! what is still there after it (a consumer busy elsewhere). When it did find something left
//! (a burst the consumer cannot keep up with), it stops waiting and handles readiness at once,
//! beside the consumer's deliveries, until readiness pauses for `EAGER`.

use std::time::{Duration, Instant};

/// How long ready sources are left to the consumer's turn: a consumer that is awake takes
/// them well within it; a busy one gets them from the reactor's queue.
pub const GRACE: Duration = Duration::from_millis(5);
/// How long after finding work left by the consumer the reactor keeps handling readiness at
/// once: a burst keeps renewing it; a single exit after a pause is the consumer's again.
pub const EAGER: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
pub struct Policy {
    /// Ready sources left to the consumer since then.
    left: Option<Instant>,
    /// The consumer left work for the reactor lately: no grace until then.
    eager_until: Option<Instant>,
}

impl Policy {
    /// The reactor saw the sources' set readable (and, with `alone`, nothing else): whether it
    /// leaves them to the consumer for now.
    pub fn leave(&mut self, now: Instant, alone: bool) -> bool {
        if self.left.is_some() {
            return false;
        }
        self.left = Some(now);
        alone && self.eager_until.is_none_or(|until| now >= until)
    }

    /// When the reactor must look again (a grace running out).
    pub fn deadline(&self) -> Option<Instant> {
        self.left.map(|at| at + GRACE)
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
    fn leaves_once_then_turns_eagerly_after_finding_work() {
        let mut p = Policy::default();
        let t0 = Instant::now();
        assert!(p.leave(t0, true), "the consumer's turn first");
        assert_eq!(p.deadline(), Some(t0 + GRACE));
        assert!(!p.leave(t0, true), "already left: the grace runs");
        assert!(p.turned(true), "the grace ran out and work was left");
        assert!(
            !p.leave(Instant::now(), true),
            "eager: no grace during a burst"
        );
        assert!(p.turned(false));
        assert!(
            !p.leave(Instant::now() + EAGER, false),
            "something else ready too: turn now"
        );
    }
}

//! The pause between attempts while they fail in a row: every retry loop
//! of the crate (the watch loop, the `LeaseCandidate` task) counts its
//! failures here.

use std::time::Duration;

/// Failures in a row, and the pause they call for: `first` after the
/// first, doubling with each failure, at most `cap` (the first pause is
/// `first` even when it is longer than `cap`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    first: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) const fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap,
            failures: 0,
        }
    }

    /// Counts a failure; `true` when it is the first in a row (said as a
    /// warning; the rest are debug).
    pub(crate) fn fail(&mut self) -> bool {
        self.failures = self.failures.saturating_add(1);
        self.failures == 1
    }

    /// Whether the last attempt failed.
    pub(crate) const fn failing(&self) -> bool {
        self.failures > 0
    }

    /// An attempt worked: the next failure starts a new run.
    pub(crate) const fn reset(&mut self) {
        self.failures = 0;
    }

    /// The pause before the next attempt after the failures counted so far.
    pub(crate) fn pause(&self) -> Duration {
        if self.failures <= 1 {
            return self.first;
        }
        let doublings = (self.failures - 1).min(31);
        self.first
            .checked_mul(1 << doublings)
            .map_or(self.cap, |pause| pause.min(self.cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_from_the_first_up_to_the_cap_and_start_over_after_a_reset() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff.pause(), Duration::from_secs(1));
        let mut pauses = Vec::new();
        for n in 0..9 {
            assert_eq!(
                backoff.fail(),
                n == 0,
                "only the first failure in a row is first"
            );
            pauses.push(backoff.pause().as_secs());
        }
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        backoff.reset();
        assert!(!backoff.failing());
        assert!(backoff.fail());
        assert_eq!(backoff.pause(), Duration::from_secs(1));
    }

    #[test]
    fn a_first_pause_longer_than_the_cap_is_kept_once() {
        let mut backoff = Backoff::new(Duration::from_secs(90), Duration::from_secs(60));
        backoff.fail();
        assert_eq!(backoff.pause(), Duration::from_secs(90));
        backoff.fail();
        assert_eq!(backoff.pause(), Duration::from_secs(60));
        for _ in 0..100 {
            backoff.fail();
        }
        assert_eq!(backoff.pause(), Duration::from_secs(60));
    }
}

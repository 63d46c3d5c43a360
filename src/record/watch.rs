//! Whether a watch can be trusted to report changes of the Lease.

use std::time::Duration;

use tokio::time::Instant;

use super::after;

/// Whether a watch can be trusted to report changes of the Lease.
///
/// Connected is not enough: a watch that delivers nothing while the Lease is
/// held (a held Lease changes at every renew, each retry period) has stalled,
/// and one that errors right after connecting never delivers at all. A watch
/// is trusted while it is connected and has delivered an event within
/// `silence` of `now`, or while the Lease is not held (then no events are
/// due). `progress` is when the watch last delivered an event (or, before
/// the first, when watching began).
pub(crate) fn watch_trusted(
    connected: bool,
    progress: Instant,
    held: bool,
    silence: Duration,
    now: Instant,
) -> bool {
    connected && (!held || now < after(progress, silence))
}

/// How long a watch may stay silent while the Lease is held before it is
/// distrusted: one renew interval and a margin, a fifth of it but at least
/// [`SILENCE_FLOOR`].
///
/// The holder renews every `retry_period`, so a healthy watch delivers an
/// event about every `retry_period`, however late each one is (a watch
/// that lags steadily keeps the interval). The margin is for a healthy but
/// loaded watch: a renew sent late by a busy leader, or a round trip or a
/// delivery that takes longer than the one before, still arrives in time
/// if the difference stays within it (a fifth: the same 1.2 as client-go's
/// jitter factor; the floor: a busy node's scheduling delays and an API
/// server's slow writes, which do not shrink with the retry period). An
/// event later than that costs one read, and the watch is trusted again
/// at its next event. With the default 2 s retry period a silent watch is
/// distrusted after 2.4 s, so a release is found within 1.25 retry periods
/// on a quick server; below 1 s the floor dominates (250 ms: 450 ms).
pub(crate) fn watch_silence(retry_period: Duration) -> Duration {
    retry_period.saturating_add((retry_period / 5).max(SILENCE_FLOOR))
}

/// The least margin a watch gets past one renew interval (see
/// [`watch_silence`]).
pub(crate) const SILENCE_FLOOR: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_watch_is_distrusted_only_while_the_lease_is_held() {
        let t0 = Instant::now();
        let silence = watch_silence(Duration::from_secs(2));
        assert_eq!(silence, Duration::from_millis(2400));
        assert_eq!(
            watch_silence(Duration::from_millis(250)),
            Duration::from_millis(450)
        );
        assert_eq!(watch_silence(Duration::MAX), Duration::MAX);
        let later = t0 + silence;
        assert!(watch_trusted(true, t0, true, silence, t0));
        assert!(!watch_trusted(true, t0, true, silence, later));
        assert!(watch_trusted(true, t0, false, silence, later));
        assert!(!watch_trusted(false, t0, false, silence, t0));
    }
}

//! How far this elector's clock lags the API server's, as the answers'
//! `Date` and the controller's pings show it, said in the logs when it
//! eats into the margin the coordinating controller tolerates.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The margin (`lease − renew deadline`), and whether a lag past half of
/// it was said.
#[derive(Debug)]
pub(super) struct Lag {
    margin: Duration,
    reported: bool,
}

impl Lag {
    pub(super) fn new(margin: Duration) -> Self {
        Self {
            margin,
            reported: false,
        }
    }

    /// Compares the server's `Date` (whole seconds) with this elector's
    /// wall clock at the midpoint of the request, and says once when this
    /// clock lags by more than half the margin the controller tolerates.
    pub(super) fn saw_date(&mut self, date: &str, sent: Timestamp, answered: Timestamp) {
        let Ok(server) = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(date) else {
            return;
        };
        self.report(clock_lag(server, sent, answered).unwrap_or_default());
    }

    /// A ping stamped `ping` by the server's clock has just arrived, at
    /// `now` by this clock: this clock lags by at least how far it reads
    /// before it.
    pub(super) fn saw_ping(&mut self, ping: Timestamp, now: Timestamp) {
        let lag = ping.duration_since(now);
        if lag > SignedDuration::ZERO {
            self.report(lag.unsigned_abs());
        }
    }

    /// Says once when this clock lags the API server's by more than half
    /// the margin, and once when it no longer does.
    fn report(&mut self, lag: Duration) {
        let margin = self.margin;
        if lag > margin / 2 && !self.reported {
            self.reported = true;
            tracing::warn!(
                lag = ?lag,
                margin = ?margin,
                "this elector's clock is at least {lag:?} behind the API server's: in coordinated \
                 election the controller judges expiry on its own clock, so a leader is safe only \
                 while its clock lags by less than lease duration - renew deadline ({margin:?})"
            );
        } else if lag <= margin / 4 && self.reported {
            self.reported = false;
            tracing::info!("this elector's clock no longer lags the API server's");
        }
    }
}

/// How far this clock is at least behind the server's, from a `Date` of
/// `server` (whole seconds: the server's time was in `[server, server +
/// 1 s)`) on an answer to a request sent at `sent` and answered at
/// `answered` by this clock. `None` when it is not behind by more than the
/// measurement can tell.
fn clock_lag(server: Timestamp, sent: Timestamp, answered: Timestamp) -> Option<Duration> {
    // The server stamped its Date between `sent` and `answered` (our
    // clock); the least lag consistent with both is the server's earliest
    // possible time minus our latest.
    let lag = server.duration_since(answered);
    (lag > SignedDuration::ZERO)
        .then(|| lag.unsigned_abs())
        .filter(|_| sent <= answered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, millis: i64) -> Timestamp {
        Timestamp::from_millisecond(secs * 1000 + millis).unwrap()
    }

    #[test]
    fn a_lag_is_the_least_the_date_proves() {
        // The server said 100 s when our clock read 97.2 s to 97.4 s: we
        // are at least 2.6 s behind.
        assert_eq!(
            clock_lag(at(100, 0), at(97, 200), at(97, 400)),
            Some(Duration::from_millis(2600))
        );
        // A clock ahead of the server's, or within the Date's second, lags
        // by nothing the Date can prove.
        assert_eq!(clock_lag(at(100, 0), at(100, 100), at(100, 300)), None);
        assert_eq!(clock_lag(at(100, 0), at(103, 0), at(103, 1)), None);
    }
}

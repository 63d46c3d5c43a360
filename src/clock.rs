//! The wall clock whose readings are written into the Lease.
//!
//! Only `acquireTime` and `renewTime` come from it: expiry is judged on the
//! local monotonic clock ([`tokio::time::Instant`]), so a wrong wall clock
//! changes what is written, never who leads.

use std::fmt::Debug;

use jiff::{SignedDuration, Timestamp};

/// A source of wall-clock time for the timestamps written into the Lease.
pub trait WallClock: Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The system clock shifted by a fixed offset: a replica whose clock is wrong.
///
/// ```
/// use jiff::SignedDuration;
/// use kube_elector::clock::{SkewedClock, WallClock};
///
/// let ahead = SkewedClock::new(SignedDuration::from_hours(1));
/// assert!(ahead.now() > jiff::Timestamp::now());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SkewedClock {
    offset: SignedDuration,
}

impl SkewedClock {
    /// A clock `offset` ahead of the system clock (behind, if negative).
    #[must_use]
    pub fn new(offset: SignedDuration) -> Self {
        Self { offset }
    }
}

impl WallClock for SkewedClock {
    fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        now.checked_add(self.offset).unwrap_or(now)
    }
}

//! What the schedule learns: the Lease as read or watched, the versions
//! seen, and the health of the watch.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

use super::{Observation, Schedule, Shortened, Stop, View};
use crate::record::{self, Observed};

impl Schedule {
    // === Watch health ===

    pub(super) fn silence(&self) -> Duration {
        record::watch_silence(self.timing.retry_period)
    }

    pub(super) fn watch_trusted(&self, now: Instant) -> bool {
        record::watch_trusted(
            self.watch.connected,
            self.watch.progress,
            self.leader().is_some(),
            self.silence(),
            now,
        )
    }

    /// Whether the watch has just stopped being trusted (it is connected
    /// but shows no progress): polling starts at once, and the runner
    /// checks with its first read whether the watch missed a change.
    pub(in crate::elector) fn newly_distrusted(&mut self, now: Instant) -> bool {
        let trusted = self.watch_trusted(now);
        let newly =
            !trusted && self.watch.connected && !self.watch.distrusted && self.term.is_none();
        if newly {
            self.watch.poll_at = now;
        }
        self.watch.distrusted = !trusted;
        newly
    }

    // === Observing ===

    /// The newest `resourceVersion` seen, by the watch or a read.
    pub(in crate::elector) fn newest(&self) -> Option<&str> {
        self.newest.as_deref()
    }

    /// Whether `version` is newer than every version seen so far.
    pub(in crate::elector) fn is_newer(&self, version: Option<&str>) -> bool {
        self.newest.is_none() || record::is_newer(version, self.newest.as_deref())
    }

    /// Whether `version` is older than one already seen (a lagging cache):
    /// such an answer must not replace the newer observation. The same
    /// version again is not stale: it is the record, still unchanged.
    pub(in crate::elector) fn is_stale(&self, version: Option<&str>) -> bool {
        version.is_some_and(|v| {
            self.newest
                .as_deref()
                .is_some_and(|newest| newest != v && record::is_newer(Some(newest), Some(v)))
        })
    }

    pub(super) fn saw_version(&mut self, version: Option<&str>) {
        if let Some(version) = version
            && self.is_newer(Some(version))
        {
            self.newest = Some(version.to_owned());
        }
    }

    /// A read answered: polls are due a retry period later.
    pub(in crate::elector) fn read_answered(&mut self, now: Instant) {
        self.watch.poll_at = now + self.timing.retry_period;
    }

    /// A request failed, or a read was older than what was seen: no write
    /// before a retry period has passed.
    pub(in crate::elector) fn back_off(&mut self, now: Instant) {
        self.write_after = now + self.timing.retry_period;
    }

    /// The watch delivered an event, or connected or broke.
    pub(in crate::elector) fn watch_progress(&mut self, now: Instant) {
        self.watch.progress = now;
    }

    pub(in crate::elector) fn watch_connected(&mut self, connected: bool, now: Instant) {
        self.watch.connected = connected;
        if !connected {
            self.watch.poll_at = now;
        }
    }

    /// The Lease as read at `now`.
    pub(in crate::elector) fn observe(&mut self, mut lease: Lease, now: Instant) -> Observation {
        // Never read, and most of a cached Lease (serde_json maps, about
        // 1.8 KB a copy): dropped. A PUT without them keeps the server's.
        lease.metadata.managed_fields = None;
        self.saw_version(lease.metadata.resource_version.as_deref());
        // The last Lease seen, even across a failed write: the observation
        // time of an unchanged record must not move.
        let observed = Box::new(Observed::update(self.last_seen.as_deref(), lease, now));
        let record = observed.term_record();
        let recorded = record::lease_duration(record::spec_of(&observed.lease));
        let preferred = self.preferred_over_me(record::spec_of(&observed.lease));
        self.last_seen = Some(observed.clone());
        self.view = View::Present(observed);
        if record.holder.as_deref().is_some_and(|h| h != self.me()) {
            self.free_since = None;
        }
        let timing = &self.timing;
        let Some(active) = &mut self.term else {
            return Observation::default();
        };
        if !record::still_holds(&record, &active.record) {
            let stop = if record.holder.as_deref() == Some(timing.identity.as_str()) {
                Stop::Twin
            } else {
                Stop::Taken(record.holder)
            };
            return Observation {
                stop: Some(stop),
                shortened: None,
            };
        }
        if let Some(preferred) = preferred {
            return Observation {
                stop: Some(Stop::Preferred(preferred)),
                shortened: None,
            };
        }
        let end = record::term_end(
            active.renewed_sent,
            timing.renew_deadline,
            timing.lease_duration,
            recorded,
        );
        if end >= active.ends_at {
            return Observation::default();
        }
        active.set_end(end);
        active.renew_at = now;
        Observation {
            stop: None,
            shortened: Some(Shortened { recorded }),
        }
    }

    /// The Lease was found missing at `now`.
    pub(in crate::elector) fn observe_missing(
        &mut self,
        version: Option<&str>,
        now: Instant,
    ) -> Option<Stop> {
        self.saw_version(version);
        let since = match &self.view {
            View::Missing { since } => *since,
            _ => now,
        };
        self.view = View::Missing { since };
        self.term.is_some().then_some(Stop::Deleted)
    }

    /// A write was cut off, conflicted or failed: what the Lease holds now
    /// is unknown until it is read again.
    pub(in crate::elector) fn forget_view(&mut self) {
        self.view = View::Unknown;
    }
}

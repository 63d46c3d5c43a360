//! What the runner hears: its reads of the Lease, the watch's updates,
//! and what each observation changes.

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

use super::{Runner, SilentWatch};
use crate::elector::schedule::{Observation, Stop};
use crate::error::Error;
use crate::record;
use crate::watch::Update;

impl Runner {
    // === Reading ===

    pub(super) async fn read(&mut self) {
        let timeout = self.schedule.request_timeout(Instant::now());
        let result = tokio::select! {
            biased;
            () = self.token.cancelled() => return,
            result = self.api.get(timeout) => result,
        };
        self.read_answered(result, Instant::now());
    }

    pub(super) fn read_answered(&mut self, result: Result<Option<Lease>, Error>, now: Instant) {
        self.schedule.read_answered(now);
        match result {
            Ok(Some(lease)) => {
                self.answered(crate::error::LeaseOperation::Get);
                if self
                    .schedule
                    .is_stale(lease.metadata.resource_version.as_deref())
                {
                    tracing::debug!(
                        version = ?lease.metadata.resource_version,
                        "the read answered an older resourceVersion than one already seen; ignored"
                    );
                    self.schedule.back_off(now);
                } else {
                    self.observe(lease, now);
                }
            }
            Ok(None) => {
                self.answered(crate::error::LeaseOperation::Get);
                self.observe_missing(None, now);
            }
            Err(error) => {
                self.failed(&error);
                self.schedule.back_off(now);
                return;
            }
        }
        self.checked_silent_watch(now);
    }

    /// After the first read since the watch was distrusted: a warning if
    /// the read found a change the watch did not deliver; if not, nothing
    /// is wrong with the watch (a holder that stopped renewing, as a
    /// crashed one, sends no events): debug.
    pub(super) fn checked_silent_watch(&mut self, now: Instant) {
        let Some(SilentWatch { newest: before }) = self.silent_watch.take() else {
            return;
        };
        let retry = self.settings.retry_period;
        let missed = self.schedule.lease().is_none() || self.schedule.newest() != before.as_deref();
        if missed {
            tracing::warn!(
                "the watch missed a change of the Lease (it delivered nothing for {:?} while the Lease \
                 is held); polling every {retry:?} until it delivers again",
                record::watch_silence(retry),
            );
        } else if let Some((holder, silent)) = self.schedule.other_holder_silent_for(now) {
            tracing::debug!(
                %holder,
                "{holder} has not renewed the Lease for {silent:.1?}; the watch missed nothing \
                 (polling every {retry:?} until it renews, or the Lease expires)"
            );
        }
    }

    pub(super) fn on_update(&mut self, update: Update) {
        let now = Instant::now();
        match update {
            Update::Lease(lease) => {
                self.schedule.watch_progress(now);
                if self
                    .schedule
                    .is_newer(lease.metadata.resource_version.as_deref())
                {
                    self.observe(*lease, now);
                }
            }
            Update::Missing { version } => {
                self.schedule.watch_progress(now);
                if self.schedule.is_newer(version.as_deref()) {
                    self.observe_missing(version.as_deref(), now);
                }
            }
            Update::Progress => self.schedule.watch_progress(now),
            Update::Healthy(healthy) => self.schedule.watch_connected(healthy, now),
        }
    }

    pub(super) fn observe(&mut self, lease: Lease, now: Instant) {
        tracing::trace!(
            version = ?lease.metadata.resource_version,
            holder = ?record::holder(record::spec_of(&lease)),
            "observed the Lease"
        );
        let holder = record::holder(record::spec_of(&lease));
        let held_by_another = holder.is_some_and(|h| h != self.me());
        if let Some(holder) = holder.filter(|_| held_by_another)
            && let Some(named) = self.named_out.take()
        {
            if crate::successor::names(&named, holder) {
                tracing::debug!(%holder, "the successor named took the Lease");
            } else {
                tracing::warn!(
                    %holder,
                    named = %named,
                    "the handover named {named}, but {holder} took the Lease: no candidate \
                     with that identity (or that pod's default identity, {named}_<suffix>) took \
                     it first"
                );
            }
        }
        let Observation { stop, shortened } = self.schedule.observe(lease, now);
        if held_by_another && let Some(candidate) = &self.candidate {
            // Someone took what this elector handed over: no longer aside.
            candidate.rejoin();
        }
        if let Some(shortened) = shortened {
            tracing::warn!(
                recorded = ?shortened.recorded,
                "the Lease now records a shorter duration than this elector writes; \
                 the term ends by what followers may compute from it unless a renew restores it"
            );
        }
        match stop {
            Some(Stop::Preferred(preferred)) if self.yield_to.is_none() => {
                tracing::info!(
                    %preferred,
                    "the coordinating controller prefers {preferred}: ending the term, draining, releasing"
                );
                self.yield_to = Some(preferred);
            }
            Some(Stop::Preferred(_)) | None => {}
            Some(stop) => {
                self.stop_leading(&stop);
            }
        }
        self.publish();
        // After the state is published: whoever waits for the first read
        // then finds the state it read.
        self.telemetry.observed();
    }

    pub(super) fn observe_missing(&mut self, version: Option<&str>, now: Instant) {
        let stop = self.schedule.observe_missing(version, now);
        if let Some(stop) = stop {
            self.stop_leading(&stop);
        }
        self.publish();
        self.telemetry.observed();
    }
}

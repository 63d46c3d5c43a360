//! The last phase of an elector's task: stop leading, let the leader work
//! drain while renews keep others out, release the Lease.

use std::sync::Arc;

use tokio::time::{Instant, sleep_until};

use super::{Renewed, Runner};
use crate::elector::ShutdownOutcome;
use crate::elector::schedule::{ActiveTerm, Stop};
use crate::error::{Error, LeaseOperation};
use crate::record::{self, TermRecord};

impl Runner {
    pub(super) async fn shutdown(mut self) -> Result<ShutdownOutcome, Error> {
        if let Some(active) = self.stop_leading(&Stop::Shutdown) {
            self.drain(active).await;
        }
        if let Some(candidate) = self.candidate.take() {
            // Before the release: the controller must not pick this elector.
            candidate.leave(self.settings.request_timeout).await;
        }
        if !self.settings.release_on_cancel {
            self.telemetry.close(self.settings.request_timeout).await;
            return Ok(ShutdownOutcome::ReleaseSkipped);
        }
        let successor = self.feed.successor();
        let outcome = self.release(successor.as_deref()).await;
        self.publish();
        self.telemetry.close(self.settings.request_timeout).await;
        outcome
    }

    /// Waits (up to the drain timeout) until every guard of the ended term is
    /// dropped, renewing the Lease meanwhile as a leader would, so that leader
    /// work still running keeps every other replica out.
    ///
    /// That protection lasts only while renews succeed: the drain also ends
    /// at the term's deadline (the renew deadline after the last renew that
    /// succeeded), since from then on another replica may lead. Work still
    /// running then is unprotected; the guards' deadline says so and
    /// `run_while_leading` drops its work.
    pub(super) async fn drain(&mut self, active: ActiveTerm) {
        let settings = Arc::clone(&self.settings);
        let until = record::after(Instant::now(), settings.drain_timeout);
        self.schedule.drain(active);
        while let Some(active) = self.schedule.draining() {
            let (ends_at, renew_at) = (active.ends_at, active.renew_at.min(active.ends_at));
            tokio::select! {
                biased;
                _ = &mut active.drained => break,
                () = sleep_until(until) => {
                    tracing::warn!(
                        "leader work did not finish within the drain timeout ({:?}); releasing the Lease anyway",
                        settings.drain_timeout
                    );
                    break;
                }
                () = sleep_until(ends_at) => {
                    tracing::warn!(
                        "leader work still runs, but the Lease could not be renewed within the renew deadline: \
                         from now on another replica may lead, so the work is no longer protected"
                    );
                    break;
                }
                () = sleep_until(renew_at) => {}
            }
            if self.schedule.view_unknown() {
                self.read_for_drain().await;
            }
            if matches!(self.renew().await, Renewed::Lost) && !self.schedule.view_unknown() {
                tracing::warn!("the Lease is no longer ours while leader work drains");
                break;
            }
        }
        if let Some(active) = self.schedule.end_drain() {
            active.unprotect(Instant::now());
        }
    }

    /// Releases the Lease if it carries a record this elector wrote, naming
    /// `successor`: conditional on the version we read, and re-read first
    /// when the view is unknown (a write cut off by the shutdown may have
    /// landed).
    pub(super) async fn release(
        &mut self,
        successor: Option<&str>,
    ) -> Result<ShutdownOutcome, Error> {
        let timeout = self.settings.request_timeout;
        if !self.schedule.wrote_anything() {
            // It never wrote the Lease, so it cannot hold it (whether the
            // server was ever reached or not).
            return Ok(ShutdownOutcome::NotHolding);
        }
        // Two conflicts (a renew cut off by the shutdown may land after the
        // read) or one failure: every attempt is conditional, so trying again
        // is safe, and a release that is not written costs the followers a
        // lease duration.
        let mut failed_once = false;
        for _ in 0..3 {
            if self.schedule.view_unknown() {
                match self.api.get(timeout).await? {
                    Some(lease) => self.observe(lease, Instant::now()),
                    None => self.observe_missing(None, Instant::now()),
                }
            }
            let Some(lease) = self.schedule.lease().cloned() else {
                return Ok(ShutdownOutcome::NotHolding);
            };
            let spec = record::spec_of(&lease);
            if record::holder(spec) != Some(self.me())
                || !self.schedule.wrote(&TermRecord::of(spec))
            {
                return Ok(ShutdownOutcome::NotHolding);
            }
            tracing::trace!(version = ?lease.metadata.resource_version, "releasing the Lease");
            let spec = record::release(spec, self.settings.clock.now());
            let release = crate::successor::to_write(&lease, spec, successor);
            match self
                .api
                .replace(LeaseOperation::Release, release, timeout)
                .await
            {
                Ok(lease) => {
                    if let Some(successor) = successor {
                        tracing::info!(%successor, "released the Lease, naming {successor} to take it");
                    } else {
                        tracing::info!("released the Lease");
                    }
                    self.observe(lease, Instant::now());
                    return Ok(ShutdownOutcome::Released);
                }
                Err(Error::Conflict { .. }) => self.schedule.forget_view(),
                Err(error) if failed_once || !error.is_retryable() => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, "the release failed; trying once more");
                    failed_once = true;
                    // It may have landed without its answer.
                    self.schedule.forget_view();
                }
            }
        }
        Err(Error::Conflict {
            operation: LeaseOperation::Release,
            namespace: self.api.namespace().to_owned(),
            name: self.api.name().to_owned(),
        })
    }

    /// A read during the drain (after a conflict), not cut off by the token
    /// (it is cancelled already) but bounded by the term.
    async fn read_for_drain(&mut self) {
        let timeout = self.schedule.request_timeout(Instant::now());
        let result = self.api.get(timeout).await;
        self.read_answered(result, Instant::now());
    }
}

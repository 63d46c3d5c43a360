//! A handover asked through the handle: end the term, drain, release the
//! Lease naming the successor, and stay a candidate that steps aside.

use std::sync::Arc;

use super::Runner;
use crate::candidate::Standing;
use crate::elector::schedule::Stop;
use crate::elector::{HandoverOutcome, ShutdownOutcome, Successor};
use crate::error::Error;

impl Runner {
    pub(super) async fn hand_over(&mut self, to: &Successor) -> Result<HandoverOutcome, Error> {
        if let Successor::Named(identity) = to
            && identity == self.me()
        {
            return Err(Error::HandoverToSelf {
                identity: identity.clone(),
            });
        }
        let Some(active) = self.stop_leading(&Stop::Handover) else {
            return Ok(HandoverOutcome::NotLeading);
        };
        self.drain(active).await;
        let successor: Option<Arc<str>> = match to {
            Successor::Named(identity) => {
                self.named_out = Some(identity.clone());
                Some(Arc::from(identity.as_str()))
            }
            Successor::Any => self.feed.successor(),
        };
        // From here until someone else takes the Lease, this candidate
        // writes last (see `successor::deferral`) ...
        self.schedule.step_aside();
        // ... and in coordinated election it withdraws its LeaseCandidate
        // (for a lease duration at most), so that the controller picks
        // another; when the controller itself prefers another, it stays.
        if let Some(candidate) = &self.candidate
            && !matches!(to, Successor::Named(n) if self.schedule.preferred() == Some(n.as_str()))
            && candidate.standing() == Standing::Registered
        {
            let until = tokio::time::Instant::now() + self.settings.lease_duration;
            candidate
                .withdraw(until, self.settings.request_timeout)
                .await;
        }
        match self.release(successor.as_deref()).await? {
            ShutdownOutcome::Released => Ok(HandoverOutcome::Released {
                successor: successor.map(|s| s.to_string()),
            }),
            // The term ended while draining (the Lease was taken, or the
            // renew deadline passed): there was nothing left to hand over.
            _ => Ok(HandoverOutcome::NotLeading),
        }
    }
}

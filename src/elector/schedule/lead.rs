//! The schedule's writes and terms: what a write sends, what its answer
//! changes, and the term it starts.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ActiveTerm, Schedule, View};
use crate::error::LeaseOperation;
use crate::record::{self, TermRecord, Verdict};
use crate::state::{Deadline, Term};

/// A write the schedule calls for: the operation, the Lease it is based on
/// (`None`: a create) and the spec it sends.
#[derive(Debug)]
pub(in crate::elector) struct Write {
    pub(in crate::elector) operation: LeaseOperation,
    pub(in crate::elector) based_on: Option<Lease>,
    pub(in crate::elector) spec: LeaseSpec,
}

/// A term just started: the term, its fencing token if the server's
/// resourceVersion is one, and since when the Lease was free to take.
#[derive(Debug)]
pub(in crate::elector) struct Started {
    pub(in crate::elector) term: Term,
    pub(in crate::elector) fencing: Option<u64>,
    pub(in crate::elector) free_since: Option<Instant>,
}

impl Schedule {
    /// The write `verdict` calls for at `now` (a create or an acquire), with
    /// `wall` as the time it records: until an answer says otherwise, the
    /// record it writes may land, so it is remembered as ours. `None` when
    /// there is nothing to write (a wait, or an acquire with no Lease seen).
    pub(in crate::elector) fn write(
        &mut self,
        verdict: &Verdict,
        wall: Timestamp,
        now: Instant,
    ) -> Option<Write> {
        let based_on = match (verdict, self.lease()) {
            (Verdict::Create, _) => None,
            (Verdict::Acquire, Some(lease)) => Some(lease.clone()),
            _ => return None,
        };
        let (operation, spec) = record::write_for(
            verdict,
            based_on.as_ref().map(record::spec_of),
            &self.timing.identity,
            self.timing.lease_duration_secs,
            wall,
        )?;
        self.free_since.get_or_insert(now);
        self.remember(TermRecord::of(&spec));
        Some(Write {
            operation,
            based_on,
            spec,
        })
    }

    /// The renew of the current (or draining) term, with `wall` as the time
    /// it records, if the Lease still carries the term's record.
    pub(in crate::elector) fn renew_write(&self, wall: Timestamp) -> Option<Write> {
        let based_on = self.renew_basis()?;
        let (operation, spec) = record::write_for(
            &Verdict::Renew,
            Some(record::spec_of(&based_on)),
            &self.timing.identity,
            self.timing.lease_duration_secs,
            wall,
        )?;
        Some(Write {
            operation,
            based_on: Some(based_on),
            spec,
        })
    }

    // === Writing ===

    /// A create or acquire conflicted: read again. After a create, also wait
    /// a retry period: someone else created it and leads, and a read that
    /// still says "missing" (a lagging cache) must not turn into a loop.
    pub(in crate::elector) fn write_conflicted(&mut self, verdict: &Verdict, now: Instant) {
        self.view = View::Unknown;
        if *verdict == Verdict::Create {
            self.create_after = now + self.timing.retry_period;
        }
    }

    /// The term being renewed (the current one, or the one draining), and
    /// the Lease to base the renew on, if the Lease still carries its record.
    pub(in crate::elector) fn renew_basis(&self) -> Option<Lease> {
        let active = self.term.as_ref().or(self.draining.as_ref())?;
        match &self.view {
            View::Present(observed)
                if record::still_holds(&observed.term_record(), &active.record) =>
            {
                Some(observed.lease.clone())
            }
            _ => None,
        }
    }

    /// A renew sent at `sent` was answered at `now`; `extended` if the
    /// server stored a new record (the term then runs from `sent`), else the
    /// next attempt is `retry_at`.
    pub(in crate::elector) fn renewed(&mut self, sent: Instant, extended: bool, retry_at: Instant) {
        let timing = self.timing.clone();
        let Some(active) = self.term.as_mut().or(self.draining.as_mut()) else {
            return;
        };
        if extended {
            active.renewed_sent = sent;
            active.renew_at = sent + timing.retry_period;
            active.set_end(record::term_end(
                sent,
                timing.renew_deadline,
                timing.lease_duration,
                Some(timing.lease_duration),
            ));
        } else {
            active.renew_at = retry_at;
        }
    }

    /// When a failed renew is retried: at once after a timeout (the
    /// timed-out connection is dropped, so the retry uses a fresh one), a
    /// retry period later otherwise.
    pub(in crate::elector) fn retry_at(&self, timed_out: bool, now: Instant) -> Instant {
        if timed_out {
            now
        } else {
            now + self.timing.retry_period
        }
    }

    // === Terms ===

    /// Starts a term with the Lease just written (by a request sent at
    /// `sent`), if the answer came within the renew deadline; `drained`
    /// closes when the term's guards are gone. Returns the term, and the
    /// fencing token if the server's resourceVersion is one.
    pub(in crate::elector) fn start_term(
        &mut self,
        sent: Instant,
        now: Instant,
        drained: crate::shared::Drained,
    ) -> Option<Started> {
        if now >= record::after(sent, self.timing.renew_deadline) {
            self.back_off(now);
            return None;
        }
        let View::Present(observed) = &self.view else {
            return None;
        };
        let record = observed.term_record();
        let fencing = record::fencing_token(&observed.lease);
        let ends_at = record::term_end(
            sent,
            self.timing.renew_deadline,
            self.timing.lease_duration,
            record::lease_duration(record::spec_of(&observed.lease)),
        );
        self.terms += 1;
        let token = CancellationToken::new();
        let term = Term {
            id: self.terms,
            fencing_token: fencing.unwrap_or(0),
            started_at: now,
            token: token.clone(),
            ends: Deadline::new(ends_at),
        };
        self.remember(record.clone());
        self.term = Some(ActiveTerm {
            term: term.clone(),
            record,
            renewed_sent: sent,
            ends_at,
            renew_at: sent + self.timing.retry_period,
            drained,
            _cancel_on_drop: token.drop_guard(),
        });
        Some(Started {
            term,
            fencing,
            free_since: self.free_since.take(),
        })
    }

    /// Ends the current term, if any: its token is cancelled at once.
    pub(in crate::elector) fn stop_term(&mut self) -> Option<ActiveTerm> {
        let active = self.term.take()?;
        active.term.token.cancel();
        Some(active)
    }
}

//! Faults in what answers say and when they arrive: write answers lost or
//! late after the write was applied, reads answered from an old snapshot.

use std::collections::BTreeMap;

use hyper::Response;
use serde_json::Value;

use crate::http::{Body, Dropped, Shared};
use crate::status::{ApiError, LEASES};
use crate::store::Store;

/// The answer to a write of `client`, once the write was applied (or
/// refused): dropped with the connection, delayed, or as it is.
///
/// # Errors
/// [`Dropped`] when the client's write answers are lost.
pub(crate) async fn write_answer(
    shared: &Shared,
    client: &str,
    answer: Response<Body>,
) -> Result<Response<Body>, Dropped> {
    let faults = shared.faults.snapshot();
    if faults.flagged(crate::faults::Flag::LoseWriteAnswers, client) {
        return Err(Dropped);
    }
    let delay = faults.write_answer_delay(client);
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.shutdown.cancelled() => return Err(Dropped),
        }
    }
    Ok(answer)
}

/// The Leases as they were at one `resourceVersion`, for stale reads.
#[derive(Debug)]
pub(crate) struct Snapshot {
    objects: BTreeMap<(String, String), Value>,
    version: u64,
}

impl Snapshot {
    /// The store as it is now.
    pub(crate) fn of(store: &Store) -> Self {
        let (items, version) = store.list(None, |_| true);
        let objects = items
            .into_iter()
            .map(|object| {
                let key = |field: &str| {
                    object["metadata"][field]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                };
                ((key("namespace"), key("name")), object)
            })
            .collect();
        Self { objects, version }
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// As [`Store::get`], at the snapshot's version.
    pub(crate) fn get(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| LEASES.not_found(name))
    }

    /// As [`Store::list`], at the snapshot's version.
    pub(crate) fn list(
        &self,
        ns: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let items = self
            .objects
            .iter()
            .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
            .filter(|v| keep(v))
            .cloned()
            .collect();
        (items, self.version)
    }
}

//! Faults in what answers say and when they arrive: write answers lost or
//! late after the write was applied, reads answered from an old snapshot.

use hyper::Response;
use serde_json::Value;

use crate::http::{Body, Dropped, Shared};
use crate::resource::Resource;
use crate::status::ApiError;
use crate::store::{Objects, Store, get_in, list_in};

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

/// The objects as they were at one `resourceVersion`, for stale reads.
#[derive(Debug)]
pub(crate) struct Snapshot {
    objects: Objects,
    version: u64,
}

impl Snapshot {
    /// The store as it is now.
    pub(crate) fn of(store: &Store) -> Self {
        let (objects, version) = store.objects();
        Self { objects, version }
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// As [`Store::get`], at the snapshot's version.
    pub(crate) fn get(&self, resource: Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        get_in(&self.objects, resource, ns, name)
    }

    /// As [`Store::list`], at the snapshot's version.
    pub(crate) fn list(
        &self,
        resource: Resource,
        ns: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        (list_in(&self.objects, resource, ns, keep), self.version)
    }
}

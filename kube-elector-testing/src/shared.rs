//! Everything one server owns, shared by the handlers of every request.

use tokio_util::sync::CancellationToken;

use crate::events::Events;
use crate::faults::Faults;
use crate::resource::Gates;
use crate::store::Store;

/// Everything one server owns.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) events: Events,
    pub(crate) faults: Faults,
    pub(crate) shutdown: CancellationToken,
    /// What the server serves, and how it treats what it serves.
    pub(crate) gates: Gates,
}

impl Shared {
    pub(crate) fn new(gates: Gates) -> Self {
        Self {
            gates,
            store: Store::new(gates),
            events: Events::default(),
            faults: Faults::default(),
            shutdown: CancellationToken::new(),
        }
    }

    /// See `LeaseApiServer::stop_gracefully`.
    pub(crate) fn stop_gracefully(&self, linger: std::time::Duration) {
        let until = tokio::time::Instant::now() + linger;
        self.faults.modify(|s| s.stopping = Some(until));
    }

    /// See `LeaseApiServer::restart`.
    pub(crate) fn restart(&self) {
        self.store.restart();
        self.faults.modify(|s| {
            s.stopping = None;
            s.restarts += 1;
        });
    }
}

//! Where a watch leaves what it saw for one elector: a short queue that
//! never blocks the sender, so one slow elector cannot hold up a watch that
//! serves many.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::Notify;

/// What a watch saw (the per-Lease watcher's, or a hub's for one member).
#[derive(Debug)]
pub(crate) enum Update {
    /// The Lease as it is now.
    Lease(Box<Lease>),
    /// There is no Lease (as of this `resourceVersion`, if known).
    Missing { version: Option<String> },
    /// The watch delivered a bookmark: it is alive, nothing changed.
    Progress,
    /// Whether the watch is established; while it is not, the runner polls.
    Healthy(bool),
}

/// How many updates wait for an elector before the oldest observation is
/// dropped. Only the newest record matters to an elector (older versions
/// are ignored on arrival), so dropping one loses nothing; health changes
/// are never dropped.
const CAPACITY: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    queue: Mutex<VecDeque<Update>>,
    ready: Notify,
    closed: AtomicBool,
}

impl Mailbox {
    /// Leaves `update` for the elector; `false` once the elector is gone.
    pub(crate) fn post(&self, update: Update) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() >= CAPACITY
                && let Some(oldest) = queue.iter().position(|u| !matches!(u, Update::Healthy(_)))
            {
                queue.remove(oldest);
            }
            queue.push_back(update);
        }
        self.ready.notify_one();
        true
    }

    fn take(&self) -> Option<Update> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

/// The elector's end of a [`Mailbox`]: closes it when dropped, so watches
/// stop serving an elector that is gone.
#[derive(Debug)]
pub(crate) struct Inbox(Arc<Mailbox>);

impl Inbox {
    pub(crate) fn new() -> (Self, Arc<Mailbox>) {
        let mailbox = Arc::new(Mailbox::default());
        (Self(Arc::clone(&mailbox)), mailbox)
    }

    /// The next update, in the order they were posted.
    pub(crate) async fn recv(&self) -> Update {
        loop {
            if let Some(update) = self.0.take() {
                return update;
            }
            self.0.ready.notified().await;
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn updates_arrive_in_order_and_overflow_drops_the_oldest_observation_only() {
        let (inbox, mailbox) = Inbox::new();
        assert!(mailbox.post(Update::Healthy(false)));
        for _ in 0..CAPACITY {
            assert!(mailbox.post(Update::Progress));
        }
        assert!(mailbox.post(Update::Healthy(true)));
        assert!(matches!(inbox.recv().await, Update::Healthy(false)));
        // Two observations made room: one for the 64th, one for the health change.
        for _ in 0..CAPACITY - 2 {
            assert!(matches!(inbox.recv().await, Update::Progress));
        }
        assert!(matches!(inbox.recv().await, Update::Healthy(true)));
        drop(inbox);
        assert!(
            !mailbox.post(Update::Progress),
            "a closed mailbox refuses posts"
        );
    }
}

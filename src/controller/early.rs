//! What a warm follower saw change, reconciled first when it starts leading.
//!
//! A new term reconciles the whole warm store (`reconcile_all_on`), in no
//! particular order: with N objects, the few that changed while nobody led
//! wait behind up to N reconciles that find nothing to do. So a follower
//! remembers which objects changed while it followed (a watch event after
//! its store was read, not the store's first read), and a new term
//! reconciles those at once, beside the Controller's pass over the whole
//! store, which still reconciles every object (those again too: reconciles
//! are idempotent). No object is reconciled twice at once: each reconcile
//! of a warm controller holds its object's slot here while it runs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use kube::{Resource, ResourceExt};
use tokio::sync::Notify;

/// How many of the changed objects a new term reconciles at once, beside
/// the Controller's own concurrency.
pub(super) const CONCURRENCY: usize = 8;

/// How long into a term the pass over the whole store waits, so that the
/// changed objects go first: those a follower saw change, and those whose
/// watch events reach it just after it starts leading (a graceful
/// handover's), which the Controller reconciles at once while its queue is
/// still empty. Short beside any resync, long beside a watch event.
pub(super) const PASS_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// An object's key: its namespace and name.
pub(super) fn key_of<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// What a warm controller's follower saw change, and which objects are
/// being reconciled now.
#[derive(Debug, Default)]
pub(super) struct Early {
    seen: Mutex<Seen>,
    /// The objects being reconciled, and what wakes a reconcile of the same
    /// object waiting for its turn.
    running: Mutex<HashMap<String, Arc<Notify>>>,
}

/// What a follower knows of the objects while it follows.
#[derive(Debug, Default)]
struct Seen {
    /// Each object's `resourceVersion` when this follower began following
    /// (taken from its store at the first reconcile it skipped), `None`
    /// while leading.
    baseline: Option<HashMap<String, String>>,
    /// The objects that changed since then.
    changed: HashSet<String>,
}

impl Early {
    /// A reconcile of `object` was due while this replica did not lead.
    /// `store` is the warm store, read once per stretch of following to
    /// know what it held then.
    pub(super) fn skipped<K: Resource>(&self, object: &K, store: impl FnOnce() -> Vec<Arc<K>>) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let baseline = seen.baseline.get_or_insert_with(|| {
            store()
                .iter()
                .map(|o| (key_of(o.as_ref()), o.resource_version().unwrap_or_default()))
                .collect()
        });
        let key = key_of(object);
        if baseline.get(&key) != Some(&object.resource_version().unwrap_or_default()) {
            seen.changed.insert(key);
        }
    }

    /// The objects that changed while this replica followed, forgotten
    /// here: called when a term starts (the next stretch of following reads
    /// its own baseline).
    pub(super) fn take_changed(&self) -> HashSet<String> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.baseline = None;
        std::mem::take(&mut seen.changed)
    }

    /// Waits until no other reconcile of `key` runs, and holds its slot
    /// until the returned guard is dropped.
    pub(super) async fn slot(self: &Arc<Self>, key: String) -> Slot {
        loop {
            let notify = {
                let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(notify) = running.get(&key) {
                    Arc::clone(notify)
                } else {
                    running.insert(key.clone(), Arc::new(Notify::new()));
                    return Slot {
                        early: Arc::clone(self),
                        key,
                    };
                }
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before the map is read again: a release between
            // the two still wakes this one.
            notified.as_mut().enable();
            if !self
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key)
                .is_some_and(|n| Arc::ptr_eq(n, &notify))
            {
                continue;
            }
            notified.await;
        }
    }
}

/// A reconcile's hold on its object (see [`Early::slot`]).
#[derive(Debug)]
pub(super) struct Slot {
    early: Arc<Early>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let notify = self
            .early
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn lease(name: &str, version: &str) -> Arc<Lease> {
        Arc::new(Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            spec: None,
        })
    }

    #[test]
    fn only_objects_that_changed_after_the_first_read_are_early() {
        let early = Early::default();
        let store = vec![lease("a", "1"), lease("b", "2")];
        // The store's first read: every object is due, none changed.
        for object in &store {
            early.skipped(object.as_ref(), || store.clone());
        }
        // Then b changes and c is created.
        early.skipped(lease("b", "5").as_ref(), || unreachable!("read once"));
        early.skipped(lease("c", "6").as_ref(), || unreachable!("read once"));
        let changed = early.take_changed();
        assert_eq!(
            changed,
            HashSet::from(["ns/b".to_owned(), "ns/c".to_owned()])
        );
        // The next stretch of following reads its own baseline.
        early.skipped(lease("a", "1").as_ref(), || vec![lease("a", "1")]);
        assert!(early.take_changed().is_empty());
    }

    #[tokio::test]
    async fn a_second_reconcile_of_an_object_waits_for_the_first() {
        let early = Arc::new(Early::default());
        let first = early.slot("ns/a".into()).await;
        let other = early.slot("ns/b".into()).await; // another object: at once
        let second = tokio::spawn({
            let early = Arc::clone(&early);
            async move { early.slot("ns/a".into()).await }
        });
        tokio::task::yield_now().await;
        assert!(
            !second.is_finished(),
            "two reconciles of one object at once"
        );
        drop(first);
        let second = tokio::time::timeout(std::time::Duration::from_secs(5), second)
            .await
            .expect("the second gets the slot once the first is done")
            .expect("task");
        drop((second, other));
        assert!(early.running.lock().unwrap().is_empty());
    }
}

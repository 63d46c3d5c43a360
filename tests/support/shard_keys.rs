//! Who owned which key when, as users of sharded electors see it: each
//! replica's owned shards (`ShardedHandle::subscribe`), recorded on one
//! monotonic clock, and mapped to keys through the replica's own shard
//! count. Two replicas of different counts own different shards of one
//! key, so ownership is compared per key, never per shard.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use kube_elector::shard::{OwnedShards, shard_for_key};
use tokio::sync::watch;
use tokio::time::Instant;

/// One interval during which `who` (of `count` shards) owned `shard`.
#[derive(Clone, Debug)]
pub struct Owned {
    pub who: String,
    pub count: u32,
    pub shard: u32,
    pub start: Instant,
    pub end: Option<Instant>,
}

/// Every replica's ownership intervals.
#[derive(Clone, Default)]
pub struct KeyRecorder {
    all: Arc<Mutex<Vec<Owned>>>,
}

impl KeyRecorder {
    /// Records the shards published on `rx` as owned by `who`, which uses
    /// `count` shards, until the sender is gone (then whatever was open
    /// ends).
    pub fn watch(&self, mut rx: watch::Receiver<OwnedShards>, who: &str, count: u32) {
        let all = Arc::clone(&self.all);
        let who = who.to_owned();
        tokio::spawn(async move {
            let mut open = BTreeSet::new();
            loop {
                let now: BTreeSet<u32> = rx.borrow_and_update().shards().collect();
                let at = Instant::now();
                {
                    let mut held = all.lock().unwrap_or_else(PoisonError::into_inner);
                    for shard in open.difference(&now) {
                        if let Some(i) = held.iter_mut().find(|i| {
                            i.who == who && i.shard == *shard && i.count == count && i.end.is_none()
                        }) {
                            i.end = Some(at);
                        }
                    }
                    for shard in now.difference(&open) {
                        held.push(Owned {
                            who: who.clone(),
                            count,
                            shard: *shard,
                            start: at,
                            end: None,
                        });
                    }
                }
                open = now;
                if rx.changed().await.is_err() {
                    let at = Instant::now();
                    let mut held = all.lock().unwrap_or_else(PoisonError::into_inner);
                    for i in held.iter_mut().filter(|i| i.who == who && i.end.is_none()) {
                        i.end = Some(at);
                    }
                    return;
                }
            }
        });
    }

    pub fn intervals(&self) -> Vec<Owned> {
        self.all
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys (of `keys`) two replicas owned at one instant, each with a
    /// description of the first such pair of intervals.
    pub fn keys_owned_twice(&self, keys: &[String]) -> Vec<String> {
        let all = self.intervals();
        let now = Instant::now();
        let mut out = Vec::new();
        for key in keys {
            let mine: Vec<&Owned> = all
                .iter()
                .filter(|i| shard_for_key(key, i.count) == i.shard)
                .collect();
            'pairs: for (n, a) in mine.iter().enumerate() {
                for b in &mine[n + 1..] {
                    if a.who == b.who {
                        continue;
                    }
                    let start = a.start.max(b.start);
                    let end = a.end.unwrap_or(now).min(b.end.unwrap_or(now));
                    if start < end {
                        out.push(format!(
                            "{key}: {} (shard {} of {}) and {} (shard {} of {}) for {:?}",
                            a.who,
                            a.shard,
                            a.count,
                            b.who,
                            b.shard,
                            b.count,
                            end - start
                        ));
                        break 'pairs;
                    }
                }
            }
        }
        out
    }
}

/// `n` keys as objects are named: `<namespace>/<name>`.
pub fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("ns-{}/object-{i}", i % 7)).collect()
}

//! Which identity stands for which Lease's `LeaseCandidate` in this
//! process.
//!
//! A `LeaseCandidate` is named after the elector's identity, and
//! kube-apiserver's controller writes that name as the holder it elects:
//! one name cannot stand for two Leases (the second declaration would
//! overwrite the first). Electors of one process claim their name here at
//! construction; a second Lease for a claimed name is refused. Several
//! electors of one identity for one Lease (instances of one replica) share
//! the claim. Electors of other processes are out of sight: the candidate
//! task checks the object it finds (see `Task::ensure`).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// (namespace, identity) → (the Lease, how many electors claim it).
type Claims = BTreeMap<(String, String), (String, usize)>;

static CLAIMS: Mutex<Claims> = Mutex::new(BTreeMap::new());

/// An elector's claim on its candidate name, given up when dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    key: (String, String),
}

impl Claim {
    /// Claims `identity` in `namespace` for `lease`.
    ///
    /// # Errors
    /// The Lease another elector of this process claimed the name for.
    pub(crate) fn take(namespace: &str, identity: &str, lease: &str) -> Result<Self, String> {
        let key = (namespace.to_owned(), identity.to_owned());
        let mut claims = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
        match claims.get_mut(&key) {
            Some((claimed, _)) if claimed != lease => return Err(claimed.clone()),
            Some((_, count)) => *count += 1,
            None => {
                claims.insert(key.clone(), (lease.to_owned(), 1));
            }
        }
        Ok(Self { key })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claims = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, count)) = claims.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                claims.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_stands_for_one_lease_while_claimed() {
        let first = Claim::take("ns", "claim-test", "a").expect("free");
        let twin = Claim::take("ns", "claim-test", "a").expect("the same Lease");
        assert_eq!(
            Claim::take("ns", "claim-test", "b").unwrap_err(),
            "a",
            "another Lease"
        );
        drop(Claim::take("other-ns", "claim-test", "b").expect("another namespace"));
        drop(first);
        assert!(
            Claim::take("ns", "claim-test", "b").is_err(),
            "still claimed"
        );
        drop(twin);
        drop(Claim::take("ns", "claim-test", "b").expect("given up"));
    }
}

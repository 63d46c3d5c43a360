//! Which shard an object belongs to, and this replica's default identity.

use super::assign::fnv1a;

/// The shard of the object whose key is `key`, among `shards` shards: the
/// 64-bit FNV-1a hash of the key's UTF-8 bytes, modulo `shards` (0 when
/// `shards` is 0).
///
/// This function is part of the crate's stable contract: it returns the
/// same shard for the same key and count on every platform and in every
/// version, so replicas of different versions agree during an upgrade. It
/// is not Rust's `DefaultHasher`, whose seed differs per process.
///
/// Use one key per object that every replica derives alike, such as
/// `<namespace>/<name>` (what a kube-runtime `ObjectRef` names), and gate
/// each reconcile on owning its shard:
///
/// ```
/// use kube_elector::shard::shard_for_key;
///
/// let shard = shard_for_key("default/my-config", 16);
/// assert!(shard < 16);
/// assert_eq!(shard, shard_for_key("default/my-config", 16));
/// ```
#[must_use]
pub fn shard_for_key(key: &str, shards: u32) -> u32 {
    if shards == 0 {
        return 0;
    }
    // Below `shards`, so it fits.
    u32::try_from(fnv1a(key.as_bytes()) % u64::from(shards)).unwrap_or(0)
}

/// `POD_NAME` (or the host name), made to fit the end of a Lease name,
/// plus a random suffix: two instances of one pod name (a `StatefulSet`
/// pod and its replacement) must not share an identity.
pub(crate) fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let mut fitted: String = base
        .trim()
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .take(40)
        .collect();
    if fitted.is_empty() {
        fitted.push_str("kube-elector");
    }
    format!("{fitted}-{:08x}", random())
}

/// 32 random bits from the standard library's per-process hasher seed and
/// the time, without a dependency.
fn random() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    // The low half of a 64-bit hash.
    u32::try_from(hasher.finish() & u64::from(u32::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_the_same_shard_in_every_version() {
        // Part of the contract: changing these breaks mixed-version fleets.
        assert_eq!(shard_for_key("default/my-config", 16), 10);
        assert_eq!(
            shard_for_key("", 16),
            (0xcbf2_9ce4_8422_2325_u64 % 16) as u32
        );
        assert_eq!(shard_for_key("anything", 1), 0);
        assert_eq!(shard_for_key("anything", 0), 0);
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let mut counts = [0_u32; 8];
        for i in 0..8000 {
            counts[shard_for_key(&format!("ns/object-{i}"), 8) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn the_default_identity_fits_a_lease_name() {
        let identity = default_identity();
        assert!(
            identity
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
            "{identity}"
        );
    }
}

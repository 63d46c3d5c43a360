//! The successor rule, in one place: the annotation in which a releasing
//! leader names who takes over (its codec), how long each candidate defers
//! its write once the Lease is free (`deferral`), and who stands first in
//! a process's line of candidates for one Lease (`first_in_line`).
//!
//! Pure: no I/O, no clock. Naming a successor and standing in line only
//! delay writes; who may write is still decided by the conditional write.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::record::{spec_of, transitions};

/// The annotation in which a releasing leader names who takes over.
///
/// An annotation, not `spec.preferredHolder`: kube-apiserver drops
/// `preferredHolder` (and `strategy`) while its `CoordinatedLeaderElection`
/// gate is off, rejects it without `strategy` while the gate is on, and
/// client-go's writes rebuild the spec; an annotation survives all three.
/// Its value is `<leaseTransitions>/<identity>`: the name applies only to
/// the record it was written with, so a later term (any acquire raises
/// `leaseTransitions`, client-go's too) makes a stale name inert even if a
/// peer carries the annotation along.
pub const SUCCESSOR_ANNOTATION: &str = "kube-elector.io/successor";

/// The value of [`SUCCESSOR_ANNOTATION`] naming `identity` on a release
/// that keeps `spec`'s `leaseTransitions`.
pub(crate) fn value(spec: &LeaseSpec, identity: &str) -> String {
    format!("{}/{identity}", transitions(spec))
}

/// Who the Lease names as its successor, if the name was written with the
/// record it carries now (and the Lease is free to take: a held Lease has
/// no successor yet).
pub(crate) fn named(lease: &Lease) -> Option<&str> {
    let value = lease
        .metadata
        .annotations
        .as_ref()?
        .get(SUCCESSOR_ANNOTATION)?;
    let (recorded, identity) = value.split_once('/')?;
    let spec = spec_of(lease);
    (recorded.parse::<i32>().ok()? == transitions(spec) && !identity.is_empty()).then_some(identity)
}

/// Whether the name a release wrote (`named`) names `identity`: the
/// identity itself, or a pod's name when `identity` is the default one
/// made from it (`<POD_NAME>_<random suffix>`), since a preStop hook or an
/// operator knows the new pod's name, not the suffix its elector drew.
pub(crate) fn names(named: &str, identity: &str) -> bool {
    identity == named
        || identity
            .strip_prefix(named)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|suffix| !suffix.is_empty() && !suffix.contains('_'))
}

/// Sets the successor annotation of `metadata` to `value`, or removes it.
pub(crate) fn set(metadata: &mut ObjectMeta, value: Option<String>) {
    match value {
        Some(value) => {
            metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(SUCCESSOR_ANNOTATION.to_owned(), value);
        }
        None => {
            if let Some(annotations) = metadata.annotations.as_mut() {
                annotations.remove(SUCCESSOR_ANNOTATION);
                if annotations.is_empty() {
                    metadata.annotations = None;
                }
            }
        }
    }
}

/// The object to write in place of `based_on` with `spec`: its metadata
/// as read (the `resourceVersion` the write is conditional on), naming
/// `successor` for a release that names one, and without a name on every
/// other write (the name has served its purpose once the Lease is written
/// again).
pub(crate) fn to_write(based_on: &Lease, spec: LeaseSpec, successor: Option<&str>) -> Lease {
    let mut metadata = based_on.metadata.clone();
    set(
        &mut metadata,
        successor.map(|identity| value(spec_of(based_on), identity)),
    );
    Lease {
        metadata,
        spec: Some(spec),
    }
}

/// How long a candidate waits, once the Lease is free to take (released,
/// expired or missing), before it writes: the named successor at once; when
/// none is named, the first candidate in line at once; everyone else a
/// bound (`grace`) later, and when a name is out, the first in line after
/// `grace` and the rest after twice that. So one release or expiry costs
/// one write per process whatever the number of candidates in it, and a
/// successor that never comes is replaced after `grace` (by one candidate,
/// then, if it does not come either, by the rest: no one waits forever).
/// A candidate that handed the Lease over (`aside`) writes last, three
/// bounds later, whatever the release named: it takes its Lease back only
/// if no one else did.
/// Deferring only delays a write; every write stays conditional, so the
/// order of the line decides nothing about safety.
pub(crate) fn deferral(
    named: Option<&str>,
    me: &str,
    first_in_line: bool,
    aside: bool,
    grace: Duration,
) -> Duration {
    if aside {
        return grace.saturating_mul(3);
    }
    match named {
        Some(named) if names(named, me) => Duration::ZERO,
        Some(_) if first_in_line => grace,
        Some(_) => grace.saturating_mul(2),
        None if first_in_line => Duration::ZERO,
        None => grace,
    }
}

/// A candidate in a process's line for one Lease.
pub(crate) trait InLine {
    /// The identity it campaigns as.
    fn identity(&self) -> &str;
    /// Whether it stands in line: it campaigns and does not lead.
    fn in_line(&self) -> bool;
}

impl<M: InLine> InLine for &M {
    fn identity(&self) -> &str {
        (**self).identity()
    }

    fn in_line(&self) -> bool {
        (**self).in_line()
    }
}

/// The first candidate in `line` (in the order they joined) that stands in
/// line and is not `except` (the successor named, or the one asking whom
/// to name).
pub(crate) fn first_in_line<M: InLine>(
    line: impl IntoIterator<Item = M>,
    except: Option<&str>,
) -> Option<M> {
    line.into_iter()
        .find(|m| m.in_line() && !except.is_some_and(|named| names(named, m.identity())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_matches_its_identity_or_the_default_identity_of_that_pod() {
        assert!(names("my-operator-7d9f", "my-operator-7d9f"));
        assert!(names("my-operator-7d9f", "my-operator-7d9f_b2kxq9"));
        assert!(!names("my-operator-7d9f", "my-operator-7d9f_"));
        assert!(!names("my-operator-7d9f", "my-operator-7d9f-2_b2kxq9"));
        assert!(!names("my-operator-7d9f", "my-operator-7d9_b2kxq9"));
        assert!(!names("my-operator-7d9f", "my-operator-7d9f_a_b"));
        let grace = Duration::from_secs(1);
        assert_eq!(
            deferral(Some("pod-b"), "pod-b_x1y2z3", false, false, grace),
            Duration::ZERO,
            "the pod named takes the release at once"
        );
        assert_eq!(
            deferral(Some("pod-b"), "pod-c_x1y2z3", false, false, grace),
            grace * 2
        );
    }

    fn lease(holder: Option<&str>, duration: Option<i32>, rv: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("l".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                lease_duration_seconds: duration,
                ..LeaseSpec::default()
            }),
        }
    }

    fn released(transitions: i32, annotation: Option<&str>) -> Lease {
        let mut lease = lease(Some(""), Some(1), "7");
        lease.spec.as_mut().unwrap().lease_transitions = Some(transitions);
        if let Some(value) = annotation {
            set(&mut lease.metadata, Some(value.to_owned()));
        }
        lease
    }

    #[test]
    fn a_successor_name_applies_only_to_the_record_it_was_written_with() {
        let spec = spec_of(&released(4, None)).clone();
        let value = value(&spec, "next/one");
        assert_eq!(value, "4/next/one");
        assert_eq!(named(&released(4, Some(&value))), Some("next/one"));
        // A later term (an acquire raised leaseTransitions) makes it inert,
        // even when a peer carried the annotation along.
        assert_eq!(named(&released(5, Some(&value))), None);
        for garbage in ["", "4", "4/", "x/next", "/next", "-1/next"] {
            assert_eq!(named(&released(4, Some(garbage))), None, "{garbage:?}");
        }
        assert_eq!(named(&released(4, None)), None);
    }

    #[test]
    fn setting_and_clearing_the_successor_keeps_other_annotations() {
        let mut meta = ObjectMeta::default();
        set(&mut meta, None);
        assert_eq!(meta.annotations, None);
        meta.annotations = Some([("other".to_owned(), "x".to_owned())].into());
        set(&mut meta, Some("1/a".into()));
        assert_eq!(meta.annotations.as_ref().unwrap().len(), 2);
        set(&mut meta, None);
        assert_eq!(
            meta.annotations,
            Some([("other".to_owned(), "x".to_owned())].into())
        );
        meta.annotations = Some([(SUCCESSOR_ANNOTATION.to_owned(), "1/a".into())].into());
        set(&mut meta, None);
        assert_eq!(meta.annotations, None, "no empty map is left behind");
    }

    #[test]
    fn only_the_named_or_else_the_first_in_line_writes_at_once() {
        let grace = Duration::from_millis(500);
        let d = |named, first| deferral(named, "me", first, false, grace);
        assert_eq!(d(Some("me"), false), Duration::ZERO);
        assert_eq!(d(Some("me"), true), Duration::ZERO);
        assert_eq!(d(Some("other"), true), grace);
        assert_eq!(d(Some("other"), false), grace * 2);
        assert_eq!(d(None, true), Duration::ZERO);
        assert_eq!(d(None, false), grace);
        assert_eq!(
            deferral(Some("other"), "me", false, false, Duration::MAX),
            Duration::MAX,
            "saturates"
        );
    }

    #[test]
    fn a_candidate_that_handed_the_lease_over_writes_after_everyone_else() {
        let grace = Duration::from_millis(500);
        let others = [
            deferral(Some("next"), "me", true, false, grace),
            deferral(Some("next"), "me", false, false, grace),
            deferral(None, "me", true, false, grace),
            deferral(None, "me", false, false, grace),
        ];
        for named in [None, Some("next"), Some("me")] {
            for first in [true, false] {
                let aside = deferral(named, "me", first, true, grace);
                assert!(
                    others.iter().all(|other| aside > *other),
                    "{aside:?} after {others:?}"
                );
            }
        }
    }
}

//! Unit tests of the sharded elector's parts that need no server: the
//! configuration's validation and the derived event stream.

use std::time::Duration;

use super::*;

#[test]
fn a_configuration_without_shards_or_with_a_bad_identity_is_refused_with_every_problem() {
    let error = ShardConfig::new("work", 0)
        .identity("Not_A_Name")
        .validate()
        .unwrap_err();
    assert!(matches!(error.problems[0], ShardConfigProblem::NoShards));
    assert!(matches!(
        error.problems[1],
        ShardConfigProblem::IdentityNotAName { .. }
    ));
    let bad_timings = ShardConfig::new("work", 4)
        .lease_duration(Duration::from_secs(1))
        .renew_deadline(Duration::from_secs(2))
        .validate()
        .unwrap_err();
    assert!(matches!(
        bad_timings.problems[0],
        ShardConfigProblem::Elector(_)
    ));
    assert!(ShardConfig::new("Bad Prefix", 4).validate().is_err());
    assert!(
        ShardConfig::new("work", 4)
            .identity("pod-1")
            .validate()
            .is_ok()
    );
}

//! Unit tests of the sharded elector's parts that need no server: the
//! configuration's validation and the derived event stream.

use std::time::Duration;

use super::*;
use crate::ElectorConfig;

#[test]
fn a_configuration_without_shards_or_with_a_bad_identity_is_refused_with_every_problem() {
    let error = ShardConfig::new(ElectorConfig::new("work").identity("Not_A_Name"), 0)
        .validate()
        .unwrap_err();
    assert!(matches!(error.problems[0], ShardConfigProblem::NoShards));
    assert!(matches!(
        error.problems[1],
        ShardConfigProblem::IdentityNotAName { .. }
    ));
    let bad_timings = ShardConfig::new(
        ElectorConfig::new("work")
            .lease_duration(Duration::from_secs(1))
            .renew_deadline(Duration::from_secs(2)),
        4,
    )
    .validate()
    .unwrap_err();
    assert!(matches!(
        bad_timings.problems[0],
        ShardConfigProblem::Elector(_)
    ));
    assert!(
        ShardConfig::new(ElectorConfig::new("Bad Prefix"), 4)
            .validate()
            .is_err()
    );
    assert!(
        ShardConfig::new(ElectorConfig::new("work").identity("pod-1"), 4)
            .validate()
            .is_ok()
    );
}

#[test]
fn every_option_of_the_template_reaches_the_shards_or_is_refused_with_its_reason() {
    let template = ElectorConfig::new("work")
        .identity("pod-1")
        .release_on_cancel(false)
        .adopt_own_lease(true)
        .drain_timeout(Duration::from_secs(3));
    let config = ShardConfig::new(template, 4);
    assert!(config.validate().is_ok());
    let shard = config.elector(config.shard_lease(0), "pod-1");
    assert_eq!(shard.lease_name, "work-0");
    assert!(!shard.release_on_cancel);
    assert!(shard.adopt_own_lease);
    assert_eq!(shard.drain_timeout, Duration::from_secs(3));

    let coordinated = ShardConfig::new(
        ElectorConfig::new("work")
            .identity("pod-1")
            .coordinated("1.34.0", "1.34.0"),
        4,
    );
    let error = coordinated.validate().unwrap_err();
    assert!(
        matches!(
            error.problems[..],
            [ShardConfigProblem::NotForShards {
                option: "coordinated",
                ..
            }]
        ),
        "{error}"
    );
}

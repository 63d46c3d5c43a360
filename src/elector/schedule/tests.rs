//! The schedule under paused time.

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::time::advance;

use super::*;
use crate::clock::SystemClock;

const LEASE: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(250);

fn settings() -> Settings {
    Settings {
        identity: "me".into(),
        lease_duration_secs: 2,
        lease_duration: LEASE,
        renew_deadline: DEADLINE,
        retry_period: RETRY,
        request_timeout: crate::config::attempt_timeout(DEADLINE, RETRY),
        release_on_cancel: true,
        drain_timeout: Duration::from_secs(5),
        overdue_work: crate::config::OverdueWork::Drop,
        adopt_own_lease: false,
        campaign: true,
        clock: Arc::new(SystemClock),
        coordination: None,
        annotations: Vec::new(),
        lease_metadata: crate::config::LeaseMetadata::default(),
        reporting: crate::config::Reporting::default(),
    }
}

fn lease(spec: LeaseSpec, rv: u64) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("l".into()),
            resource_version: Some(rv.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    }
}

fn held_by(holder: &str, rv: u64) -> Lease {
    lease(
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(2),
            ..LeaseSpec::default()
        },
        rv,
    )
}

/// A schedule that leads, with its term started by a write sent now.
fn leading() -> Schedule {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    let spec = record::acquire(None, "me", 2, jiff::Timestamp::now());
    s.remember(TermRecord::of(&spec));
    s.observe(lease(spec, 1), now);
    assert!(s.start_term(now, now, crate::shared::drain().1).is_some());
    s
}

#[tokio::test(start_paused = true)]
async fn a_term_ends_at_the_renew_deadline_unless_a_renew_extends_it() {
    let s = leading();
    let sent = Instant::now();
    advance(Duration::from_millis(999)).await;
    assert!(!s.term_over(Instant::now()));
    advance(Duration::from_millis(1)).await;
    assert!(s.term_over(Instant::now()));
    // A renew sent half-way extends the term to its own deadline.
    let mut s2 = leading();
    advance(DEADLINE / 2).await;
    let renew_sent = Instant::now();
    s2.renewed(renew_sent, true, renew_sent);
    advance(DEADLINE / 2).await;
    assert!(!s2.term_over(Instant::now()));
    assert!(s.term.as_ref().unwrap().ends_at == sent + DEADLINE);
}

#[tokio::test(start_paused = true)]
async fn a_renew_that_changed_nothing_does_not_extend_the_term() {
    let mut s = leading();
    let end = s.term.as_ref().unwrap().ends_at;
    advance(RETRY).await;
    let now = Instant::now();
    s.renewed(now, false, now + RETRY);
    assert_eq!(s.term.as_ref().unwrap().ends_at, end);
}

#[tokio::test(start_paused = true)]
async fn the_leader_renews_every_retry_period() {
    let s = leading();
    let now = Instant::now();
    assert_eq!(s.next_step(now), Step::Wait(now + RETRY));
    advance(RETRY).await;
    assert_eq!(s.next_step(Instant::now()), Step::Write(Verdict::Renew));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_renew_is_retried_at_once_another_failure_a_retry_period_later() {
    let mut s = leading();
    advance(RETRY).await;
    let now = Instant::now();
    let at = s.retry_at(true, now);
    s.renewed(now, false, at);
    assert_eq!(s.next_step(now), Step::Write(Verdict::Renew));
    let at = s.retry_at(false, now);
    s.renewed(now, false, at);
    assert_eq!(s.next_step(now), Step::Wait(now + RETRY));
}

#[tokio::test(start_paused = true)]
async fn a_failed_request_backs_off_a_retry_period_before_the_next_write() {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    s.back_off(now);
    assert_eq!(s.next_step(now), Step::Wait(now + RETRY));
    advance(RETRY).await;
    assert_eq!(s.next_step(Instant::now()), Step::Read);
}

#[tokio::test(start_paused = true)]
async fn a_follower_arms_one_timer_at_observed_plus_lease_duration() {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    s.watch_connected(true, now);
    s.observe(held_by("other", 5), now);
    // The watch must show progress within one renew interval and a
    // fifth; the takeover timer is at observed + lease.
    assert_eq!(
        s.next_step(now),
        Step::Wait(now + record::watch_silence(RETRY))
    );
    for _ in 0..8 {
        advance(RETRY).await;
        s.watch_progress(Instant::now());
    }
    assert_eq!(s.next_step(Instant::now()), Step::Write(Verdict::Acquire));
}

#[tokio::test(start_paused = true)]
async fn a_silent_watch_of_a_held_lease_turns_into_polling() {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    s.watch_connected(true, now);
    s.observe(held_by("other", 5), now);
    s.read_answered(now);
    assert!(!s.newly_distrusted(now));
    // A renew a little late (within the margin) is no silence.
    let silence = record::watch_silence(RETRY);
    advance(silence.saturating_sub(Duration::from_millis(1))).await;
    assert!(!s.newly_distrusted(Instant::now()), "a late renew");
    advance(Duration::from_millis(1)).await;
    let later = Instant::now();
    assert!(
        s.newly_distrusted(later),
        "one renew interval and the margin of silence"
    );
    assert_eq!(s.next_step(later), Step::Read);
    s.read_answered(later);
    assert_eq!(s.next_step(later), Step::Wait(later + RETRY));
    assert!(!s.newly_distrusted(later), "said once");
}

#[tokio::test(start_paused = true)]
async fn a_watch_that_fails_is_followed_by_a_read_at_once() {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    s.watch_connected(true, now);
    s.observe(held_by("other", 5), now);
    s.read_answered(now);
    advance(RETRY / 10).await;
    let failed = Instant::now();
    assert!(matches!(s.next_step(failed), Step::Wait(_)));
    s.watch_connected(false, failed);
    assert_eq!(
        s.next_step(failed),
        Step::Read,
        "a failure is known at once"
    );
    s.read_answered(failed);
    assert_eq!(s.next_step(failed), Step::Wait(failed + RETRY));
    // Connected again: trusted only once it shows progress.
    advance(RETRY * 2).await;
    let back = Instant::now();
    s.watch_connected(true, back);
    assert!(!s.watch_trusted(back), "silent since before it failed");
    s.watch_progress(back);
    assert!(s.watch_trusted(back));
}

#[tokio::test(start_paused = true)]
async fn an_observer_never_writes_and_sees_an_expired_holder_as_no_leader() {
    let now = Instant::now();
    let mut s = Schedule::new(
        &Settings {
            campaign: false,
            ..settings()
        },
        now,
    );
    s.watch_connected(true, now);
    assert_eq!(s.observe_missing(None, now).map(|_| ()), None);
    assert!(matches!(s.next_step(now), Step::Wait(_)), "no create");
    s.observe(held_by("other", 5), now);
    assert_eq!(s.live_leader(now), Some("other"));
    for _ in 0..8 {
        advance(RETRY).await;
        s.watch_progress(Instant::now());
    }
    let later = Instant::now();
    assert_eq!(
        s.live_leader(later),
        None,
        "expired by the observed-time rule"
    );
    assert!(matches!(s.next_step(later), Step::Wait(_)), "no acquire");
}

#[tokio::test(start_paused = true)]
async fn an_answer_older_than_what_was_seen_is_not_newer() {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    s.observe(held_by("other", 7), now);
    assert!(!s.is_newer(Some("6")));
    assert!(!s.is_newer(Some("7")));
    assert!(s.is_newer(Some("8")));
}

#[tokio::test(start_paused = true)]
async fn polls_that_find_the_record_unchanged_do_not_postpone_the_takeover() {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    s.observe(held_by("gone", 5), now);
    assert!(
        !s.is_stale(Some("5")),
        "the same version again is not stale"
    );
    assert!(s.is_stale(Some("4")));
    for _ in 0..8 {
        advance(RETRY).await;
        let now = Instant::now();
        s.read_answered(now);
        s.observe(held_by("gone", 5), now);
    }
    assert_eq!(s.next_step(Instant::now()), Step::Write(Verdict::Acquire));
}

#[tokio::test(start_paused = true)]
async fn a_shortened_lease_shortens_the_term_and_renews_at_once() {
    let mut s = leading();
    let observed = s.lease().cloned().unwrap();
    let mut edited = observed.clone();
    edited.spec.as_mut().unwrap().lease_duration_seconds = Some(1);
    edited.metadata.resource_version = Some("2".into());
    let now = Instant::now();
    let seen = s.observe(edited, now);
    assert!(seen.stop.is_none());
    assert_eq!(
        seen.shortened,
        Some(Shortened {
            recorded: Some(Duration::from_secs(1))
        })
    );
    assert_eq!(s.term.as_ref().unwrap().ends_at, now + DEADLINE / 2);
    assert_eq!(s.next_step(now), Step::Write(Verdict::Renew));
}

#[tokio::test(start_paused = true)]
async fn an_answer_after_the_renew_deadline_starts_no_term() {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    s.observe(held_by("me", 1), now);
    advance(DEADLINE).await;
    assert!(
        s.start_term(now, Instant::now(), crate::shared::drain().1)
            .is_none()
    );
}

/// A released Lease (holder ""), naming `successor` if given.
fn released(rv: u64, successor: Option<&str>) -> Lease {
    let mut lease = lease(
        LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            lease_transitions: Some(2),
            ..LeaseSpec::default()
        },
        rv,
    );
    if let Some(successor) = successor {
        let value = crate::successor::value(record::spec_of(&lease), successor);
        crate::successor::set(&mut lease.metadata, Some(value));
    }
    lease
}

#[tokio::test(start_paused = true)]
async fn a_named_successor_takes_a_release_at_once_and_the_others_defer_by_place() {
    let now = Instant::now();
    let mut named = Schedule::new(&settings(), now);
    named.watch_connected(true, now);
    named.input(Input::FirstInLine(false));
    named.observe(released(5, Some("me")), now);
    assert_eq!(named.next_step(now), Step::Write(Verdict::Acquire));

    let mut first = Schedule::new(&settings(), now);
    first.watch_connected(true, now);
    first.input(Input::FirstInLine(true));
    first.observe(released(5, Some("other")), now);
    assert_eq!(first.next_step(now), Step::Wait(now + RETRY));

    let mut rest = Schedule::new(&settings(), now);
    rest.watch_connected(true, now);
    rest.input(Input::FirstInLine(false));
    rest.observe(released(5, Some("other")), now);
    assert_eq!(rest.next_step(now), Step::Wait(now + RETRY * 2));
    advance(RETRY * 2).await;
    assert_eq!(
        rest.next_step(Instant::now()),
        Step::Write(Verdict::Acquire),
        "after the bound, it may take it"
    );

    // No successor named: the first in line at once, the rest a bound later.
    first.observe(released(6, None), now);
    assert_eq!(first.next_step(now), Step::Write(Verdict::Acquire));
    let mut second = Schedule::new(&settings(), now);
    second.watch_connected(true, now);
    second.input(Input::FirstInLine(false));
    second.observe(released(6, None), now);
    assert_eq!(second.next_step(now), Step::Wait(now + RETRY));
}

#[tokio::test(start_paused = true)]
async fn a_conflicted_create_delays_creates_only() {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    s.watch_connected(true, now);
    s.observe_missing(None, now);
    assert_eq!(s.next_step(now), Step::Write(Verdict::Create));
    s.write_conflicted(&Verdict::Create, now);
    assert_eq!(s.next_step(now), Step::Read, "read at once who created it");
    s.observe_missing(None, now);
    assert_eq!(
        s.next_step(now),
        Step::Wait(now + RETRY),
        "a lagging read that still says missing does not become a loop of creates"
    );
    // The creator released it (it is named): take it at once.
    s.observe(released(9, Some("me")), now);
    assert_eq!(s.next_step(now), Step::Write(Verdict::Acquire));
}

// === Coordinated election ===

fn coordinated(holder: &str, preferred: Option<&str>, rv: u64) -> Lease {
    let mut lease = held_by(holder, rv);
    let spec = lease.spec.as_mut().unwrap();
    spec.strategy = Some("OldestEmulationVersion".into());
    spec.preferred_holder = preferred.map(str::to_owned);
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now(),
    ));
    lease
}

#[tokio::test(start_paused = true)]
async fn a_candidate_of_coordinated_election_never_takes_a_lease_on_its_own() {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    s.input(Input::Coordinated(true));
    s.observe(coordinated("other", None, 1), now);
    // Expired, by every rule of the plain election ...
    advance(LEASE * 4).await;
    let now = Instant::now();
    assert!(
        !matches!(s.next_step(now), Step::Write(_)),
        "... and still the controller's to give"
    );
    // Released, too.
    let mut free = coordinated("", None, 2);
    free.spec.as_mut().unwrap().holder_identity = Some(String::new());
    s.observe(free, now);
    assert!(!matches!(s.next_step(now), Step::Write(_)));
    // Without a strategy on the Lease (the gate off), the plain election.
    s.watch_connected(true, now);
    s.watch_progress(now);
    s.observe(held_by("", 3), now);
    assert_eq!(s.next_step(now), Step::Write(Verdict::Acquire));
}

#[tokio::test(start_paused = true)]
async fn a_candidate_the_controller_names_takes_the_lease_at_once() {
    let now = Instant::now();
    let mut s = Schedule::new(&settings(), now);
    s.observe(coordinated("me", None, 1), now);
    assert!(
        !matches!(s.next_step(now), Step::Write(_)),
        "undeclared, a Lease naming this identity in a term it did not start is a twin's"
    );
    s.input(Input::Coordinated(true));
    s.watch_connected(true, now);
    s.watch_progress(now);
    assert!(s.elected(now));
    assert_eq!(s.next_step(now), Step::Write(Verdict::Acquire));
}

#[tokio::test(start_paused = true)]
async fn a_twins_term_under_the_controller_is_waited_out_then_taken() {
    let start = Instant::now();
    let mut s = Schedule::new(&settings(), start);
    s.input(Input::Coordinated(true));
    s.watch_connected(true, start);
    // Another instance of "me" took the controller's pick: its acquire
    // wrote an acquireTime this one never wrote.
    let pick = coordinated("me", None, 1);
    let twin = |rv: u64, renewed: jiff::Timestamp| {
        let mut spec = record::acquire(
            pick.spec.as_ref(),
            "me",
            2,
            "2026-11-24T14:00:00Z".parse().unwrap(),
        );
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            renewed,
        ));
        lease(spec, rv)
    };
    s.watch_progress(start);
    s.observe(twin(2, jiff::Timestamp::now()), start);
    assert!(!s.elected(start));
    assert!(
        !matches!(s.next_step(start), Step::Write(_)),
        "a twin's live term is not ours to take"
    );
    // It renews: the wait runs from the renew.
    advance(LEASE / 2).await;
    let renewed = Instant::now();
    s.watch_progress(renewed);
    s.observe(twin(3, jiff::Timestamp::now()), renewed);
    advance(LEASE.checked_sub(Duration::from_millis(1)).unwrap()).await;
    let now = Instant::now();
    s.watch_progress(now);
    assert!(!matches!(s.next_step(now), Step::Write(_)));
    // It stopped renewing (a crash): expired, it is taken, since the
    // controller does not rewrite a Lease that names its pick already.
    advance(Duration::from_millis(1)).await;
    let now = Instant::now();
    s.watch_progress(now);
    assert!(s.elected(now));
    assert_eq!(s.next_step(now), Step::Write(Verdict::Acquire));
    // A record this instance wrote is its own at once.
    let mut own = Schedule::new(&settings(), now);
    own.input(Input::Coordinated(true));
    own.watch_connected(true, now);
    own.watch_progress(now);
    let mine = twin(4, jiff::Timestamp::now());
    own.remember(TermRecord::of(mine.spec.as_ref().unwrap()));
    own.observe(mine, now);
    assert_eq!(own.next_step(now), Step::Write(Verdict::Acquire));
}

#[tokio::test(start_paused = true)]
async fn a_leader_the_controller_prefers_another_to_hands_over() {
    let mut s = leading();
    s.input(Input::Coordinated(true));
    let record = s.term.as_ref().unwrap().record.clone();
    let mut preferred = coordinated("me", Some("better"), 2);
    let spec = preferred.spec.as_mut().unwrap();
    spec.acquire_time = record
        .acquire_time
        .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime);
    spec.lease_transitions = Some(record.transitions);
    let observation = s.observe(preferred.clone(), Instant::now());
    assert!(
        matches!(observation.stop, Some(Stop::Preferred(ref p)) if p == "better"),
        "{observation:?}"
    );
    // Not declared a candidate: `preferredHolder` is not ours to follow.
    let mut plain = leading();
    let spec = preferred.spec.as_mut().unwrap();
    let record = plain.term.as_ref().unwrap().record.clone();
    spec.acquire_time = record
        .acquire_time
        .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime);
    preferred.metadata.resource_version = Some("3".into());
    assert!(plain.observe(preferred, Instant::now()).stop.is_none());
}

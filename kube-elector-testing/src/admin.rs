//! `/_testing/*`: faults and counters over HTTP, for harnesses in other
//! processes (a client-go elector, benchmark drivers).

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::faults::{Delay, Flag, Verb, target_of};
use crate::resource::Resource;
use crate::shared::Shared;
use crate::store::Snapshot;
use crate::wire::{Body, MAX_BODY, respond};

pub(crate) async fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Body> {
    match (method, path) {
        (&Method::GET, "/requests") => {
            // `?resource=leasecandidates`: that resource's; Leases' by default.
            let asked = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|pair| pair.strip_prefix("resource="));
            let resource = match asked {
                None => Resource::Leases,
                Some(name) => match Resource::parse(name) {
                    Some(resource) => resource,
                    None => {
                        return respond(
                            400,
                            &json!({ "error": format!("unknown resource {name:?}") }),
                        );
                    }
                },
            };
            let counts = shared.faults.counts(resource);
            let rows: Vec<Value> = counts
                .iter()
                .map(|(client, verb, count)| json!({ "client": client, "verb": verb.as_str(), "count": count }))
                .collect();
            respond(200, &json!({ "total": counts.total(), "requests": rows }))
        }
        (&Method::POST, "/reset") => {
            shared.faults.reset_counts();
            respond(200, &json!({ "reset": true }))
        }
        (&Method::POST, "/faults") => {
            let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
                .collect()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b.to_bytes()).ok());
            match body {
                Some(spec) => match apply_faults(shared, &spec) {
                    Ok(()) => respond(200, &json!({ "ok": true })),
                    Err(message) => respond(400, &json!({ "error": message })),
                },
                None => respond(400, &json!({ "error": "the body must be a JSON object" })),
            }
        }
        _ => respond(404, &json!({ "error": "unknown admin path" })),
    }
}

/// `{"clear": true}`, `{"stop_gracefully_ms": N}` and `{"restart": true}`
/// (`stop_gracefully`, `restart`), or `{"target": "all"|"<client>", ...}`
/// with any of:
/// - `"latency_ms": N`, `"error_rate": F`, `"refuse": B`, `"hang": B`,
///   `"partition": B`, `"forbid": [verbs]`, `"allow": [verbs]`;
/// - `"watch_delay_ms": N`, `"watch_black_hole": B`, `"watch_error": B`
///   (`delay_watch`, `black_hole_watch`, `fail_watch`);
/// - `"lose_write_answers": B`, `"write_answer_delay_ms": N`,
///   `"stale_reads": B` (`lose_write_answers`, `delay_write_answers`,
///   `stale_reads`);
/// - `"names_only": B` (`restrict_to_names`);
/// - `"resource": "leases" | "leasecandidates"`: the resource that
///   `forbid` and `allow` apply to (default: Leases).
///
/// Durations in milliseconds, zero clears; absent keys leave their fault as
/// it is.
fn apply_faults(shared: &Shared, spec: &Value) -> Result<(), String> {
    let faults = &shared.faults;
    if spec["clear"] == true {
        faults.clear();
        return Ok(());
    }
    if let Some(ms) = spec["stop_gracefully_ms"].as_u64() {
        shared.stop_gracefully(Duration::from_millis(ms));
        return Ok(());
    }
    if spec["restart"] == true {
        shared.restart();
        return Ok(());
    }
    let target = target_of(spec["target"].as_str().unwrap_or("all"));
    let resource = match spec["resource"].as_str() {
        None => Resource::Leases,
        Some(name) => Resource::parse(name).ok_or_else(|| format!("unknown resource {name:?}"))?,
    };
    for (key, kind) in [
        ("latency_ms", Delay::Request),
        ("watch_delay_ms", Delay::Watch),
        ("write_answer_delay_ms", Delay::WriteAnswer),
    ] {
        if let Some(ms) = spec[key].as_u64() {
            faults.set_delay(kind, target.clone(), Duration::from_millis(ms));
        }
    }
    if let Some(rate) = spec["error_rate"].as_f64() {
        faults.set_error_rate(target.clone(), rate);
    }
    for (key, flag) in [
        ("refuse", Flag::Refused),
        ("hang", Flag::Hung),
        ("partition", Flag::Partitioned),
        ("watch_black_hole", Flag::WatchBlackHole),
        ("watch_error", Flag::WatchError),
        ("lose_write_answers", Flag::LoseWriteAnswers),
        ("names_only", Flag::NamesOnly),
    ] {
        if let Some(on) = spec[key].as_bool() {
            faults.set_flag(flag, target.clone(), on);
        }
    }
    if let Some(on) = spec["stale_reads"].as_bool() {
        let snapshot = on.then(|| Snapshot::of(&shared.store));
        faults.set_stale_reads(target.clone(), snapshot);
    }
    for (key, on) in [("forbid", true), ("allow", false)] {
        for verb in spec[key].as_array().into_iter().flatten() {
            let name = verb.as_str().unwrap_or("");
            let verb = Verb::parse(name).ok_or_else(|| format!("unknown verb {name:?}"))?;
            faults.set_forbidden(target.clone(), resource, verb, on);
        }
    }
    Ok(())
}

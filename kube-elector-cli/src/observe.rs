//! `kube-elector observe`: one line per change of leader, for scripts.

use kube_elector::observer::{LeaderObserver, ObserverConfig};

use crate::options::ObserveArgs;

/// The line printed for `leader`.
fn line(leader: Option<&str>, json: bool) -> String {
    match (leader, json) {
        (_, true) => serde_json::json!({ "leader": leader }).to_string(),
        (Some(leader), false) => format!("leader: {leader}"),
        (None, false) => "no leader".to_owned(),
    }
}

/// Prints the leader after the first read, then each change, until SIGTERM
/// or SIGINT.
pub(crate) async fn observe(args: ObserveArgs, client: kube::Client) -> Result<u8, String> {
    let namespace = args
        .lease
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    crate::preflight(&client, &namespace, &args.lease).await?;
    let config = ObserverConfig::new(&args.lease.lease).namespace(&namespace);
    let observer = LeaderObserver::new(client, config)
        .map_err(|err| format!("invalid settings: {err}"))?
        .spawn();
    let follow = async {
        observer.ready().await;
        let mut states = observer.subscribe();
        let mut printed: Option<Option<String>> = None;
        loop {
            let leader = states.borrow_and_update().leader.clone();
            if printed.as_ref() != Some(&leader) {
                println!("{}", line(leader.as_deref(), args.json));
                printed = Some(leader);
            }
            if states.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = follow => {}
        () = crate::serve::wait_for_signal() => {}
    }
    if let Err(err) = observer.shutdown().await {
        tracing::warn!(%err, "the observer did not stop cleanly");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::line;

    #[test]
    fn lines_say_who_leads_in_text_or_json() {
        assert_eq!(line(Some("a"), false), "leader: a");
        assert_eq!(line(None, false), "no leader");
        assert_eq!(line(Some("a"), true), r#"{"leader":"a"}"#);
        assert_eq!(line(None, true), r#"{"leader":null}"#);
    }
}

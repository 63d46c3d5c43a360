//! `--rtt N`: the round trip of one GET and one PUT of a Lease, as an
//! elector's client sees it (moved out of main.rs as it was).

use std::time::Duration;

use futures::StreamExt;

use crate::protocol;

/// The round trip of one request, as an elector's client sees it: N GETs
/// of one Lease (created if missing, with no holder), one after another on
/// the client's kept-alive connection, after a few to warm it up, then N
/// PUTs that change it. Prints one `rtt` line with the medians and the
/// 99th percentiles.
pub async fn rtt(args: &protocol::Args, client: kube::Client) {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: kube::Api<Lease> = kube::Api::namespaced(client, &args.namespace);
    if leases
        .get_opt(&args.lease_name)
        .await
        .expect("GET the Lease")
        .is_none()
    {
        let lease = Lease {
            metadata: kube::api::ObjectMeta {
                name: Some(args.lease_name.clone()),
                ..Default::default()
            },
            spec: None,
        };
        let _ = leases.create(&Default::default(), &lease).await;
    }
    for _ in 0..5 {
        leases.get(&args.lease_name).await.expect("GET the Lease");
    }
    let mut ms: Vec<f64> = Vec::with_capacity(args.rtt);
    for _ in 0..args.rtt {
        let t0 = std::time::Instant::now();
        leases.get(&args.lease_name).await.expect("GET the Lease");
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    // The same for a write: a PUT that changes the record (as a renew
    // does), conditional on the resourceVersion it read back.
    let mut lease = leases.get(&args.lease_name).await.expect("GET the Lease");
    let put = |mut lease: Lease, i: usize| {
        let leases = leases.clone();
        async move {
            lease
                .spec
                .get_or_insert_with(Default::default)
                .lease_transitions = Some(i32::try_from(i).unwrap_or(i32::MAX));
            leases
                .replace(&args.lease_name, &Default::default(), &lease)
                .await
                .expect("PUT the Lease")
        }
    };
    let mut put_ms: Vec<f64> = Vec::with_capacity(args.rtt);
    for i in 0..args.rtt {
        let t0 = std::time::Instant::now();
        lease = put(lease, i).await;
        put_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    // A write seen by a watch: from sending a PUT to its event arriving on
    // a watch of the Lease (its own connection), as a release reaches the
    // followers. A handover's floor is this plus one more PUT (the acquire).
    let params = kube::api::WatchParams::default()
        .fields(&format!("metadata.name={}", args.lease_name))
        .timeout(290);
    let version = lease.metadata.resource_version.clone().unwrap_or_default();
    let stream = leases
        .watch(&params, &version)
        .await
        .expect("watch the Lease");
    let mut stream = std::pin::pin!(stream);
    let mut seen_ms: Vec<f64> = Vec::with_capacity(args.rtt);
    for i in 0..args.rtt {
        let t0 = std::time::Instant::now();
        lease = put(lease, i).await;
        let wanted = lease.metadata.resource_version.clone();
        seen(&mut stream, wanted).await;
        seen_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    // The same after a pause of 300 ms each, as a handover's requests come
    // (a leader renews every retry period, a follower only watches): a
    // connection and a server that were idle answer slower than back to back.
    let idle = (args.rtt / 5).max(10);
    let (mut idle_get, mut idle_put, mut idle_seen) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..idle {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = std::time::Instant::now();
        leases.get(&args.lease_name).await.expect("GET the Lease");
        idle_get.push(t0.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = std::time::Instant::now();
        lease = put(lease, args.rtt + i).await;
        idle_put.push(t0.elapsed().as_secs_f64() * 1000.0);
        let wanted = lease.metadata.resource_version.clone();
        seen(&mut stream, wanted).await;
        idle_seen.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let at = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    println!(
        "{{\"event\":\"rtt\",\"samples\":{},\"median_ms\":{:.3},\"p99_ms\":{:.3},\"put_median_ms\":{:.3},\"put_p99_ms\":{:.3},\"put_seen_median_ms\":{:.3},\"idle_samples\":{idle},\"idle_get_median_ms\":{:.3},\"idle_put_median_ms\":{:.3},\"idle_put_seen_median_ms\":{:.3}}}",
        ms.len(),
        at(&mut ms, 0.5),
        at(&mut ms, 0.99),
        at(&mut put_ms, 0.5),
        at(&mut put_ms, 0.99),
        at(&mut seen_ms, 0.5),
        at(&mut idle_get, 0.5),
        at(&mut idle_put, 0.5),
        at(&mut idle_seen, 0.5)
    );
}

/// Waits until `stream` delivers the change that made `version`.
async fn seen<S>(stream: &mut std::pin::Pin<&mut S>, version: Option<String>)
where
    S: futures::Stream<
            Item = Result<
                kube::api::WatchEvent<k8s_openapi::api::coordination::v1::Lease>,
                kube::Error,
            >,
        >,
{
    loop {
        match stream.next().await {
            Some(Ok(kube::api::WatchEvent::Modified(seen)))
                if seen.metadata.resource_version == version =>
            {
                return;
            }
            Some(Ok(_)) => {}
            other => panic!("the watch ended: {other:?}"),
        }
    }
}

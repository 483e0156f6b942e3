//! The seed-002 oscillation on the real control plane, with and without coordination: a load
//! that rises and falls every 90 s (3 replicas for 20 s, 1 for 70 s) against
//! `consolidateAfter: 1m`, three cycles, on two pools side by side — one coordinated with the
//! pod layer, one opted out (what KEDA + Karpenter do). The opted-out pool consolidates the two
//! freed nodes a minute into each quiet phase and launches them again when the load returns;
//! the coordinated pool keeps them (the ScaledObject's default 300 s window) and launches at
//! least 3× less, while its pods never wait longer for a node.
//!
//! One test per binary: the controllers act on every NodePool of the control plane they watch.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use tandem_api::karpenter::NodeClaim;
use tandem_controllers::Options;
use tandem_model::catalog::Catalog;
use tandem_testkit::{ControlPlane, wait_for};

use common::coordination::{count, pool, scale, serving, workload};

const CYCLES: usize = 3;
const HIGH: Duration = Duration::from_secs(20);
const LOW: Duration = Duration::from_secs(70);
const TIMEOUT: Duration = Duration::from_secs(60);

/// Every NodeClaim a pool ever had: the names seen so far plus the current ones.
async fn claims_seen(claims: &Api<NodeClaim>, pool: &str, seen: &mut Vec<String>) {
    if let Ok(list) = claims
        .list_metadata(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
    {
        for c in list.items {
            if let Some(n) = c.metadata.name
                && !seen.contains(&n)
            {
                seen.push(n);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordination_launches_at_least_three_times_less_under_a_90_s_load_cycle() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("oscillation").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::node_class(&client, &class).await;
    let (on, off) = (format!("{ns}-on"), format!("{ns}-off"));
    pool(&client, &on, &class, true, "1m").await;
    pool(&client, &off, &class, false, "1m").await;
    let mut options = Options::default();
    options.disruption.poll_interval = Duration::from_secs(2);
    // Upstream's 15 s validation would end the 70 s quiet phase before the 1 m passes; 2 s
    // keeps the opted-out pool's consolidation inside it.
    options.disruption.decide.validation_delay_ms = 2_000;
    let running = common::start_with(&client, Arc::new(Catalog::kwok()), options);
    workload(&client, &ns, "coordinated", &on).await;
    workload(&client, &ns, "plain", &off).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let nodes = Api::all(client.clone());

    let (mut seen_on, mut seen_off) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for cycle in 0..CYCLES {
        // High: both at 3 replicas; time until each has its 3 serving.
        if cycle > 0 {
            scale(&client, &ns, "coordinated", 3).await;
            scale(&client, &ns, "plain", 3).await;
        }
        let t0 = Instant::now();
        wait_for("both workloads at 3 serving", TIMEOUT, || async {
            (serving(&pods, "coordinated").await == 3 && serving(&pods, "plain").await == 3)
                .then_some(())
        })
        .await
        .expect("high phase serves");
        claims_seen(&claims, &on, &mut seen_on).await;
        claims_seen(&claims, &off, &mut seen_off).await;
        tokio::time::sleep(HIGH.saturating_sub(t0.elapsed())).await;
        // Low: 1 replica each for 70 s.
        scale(&client, &ns, "coordinated", 1).await;
        scale(&client, &ns, "plain", 1).await;
        let low_start = Instant::now();
        while low_start.elapsed() < LOW {
            claims_seen(&claims, &on, &mut seen_on).await;
            claims_seen(&claims, &off, &mut seen_off).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        eprintln!(
            "cycle {cycle}: nodes on {} off {}; claims ever on {} off {}",
            count(&nodes, &on).await,
            count(&nodes, &off).await,
            seen_on.len(),
            seen_off.len()
        );
    }
    // The last rise, then count.
    scale(&client, &ns, "coordinated", 3).await;
    scale(&client, &ns, "plain", 3).await;
    // When each workload has its 3 replicas serving again, watched side by side.
    let t0 = Instant::now();
    let (mut last_on, mut last_off) = (None, None);
    while last_on.is_none() || last_off.is_none() {
        assert!(t0.elapsed() < TIMEOUT, "the last rise did not serve");
        if last_on.is_none() && serving(&pods, "coordinated").await == 3 {
            last_on = Some(t0.elapsed());
        }
        if last_off.is_none() && serving(&pods, "plain").await == 3 {
            last_off = Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (last_on, last_off) = (last_on.unwrap_or_default(), last_off.unwrap_or_default());
    claims_seen(&claims, &on, &mut seen_on).await;
    claims_seen(&claims, &off, &mut seen_off).await;
    let hours = started.elapsed().as_secs_f64() / 3600.0;
    // The first 3 claims of each pool are the initial scale-up, not oscillation.
    let (launch_on, launch_off) = (seen_on.len() - 3, seen_off.len() - 3);
    eprintln!(
        "oscillation over {:.0} s: relaunches coordinated {launch_on} ({:.0}/h), plain {launch_off} ({:.0}/h); \
         last rise to 3 serving: coordinated {last_on:?}, plain {last_off:?}",
        started.elapsed().as_secs_f64(),
        launch_on as f64 / hours,
        launch_off as f64 / hours
    );
    assert!(
        launch_off >= 2,
        "the opted-out pool did oscillate (else the test shows nothing): {launch_off}"
    );
    assert!(
        launch_on * 3 <= launch_off,
        "coordinated {launch_on} vs plain {launch_off} relaunches"
    );
    assert!(
        last_on <= last_off,
        "coordination did not make pods wait longer: {last_on:?} vs {last_off:?}"
    );
    drop(running);
}

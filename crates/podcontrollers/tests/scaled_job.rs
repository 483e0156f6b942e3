//! ScaledJob on the real control plane with a real RabbitMQ: one Job per message (queueLength
//! 1), never more than `maxReplicaCount` running, a changed ScaledJob replacing its running
//! Jobs (default rollout), and a broken ScaledJob reported by field while the valid one keeps
//! working. No kubelet runs the Jobs' pods, so Jobs never finish:
//! every Job created stays running, which is what is counted.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use tandem_api::keda::v1alpha1::ScaledJob;
use tandem_testkit::{wait_for, wait_for_object};

fn scaled_job(name: &str, queue: &str) -> serde_json::Value {
    json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
        "metadata": {"name": name},
        "spec": {
            "pollingInterval": 1,
            "maxReplicaCount": 5,
            "jobTargetRef": {"template": {"spec": {
                "containers": [{"name": "consumer", "image": "registry.invalid/consumer:1"}],
            }}},
            "triggers": [{
                "type": "rabbitmq",
                "metadata": {"protocol": "http", "queueName": queue, "mode": "QueueLength", "value": "1"},
                "authenticationRef": {"name": "rabbit-auth"},
            }],
        },
    })
}

async fn create(client: &kube::Client, ns: &str, doc: serde_json::Value) {
    let sj: ScaledJob = serde_json::from_value(doc).expect("scaled job");
    Api::<ScaledJob>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sj)
        .await
        .unwrap_or_else(|e| panic!("create scaled job: {e}"));
}

async fn jobs_of(client: &kube::Client, ns: &str, name: &str) -> Vec<Job> {
    Api::<Job>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("scaledjob.keda.sh/name={name}")))
        .await
        .expect("list jobs")
        .items
}

async fn wait_jobs(client: &kube::Client, ns: &str, name: &str, want: usize) {
    wait_for(&format!("{want} Jobs of {ns}/{name}"), TIMEOUT, || async {
        (jobs_of(client, ns, name).await.len() == want).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits for an Event about `object` with this reason and message.
async fn wait_event_with(
    client: &kube::Client,
    ns: &str,
    object: &str,
    reason: &str,
    message: &str,
) {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("Event {reason} {message:?} on {ns}/{object}"),
        TIMEOUT,
        || async {
            let events = api.list(&ListParams::default()).await.ok()?;
            events
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.message.as_deref() == Some(message)
                        && e.involved_object.name.as_deref() == Some(object)
                        && e.involved_object.kind.as_deref() == Some("ScaledJob")
                })
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Checks for `period` (several polls) that the count stays `want`.
async fn stays(client: &kube::Client, ns: &str, name: &str, want: usize, period: Duration) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        let n = jobs_of(client, ns, name).await.len();
        assert_eq!(n, want, "Jobs of {ns}/{name}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_per_message_capped_at_max_and_a_broken_scaled_job_is_reported() {
    let started = Instant::now();
    let h = start().await;
    let ns = h.cp.namespace("sj").await.expect("namespace");
    let rmq = rabbitmq().await;
    publish(&rmq, "work", 0).await;
    publish(&rmq, "other", 0).await;
    secret(
        &h.client,
        &ns,
        "rabbit",
        &[("host", &http_host(&rmq, PASSWORD))],
    )
    .await;
    trigger_auth(&h.client, &ns, "rabbit-auth", "rabbit").await;

    // A broken ScaledJob (metricType is refused in ScaledJob triggers) next to a valid one.
    let mut broken = scaled_job("broken", "other");
    broken["spec"]["triggers"][0]["metricType"] = json!("Value");
    create(&h.client, &ns, broken).await;
    create(&h.client, &ns, scaled_job("consume", "work")).await;

    let api: Api<ScaledJob> = Api::namespaced(h.client.clone(), &ns);
    let failed = wait_for_object(&api, "broken", TIMEOUT, |sj: Option<&ScaledJob>| {
        sj.and_then(|s| s.status.as_ref())
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.reason.as_deref() == Some("ScaledJobCheckFailed"))
    })
    .await
    .expect("broken ScaledJob reported")
    .and_then(|s| s.status)
    .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
    .expect("Ready");
    assert!(!failed.is_true());
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "spec.triggers[0].metricType: metricType cannot be set in ScaledJob triggers; remove it"
        )
    );
    let event = wait_event(&h.client, &ns, "broken", "ScaledJobCheckFailed").await;
    assert!(event.contains("spec.triggers[0].metricType"), "{event}");

    // The valid one is Ready, its scaler built, and an empty queue creates nothing.
    wait_for_object(&api, "consume", TIMEOUT, |sj: Option<&ScaledJob>| {
        sj.and_then(|s| s.status.as_ref())
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.is_true() && c.reason.as_deref() == Some("ScaledJobReady"))
    })
    .await
    .expect("consume Ready");
    // Both the watch and each scaler announce themselves under the same reason.
    wait_event_with(
        &h.client,
        &ns,
        "consume",
        "KEDAScalersStarted",
        "Scaler rabbitmq is built",
    )
    .await;
    wait_event_with(
        &h.client,
        &ns,
        "consume",
        "KEDAScalersStarted",
        "Started scalers watch",
    )
    .await;
    stays(&h.client, &ns, "consume", 0, Duration::from_secs(2)).await;

    // 3 messages: exactly 3 Jobs, one per message, and no more on later polls.
    publish(&rmq, "work", 3).await;
    wait_jobs(&h.client, &ns, "consume", 3).await;
    stays(&h.client, &ns, "consume", 3, Duration::from_secs(4)).await;
    wait_event_with(
        &h.client,
        &ns,
        "consume",
        "KEDAJobsCreated",
        "Created 3 jobs",
    )
    .await;
    let job = &jobs_of(&h.client, &ns, "consume").await[0];
    let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("ScaledJob", "consume", Some(true))
    );
    assert!(
        job.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("consume-"))
    );
    let active = api
        .get("consume")
        .await
        .expect("get")
        .status
        .expect("status");
    assert!(active.last_active_time.is_some());
    assert!(
        active
            .conditions
            .iter()
            .any(|c| c.type_ == "Active" && c.is_true())
    );

    // 10 more: 13 messages, but at most maxReplicaCount = 5 Jobs running.
    publish(&rmq, "work", 10).await;
    wait_jobs(&h.client, &ns, "consume", 5).await;
    stays(&h.client, &ns, "consume", 5, Duration::from_secs(4)).await;

    // A changed ScaledJob (new generation): the default rollout deletes the running Jobs of
    // the old generation, and the queue (still 13) fills the cap again with new ones.
    let before: Vec<String> = jobs_of(&h.client, &ns, "consume")
        .await
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    api.patch(
        "consume",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"jobTargetRef": {"template": {"spec": {
            "containers": [{"name": "consumer", "image": "registry.invalid/consumer:2"}]}}}}})),
    )
    .await
    .expect("patch ScaledJob");
    wait_event_with(
        &h.client,
        &ns,
        "consume",
        "ScaledJobRolloutCleanupCompleted",
        "Deleted 5 jobs of the previous ScaledJob version",
    )
    .await;
    wait_for("5 Jobs of the new generation", TIMEOUT, || async {
        let jobs = jobs_of(&h.client, &ns, "consume").await;
        (jobs.len() == 5
            && jobs.iter().all(|j| {
                j.metadata
                    .name
                    .as_ref()
                    .is_some_and(|n| !before.contains(n))
            }))
        .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    stays(&h.client, &ns, "consume", 5, Duration::from_secs(2)).await;

    // The broken one never created anything.
    assert!(jobs_of(&h.client, &ns, "broken").await.is_empty());

    // KEDA's metrics, with type="scaledjob", and upstream's finalizer.
    let scraped = h.scrape();
    let series = format!(
        "keda_scaler_metrics_value{{namespace=\"{ns}\",metric=\"s0-rabbitmq-work\",scaledObject=\"consume\",scaler=\"rabbitmq\",triggerIndex=\"0\",type=\"scaledjob\"}}"
    );
    assert!(scraped.contains(&series), "{series} missing:\n{scraped}");
    assert!(
        scraped.contains(&format!(
            "keda_scaler_active{{namespace=\"{ns}\",metric=\"s0-rabbitmq-work\",scaledObject=\"consume\",scaler=\"rabbitmq\",triggerIndex=\"0\",type=\"scaledjob\"}} 1"
        )),
        "{scraped}"
    );
    let consume = api.get("consume").await.expect("ScaledJob");
    assert!(
        consume
            .metadata
            .finalizers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|f| f == "finalizer.keda.sh"),
        "{:?}",
        consume.metadata.finalizers
    );

    // Deleted: the finalizer goes after the worker stopped, with upstream's Event, and the
    // object's series go with it.
    api.delete("consume", &kube::api::DeleteParams::default())
        .await
        .expect("delete ScaledJob");
    wait_event(&h.client, &ns, "consume", "ScaledJobDeleted").await;
    wait_for_object(&api, "consume", TIMEOUT, |sj: Option<&ScaledJob>| {
        sj.is_none()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!h.scrape().contains("scaledObject=\"consume\""));
    eprintln!(
        "scaled_job e2e took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    drop(h);
}

//! Broken ScaledObjects are refused loudly and never stop the others: a wrong password
//! (Ready=False with the source's answer, a Warning Event, no secret in either), the same
//! with fallback (the fallback replicas are applied through the HPA), a value that is not a
//! number (Ready=False naming the field) and a second ScaledObject on a taken target, all
//! next to a valid ScaledObject that keeps scaling. Fixing the Secret then heals the
//! wrong-password object; the valid one's HPA, deleted or edited by hand, is restored. Nothing
//! crosses namespaces: a TriggerAuthentication or a Secret that exists only in another
//! namespace (with the right password) is "not found" for this one.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_scaled_objects_are_reported_and_the_valid_one_keeps_scaling() {
    let h = start().await;
    let ns = h.cp.namespace("failures").await.expect("namespace");
    let rmq = rabbitmq().await;
    publish(&rmq, "good-q", 20).await;
    publish(&rmq, "bad-q", 0).await;
    let wrong = "not-the-password";
    secret(
        &h.client,
        &ns,
        "good",
        &[("host", &http_host(&rmq, PASSWORD))],
    )
    .await;
    secret(&h.client, &ns, "bad", &[("host", &http_host(&rmq, wrong))]).await;
    trigger_auth(&h.client, &ns, "good-auth", "good").await;
    trigger_auth(&h.client, &ns, "bad-auth", "bad").await;
    // The right password, but in another namespace: neither its TriggerAuthentication nor its
    // Secret can be reached from `ns`, not even by a TriggerAuthentication there naming it.
    let other = h.cp.namespace("failures-other").await.expect("namespace");
    secret(
        &h.client,
        &other,
        "elsewhere",
        &[("host", &http_host(&rmq, PASSWORD))],
    )
    .await;
    trigger_auth(&h.client, &other, "elsewhere-auth", "elsewhere").await;
    trigger_auth(&h.client, &ns, "names-elsewhere", "elsewhere").await;
    for d in [
        "good",
        "nofallback",
        "fallback",
        "invalid",
        "cross-ta",
        "cross-secret",
    ] {
        deployment(&h.client, &ns, d, 1).await;
    }
    let min1 = || json!({"minReplicaCount": 1});
    scaled_object(
        &h.client,
        &ns,
        rabbit_so("good", "good", "good-auth", "good-q", min1()),
    )
    .await;
    scaled_object(
        &h.client,
        &ns,
        rabbit_so("wrong-password", "nofallback", "bad-auth", "bad-q", min1()),
    )
    .await;
    scaled_object(
        &h.client,
        &ns,
        rabbit_so(
            "with-fallback",
            "fallback",
            "bad-auth",
            "bad-q",
            json!({"minReplicaCount": 1, "fallback": {"failureThreshold": 1, "replicas": 3}}),
        ),
    )
    .await;
    let mut invalid = rabbit_so("invalid", "invalid", "good-auth", "good-q", min1());
    invalid["spec"]["triggers"][0]["metadata"]["value"] = json!("ten");
    scaled_object(&h.client, &ns, invalid).await;
    scaled_object(
        &h.client,
        &ns,
        rabbit_so("second-on-good", "good", "good-auth", "good-q", min1()),
    )
    .await;

    scaled_object(
        &h.client,
        &ns,
        rabbit_so("cross-ta", "cross-ta", "elsewhere-auth", "good-q", min1()),
    )
    .await;
    scaled_object(
        &h.client,
        &ns,
        rabbit_so(
            "cross-secret",
            "cross-secret",
            "names-elsewhere",
            "good-q",
            min1(),
        ),
    )
    .await;

    // The valid one scales: 20 / 10 = 2.
    wait_replicas(&h.client, &ns, "good", 2).await;

    // Wrong password, no fallback: Ready=False says the source refused the credentials.
    let ready = wait_condition(&h.client, &ns, "wrong-password", "Ready", |c| {
        c.status == tandem_api::condition::ConditionStatus::False
    })
    .await;
    assert_eq!(ready.reason.as_deref(), Some("TriggerError"));
    let message = ready.message.unwrap_or_default();
    assert!(message.contains("refused the credentials"), "{message}");
    assert!(!message.contains(wrong), "the password leaked: {message}");
    let event = wait_event(&h.client, &ns, "wrong-password", "KEDAScalerFailed").await;
    assert!(event.contains("refused the credentials"), "{event}");
    assert!(!event.contains(wrong), "the password leaked: {event}");

    // Wrong password with fallback: the HPA is served the fallback value and goes to 3.
    wait_replicas(&h.client, &ns, "fallback", 3).await;
    wait_condition(&h.client, &ns, "with-fallback", "Fallback", |c| c.is_true()).await;
    wait_event(
        &h.client,
        &ns,
        "with-fallback",
        "ScaledObjectFallbackActivated",
    )
    .await;

    // Not a number: refused, naming the field.
    let ready = wait_condition(&h.client, &ns, "invalid", "Ready", |c| {
        c.status == tandem_api::condition::ConditionStatus::False
    })
    .await;
    assert_eq!(ready.reason.as_deref(), Some("ScaledObjectCheckFailed"));
    let message = ready.message.unwrap_or_default();
    assert!(
        message.contains("spec.triggers[0].metadata.value"),
        "{message}"
    );
    let event = wait_event(&h.client, &ns, "invalid", "ScaledObjectCheckFailed").await;
    assert!(event.contains("spec.triggers[0].metadata.value"), "{event}");

    // A second ScaledObject on a taken target: refused, naming the owner.
    let ready = wait_condition(&h.client, &ns, "second-on-good", "Ready", |c| {
        c.status == tandem_api::condition::ConditionStatus::False
    })
    .await;
    let message = ready.message.unwrap_or_default();
    assert!(
        message.contains("already managed by ScaledObject 'good'"),
        "{message}"
    );

    // Another namespace's TriggerAuthentication and Secret are not found from this one.
    for (name, missing) in [
        (
            "cross-ta",
            format!("TriggerAuthentication {ns}/elsewhere-auth not found"),
        ),
        ("cross-secret", format!("Secret {ns}/elsewhere not found")),
    ] {
        let ready = wait_condition(&h.client, &ns, name, "Ready", |c| {
            c.status == tandem_api::condition::ConditionStatus::False
        })
        .await;
        let message = ready.message.unwrap_or_default();
        assert!(message.contains(&missing), "{name}: {message}");
        assert_eq!(replicas(&h.client, &ns, name).await, 1, "{name} was scaled");
    }

    // And the valid one is still fine.
    wait_condition(&h.client, &ns, "good", "Ready", |c| c.is_true()).await;
    assert_eq!(replicas(&h.client, &ns, "good").await, 2);
    assert_eq!(replicas(&h.client, &ns, "invalid").await, 1);

    // Its HPA deleted, then edited, by hand: the watch shows it and the next poll restores it.
    let hpas = kube::Api::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>::namespaced(
        h.client.clone(),
        &ns,
    );
    let before = hpas.get("keda-hpa-good").await.expect("good's HPA");
    hpas.delete("keda-hpa-good", &kube::api::DeleteParams::default())
        .await
        .expect("delete the HPA");
    tandem_testkit::wait_for("the deleted HPA back", TIMEOUT, || async {
        let now = hpas.get_opt("keda-hpa-good").await.ok()??;
        (now.metadata.uid != before.metadata.uid).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    hpas.patch(
        "keda-hpa-good",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"maxReplicas": 77}})),
    )
    .await
    .expect("edit the HPA");
    let max = |h: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler| h.spec.max_replicas;
    tandem_testkit::wait_for("the edited HPA restored", TIMEOUT, || async {
        let now = hpas.get("keda-hpa-good").await.ok()?;
        (max(&now) == max(&before)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Fixing the Secret heals the object without touching it: the failing scaler is rebuilt
    // on the next poll and reads the Secret again.
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), &ns)
        .patch(
            "bad",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"host": http_host(&rmq, PASSWORD)}})),
        )
        .await
        .expect("fix the secret");
    let ready = wait_condition(&h.client, &ns, "wrong-password", "Ready", |c| c.is_true()).await;
    assert_eq!(ready.reason.as_deref(), Some("ScaledObjectReady"));

    // The owner of the taken target deleted: the second one takes it over (the deletion is
    // one watch event, handed to the objects that share its target).
    kube::Api::<tandem_api::keda::v1alpha1::ScaledObject>::namespaced(h.client.clone(), &ns)
        .delete("good", &kube::api::DeleteParams::default())
        .await
        .expect("delete good");
    let ready = wait_condition(&h.client, &ns, "second-on-good", "Ready", |c| c.is_true()).await;
    assert_eq!(ready.reason.as_deref(), Some("ScaledObjectReady"));
    drop(h);
}

//! `tandem run` as users run it: two replicas of the binary against the real control plane.
//! Only the leader acts (one NodeClaim for one pending pod, the follower never starts the node
//! layer); probes and metrics answer on their ports; after `kill -9` of the leader the follower
//! takes the Lease and acts; SIGTERM releases the Lease. Every replica serves the external
//! metrics API.
//!
//! Both layers act on every NodePool and ScaledObject of their control plane: a test that
//! creates either has a control plane of its own.

mod common;

use std::time::Duration;

use common::{Replica, get};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);
const LEASE: &str = "tandem-leader-election";

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn running(pods: &Api<Pod>) -> usize {
    pods.list(&ListParams::default().labels("app=work"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_the_follower_takes_over() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("run").await.expect("namespace");
    let class = format!("{ns}-kwok");
    common::kwok_class(&client, &class).await;
    let pool: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": ns},
        "spec": {"limits": {"cpu": "100"}, "template": {"spec": {
            "requirements": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-2x-amd64-linux"]}],
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    }))
    .expect("nodepool");
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &pool)
        .await
        .expect("create nodepool");

    let a = Replica::start("replica-a", cp.kubeconfig_path(), &ns, cp.dir(), &[]);
    let b = Replica::start("replica-b", cp.kubeconfig_path(), &ns, cp.dir(), &[]);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let first = wait_for("a leader", TIMEOUT, || async { holder(&leases).await })
        .await
        .unwrap_or_else(|e| panic!("{e}\nA:\n{}\nB:\n{}", a.log(), b.log()));
    let (leader, follower) = if first == a.id { (a, b) } else { (b, a) };
    assert_eq!(first, leader.id);

    // Both answer their probes; the leader is ready once its cluster state synced.
    for r in [&leader, &follower] {
        wait_for("readyz 200", TIMEOUT, || async {
            (get(r.probes, "/readyz").await?.0 == 200).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e} ({}):\n{}", r.id, r.log()));
        assert_eq!(get(r.probes, "/healthz").await.map(|r| r.0), Some(200));
    }

    // One pending pod → exactly one NodeClaim, launched by the leader alone.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "work"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "work"}},
            "template": {"metadata": {"labels": {"app": "work"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "1500m"}}}]}}},
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for("1 pod Running", TIMEOUT, || async {
        (running(&pods).await == 1).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nleader:\n{}", leader.log()));
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let selector = format!("karpenter.sh/nodepool={ns}");
    let count = claims
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("claims")
        .items
        .len();
    assert_eq!(count, 1, "one pending pod, one claim");
    assert!(leader.led());
    assert!(
        !follower.led(),
        "the follower started its controllers:\n{}",
        follower.log()
    );

    // The leader's metrics show the pool, its limit and the node.
    let (code, text) = get(leader.metrics, "/metrics").await.expect("metrics");
    assert_eq!(code, 200);
    assert!(
        text.contains(&format!(
            "karpenter_nodepools_limit{{nodepool=\"{ns}\",resource_type=\"cpu\"}} 100"
        )),
        "{text}"
    );
    assert!(text.contains("karpenter_cluster_state_synced 1"), "{text}");
    // Its own API requests, counted by the client (the NodeClaim it created among them).
    assert!(
        text.lines()
            .any(|l| l.starts_with("rest_client_requests_total{method=\"POST\",code=\"201\"} ")),
        "{text}"
    );
    assert!(
        text.contains("rest_client_rate_limiter_duration_seconds_count "),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "karpenter_nodeclaims_created_total{{reason=\"provisioning\",nodepool=\"{ns}\",min_values_relaxed=\"false\"}} 1"
        )),
        "{text}"
    );

    // The per-pod gauge (refreshed every 2 s) shows the pod Running on a node of the pool, and
    // the provisioner timed its scheduling simulation.
    let pod_line = wait_for("karpenter_pods_state of the pod", TIMEOUT, || async {
        let (_, text) = get(leader.metrics, "/metrics").await?;
        text.lines()
            .find(|l| {
                l.starts_with("karpenter_pods_state{")
                    && l.contains(&format!("namespace=\"{ns}\""))
                    && l.contains(&format!("nodepool=\"{ns}\""))
                    && l.contains("phase=\"Running\"")
                    && l.contains("scheduled=\"true\"")
            })
            .map(str::to_owned)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nleader:\n{}", leader.log()));
    assert!(pod_line.ends_with(" 1"), "{pod_line}");
    assert!(
        text.contains(
            "karpenter_scheduler_scheduling_duration_seconds_count{controller=\"provisioner\"}"
        ),
        "{text}"
    );

    // kill -9 the leader: the follower takes the lease and acts (a second pod needs a node).
    leader.signal("-KILL");
    let successor = wait_for("a new leader", TIMEOUT, || async {
        holder(&leases).await.filter(|h| *h == follower.id)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nfollower:\n{}", follower.log()));
    assert_eq!(successor, follower.id);
    deployments
        .patch(
            "work",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale to 2");
    wait_for("2 pods Running", TIMEOUT, || async {
        (running(&pods).await == 2).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nnew leader:\n{}", follower.log()));
    assert!(follower.led());
    let count = claims
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("claims")
        .items
        .len();
    assert_eq!(
        count, 2,
        "the new leader launched one more claim for the second pod"
    );

    // SIGTERM: the leader releases the lease on its way out.
    follower.signal("-TERM");
    wait_for("lease released", TIMEOUT, || async {
        holder(&leases).await.is_none().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", follower.log()));
}

/// The chart's external metrics Service selects the pod labelled
/// `tandem.dev/external-metrics: "true"`: the leader labels its pod once its metrics server
/// listens, a follower never does, the new leader labels its own after a `kill -9`, and the
/// killed one's restarted process clears the label its pod kept. (Replica ids differ from the
/// other test's: a replica's log file is named after its id in the shared control plane's
/// directory.)
/// Every replica answers the external metrics API: the follower from its observe-only pod
/// layer (same value as the leader, and no writes), the label on both pods; a replica run with
/// `--leader-only-metrics-server` neither serves nor labels its pod while it follows. After
/// `kill -9` of the leader the follower keeps serving and leads; the killed replica's container
/// restarts in its pod, clears the stale label and serves again as a follower; stopped with
/// SIGTERM, it clears the label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_serves_the_external_metrics_api() {
    // Its own control plane: the other test's replicas run the pod layer too, and would act on
    // this ScaledObject (and plan nodes for its pods).
    let cp = &ControlPlane::start().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("serving").await.expect("namespace");
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let pods = common::gated_pod(&client, &ns, "serving-a").await;
    for name in ["serving-b", "serving-c"] {
        common::gated_pod(&client, &ns, name).await;
    }
    let certs = common::metrics_server_certs(cp, &format!("certs-{ns}"));
    let certs = certs.to_str().expect("utf-8").to_owned();

    // A target and a ScaledObject whose cron window holds now: value 5 while active.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "consumer"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "consumer"}},
                 "template": {"metadata": {"labels": {"app": "consumer"}},
                              "spec": {"containers": [{"name": "c", "image": "registry.invalid/c"}]}}},
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    let hour = k8s_openapi::jiff::Timestamp::now()
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
        .hour();
    let (start, end) = ((hour + 23) % 24, (hour + 2) % 24);
    let scaled_objects: Api<tandem_api::keda::v1alpha1::ScaledObject> =
        Api::namespaced(client.clone(), &ns);
    let so = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "consumer"},
        "spec": {"scaleTargetRef": {"name": "consumer"}, "pollingInterval": 2,
                 "minReplicaCount": 1, "maxReplicaCount": 10,
                 "triggers": [{"type": "cron", "metadata": {"timezone": "UTC",
                     "start": format!("0 {start} * * *"), "end": format!("0 {end} * * *"),
                     "desiredReplicas": "5"}}]},
    }))
    .expect("scaled object");
    scaled_objects
        .create(&PostParams::default(), &so)
        .await
        .expect("create scaled object");

    let ports = std::cell::RefCell::new(std::collections::BTreeMap::new());
    let start = |id: &str, extra: &[&str]| {
        let port = common::free_port();
        ports.borrow_mut().insert(id.to_owned(), port);
        let port = port.to_string();
        let mut args = vec![
            "--disable-node-layer",
            "--cluster-object-namespace",
            &ns,
            "--metrics-server-cert-dir",
            &certs,
            "--metrics-server-port",
            &port,
        ];
        args.extend_from_slice(extra);
        common::Replica::start_with_env(
            id,
            cp.kubeconfig_path(),
            &ns,
            cp.dir(),
            &args,
            &[("POD_NAME", id), ("POD_NAMESPACE", &ns)],
        )
    };
    let a = start("serving-a", &[]);
    let b = start("serving-b", &[]);
    let first = wait_for("a leader", TIMEOUT, || async { holder(&leases).await })
        .await
        .expect("a leader");
    let (leader, follower) = if first == a.id { (a, b) } else { (b, a) };
    for r in [&leader, &follower] {
        common::wait_serving_label(&pods, &r.id, true)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}:\n{}", r.id, r.log()));
    }
    // The metric as the leader named it in the status.
    let metric = wait_for("externalMetricNames", TIMEOUT, || async {
        scaled_objects
            .get("consumer")
            .await
            .ok()?
            .status?
            .external_metric_names
            .first()
            .cloned()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nleader:\n{}", leader.log()));
    let path = format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}\
         ?labelSelector=scaledobject.keda.sh%2Fname%3Dconsumer"
    );
    let served = |id: String| {
        let port = ports.borrow()[&id];
        let path = path.clone();
        async move {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let r = tandem_testkit::external_metrics_get(
                cp.pki(),
                addr,
                Some(&cp.pki().front_proxy_client),
                &path,
            )
            .await
            .ok()?;
            (r.starts_with("HTTP/1.1 200") && r.contains(r#""value":"5""#)).then_some(())
        }
    };
    for r in [&leader, &follower] {
        wait_for("the served value", TIMEOUT, || served(r.id.clone()))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}:\n{}", r.id, r.log()));
    }
    // The follower measured (its own scaler series) and wrote nothing but its pod's label
    // (cleared at start, set once serving).
    assert!(
        common::metric_sum(follower.metrics, "keda_scaler_metrics_value", "consumer").await >= 5.0,
        "{}",
        follower.log()
    );
    for method in ["POST", "PUT", "DELETE"] {
        let writes = common::metric_sum(
            follower.metrics,
            "rest_client_requests_total",
            // Successful ones: losing the race to create the Lease is a POST answered 409.
            &format!("method=\"{method}\",code=\"2"),
        )
        .await;
        assert!(
            writes == 0.0,
            "{method} × {writes} from the follower\n{}",
            follower.log()
        );
    }
    let patches = common::metric_sum(
        follower.metrics,
        "rest_client_requests_total",
        "method=\"PATCH\"",
    )
    .await;
    assert!(patches <= 2.0, "{patches} PATCHes from the follower");

    // Leader-only: a follower that neither serves nor labels its pod.
    let quiet = start("serving-c", &["--leader-only-metrics-server"]);
    wait_for("the quiet replica follows", TIMEOUT, || async {
        quiet.log().contains("electing a leader").then_some(())
    })
    .await
    .expect("started");
    tokio::time::sleep(Duration::from_secs(3)).await;
    common::wait_serving_label(&pods, &quiet.id, false)
        .await
        .expect("the leader-only follower's pod stays unlabelled");
    assert!(served(quiet.id.clone()).await.is_none(), "{}", quiet.log());
    drop(quiet);

    // kill -9: the follower leads and never stops serving; the label stays on the dead pod.
    leader.signal("-KILL");
    wait_for("the follower leads", TIMEOUT, || async {
        follower.led().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", follower.log()));
    served(follower.id.clone())
        .await
        .unwrap_or_else(|| panic!("the new leader does not serve\n{}", follower.log()));
    // The killed replica's container restarts in the same pod: it clears the stale label,
    // then labels it again once its own server runs.
    let leader_id = leader.id.clone();
    drop(leader);
    let restarted = start(&leader_id, &[]);
    wait_for("the restarted replica serves", TIMEOUT, || {
        served(leader_id.clone())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nrestarted:\n{}", restarted.log()));
    let log = restarted.log();
    let cleared = log.find("does not serve the external metrics API");
    let serving = log.rfind("serves the external metrics API");
    assert!(
        matches!((cleared, serving), (Some(c), Some(s)) if c < s),
        "{log}"
    );
    common::wait_serving_label(&pods, &leader_id, true)
        .await
        .unwrap_or_else(|e| panic!("{e}\nrestarted:\n{}", restarted.log()));
    assert!(!restarted.led(), "{}", restarted.log());
    // SIGTERM: a follower that served takes its pod out of the Service as it stops.
    restarted.signal("-TERM");
    common::wait_serving_label(&pods, &leader_id, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\nstopped follower:\n{}", restarted.log()));
}

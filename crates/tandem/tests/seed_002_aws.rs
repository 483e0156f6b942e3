//! Seed 002's whole chain as its article describes it, on "AWS" (moto's SQS and EC2) and the
//! real control plane, with the four seed manifests applied unchanged: 250 messages on the
//! `orders` queue → the pod layer activates `sqs-consumer` and the real HPA reads
//! `queueLength: 5` through the external metrics API → 50 replicas → the node layer launches
//! spot `c`/`m`/`r` EC2 instances for the `node-spot` pool (its taint and `intent: apps` label
//! honoured) → 50 pods Running; the queue drains → 0 replicas after `cooldownPeriod` → the empty
//! nodes are consolidated and their instances terminated. The EC2NodeClass `default` the pool
//! names is seed 004's. Latencies are printed, not asserted.
//!
//! One test per binary: the node layer acts on every NodePool of its control plane.

#[path = "common/aws.rs"]
mod aws_common;
mod common;
#[path = "common/ec2_join.rs"]
mod ec2_join;

use std::time::{Duration, Instant};

use aws_common::{check, instance_states, running_on_ec2};
use common::Replica;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::Discovery;
use kube::{Api, Client};
use tandem_testkit::services::Moto;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(240);
const SEED_002: &str = "examples/seeds/002_85c0937ec41394ee";
const SEED_004: &str = "examples/seeds/004_27f72e644f865756";

/// Server-side applies every document of `text` (namespace from the document).
async fn apply(client: &Client, discovery: &Discovery, text: &str) {
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = <serde_json::Value as serde::Deserialize>::deserialize(doc).expect("yaml");
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(value.clone()).expect("object");
        let tm = obj.types.clone().expect("apiVersion and kind");
        let (group, version) = tm
            .api_version
            .split_once('/')
            .unwrap_or(("", tm.api_version.as_str()));
        let (ar, caps) = discovery
            .resolve_gvk(&kube::api::GroupVersionKind::gvk(group, version, &tm.kind))
            .expect("kind known to the API server");
        let name = obj.metadata.name.clone().expect("name");
        let api: Api<DynamicObject> = match obj.metadata.namespace.as_deref() {
            Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
                Api::namespaced_with(client.clone(), ns, &ar)
            }
            _ => Api::all_with(client.clone(), &ar),
        };
        api.patch(
            &name,
            &PatchParams::apply("seed-002-test").force(),
            &Patch::Apply(&value),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {} {name}: {e}", tm.kind));
    }
}

async fn queue_depth(moto: &Moto) -> usize {
    moto.boto3(&queue_client("q = eu.get_queue_url(QueueName='orders')['QueueUrl']\na = eu.get_queue_attributes(QueueUrl=q, AttributeNames=['ApproximateNumberOfMessages'])['Attributes']\nprint(a['ApproximateNumberOfMessages'])"))
        .await
        .expect("queue depth")
        .trim()
        .parse()
        .expect("count")
}

/// A boto3 snippet with `eu`, an SQS client in the seed's region (eu-west-1).
fn queue_client(code: &str) -> String {
    format!(
        "c = session.get_credentials()\neu = boto3.client('sqs', region_name='eu-west-1', endpoint_url=sqs.meta.endpoint_url, aws_access_key_id=c.access_key, aws_secret_access_key=c.secret_key)\n{code}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_002_sqs_burst_scales_the_consumer_onto_spot_ec2_and_back_to_zero() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let moto = Moto::start().await.expect("moto");
    let cluster = "seed-002".to_owned();
    let account = moto.eks_account(&cluster).await.expect("account");
    moto.boto3(&queue_client("eu.create_queue(QueueName='orders')"))
        .await
        .expect("queue");
    tandem_testkit::manifest::ensure_namespace(&client, "processing")
        .await
        .expect("namespace");
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    apply(
        &client,
        &discovery,
        &aws_common::seed_text(
            SEED_004,
            "02-ec2nodeclass-default.yaml",
            &cluster,
            &account.role,
        ),
    )
    .await;
    for file in [
        "01-nodepool-node-spot.yaml",
        "02-triggerauthentication-keda-aws-credentials.yaml",
        "03-scaledobject-sqs-consumer-scaler.yaml",
        "04-deployment-sqs-consumer.yaml",
    ] {
        apply(
            &client,
            &discovery,
            &aws_common::seed_text(SEED_002, file, &cluster, &account.role),
        )
        .await;
    }

    // The instances' boot: Nodes registered from their user data, kept Ready by kwok's kubelet.
    let _joining = aws_common::join_instances(&client, &moto, &cluster).await;

    // Both layers in one binary; the external metrics API behind the aggregation layer.
    let pki = cp.pki();
    let certs = common::metrics_server_certs(cp, "seed-002-certs");
    let metrics_port = common::free_port();
    let env = aws_common::env(&moto);
    let replica = Replica::start_with_env(
        "seed-002",
        cp.kubeconfig_path(),
        "default",
        cp.dir(),
        &[
            "--provider",
            "aws",
            "--cluster-name",
            &cluster,
            "--cluster-endpoint",
            "https://127.0.0.1:6443",
            "--metrics-server-cert-dir",
            certs.to_str().expect("utf-8"),
            "--metrics-server-port",
            &metrics_port.to_string(),
        ],
        &env.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let log = || replica.log();
    tandem_testkit::register_external_metrics(&client, pki, metrics_port, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("APIService: {e}\n{}", log()));

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "processing");
    let replicas = || async {
        deployments
            .get("sqs-consumer")
            .await
            .ok()
            .and_then(|d| d.spec)
            .and_then(|s| s.replicas)
            .unwrap_or(-1)
    };
    // Empty queue: nothing runs.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(replicas().await, 0, "empty queue, minReplicaCount 0");

    // 250 messages: 250 / queueLength 5 = 50 replicas, maxReplicaCount 50. The burst lands
    // between two polls, as the seed's "the queue holds 250 messages": the controller is
    // paused while the 25 batches are sent (a pause well inside its lease). Without that a
    // poll in the middle of the send may see 235, activate straight to 47 replicas, and
    // the HPA then keeps 47 because 250 / (47 × 5) = 1.06 is within its 10 % tolerance:
    // right HPA behaviour, but not what this test is about.
    replica.signal("-STOP");
    // A poll already on the wire is answered before the first message is sent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent_burst = moto.boto3(&queue_client(
        "q = eu.get_queue_url(QueueName='orders')['QueueUrl']\nfor b in range(25):\n    eu.send_message_batch(QueueUrl=q, Entries=[{'Id': str(i), 'MessageBody': f'order-{b}-{i}'} for i in range(10)])",
    ))
    .await;
    replica.signal("-CONT");
    sent_burst.expect("send");
    let sent = Instant::now();
    assert_eq!(queue_depth(&moto).await, 250);
    let r = wait_for("sqs-consumer active", TIMEOUT, || async {
        (replicas().await >= 1).then_some(())
    })
    .await;
    check(r, &client, "processing", &log).await;
    let activated = sent.elapsed();
    let r = wait_for("sqs-consumer at 50 replicas", TIMEOUT, || async {
        (replicas().await == 50).then_some(())
    })
    .await;
    check(r, &client, "processing", &log).await;
    let scaled = sent.elapsed();
    let hpa = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), "processing")
        .get("keda-hpa-sqs-consumer-scaler")
        .await
        .expect("the ScaledObject's HPA");
    assert_eq!(hpa.spec.max_replicas, 50);

    let pods: Api<Pod> = Api::namespaced(client.clone(), "processing");
    let nodes: Api<Node> = Api::all(client.clone());
    let r = wait_for("50 consumers Running on EC2 nodes", TIMEOUT, || async {
        (running_on_ec2(&pods, &nodes, "app=sqs-consumer").await == 50).then_some(())
    })
    .await;
    check(r, &client, "processing", &log).await;
    let running = sent.elapsed();
    // Every node is a spot c/m/r instance of node-spot, labelled and tainted as the pool says.
    let ours: Vec<Node> = nodes
        .list(&Default::default())
        .await
        .expect("nodes")
        .items
        .into_iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("karpenter.sh/nodepool"))
                == Some(&"node-spot".to_owned())
        })
        .collect();
    assert!(!ours.is_empty());
    for n in &ours {
        let labels = n.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("intent").map(String::as_str), Some("apps"));
        assert_eq!(
            labels.get("karpenter.sh/capacity-type").map(String::as_str),
            Some("spot")
        );
        let spread = labels.get("capacity-spread").cloned().unwrap_or_default();
        assert!(
            ["2", "3", "4", "5"].contains(&spread.as_str()),
            "capacity-spread {spread}"
        );
        let t = labels
            .get("node.kubernetes.io/instance-type")
            .cloned()
            .unwrap_or_default();
        assert!(matches!(t.chars().next(), Some('c' | 'm' | 'r')), "{t}");
        let taints = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        assert!(
            taints
                .iter()
                .any(|t| t.key == "intent" && t.value.as_deref() == Some("workload-split")),
            "{taints:?}"
        );
    }
    let launched = instance_states(&moto, &cluster).await;
    eprintln!(
        "seed 002 on moto: 250 messages → active {:.1} s, 50 replicas {:.1} s, 50 pods Running {:.1} s on {} spot instances",
        activated.as_secs_f64(),
        scaled.as_secs_f64(),
        running.as_secs_f64(),
        launched.iter().filter(|s| s.1 == "running").count()
    );

    // Drain the queue: inactive → 0 replicas after cooldownPeriod (60 s) → the empty nodes are
    // consolidated (consolidateAfter 1m) and their instances terminated.
    moto.boto3(&queue_client(
        "eu.purge_queue(QueueUrl=eu.get_queue_url(QueueName='orders')['QueueUrl'])",
    ))
    .await
    .expect("purge");
    let drained = Instant::now();
    let r = wait_for("sqs-consumer back to 0", TIMEOUT, || async {
        (replicas().await == 0).then_some(())
    })
    .await;
    check(r, &client, "processing", &log).await;
    let zero = drained.elapsed();
    // cooldownPeriod counts from the last poll that saw messages, at most one pollingInterval
    // (15 s) before the purge.
    assert!(
        zero >= Duration::from_secs(60 - 15),
        "not before cooldownPeriod: {zero:?}"
    );
    // The empty nodes are past consolidateAfter (1m), but pods the HPA's scale-down window
    // (300 s) could bring back would land on them: Tandem keeps them and says why — the
    // seed-002 oscillation its article warns about, avoided (DESIGN.md §3.2).
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let r = wait_for(
        "nodes kept for the consumer's comeback",
        TIMEOUT,
        || async {
            let list = events
                .list(&ListParams::default().fields("reason=DisruptionBlocked"))
                .await
                .ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.message.as_deref().is_some_and(|m| {
                        m.contains("may bring back") && m.contains("processing/sqs-consumer")
                    })
                })
                .then_some(())
        },
    )
    .await;
    check(r, &client, "processing", &log).await;
    let kept = instance_states(&moto, &cluster).await;
    assert!(
        kept.iter().any(|s| s.1 == "running"),
        "kept instances still run: {kept:?}"
    );
    eprintln!(
        "seed 002 on moto: drained → 0 replicas {:.1} s; empty nodes kept for the comeback window ({:.1} s after the drain)",
        zero.as_secs_f64(),
        drained.elapsed().as_secs_f64()
    );
    // `kubectl delete nodeclaims --all`: every instance terminated.
    let claims: Api<tandem_api::karpenter::NodeClaim> = Api::all(client.clone());
    claims
        .delete_collection(&Default::default(), &ListParams::default())
        .await
        .expect("delete claims");
    let r = wait_for("every instance terminated", TIMEOUT, || async {
        let states = instance_states(&moto, &cluster).await;
        (!states.is_empty() && states.iter().all(|s| s.1 == "terminated")).then_some(())
    })
    .await;
    check(r, &client, "processing", &log).await;
}

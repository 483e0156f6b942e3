//! Crash safety of both layers together, over seed 002's chain: an `aws-sqs-queue` trigger on
//! moto's SQS → ScaledObject → HPA through the external metrics API → a Deployment → kwok
//! nodes, while the queue fills and drains, the NodePool's template changes (drift), spot
//! interruption notices arrive and nodes and claims are deleted by hand — and `tandem run` is
//! killed with `kill -9` at seeded random moments, 100 times (`TANDEM_CHAIN_KILLS`,
//! `TANDEM_CHAIN_SEED`), restarted each time.
//!
//! Checked at every step: the Deployment's replicas within the ScaledObject's [min, max]; the
//! NodePool's claims within its CPU limit; the `karpenter.sh/do-not-disrupt` pod and a pod
//! whose PodDisruptionBudget allows no disruption never evicted nor their nodes deleted (the
//! test never deletes or interrupts their nodes, so only a voluntary disruption — drift,
//! consolidation — could move them). At the end, once the queue holds 4 messages and a last replica has settled: 4 consumers
//! Running, no claim without an instance nor instance without a claim, nothing stuck deleting,
//! every interruption notice handled.
//!
//! One test per binary: the node layer acts on every NodePool of its control plane.

#[path = "common/aws.rs"]
mod aws_common;
#[path = "common/chaos.rs"]
mod chaos;
mod common;
#[path = "common/ec2_join.rs"]
mod ec2_join;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_testkit::services::Moto;
use tandem_testkit::{ControlPlane, wait_for};

const SETTLE: Duration = Duration::from_secs(300);
/// Kills per run unless `TANDEM_CHAIN_KILLS` says otherwise.
const DEFAULT_KILLS: u32 = 100;
const MAX_REPLICAS: i32 = 6;
const FINAL_MESSAGES: usize = 4;
/// c-2x-amd64-linux: 2 vCPU; the pool's limit allows 10 of them.
const CPU_LIMIT: usize = 20;
const CPU_PER_NODE: usize = 2;
const QUEUE: &str = "chaos";
const INTERRUPTION_LABEL: &str = "karpenter.kwok.sh/interruption";

/// A boto3 snippet with `eu`, an SQS client in eu-west-1 (the region the trigger names).
fn queue_client(code: &str) -> String {
    format!(
        "c = session.get_credentials()\neu = boto3.client('sqs', region_name='eu-west-1', \
         endpoint_url=sqs.meta.endpoint_url, aws_access_key_id=c.access_key, \
         aws_secret_access_key=c.secret_key)\n{code}"
    )
}

/// Empties the queue and puts `n` messages on it.
async fn set_depth(moto: &Moto, n: usize) {
    moto.boto3(&queue_client(&format!(
        "q = eu.get_queue_url(QueueName='{QUEUE}')['QueueUrl']\neu.purge_queue(QueueUrl=q)\n\
         for i in range({n}):\n    eu.send_message(QueueUrl=q, MessageBody=f'order-{{i}}')"
    )))
    .await
    .expect("set the queue depth");
}

async fn create<K>(api: &Api<K>, value: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create");
}

fn start(
    cp: &ControlPlane,
    ns: &str,
    i: u32,
    env: &[(String, String)],
    extra: &[&str],
) -> common::Replica {
    let args = [&chaos::KILLED_REPLICA_ARGS[..], extra].concat();
    common::Replica::start_with_env(
        &format!("chain-{i}"),
        cp.kubeconfig_path(),
        ns,
        cp.dir(),
        &args,
        &env.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    )
}

/// A pod no voluntary disruption may move, and where it runs.
struct Guard {
    name: &'static str,
    uid: String,
    node: String,
}

/// The NodePool's nodes, but for those the guard pods run on.
async fn unguarded_nodes(client: &Client, ns: &str, guards: &[Guard]) -> Vec<String> {
    Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
        .await
        .expect("nodes")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .filter(|n| guards.iter().all(|g| g.node != *n))
        .collect()
}

/// The invariants that must hold at any moment; what broke otherwise.
async fn invariants(client: &Client, ns: &str, guards: &[Guard]) -> Result<(), String> {
    let replicas = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("consumer")
        .await
        .map_err(|e| e.to_string())?
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(-1);
    if !(0..=MAX_REPLICAS).contains(&replicas) {
        return Err(format!(
            "consumer has {replicas} replicas, outside [0, {MAX_REPLICAS}]"
        ));
    }
    let claims = Api::<NodeClaim>::all(client.clone())
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
        .await
        .map_err(|e| e.to_string())?
        .items
        .len();
    if claims * CPU_PER_NODE > CPU_LIMIT {
        return Err(format!(
            "{claims} claims of {CPU_PER_NODE} CPU exceed the limit {CPU_LIMIT}"
        ));
    }
    for g in guards {
        match Api::<Pod>::namespaced(client.clone(), ns)
            .get_opt(g.name)
            .await
        {
            Ok(Some(p))
                if p.metadata.uid.as_deref() == Some(g.uid.as_str())
                    && p.metadata.deletion_timestamp.is_none() => {}
            Ok(p) => {
                return Err(format!(
                    "guard pod {} was disrupted: {:?}",
                    g.name,
                    p.map(|p| p.metadata)
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
        match Api::<Node>::all(client.clone()).get_opt(&g.node).await {
            Ok(Some(n)) if n.metadata.deletion_timestamp.is_none() => {}
            Ok(_) => return Err(format!("node {} of guard pod {} deleted", g.node, g.name)),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// The end state, or why it is not reached yet.
async fn settled(client: &Client, ns: &str) -> Result<String, String> {
    let (claims, instances) = chaos::nothing_leaked(client, ns).await?;
    let running = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app=consumer"))
        .await
        .map_err(|e| e.to_string())?
        .items
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .count();
    if running != FINAL_MESSAGES {
        return Err(format!("{running} of {FINAL_MESSAGES} consumers Running"));
    }
    let interrupted = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels(INTERRUPTION_LABEL))
        .await
        .map_err(|e| e.to_string())?
        .items
        .len();
    if interrupted > 0 {
        return Err(format!("{interrupted} interruption notices unhandled"));
    }
    Ok(format!(
        "{claims} claims = {instances} instances, {running} consumers Running"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_through_the_whole_chain_loses_and_leaks_nothing() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("chain").await.expect("namespace");
    let moto = Moto::start().await.expect("moto");
    moto.boto3(&queue_client(&format!(
        "eu.create_queue(QueueName='{QUEUE}')"
    )))
    .await
    .expect("queue");
    let env = aws_common::env(&moto);

    let class = format!("{ns}-kwok");
    common::kwok_class(&client, &class).await;
    create(
        &Api::<NodePool>::all(client.clone()),
        json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": ns},
            "spec": {"limits": {"cpu": CPU_LIMIT.to_string()},
                "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "2s"},
                "template": {"metadata": {"labels": {"generation": "0"}}, "spec": {
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-2x-amd64-linux"]}],
                    "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
        }),
    )
    .await;
    let pool_selector = json!({"karpenter.sh/nodepool": ns});
    create(
        &Api::<Deployment>::namespaced(client.clone(), &ns),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "consumer"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "consumer"}},
                "template": {"metadata": {"labels": {"app": "consumer"}}, "spec": {
                    "terminationGracePeriodSeconds": 1, "nodeSelector": pool_selector,
                    "containers": [{"name": "consumer", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "1500m"}}}]}}},
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // Two pods no voluntary disruption may move: one annotated do-not-disrupt, one covered by
    // a PodDisruptionBudget that allows no disruption (one pod, minAvailable 1).
    create(
        &Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(client.clone(), &ns),
        json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "pdb-guard"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "pdb-guard"}}},
        }),
    )
    .await;
    for metadata in [
        json!({"name": "guard", "annotations": {"karpenter.sh/do-not-disrupt": "true"}}),
        json!({"name": "pdb-guard", "labels": {"app": "pdb-guard"}}),
    ] {
        create(
            &pods,
            json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                "spec": {"terminationGracePeriodSeconds": 1, "nodeSelector": pool_selector,
                    "containers": [{"name": "guard", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "200m"}}}]},
            }),
        )
        .await;
    }
    let keda = |kind: &str, plural: &str| {
        kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("keda.sh", "v1alpha1", kind),
            plural,
        )
    };
    let dynamic = |kind: &str, plural: &str| {
        Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), &ns, &keda(kind, plural))
    };
    create(
        &dynamic("TriggerAuthentication", "triggerauthentications"),
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "keda-aws-credentials"},
            "spec": {"podIdentity": {"provider": "aws"}},
        }),
    )
    .await;
    create(
        &dynamic("ScaledObject", "scaledobjects"),
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "consumer-scaler"},
            "spec": {"scaleTargetRef": {"name": "consumer"},
                "minReplicaCount": 0, "maxReplicaCount": MAX_REPLICAS,
                "pollingInterval": 1, "cooldownPeriod": 3,
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": 0}}}},
                "triggers": [{"type": "aws-sqs-queue",
                    "authenticationRef": {"name": "keda-aws-credentials"},
                    "metadata": {
                        "queueURL": format!("https://sqs.eu-west-1.amazonaws.com/123456789012/{QUEUE}"),
                        "queueLength": "1", "awsRegion": "eu-west-1"}}]},
        }),
    )
    .await;

    // The external metrics API on a fixed port, registered once: every restart serves it again.
    let certs = common::metrics_server_certs(cp, "chain-certs");
    let metrics_port = common::free_port().to_string();
    let extra = [
        "--metrics-server-cert-dir",
        certs.to_str().expect("utf-8"),
        "--metrics-server-port",
        metrics_port.as_str(),
    ];
    let mut replica = start(cp, &ns, 0, &env, &extra);
    tandem_testkit::register_external_metrics(
        &client,
        cp.pki(),
        metrics_port.parse().expect("port"),
        SETTLE,
    )
    .await
    .unwrap_or_else(|e| panic!("APIService: {e}\n{}", replica.log()));

    // The guards land first; the test never deletes or interrupts their nodes.
    let mut guards = Vec::new();
    for name in ["guard", "pdb-guard"] {
        let (uid, node) = wait_for(&format!("{name} Running"), SETTLE, || async {
            let p = pods.get(name).await.ok()?;
            let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
            if !running {
                return None;
            }
            Some((p.metadata.uid.clone()?, p.spec?.node_name?))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", replica.log()));
        guards.push(Guard { name, uid, node });
    }
    let guards = std::sync::Arc::new(guards);

    let kills_wanted: u32 = std::env::var("TANDEM_CHAIN_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let seed: u64 = std::env::var("TANDEM_CHAIN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6368_6169);
    let mut rng = common::Lcg(seed);
    let (mut depths, mut drifts, mut interruptions, mut node_deletes, mut claim_deletes) =
        (0, 0, 0, 0, 0);
    let mut generation = 0;
    let check = |when: String| {
        let (client, ns, guards) = (client.clone(), ns.clone(), guards.clone());
        async move {
            if let Err(e) = invariants(&client, &ns, &guards).await {
                panic!("{when}: {e}");
            }
        }
    };
    for i in 1..=kills_wanted {
        match rng.next(10) {
            0..=2 => {
                set_depth(&moto, rng.next(MAX_REPLICAS as u64 + 1) as usize).await;
                depths += 1;
            }
            3 => {
                generation += 1;
                Api::<NodePool>::all(client.clone())
                    .patch(
                        &ns,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"spec": {"template": {"metadata": {"labels": {
                            "generation": generation.to_string()}}}}})),
                    )
                    .await
                    .expect("drift the pool");
                drifts += 1;
            }
            4 | 5 => {
                let nodes = unguarded_nodes(&client, &ns, &guards).await;
                if let Some(n) = nodes.get(rng.next(nodes.len().max(1) as u64) as usize) {
                    let _ = Api::<Node>::all(client.clone())
                        .patch(
                            n,
                            &PatchParams::default(),
                            &Patch::Merge(&json!({"metadata": {"labels": {
                                INTERRUPTION_LABEL: "spot_interrupted"}}})),
                        )
                        .await;
                    interruptions += 1;
                }
            }
            6 => {
                let nodes = unguarded_nodes(&client, &ns, &guards).await;
                if let Some(n) = nodes.get(rng.next(nodes.len().max(1) as u64) as usize) {
                    let _ = Api::<Node>::all(client.clone())
                        .delete(n, &DeleteParams::default())
                        .await;
                    node_deletes += 1;
                }
            }
            7 => {
                let claims: Vec<String> = Api::<NodeClaim>::all(client.clone())
                    .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}")))
                    .await
                    .expect("claims")
                    .items
                    .into_iter()
                    .filter(|c| {
                        let node = c.status.as_ref().and_then(|s| s.node_name.as_deref());
                        guards.iter().all(|g| node != Some(g.node.as_str()))
                    })
                    .filter_map(|c| c.metadata.name)
                    .collect();
                if let Some(c) = claims.get(rng.next(claims.len().max(1) as u64) as usize) {
                    let _ = Api::<NodeClaim>::all(client.clone())
                        .delete(c, &DeleteParams::default())
                        .await;
                    claim_deletes += 1;
                }
            }
            _ => {}
        }
        check(format!("after step {i}")).await;
        tokio::time::sleep(Duration::from_millis(rng.next(2_000))).await;
        check(format!("before kill {i}")).await;
        replica.signal("-KILL");
        drop(replica);
        replica = start(cp, &ns, i, &env, &extra);
    }
    set_depth(&moto, FINAL_MESSAGES).await;
    let outcome = wait_for("everything settled", SETTLE, || async {
        settled(&client, &ns).await.ok()
    })
    .await
    .unwrap_or_else(|e| {
        let why = block(settled(&client, &ns));
        let cluster = block(tandem_testkit::describe::node_layer(&client, &ns));
        panic!("{e}: {why:?}\n{cluster}last replica:\n{}", replica.log())
    });
    check("at the end".into()).await;
    eprintln!(
        "chain crash test (seed {seed}): {kills_wanted} kill -9 ({depths} queue depth changes, \
         {drifts} drifts, {interruptions} interruption notices, {node_deletes} node deletions, \
         {claim_deletes} claim deletions in between); afterwards {outcome}"
    );
}

/// Runs a future to completion from a panic path inside the runtime.
fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

//! `tandem run --provider aws` as an EKS user runs it, against moto's EC2/SSM/IAM/SQS server
//! and the real control plane: seed 004's EC2NodeClass, NodePool and nginx Deployment, applied
//! unchanged but for their placeholders. The provider resolves the class, launches EC2 Fleet
//! instances, and the instances "join" (see `ec2_join`): every nginx pod runs on an
//! EC2-backed node. Then a spot interruption warning on the SQS queue replaces and drains a
//! node, and an instance tagged for a NodeClaim that does not exist is garbage-collected.
//!
//! One test per binary: the node layer acts on every NodePool of its control plane.

#[path = "common/aws.rs"]
mod aws_common;
mod common;
#[path = "common/ec2_join.rs"]
mod ec2_join;

use aws_common::{check, instance_states, running_on_ec2};

use std::time::Duration;

use common::Replica;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use tandem_api::aws::v1::EC2NodeClass;
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_testkit::services::Moto;
use tandem_testkit::{ControlPlane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(180);
const SEED: &str = "examples/seeds/004_27f72e644f865756";

fn seed(file: &str, cluster: &str, role: &str) -> String {
    aws_common::seed_text(SEED, file, cluster, role)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_runs_on_ec2_survives_a_spot_interruption_and_leaks_no_instance() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("aws").await.expect("namespace");
    let moto = Moto::start().await.expect("moto");
    let cluster = format!("{ns}-eks");
    let account = moto.eks_account(&cluster).await.expect("account");
    let queue = format!("{cluster}-interruption");
    let queue_url = moto
        .boto3(&format!(
            "print(sqs.create_queue(QueueName='{queue}')['QueueUrl'])"
        ))
        .await
        .expect("queue")
        .trim()
        .to_owned();

    let class: EC2NodeClass = serde_yaml_ng::from_str(&seed(
        "02-ec2nodeclass-default.yaml",
        &cluster,
        &account.role,
    ))
    .expect("class");
    Api::<EC2NodeClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .expect("create class");
    let pool: NodePool =
        serde_yaml_ng::from_str(&seed("01-nodepool-default.yaml", &cluster, &account.role))
            .expect("pool");
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &pool)
        .await
        .expect("create pool");

    // The instances' boot: Nodes registered from their user data, kept Ready by kwok's kubelet.
    let _joining = aws_common::join_instances(&client, &moto, &cluster).await;

    let env = aws_common::env(&moto);
    let replica = Replica::start_with_env(
        "aws",
        cp.kubeconfig_path(),
        &ns,
        cp.dir(),
        &[
            "--provider",
            "aws",
            "--cluster-name",
            &cluster,
            "--cluster-endpoint",
            "https://127.0.0.1:6443",
            "--interruption-queue",
            &queue,
            "--disable-pod-layer",
            "--gc-interval",
            "2s",
            "--gc-orphan-grace",
            "5s",
        ],
        &env.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let log = || replica.log();

    let deployment: Deployment =
        serde_yaml_ng::from_str(&seed("03-deployment-nginx.yaml", &cluster, &account.role))
            .expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let nodes: Api<Node> = Api::all(client.clone());
    let r = wait_for("10 nginx pods Running on EC2 nodes", TIMEOUT, || async {
        (running_on_ec2(&pods, &nodes, "app=nginx").await == 10).then_some(())
    })
    .await;
    check(r, &client, &ns, &log).await;

    let claims: Api<NodeClaim> = Api::all(client.clone());
    let before = claims
        .list(&ListParams::default())
        .await
        .expect("claims")
        .items;
    assert!(!before.is_empty());
    let states = instance_states(&moto, &cluster).await;
    let running: Vec<_> = states.iter().filter(|s| s.1 == "running").collect();
    assert_eq!(
        running.len(),
        before.len(),
        "one instance per claim: {states:?}"
    );
    for c in &before {
        let labels = c.metadata.labels.clone().unwrap_or_default();
        let t = labels
            .get("node.kubernetes.io/instance-type")
            .cloned()
            .unwrap_or_default();
        assert!(
            matches!(t.chars().next(), Some('c' | 'm' | 'r')),
            "seed 004 allows c/m/r: {t}"
        );
    }

    // A spot interruption warning for one instance: its claim is replaced and drained, its
    // instance terminated, and nginx runs again in full.
    let (victim_id, _, victim_claim) = running[0].clone();
    let warning = serde_json::json!({
        "version": "0", "id": "3b7c", "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2", "account": "123456789012", "time": "2026-11-26T01:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {"instance-id": victim_id, "instance-action": "terminate"}
    });
    moto.boto3(&format!(
        "sqs.send_message(QueueUrl='{queue_url}', MessageBody={})",
        serde_json::to_string(&warning.to_string()).expect("quote")
    ))
    .await
    .expect("send warning");
    let r = wait_for(
        "the interrupted instance terminated and its claim gone",
        TIMEOUT,
        || async {
            let gone = claims.get_opt(&victim_claim).await.ok().flatten().is_none();
            let states = instance_states(&moto, &cluster).await;
            let terminated = states
                .iter()
                .any(|s| s.0 == victim_id && s.1 == "terminated");
            (gone && terminated).then_some(())
        },
    )
    .await;
    check(r, &client, &ns, &log).await;
    let r = wait_for("10 nginx pods Running again", TIMEOUT, || async {
        (running_on_ec2(&pods, &nodes, "app=nginx").await == 10).then_some(())
    })
    .await;
    check(r, &client, &ns, &log).await;
    let metrics = common::get(replica.metrics, "/metrics")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("karpenter_interruption_received_messages_total")
                && l.contains("spot_interrupted")
        ),
        "the interruption is counted:\n{metrics}"
    );

    // An instance tagged for this cluster and a NodeClaim that never existed (a controller that
    // crashed between launch and writing the claim): garbage-collected after the grace period.
    let orphan = moto
        .boto3(&format!(
            r#"
r = ec2.run_instances(ImageId="ami-ekslinux", InstanceType="m5.large", MinCount=1, MaxCount=1,
    TagSpecifications=[{{"ResourceType": "instance", "Tags": [
        {{"Key": "kubernetes.io/cluster/{cluster}", "Value": "owned"}},
        {{"Key": "karpenter.sh/nodepool", "Value": "default"}},
        {{"Key": "karpenter.sh/nodeclaim", "Value": "default-never-written"}}]}}])
print(r["Instances"][0]["InstanceId"])
"#
        ))
        .await
        .expect("orphan")
        .trim()
        .to_owned();
    wait_for("the orphan instance terminated", TIMEOUT, || async {
        let states = instance_states(&moto, &cluster).await;
        states
            .iter()
            .any(|s| s.0 == orphan && s.1 == "terminated")
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));

    // `kubectl delete nodeclaims --all` (upstream's clean-up): every instance terminated.
    deployments
        .delete("nginx", &Default::default())
        .await
        .expect("delete deployment");
    claims
        .delete_collection(&Default::default(), &ListParams::default())
        .await
        .expect("delete claims");
    let left = wait_for("every instance terminated", TIMEOUT, || async {
        let states = instance_states(&moto, &cluster).await;
        states.iter().all(|s| s.1 == "terminated").then_some(())
    })
    .await;
    if let Err(e) = left {
        panic!(
            "{e}\n{:?}\n{}",
            instance_states(&moto, &cluster).await,
            log()
        );
    }
}

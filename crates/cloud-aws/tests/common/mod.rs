//! Shared set-up for the moto tests: an AWS "account" shaped like seed 004's cluster (tagged
//! subnets and security group, a node role), the seed's EC2NodeClass applied to the real API
//! server, and a provider pointed at moto (or at a proxy in front of it).

#![allow(dead_code)]

pub mod ice_proxy;

use std::sync::Arc;

use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tandem_api::aws::v1::EC2NodeClass;
use tandem_api::karpenter::NodeClaim;
use tandem_cloud_aws::{AwsCloud, AwsSettings, Clients, StaticCredentials};
use tandem_model::catalog::Catalog;
use tandem_testkit::services::Moto;
use tandem_testkit::workspace_root;

pub use tandem_testkit::services::EksAccount as Account;

/// Tags two default subnets and the default security group for discovery and creates the node
/// role (see [`Moto::eks_account`]).
pub async fn account(moto: &Moto, cluster: &str) -> Account {
    moto.eks_account(cluster).await.expect("account set-up")
}

/// Seed 004's EC2NodeClass, unchanged but for its placeholders and a per-test name, created in
/// the API server.
pub async fn seed_class(client: &Client, name: &str, cluster: &str, role: &str) -> EC2NodeClass {
    let path =
        workspace_root().join("examples/seeds/004_27f72e644f865756/02-ec2nodeclass-default.yaml");
    let text = std::fs::read_to_string(&path)
        .expect("seed 004 class")
        .replace("<NODE_ROLE_NAME>", role)
        .replace("<CLUSTER_NAME>", cluster)
        .replace("name: default", &format!("name: {name}"));
    let class: EC2NodeClass = serde_yaml_ng::from_str(&text).expect("parse class");
    Api::<EC2NodeClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .expect("create class")
}

/// A NodeClaim as the node layer makes it from seed 004's NodePool `default`.
pub fn seed_claim(name: &str, class: &str, extra: &[Value]) -> NodeClaim {
    let mut reqs = vec![
        json!({"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}),
        json!({"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}),
        json!({"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand", "reserved"]}),
        json!({"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]}),
        json!({"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["2"]}),
        json!({"key": "karpenter.sh/nodepool", "operator": "In", "values": ["default"]}),
    ];
    reqs.extend(extra.iter().cloned());
    serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": name, "labels": {"karpenter.sh/nodepool": "default"}},
        "spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": class},
            "requirements": reqs,
            "resources": {"requests": {"cpu": "1500m", "memory": "2Gi", "pods": "5"}},
            "expireAfter": "720h"
        }
    }))
    .expect("claim")
}

/// Provider settings for `cluster` against `endpoint`.
pub fn settings(moto: &Moto, endpoint: &str, cluster: &str, queue: Option<&str>) -> AwsSettings {
    AwsSettings {
        region: "us-east-1".into(),
        endpoint: Some(endpoint.to_owned()),
        credentials: Some(StaticCredentials {
            access_key_id: moto.access_key_id().to_owned(),
            secret_access_key: moto.secret_access_key().to_owned(),
        }),
        cluster_name: cluster.to_owned(),
        cluster_endpoint: "https://127.0.0.1:6443".into(),
        interruption_queue: queue.map(str::to_owned),
        kubernetes_version: "1.36".into(),
        request_timeout: tandem_cloud_aws::settings::DEFAULT_REQUEST_TIMEOUT,
    }
}

/// The provider and its clients.
pub async fn provider(client: &Client, settings: &AwsSettings) -> (AwsCloud, Clients) {
    let clients = Clients::new(settings).await;
    let catalog = Arc::new(Catalog::aws_us_east_1().expect("catalog"));
    (
        AwsCloud::new(clients.clone(), settings.clone(), client.clone(), catalog),
        clients,
    )
}

/// The launch templates the provider made for `cluster`, with their latest data, as JSON.
pub async fn launch_templates(moto: &Moto, cluster: &str) -> Value {
    let out = moto
        .boto3(&format!(
            r#"
out = []
for t in ec2.describe_launch_templates()["LaunchTemplates"]:
    if t["LaunchTemplateName"].startswith("tandem/{cluster}/"):
        v = ec2.describe_launch_template_versions(LaunchTemplateId=t["LaunchTemplateId"], Versions=["$Latest"])["LaunchTemplateVersions"][0]
        out.append({{"name": t["LaunchTemplateName"], "data": v["LaunchTemplateData"]}})
print(json.dumps(out, default=str))
"#
        ))
        .await
        .expect("describe launch templates");
    serde_json::from_str(out.trim()).expect("launch template output")
}

/// A name unique to this run (tests share one control plane).
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{n:08x}")
}

/// A cluster with seed 004's class resolved and Ready, and a provider reaching AWS at
/// `endpoint` (moto, or a proxy in front of it).
pub struct Ready {
    /// The cluster name.
    pub cluster: String,
    /// The class name.
    pub class: String,
    /// The provider.
    pub cloud: AwsCloud,
}

/// Sets up [`Ready`] for a cluster named after `prefix`.
pub async fn ready(
    client: &Client,
    moto: &Moto,
    prefix: &str,
    endpoint: &str,
    queue: Option<&str>,
) -> Ready {
    ready_tuned(client, moto, prefix, endpoint, queue, |_| {}).await
}

/// [`ready`] with settings changed by `tune` first.
pub async fn ready_tuned(
    client: &Client,
    moto: &Moto,
    prefix: &str,
    endpoint: &str,
    queue: Option<&str>,
    tune: impl FnOnce(&mut AwsSettings),
) -> Ready {
    let cluster = unique(prefix);
    let account = account(moto, &cluster).await;
    let name = format!("{cluster}-default");
    let class = seed_class(client, &name, &cluster, &account.role).await;
    let mut settings = settings(moto, endpoint, &cluster, queue);
    tune(&mut settings);
    let (cloud, clients) = provider(client, &settings).await;
    tandem_cloud_aws::nodeclass::reconcile(client, &clients, &settings, &class)
        .await
        .expect("reconcile");
    Ready {
        cluster,
        class: name,
        cloud,
    }
}

/// The instance as EC2 describes it (boto3), as JSON.
pub async fn describe_instance(moto: &Moto, id: &str) -> Value {
    let out = moto
        .boto3(&format!(
            r#"
i = ec2.describe_instances(InstanceIds=["{id}"])["Reservations"][0]["Instances"][0]
print(json.dumps({{"type": i["InstanceType"], "subnet": i.get("SubnetId"), "image": i["ImageId"], "state": i["State"]["Name"],
  "zone": i["Placement"]["AvailabilityZone"], "lifecycle": i.get("InstanceLifecycle", "on-demand"),
  "groups": [g["GroupId"] for g in i.get("SecurityGroups", [])],
  "profile": i.get("IamInstanceProfile", {{}}).get("Arn", ""),
  "tags": {{t["Key"]: t["Value"] for t in i.get("Tags", [])}}}}))
"#
        ))
        .await
        .expect("describe instance");
    serde_json::from_str(out.trim()).expect("describe output")
}

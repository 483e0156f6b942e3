//! Helpers of the tests that run `tandem run --provider aws` against moto.
#![allow(dead_code)] // each test binary uses a different subset

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use tandem_testkit::services::Moto;
use tandem_testkit::workspace_root;

/// A seed file with the placeholders an EKS guide leaves for the reader filled in.
pub fn seed_text(seed_dir: &str, file: &str, cluster: &str, role: &str) -> String {
    std::fs::read_to_string(workspace_root().join(seed_dir).join(file))
        .expect("seed file")
        .replace("<NODE_ROLE_NAME>", role)
        .replace("<CLUSTER_NAME>", cluster)
}

/// Pods matching `selector` that are Running on a Node with an AWS provider ID.
pub async fn running_on_ec2(pods: &Api<Pod>, nodes: &Api<Node>, selector: &str) -> usize {
    let aws: Vec<String> = nodes
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            n.spec
                .as_ref()
                .and_then(|s| s.provider_id.as_deref())
                .is_some_and(|p| p.starts_with("aws:///"))
        })
        .filter_map(|n| n.metadata.name)
        .collect();
    pods.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| aws.contains(n))
        })
        .count()
}

/// `(instance id, state, nodeclaim tag)` of every instance of `cluster`.
pub async fn instance_states(moto: &Moto, cluster: &str) -> Vec<(String, String, String)> {
    let out = moto
        .boto3(&format!(
            r#"
for r in ec2.describe_instances(Filters=[{{"Name": "tag:kubernetes.io/cluster/{cluster}", "Values": ["owned"]}}])["Reservations"]:
    for i in r["Instances"]:
        tags = {{t["Key"]: t["Value"] for t in i.get("Tags", [])}}
        print(i["InstanceId"], i["State"]["Name"], tags.get("karpenter.sh/nodeclaim", "-"))
"#
        ))
        .await
        .expect("describe instances");
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().map(str::to_owned);
            Some((w.next()?, w.next()?, w.next()?))
        })
        .collect()
}

/// Panics with the node layer's state and the controller's log when a wait failed.
pub async fn check<T, E: std::fmt::Display>(
    r: Result<T, E>,
    client: &Client,
    ns: &str,
    log: &dyn Fn() -> String,
) {
    if let Err(e) = r {
        panic!(
            "{e}\n{}\n{}",
            tandem_testkit::describe::node_layer(client, ns).await,
            log()
        );
    }
}

/// The instances' boot while it lives: Nodes registered from each instance's user data
/// ([`crate::ec2_join`]) and kept Ready, with their pods run, by kwok's kubelet.
pub struct Joining {
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for Joining {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts [`Joining`] for the instances of `cluster` in `moto`.
pub async fn join_instances(client: &Client, moto: &Moto, cluster: &str) -> Joining {
    let settings = tandem_cloud_aws::AwsSettings {
        region: "us-east-1".into(),
        endpoint: Some(moto.endpoint()),
        credentials: Some(tandem_cloud_aws::StaticCredentials {
            access_key_id: moto.access_key_id().to_owned(),
            secret_access_key: moto.secret_access_key().to_owned(),
        }),
        cluster_name: cluster.to_owned(),
        cluster_endpoint: String::new(),
        interruption_queue: None,
        kubernetes_version: String::new(),
        request_timeout: tandem_cloud_aws::settings::DEFAULT_REQUEST_TIMEOUT,
    };
    let clients = tandem_cloud_aws::Clients::new(&settings).await;
    let catalog =
        std::sync::Arc::new(tandem_model::catalog::Catalog::aws_us_east_1().expect("catalog"));
    Joining {
        tasks: [
            tokio::spawn(crate::ec2_join::run(
                client.clone(),
                clients.ec2.clone(),
                cluster.to_owned(),
                catalog,
            )),
            tokio::spawn(tandem_cloud::kwok::Kubelet::new(client.clone()).run()),
        ],
    }
}

/// The environment `tandem run --provider aws` gets to reach moto (the SDK's own variables).
pub fn env(moto: &Moto) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), moto.endpoint()),
        ("AWS_ACCESS_KEY_ID".into(), moto.access_key_id().into()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            moto.secret_access_key().into(),
        ),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
}

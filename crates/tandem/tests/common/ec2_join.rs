//! What an EC2 instance does after boot, for instances moto "launches": nodeadm reads the user
//! data the provider wrote and registers a Node with its labels and taints, and the cloud
//! controller adds the provider ID, zone and instance type; when the instance is terminated the
//! cloud controller deletes the Node. The Node carries kwok's marker so the kwok kubelet keeps
//! it Ready and runs its pods — moto has no machines to run them on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, InstanceAttributeName};
use base64::Engine as _;
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tandem_model::catalog::Catalog;

/// `--node-labels` and `--register-with-taints` from nodeadm user data.
pub fn kubelet_flags(user_data: &str) -> (BTreeMap<String, String>, Vec<Taint>) {
    let flag = |name: &str| {
        user_data.lines().find_map(|l| {
            let v = l.trim().strip_prefix("- ")?.strip_prefix(name)?;
            Some(v.trim_matches('"').to_owned())
        })
    };
    let labels = flag("--node-labels=")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let taints = flag("--register-with-taints=")
        .unwrap_or_default()
        .split(',')
        .filter_map(|t| {
            let (kv, effect) = t.rsplit_once(':')?;
            let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
            Some(Taint {
                key: key.to_owned(),
                value: (!value.is_empty()).then(|| value.to_owned()),
                effect: effect.to_owned(),
                time_added: None,
            })
        })
        .collect();
    (labels, taints)
}

/// Registers a Node for every running instance of `cluster` and deletes the Node of every
/// terminated one, every 300 ms, until the task is aborted.
pub async fn run(client: Client, ec2: aws_sdk_ec2::Client, cluster: String, catalog: Arc<Catalog>) {
    let nodes: Api<Node> = Api::all(client);
    let mut joined: BTreeSet<String> = BTreeSet::new();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Ok(out) = ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:kubernetes.io/cluster/{cluster}"))
                    .values("owned")
                    .build(),
            )
            .send()
            .await
        else {
            continue;
        };
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let (Some(id), Some(zone)) = (
                i.instance_id(),
                i.placement().and_then(|p| p.availability_zone()),
            ) else {
                continue;
            };
            let name = format!("{id}.ec2.internal");
            let state = i
                .state()
                .and_then(|s| s.name())
                .map(|s| s.as_str().to_owned());
            if matches!(state.as_deref(), Some("terminated" | "shutting-down")) {
                if joined.remove(id) {
                    let _ = nodes.delete(&name, &DeleteParams::default()).await;
                }
                continue;
            }
            if joined.contains(id) {
                continue;
            }
            let Ok(attr) = ec2
                .describe_instance_attribute()
                .instance_id(id)
                .attribute(InstanceAttributeName::UserData)
                .send()
                .await
            else {
                continue;
            };
            let user_data = attr
                .user_data()
                .and_then(|u| u.value())
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let (mut labels, taints) = kubelet_flags(&user_data);
            let itype = i
                .instance_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default();
            let it = catalog.get(&itype);
            let arch = it
                .and_then(|t| t.requirements().get(tandem_model::labels::ARCH))
                .and_then(|r| r.values().first().cloned())
                .unwrap_or_else(|| "amd64".into());
            for (k, v) in [
                ("kubernetes.io/hostname", name.clone()),
                ("kubernetes.io/arch", arch),
                ("kubernetes.io/os", "linux".into()),
                ("node.kubernetes.io/instance-type", itype.clone()),
                ("topology.kubernetes.io/zone", zone.to_owned()),
                ("topology.kubernetes.io/region", "us-east-1".into()),
                (tandem_cloud::kwok::FAKE_NODE_LABEL, "fake".into()),
            ] {
                labels.insert(k.to_owned(), v);
            }
            let quantities = |r: Option<&tandem_model::resources::Resources>| {
                r.map(|r| {
                    r.to_quantities()
                        .into_iter()
                        .map(|(k, v)| (k, Quantity(v.to_string())))
                        .collect::<BTreeMap<_, _>>()
                })
            };
            let node = Node {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    annotations: Some(
                        [(
                            tandem_cloud::kwok::FAKE_NODE_LABEL.to_owned(),
                            "fake".to_owned(),
                        )]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                },
                spec: Some(NodeSpec {
                    provider_id: Some(format!("aws:///{zone}/{id}")),
                    taints: Some(taints),
                    ..NodeSpec::default()
                }),
                status: None,
            };
            match nodes.create(&PostParams::default(), &node).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(_) => continue,
            }
            let status = NodeStatus {
                capacity: quantities(it.map(|t| t.capacity())),
                allocatable: quantities(it.map(|t| t.allocatable())),
                ..NodeStatus::default()
            };
            if nodes
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&serde_json::json!({ "status": status })),
                )
                .await
                .is_ok()
            {
                joined.insert(id.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_flags_the_provider_writes() {
        let ud = "spec:\n  kubelet:\n    flags:\n    - --node-labels=\"a=1,karpenter.sh/nodepool=default\"\n    - --register-with-taints=\"karpenter.sh/unregistered=:NoExecute,x=y:NoSchedule\"\n";
        let (labels, taints) = super::kubelet_flags(ud);
        assert_eq!(
            labels.get("karpenter.sh/nodepool").map(String::as_str),
            Some("default")
        );
        assert_eq!(taints.len(), 2);
        assert_eq!(taints[0].key, "karpenter.sh/unregistered");
        assert_eq!(taints[0].value, None);
        assert_eq!(taints[1].value.as_deref(), Some("y"));
    }
}

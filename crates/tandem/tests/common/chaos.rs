//! Invariants the chaos tests check once a last replica has settled.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, Client};
use tandem_api::karpenter::NodeClaim;

/// `tandem run` flags of a replica that is killed and restarted over and over: no leader
/// election (one replica at a time), a collector quick enough to clean up between kills, and
/// kwok launches slow enough to be killed in the middle of.
pub const KILLED_REPLICA_ARGS: [&str; 11] = [
    "--disable-leader-election",
    "--gc-interval",
    "2s",
    "--gc-orphan-grace",
    "3s",
    "--kwok-launch-delay",
    "300ms",
    "--kwok-registration-delay",
    "700ms",
    "--kwok-ready-delay",
    "300ms",
];

/// Whether NodePool `ns`'s claims and the kwok instances match one to one, with nothing stuck
/// deleting: (claims, instances), or what is still wrong.
pub async fn nothing_leaked(client: &Client, ns: &str) -> Result<(usize, usize), String> {
    let selector = format!("karpenter.sh/nodepool={ns}");
    let claims = Api::<NodeClaim>::all(client.clone())
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| e.to_string())?
        .items;
    let nodes: Vec<Node> = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(|n| {
            n.spec
                .as_ref()
                .and_then(|s| s.provider_id.as_deref())
                .is_some_and(|p| p.starts_with("kwok://"))
        })
        .collect();
    if let Some(c) = claims
        .iter()
        .find(|c| c.metadata.deletion_timestamp.is_some())
    {
        return Err(format!(
            "claim {:?} still deleting",
            c.metadata.name.as_deref()
        ));
    }
    if let Some(n) = nodes
        .iter()
        .find(|n| n.metadata.deletion_timestamp.is_some())
    {
        return Err(format!(
            "node {:?} still deleting",
            n.metadata.name.as_deref()
        ));
    }
    let claim_ids: BTreeSet<String> = claims
        .iter()
        .filter_map(|c| c.status.as_ref().and_then(|s| s.provider_id.clone()))
        .collect();
    let node_ids: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| n.spec.as_ref().and_then(|s| s.provider_id.clone()))
        .collect();
    if claim_ids.len() != claims.len() {
        return Err("a claim has no providerID yet".into());
    }
    if claim_ids != node_ids {
        return Err(format!(
            "claims and instances differ: claims only {:?}, instances only {:?}",
            claim_ids.difference(&node_ids).collect::<Vec<_>>(),
            node_ids.difference(&claim_ids).collect::<Vec<_>>()
        ));
    }
    Ok((claims.len(), nodes.len()))
}

//! The EC2NodeClass controller: resolves every class against AWS and writes what it found into
//! `status` (subnets, security groups, AMIs, instance profile, conditions). It runs when a class
//! changes and again every period, because what selectors match changes outside Kubernetes
//! (a new AMI release, a subnet tagged) — that re-resolution is what makes drift visible.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tandem_api::aws::v1::EC2NodeClass;

use crate::settings::{AwsSettings, Clients};
use crate::{resolver, status};

/// Field manager of the status writes.
pub const FIELD_MANAGER: &str = "tandem-ec2nodeclass";

/// How often every class is resolved again (upstream re-resolves on a few-minute cadence).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(60);

/// Resolves `class` and writes its status when it changed; returns the status written or kept.
pub async fn reconcile(
    kube: &Client,
    clients: &Clients,
    settings: &AwsSettings,
    class: &EC2NodeClass,
) -> Result<tandem_api::aws::v1::EC2NodeClassStatus, kube::Error> {
    let name = class.metadata.name.clone().unwrap_or_default();
    let findings = resolver::resolve(clients, settings, class).await;
    let next = status::status(
        class.status.as_ref(),
        &findings,
        class.metadata.generation,
        Timestamp::now(),
    );
    if class.status.as_ref() != Some(&next) {
        let api: Api<EC2NodeClass> = Api::all(kube.clone());
        let patch = serde_json::json!({ "status": next });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        // A merge patch replaces each list whole, so entries that stopped matching disappear.
        api.patch_status(&name, &params, &Patch::Merge(&patch))
            .await?;
        let ready = status::is_ready(Some(&next));
        tracing::info!(ec2nodeclass = %name, ready, subnets = next.subnets.len(), security_groups = next.security_groups.len(), amis = next.amis.len(), "resolved EC2NodeClass");
    }
    Ok(next)
}

async fn reconcile_all(kube: &Client, clients: &Clients, settings: &AwsSettings) {
    let api: Api<EC2NodeClass> = Api::all(kube.clone());
    let classes = match api.list(&Default::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(error = %e, "listing EC2NodeClasses failed; retrying next period");
            return;
        }
    };
    for class in &classes {
        if let Err(e) = reconcile(kube, clients, settings, class).await {
            tracing::warn!(ec2nodeclass = class.metadata.name.as_deref().unwrap_or_default(), error = %e, "writing EC2NodeClass status failed");
        }
    }
}

/// Runs the controller until the task is dropped: on every class change (debounced to one pass
/// per event burst) and every `period`.
pub async fn run(kube: Client, clients: Clients, settings: AwsSettings, period: Duration) {
    let api: Api<EC2NodeClass> = Api::all(kube.clone());
    let mut changes = watcher(api, watcher::Config::default())
        .touched_objects()
        .boxed();
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            ev = changes.next() => {
                match ev {
                    Some(Err(e)) => tracing::debug!(error = %e, "EC2NodeClass watch error"),
                    None => return,
                    Some(Ok(_)) => {}
                }
            }
        }
        reconcile_all(&kube, &clients, &settings).await;
    }
}

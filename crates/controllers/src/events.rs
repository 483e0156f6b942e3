//! Events as upstream publishes them: core/v1 Events with `source.component: karpenter` (seed
//! 003 reads them with `--field-selector source=karpenter`), deduplicated in memory for two
//! minutes per object, reason and message (upstream's default dedupe).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tandem_state::dedupe::SharedDedupe;

/// The component name upstream reports.
pub const COMPONENT: &str = "karpenter";
const DEDUPE: Duration = Duration::from_secs(120);

/// Publishes Events; shared by every controller.
pub struct Recorder {
    client: Client,
    seen: SharedDedupe,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

/// What an Event is about.
#[derive(Debug, Clone)]
pub struct Regarding {
    /// apiVersion.
    pub api_version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespace; empty for cluster-scoped objects (their Events go to `default`).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl Recorder {
    /// A recorder writing through `client`.
    pub fn new(client: Client) -> Self {
        Recorder {
            client,
            seen: SharedDedupe::new(DEDUPE),
        }
    }

    /// Publishes one Event unless the same one went out within the dedupe window. Failures
    /// are logged: an Event is never worth failing a reconcile for.
    pub async fn publish(&self, about: &Regarding, warning: bool, reason: &str, message: &str) {
        let key = format!(
            "{}/{}/{}/{reason}/{message}",
            about.kind, about.namespace, about.name
        );
        if !self.seen.first_now(key) {
            return;
        }
        let ns = if about.namespace.is_empty() {
            "default".to_owned()
        } else {
            about.namespace.clone()
        };
        let now = Time(Timestamp::now());
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", about.name)),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(about.api_version.into()),
                kind: Some(about.kind.into()),
                name: Some(about.name.clone()),
                namespace: (!about.namespace.is_empty()).then(|| about.namespace.clone()),
                uid: Some(about.uid.clone()),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.chars().take(1024).collect()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some("tandem".into()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(error = %e, reason, "event not published");
        }
    }
}

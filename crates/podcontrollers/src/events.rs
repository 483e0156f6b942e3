//! Events on ScaledObjects and ScaledJobs as upstream publishes them: core/v1 Events from component
//! `keda-operator` with upstream's reasons (keda.md §5.1). Warnings repeat every poll while a
//! problem lasts, so identical ones are sent at most once per two minutes per object.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Resource};
use tandem_state::dedupe::SharedDedupe;

/// The component upstream reports Events from.
pub const COMPONENT: &str = "keda-operator";
const DEDUPE: Duration = Duration::from_secs(120);

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

/// Publishes Events about ScaledObjects.
pub struct Recorder {
    client: Client,
    /// `false` for an observe-only pod layer (a follower): it must not report what the
    /// leader reports too.
    enabled: bool,
    seen: SharedDedupe,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder writing through `client`.
    #[must_use]
    pub fn new(client: Client) -> Self {
        Recorder {
            client,
            enabled: true,
            seen: SharedDedupe::new(DEDUPE),
        }
    }

    /// A recorder that publishes nothing (an observe-only pod layer).
    #[must_use]
    pub fn silent(client: Client) -> Self {
        Recorder {
            enabled: false,
            ..Recorder::new(client)
        }
    }

    /// Publishes one Event. Failures are logged: an Event is never worth failing a poll for.
    /// Generic over the kind so ScaledObjects and ScaledJobs share the deduplication.
    pub async fn publish<K>(&self, object: &K, severity: Severity, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        if !self.enabled {
            return;
        }
        let meta = object.meta();
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        if severity == Severity::Warning {
            let key = format!("{namespace}/{name}/{reason}/{message}");
            if !self.seen.first_now(key) {
                return;
            }
        }
        let now = Time(Timestamp::now());
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}.")),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(K::api_version(&()).into_owned()),
                kind: Some(K::kind(&()).into_owned()),
                name: Some(name),
                namespace: Some(namespace.clone()),
                uid: meta.uid.clone(),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.chars().take(1024).collect()),
            action: Some(message.chars().take(128).collect()),
            type_: Some(
                match severity {
                    Severity::Normal => "Normal",
                    Severity::Warning => "Warning",
                }
                .into(),
            ),
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
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(error = %e, reason, "event not published");
        }
    }
}

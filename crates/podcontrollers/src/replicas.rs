//! Replica counts of Deployments and StatefulSets kept from a watch, so that a poll reads no
//! `/scale` for the two kinds nearly every ScaledObject targets.
//!
//! Each worker read its target's `/scale` once per poll: at 10,000 ScaledObjects polled every
//! 30 s that is 333 GET/s, more than the client's default 200 QPS, and it became what
//! throttled the whole pod layer (#15's bench, from the API server's audit log). KEDA reads
//! these kinds from controller-runtime's informer cache for the same reason. Here only
//! `(spec.replicas, status.replicas)` is kept per object, not the object.
//!
//! A kind that cannot be watched (RBAC, a cluster without it) is never marked synced, and its
//! targets keep reading `/scale`: the cache only ever saves requests.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use crate::target::Replicas;

type Key = (String, String);

/// One watched kind: its replica counts once the first list is in.
#[derive(Debug, Default)]
struct Watched {
    synced: AtomicBool,
    replicas: RwLock<HashMap<Key, Replicas>>,
}

impl Watched {
    fn get(&self, namespace: &str, name: &str) -> Option<Option<Replicas>> {
        if !self.synced.load(Ordering::Acquire) {
            return None;
        }
        let map = self.replicas.read().unwrap_or_else(PoisonError::into_inner);
        Some(map.get(&(namespace.to_owned(), name.to_owned())).copied())
    }
}

/// The replica counts of every Deployment and StatefulSet, shared by the workers.
#[derive(Debug, Default, Clone)]
pub struct ReplicaCache {
    deployments: Arc<Watched>,
    statefulsets: Arc<Watched>,
}

impl ReplicaCache {
    /// The replicas of `group`/`kind` `namespace/name`: `None` when this cache cannot say
    /// (another kind, or its watch has not listed yet) and `/scale` must be read;
    /// `Some(None)` when the object does not exist.
    #[must_use]
    pub fn get(
        &self,
        group: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Option<Replicas>> {
        match (group, kind) {
            ("apps", "Deployment") => self.deployments.get(namespace, name),
            ("apps", "StatefulSet") => self.statefulsets.get(namespace, name),
            _ => None,
        }
    }

    /// Starts the two watches on the current runtime; they end when the handles are aborted.
    #[must_use]
    pub fn spawn(client: &Client) -> (Self, [tokio::task::JoinHandle<()>; 2]) {
        let cache = ReplicaCache::default();
        let tasks = [
            tokio::spawn(keep(
                Api::<Deployment>::all(client.clone()),
                cache.deployments.clone(),
                |d: &Deployment| {
                    counts(
                        d.spec.as_ref().and_then(|s| s.replicas),
                        d.status.as_ref().and_then(|s| s.replicas),
                    )
                },
            )),
            tokio::spawn(keep(
                Api::<StatefulSet>::all(client.clone()),
                cache.statefulsets.clone(),
                |s: &StatefulSet| {
                    counts(
                        s.spec.as_ref().and_then(|s| s.replicas),
                        s.status.as_ref().map(|s| s.replicas),
                    )
                },
            )),
        ];
        (cache, tasks)
    }
}

/// `/scale`'s view of a workload: an unset `spec.replicas` is the API server's default of 1.
fn counts(spec: Option<i32>, status: Option<i32>) -> Replicas {
    let n = |v: i32| u32::try_from(v).unwrap_or(0);
    Replicas {
        spec: n(spec.unwrap_or(1)),
        status: n(status.unwrap_or(0)),
    }
}

async fn keep<K>(api: Api<K>, into: Arc<Watched>, replicas: fn(&K) -> Replicas)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let key = |o: &K| {
        (
            o.meta().namespace.clone().unwrap_or_default(),
            o.meta().name.clone().unwrap_or_default(),
        )
    };
    let mut stream = pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    let mut relist: Option<HashMap<Key, Replicas>> = None;
    while let Some(event) = stream.next().await {
        let write = || {
            into.replicas
                .write()
                .unwrap_or_else(PoisonError::into_inner)
        };
        match event {
            Ok(Event::Init) => relist = Some(HashMap::new()),
            Ok(Event::InitApply(o)) => {
                if let Some(buffer) = relist.as_mut() {
                    buffer.insert(key(&o), replicas(&o));
                }
            }
            Ok(Event::InitDone) => {
                if let Some(buffer) = relist.take() {
                    *write() = buffer;
                    into.synced.store(true, Ordering::Release);
                }
            }
            Ok(Event::Apply(o)) => {
                write().insert(key(&o), replicas(&o));
            }
            Ok(Event::Delete(o)) => {
                write().remove(&key(&o));
            }
            Err(e) => tracing::warn!(error = %e, "replica watch failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_spec_is_one_replica_as_the_api_server_defaults_it() {
        assert_eq!(counts(None, None), Replicas { spec: 1, status: 0 });
        assert_eq!(counts(Some(0), Some(2)), Replicas { spec: 0, status: 2 });
        assert_eq!(counts(Some(-1), None), Replicas { spec: 0, status: 0 });
    }

    #[test]
    fn other_kinds_and_unlisted_kinds_fall_back_to_scale() {
        let cache = ReplicaCache::default();
        assert_eq!(
            cache.get("apps", "Deployment", "ns", "a"),
            None,
            "not listed yet"
        );
        cache.deployments.synced.store(true, Ordering::Release);
        assert_eq!(cache.get("apps", "Deployment", "ns", "a"), Some(None));
        cache
            .deployments
            .replicas
            .write()
            .expect("lock")
            .insert(("ns".into(), "a".into()), Replicas { spec: 3, status: 2 });
        assert_eq!(
            cache.get("apps", "Deployment", "ns", "a"),
            Some(Some(Replicas { spec: 3, status: 2 }))
        );
        assert_eq!(cache.get("argoproj.io", "Rollout", "ns", "a"), None);
        assert_eq!(cache.get("apps", "StatefulSet", "ns", "a"), None);
    }
}

//! The ScaledObject controller: watches on ScaledObjects and on the HPAs it generates, one
//! worker task per ScaledObject.
//!
//! ```text
//!   watcher(ScaledObject) ─┐
//!   watcher(HPA, managed) ─┴► supervisor: objects by ns/name, target conflicts (pure)
//!                               │ watch channel per object; woken only by spec, labels,
//!                               │ annotations, deletion or conflict changes (not by status
//!                               │ or HPA changes, which the next poll reads)
//!                               ▼
//!   worker (every pollingInterval):
//!     convert (tandem_manifest) ─► resolve target (discovery, /scale) ─► scalers (auth)
//!       ─► measure ─► podscaler::decide ─► metric values (served to the HPA),
//!          KEDA's /scale writes (0 ↔ 1, pause), Events, HPA apply/delete, status (SSA)
//! ```
//!
//! The HPA's own 1 ↔ N decisions are left to the real HPA controller: of the effects
//! `decide` returns, only KEDA's are executed ([`worker::keda_effects`]). Each poll reads the
//! target's `/scale` once (as KEDA does); the ScaledObject itself is never polled.
//! A scaler whose fetch fails is closed and rebuilt on the next poll, re-reading its
//! TriggerAuthentication and Secrets, so a fixed credential is picked up without a restart.

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::ListParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tandem_api::keda::v1alpha1::{ScaledJob, ScaledObject};
use tokio::sync::watch;

use crate::error::Error;
use crate::events::Recorder;
use crate::hpa;
use crate::metrics_server::MetricValues;
use crate::worker;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "tandem";
/// The finalizer upstream puts on ScaledObjects.
pub const FINALIZER: &str = "finalizer.keda.sh";
/// How long one scaler fetch may take before it counts as failed.
pub(crate) const MEASURE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an HPA the watch shows intact is applied again anyway (server-side apply; a
/// no-op when intact): a backstop for edits outside its spec (labels, owner references).
/// Deletions and spec edits are seen in the watch and repaired at the next poll.
/// It was 5 minutes: at 10,000 ScaledObjects that alone was 33 PATCH/s of steady load.
pub(crate) const HPA_REFRESH: Duration = Duration::from_secs(3600);
/// How long after applying an HPA its absence from the watch is taken as "not delivered yet"
/// rather than "deleted".
pub(crate) const HPA_WATCH_GRACE: Duration = Duration::from_secs(60);
/// How long a worker sleeps when only a change of its object can help.
pub(crate) const WAIT_FOR_CHANGE: Duration = Duration::from_secs(3600);

/// How the pod layer runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where ClusterTriggerAuthentication Secrets live (KEDA: the operator's namespace).
    pub cluster_object_namespace: String,
    /// Read Secrets only from `cluster_object_namespace` (KEDA: `KEDA_RESTRICT_SECRET_ACCESS`):
    /// see [`crate::triggers::AuthScope::restrict_secret_access`].
    pub restrict_secret_access: bool,
    /// Where the workers publish metric values; give the same set to
    /// [`crate::serve_external_metrics`].
    pub values: MetricValues,
    /// Poll a ScaledObject at once when one of its sources reports growth
    /// (`Scaler::watch`, rate-limited to one wake per second per trigger) instead of waiting
    /// for `pollingInterval` (DESIGN §3.6). Scale-in still waits for the poll. Default on.
    pub push: bool,
    /// KEDA's operator metrics (register them with
    /// [`PodLayerMetrics::register`](crate::metrics::PodLayerMetrics::register) to export).
    pub metrics: crate::metrics::PodLayerMetrics,
    /// Where forecasts go for predictive provisioning (the node layer's state subscribes);
    /// `None` publishes none (the layers run apart, or the feature is off).
    pub predictions: Option<tandem_state::predictions::Predictions>,
    /// Measure and publish values only: no HPA, `/scale`, status, finalizer or Event writes,
    /// and no ScaledJob controller. What a follower replica runs so that every replica can
    /// answer the external metrics API from its own polls (the Service then spreads the API
    /// server's requests over all of them, and a failover leaves no gap), while only the
    /// leader acts. The price: each replica polls the sources.
    pub observe_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cluster_object_namespace: "keda".into(),
            restrict_secret_access: false,
            values: MetricValues::new(),
            push: true,
            metrics: crate::metrics::PodLayerMetrics::default(),
            predictions: None,
            observe_only: false,
        }
    }
}

impl Options {
    /// Where triggers may read Secrets from.
    #[must_use]
    pub fn auth_scope(&self) -> crate::triggers::AuthScope<'_> {
        crate::triggers::AuthScope {
            cluster_object_namespace: &self.cluster_object_namespace,
            restrict_secret_access: self.restrict_secret_access,
        }
    }
}

/// The running pod layer; dropping it stops every loop.
#[derive(Debug)]
pub struct PodLayer {
    supervisor: tokio::task::JoinHandle<()>,
    /// The ScaledJob controller; `None` when ScaledJobs cannot be listed (CRD absent or no
    /// permission), which must not stop ScaledObjects.
    jobs_supervisor: Option<tokio::task::JoinHandle<()>>,
    /// The watches behind [`Ctx::replicas`].
    replica_watches: [tokio::task::JoinHandle<()>; 2],
    values: MetricValues,
}

impl PodLayer {
    /// Checks that ScaledObjects can be listed, then starts the ScaledObject controller on the
    /// current tokio runtime, and the ScaledJob controller when ScaledJobs can be listed too
    /// (otherwise it logs why and runs without it).
    ///
    /// # Errors
    /// [`Error::Kube`] when ScaledObjects cannot be listed (CRD missing, no permission).
    pub async fn spawn(client: Client, options: Options) -> Result<Self, Error> {
        let api: Api<ScaledObject> = Api::all(client.clone());
        api.list_metadata(&ListParams::default().limit(1))
            .await
            .map_err(|e| Error::kube("list ScaledObjects", e))?;
        let values = options.values.clone();
        let (replicas, replica_watches) = crate::replicas::ReplicaCache::spawn(&client);
        let ctx = Arc::new(Ctx {
            recorder: if options.observe_only {
                Recorder::silent(client.clone())
            } else {
                Recorder::new(client.clone())
            },
            client,
            options,
            targets: crate::target::TargetTypes::default(),
            replicas,
        });
        let jobs_api: Api<ScaledJob> = Api::all(ctx.client.clone());
        let jobs_supervisor = if ctx.options.observe_only {
            // ScaledJobs serve no metrics: a follower has nothing to do for them.
            None
        } else {
            match jobs_api
                .list_metadata(&ListParams::default().limit(1))
                .await
            {
                Ok(_) => Some(tokio::spawn(crate::scaled_job::supervise(ctx.clone()))),
                Err(e) => {
                    tracing::warn!(error = %e, "ScaledJobs cannot be listed; ScaledJob controller not started");
                    None
                }
            }
        };
        let supervisor = tokio::spawn(supervise(ctx));
        Ok(PodLayer {
            supervisor,
            jobs_supervisor,
            replica_watches,
            values,
        })
    }

    /// The values the workers publish.
    #[must_use]
    pub fn values(&self) -> &MetricValues {
        &self.values
    }
}

impl Drop for PodLayer {
    fn drop(&mut self) {
        self.supervisor.abort();
        for w in &self.replica_watches {
            w.abort();
        }
        if let Some(j) = &self.jobs_supervisor {
            j.abort();
        }
    }
}

pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) recorder: Recorder,
    pub(crate) options: Options,
    /// Scale target types, resolved once for every worker.
    pub(crate) targets: crate::target::TargetTypes,
    /// Replicas of Deployments and StatefulSets, so that a poll reads no `/scale` for them.
    pub(crate) replicas: crate::replicas::ReplicaCache,
}

pub(crate) type Key = (String, String);

pub(crate) fn key_of(so: &ScaledObject) -> Key {
    (
        so.metadata.namespace.clone().unwrap_or_default(),
        so.metadata.name.clone().unwrap_or_default(),
    )
}

/// What a worker works from.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub(crate) so: Arc<ScaledObject>,
    /// The ScaledObject that already owns this one's target.
    pub(crate) conflict: Option<String>,
    /// Its HPA as last seen (never wakes the worker).
    pub(crate) hpa: Option<Arc<HorizontalPodAutoscaler>>,
}

/// Whether a new version of the input should wake the worker now (status-only writes,
/// including our own, should not).
fn wakes(old: &Input, new: &Input) -> bool {
    let (a, b) = (&old.so.metadata, &new.so.metadata);
    a.uid != b.uid
        || a.generation != b.generation
        || a.annotations != b.annotations
        || a.labels != b.labels
        || a.deletion_timestamp.is_some() != b.deletion_timestamp.is_some()
        || old.conflict != new.conflict
}

/// For every ScaledObject whose target another one already owns, that owner's name. The
/// owner is the oldest (creation time, then name), as the admission webhook upstream would
/// have refused the later one.
#[must_use]
pub fn target_conflicts<'a>(
    objects: impl IntoIterator<Item = &'a ScaledObject>,
) -> BTreeMap<(String, String), String> {
    let mut by_target: BTreeMap<(&str, &str, &str, &str), Vec<&ScaledObject>> = BTreeMap::new();
    for so in objects {
        by_target.entry(target_of(so)).or_default().push(so);
    }
    let mut out = BTreeMap::new();
    for (_, mut group) in by_target {
        group.sort_by(|a, b| {
            let created = |s: &ScaledObject| {
                s.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_millisecond())
            };
            created(a)
                .cmp(&created(b))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        if let Some((owner, rest)) = group.split_first() {
            for so in rest {
                out.insert(key_of(so), owner.metadata.name.clone().unwrap_or_default());
            }
        }
    }
    out
}

struct WorkerHandle {
    tx: watch::Sender<Input>,
    task: tokio::task::JoinHandle<()>,
}

/// One watched kind in memory: a relist is buffered and swapped in at `InitDone`.
struct Index<K> {
    objects: BTreeMap<Key, Arc<K>>,
    relist: Option<BTreeMap<Key, Arc<K>>>,
}

impl<K: kube::Resource> Index<K> {
    fn new() -> Self {
        Index {
            objects: BTreeMap::new(),
            relist: None,
        }
    }

    fn key(o: &K) -> Key {
        (
            o.meta().namespace.clone().unwrap_or_default(),
            o.meta().name.clone().unwrap_or_default(),
        )
    }

    /// The key of the one object an `Apply` or `Delete` changes; `None` for the events of a
    /// relist, which change the index as a whole.
    fn changed(event: &Event<K>) -> Option<Key> {
        match event {
            Event::Apply(o) | Event::Delete(o) => Some(Self::key(o)),
            Event::Init | Event::InitApply(_) | Event::InitDone => None,
        }
    }

    /// Applies one event; returns whether the index is complete (not inside a relist).
    /// managedFields are dropped on the way in: nothing here reads them, and they were the
    /// biggest part of every stored HPA and ScaledObject (dhat: ~4 KB per object).
    fn apply(&mut self, event: Event<K>) -> bool {
        let event = match event {
            Event::InitApply(mut o) => {
                o.meta_mut().managed_fields = None;
                Event::InitApply(o)
            }
            Event::Apply(mut o) => {
                o.meta_mut().managed_fields = None;
                Event::Apply(o)
            }
            other => other,
        };
        match event {
            Event::Init => self.relist = Some(BTreeMap::new()),
            Event::InitApply(o) => {
                if let Some(buffer) = self.relist.as_mut() {
                    buffer.insert(Self::key(&o), Arc::new(o));
                }
            }
            Event::InitDone => {
                if let Some(buffer) = self.relist.take() {
                    self.objects = buffer;
                }
            }
            Event::Apply(o) => {
                self.objects.insert(Self::key(&o), Arc::new(o));
            }
            Event::Delete(o) => {
                self.objects.remove(&Self::key(&o));
            }
        }
        self.relist.is_none()
    }
}

enum Watched {
    ScaledObject(Box<Result<Event<ScaledObject>, watcher::Error>>),
    Hpa(Box<Result<Event<HorizontalPodAutoscaler>, watcher::Error>>),
}

async fn supervise(ctx: Arc<Ctx>) {
    let sos = watcher::watcher(
        Api::<ScaledObject>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| Watched::ScaledObject(Box::new(e)));
    // Only the HPAs we generate, for the HPAActive condition.
    let hpas = watcher::watcher(
        Api::<HorizontalPodAutoscaler>::all(ctx.client.clone()),
        watcher::Config::default()
            .labels(&format!("app.kubernetes.io/managed-by={}", hpa::MANAGED_BY)),
    )
    .default_backoff()
    .map(|e| Watched::Hpa(Box::new(e)));
    let mut stream = pin!(futures::stream::select(sos, hpas));
    let mut objects = Index::<ScaledObject>::new();
    let mut hpa_index = Index::<HorizontalPodAutoscaler>::new();
    let mut workers: BTreeMap<Key, WorkerHandle> = BTreeMap::new();
    while let Some(event) = stream.next().await {
        let event = match event {
            Watched::ScaledObject(e) => (*e).map(Ok),
            Watched::Hpa(e) => (*e).map(Err),
        };
        let ready = match event {
            // One object changed after the list: only it and the objects that share a
            // target with it (before or after the change) are looked at. A full dispatch per
            // event cost O(objects) with allocations, and every status write comes back as
            // an event: at 10,000 objects the supervisor fell behind its own writes (#15).
            Ok(Ok(e)) => match Index::changed(&e).filter(|_| objects.relist.is_none()) {
                Some(key) => {
                    let before = objects.objects.get(&key).cloned();
                    objects.apply(e);
                    dispatch_changed(
                        &ctx,
                        &objects.objects,
                        &hpa_index.objects,
                        &mut workers,
                        &key,
                        before.as_deref(),
                    );
                    false
                }
                None => objects.apply(e),
            },
            Ok(Err(e)) => {
                // One HPA changed: hand it to its worker only (HPA status changes every
                // sync; a full dispatch per change would cost O(objects) each time).
                let changed = Index::changed(&e);
                let complete = hpa_index.apply(e);
                if let Some((ns, hpa_name)) = changed {
                    let hpa = hpa_index
                        .objects
                        .get(&(ns.clone(), hpa_name.clone()))
                        .cloned();
                    hand_hpa(&objects.objects, &workers, &ns, &hpa_name, hpa);
                    false
                } else {
                    complete && objects.relist.is_none()
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "watch failed; retrying");
                continue;
            }
        };
        if ready {
            dispatch(&ctx, &objects.objects, &hpa_index.objects, &mut workers);
        }
    }
}

/// Gives the HPA `ns/hpa_name` (or its absence) to the worker of the ScaledObject it belongs
/// to, without waking it.
fn hand_hpa(
    objects: &BTreeMap<Key, Arc<ScaledObject>>,
    workers: &BTreeMap<Key, WorkerHandle>,
    ns: &str,
    hpa_name: &str,
    hpa: Option<Arc<HorizontalPodAutoscaler>>,
) {
    let owner = hpa
        .as_ref()
        .and_then(|h| h.metadata.labels.as_ref())
        .and_then(|l| l.get(crate::metrics_server::SCALED_OBJECT_LABEL))
        .map(|so| (ns.to_owned(), so.clone()))
        .filter(|k| {
            objects
                .get(k)
                .is_some_and(|so| hpa::hpa_name(so) == hpa_name)
        })
        .or_else(|| {
            objects
                .iter()
                .find(|(k, so)| k.0 == ns && hpa::hpa_name(so) == hpa_name)
                .map(|(k, _)| k.clone())
        });
    if let Some(w) = owner.and_then(|k| workers.get(&k)) {
        w.tx.send_if_modified(|current| {
            current.hpa = hpa;
            false
        });
    }
}

/// The target an object scales, borrowed: `(namespace, group, kind, name)`, compared for
/// every object on each change without allocating.
fn target_of(so: &ScaledObject) -> (&str, &str, &str, &str) {
    let t = &so.spec.scale_target_ref;
    // As target::split_api_version: no apiVersion is apps/v1.
    let group = t
        .api_version
        .as_deref()
        .filter(|av| !av.is_empty())
        .map_or(Some(("apps", "v1")), |av| av.split_once('/'))
        .map_or("", |(g, _)| g);
    (
        so.metadata.namespace.as_deref().unwrap_or_default(),
        group,
        t.kind_or_default(),
        &t.name,
    )
}

/// [`dispatch`] for one object `key` that changed (or went) from `before`: its worker, and the
/// workers of the objects whose target conflict it may have changed.
fn dispatch_changed(
    ctx: &Arc<Ctx>,
    objects: &BTreeMap<Key, Arc<ScaledObject>>,
    hpas: &BTreeMap<Key, Arc<HorizontalPodAutoscaler>>,
    workers: &mut BTreeMap<Key, WorkerHandle>,
    key: &Key,
    before: Option<&ScaledObject>,
) {
    let now = objects.get(key);
    if now.is_none()
        && let Some(w) = workers.remove(key)
    {
        stop(ctx, key, &w);
    }
    let targets: Vec<_> = before
        .into_iter()
        .chain(now.map(|s| &**s))
        .map(target_of)
        .collect();
    let group: Vec<(&Key, &Arc<ScaledObject>)> = objects
        .iter()
        .filter(|(_, so)| targets.contains(&target_of(so)))
        .collect();
    let conflicts = target_conflicts(group.iter().map(|(_, so)| &***so));
    for (k, so) in group {
        hand(ctx, workers, k, so, conflicts.get(k).cloned(), hpas);
    }
}

/// Ends the worker of `key`, whose object is gone, and withdraws the values it served.
fn stop(ctx: &Ctx, key: &Key, w: &WorkerHandle) {
    w.task.abort();
    ctx.options.values.remove_object(&key.0, &key.1);
}

/// Gives `so`'s worker its new input (waking it only for a change that matters), or starts it.
fn hand(
    ctx: &Arc<Ctx>,
    workers: &mut BTreeMap<Key, WorkerHandle>,
    k: &Key,
    so: &Arc<ScaledObject>,
    conflict: Option<String>,
    hpas: &BTreeMap<Key, Arc<HorizontalPodAutoscaler>>,
) {
    let input = Input {
        so: so.clone(),
        conflict,
        hpa: hpas.get(&(k.0.clone(), hpa::hpa_name(so))).cloned(),
    };
    if let Some(w) = workers.get(k) {
        w.tx.send_if_modified(|current| {
            let wake = wakes(current, &input);
            *current = input;
            wake
        });
    } else {
        let (tx, rx) = watch::channel(input);
        let task = tokio::spawn(worker::run(ctx.clone(), rx));
        workers.insert(k.clone(), WorkerHandle { tx, task });
    }
}

fn dispatch(
    ctx: &Arc<Ctx>,
    objects: &BTreeMap<Key, Arc<ScaledObject>>,
    hpas: &BTreeMap<Key, Arc<HorizontalPodAutoscaler>>,
    workers: &mut BTreeMap<Key, WorkerHandle>,
) {
    let conflicts = target_conflicts(objects.values().map(|s| &**s));
    workers.retain(|k, w| {
        let keep = objects.contains_key(k);
        if !keep {
            stop(ctx, k, w);
        }
        keep
    });
    for (k, so) in objects {
        hand(ctx, workers, k, so, conflicts.get(k).cloned(), hpas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tandem_api::keda::v1alpha1::ScaledObjectStatus;
    use tandem_podscaler::activation;

    fn so(name: &str, target: &str, created: i64) -> ScaledObject {
        serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "ns",
                         "creationTimestamp": k8s_openapi::jiff::Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"scaleTargetRef": {"name": target},
                     "triggers": [{"type": "cron", "metadata": {}}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_older_scaled_object_keeps_a_shared_target() {
        let a = so("a", "web", 20);
        let b = so("b", "web", 10);
        let c = so("c", "other", 5);
        let conflicts = target_conflicts([&a, &b, &c]);
        assert_eq!(
            conflicts,
            BTreeMap::from([(("ns".to_owned(), "a".to_owned()), "b".to_owned())])
        );
    }

    #[test]
    fn status_only_changes_do_not_wake_a_worker() {
        let a = Arc::new(so("a", "web", 1));
        let mut b = (*a).clone();
        b.status = Some(ScaledObjectStatus {
            hpa_name: Some("x".into()),
            ..Default::default()
        });
        let input = |so: Arc<ScaledObject>, conflict: Option<String>| Input {
            so,
            conflict,
            hpa: None,
        };
        assert!(!wakes(
            &input(a.clone(), None),
            &input(Arc::new(b.clone()), None)
        ));
        b.metadata.annotations = Some(BTreeMap::from([(
            activation::ANNOTATION_PAUSED.to_owned(),
            "true".to_owned(),
        )]));
        assert!(wakes(&input(a.clone(), None), &input(Arc::new(b), None)));
        assert!(wakes(&input(a.clone(), None), &input(a, Some("b".into()))));
    }
}

//! The ScaledJob controller: one worker per ScaledJob creates `batch/v1` Jobs from its
//! `jobTargetRef` as its event sources fill up (KEDA's `scale_jobs.go`).
//!
//! ```text
//!   watcher(ScaledJob) ─► supervisor: objects by ns/name, one worker each, woken only by
//!                           spec, labels, annotations or deletion changes
//!   worker (every pollingInterval):
//!     jobs::validate ─► scalers (triggers::build_for, TriggerAuthentication) ─► measure
//!       ─► list own Jobs (+ their pods) ─► rollout cleanup (non-gradual)
//!       ─► podscaler::scaled_job::plan ─► create Jobs (never past maxReplicaCount)
//!       ─► history cleanup ─► Events, status (SSA)
//! ```
//!
//! The decision is `tandem_podscaler::scaled_job::plan`; the pure helpers around it
//! (validation, Job building, counts, which Jobs to delete) are in [`crate::jobs`]. Jobs are
//! owned by their ScaledJob (controller owner reference), so deleting the ScaledJob lets the
//! garbage collector remove them. The ScaledJob carries upstream's `finalizer.keda.sh`
//! anyway: deletion waits until the worker has stopped its scalers and dropped the object's
//! metrics, and says so (`ScaledJobDeleted`), as KEDA does.

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tandem_api::condition::{Condition, ConditionStatus};
use tandem_api::keda::v1alpha1::{ScaledJob, ScaledJobStatus};
use tandem_podscaler::scaled_job::{JobPlan, JobTrigger};
use tandem_scalers::{MetricSpec, Scaler, Target};
use tokio::sync::watch;

use crate::controller::{Ctx, FIELD_MANAGER, FINALIZER, Key, MEASURE_TIMEOUT, WAIT_FOR_CHANGE};
use crate::error::{Error, is_not_found};
use crate::events::Severity;
use crate::jobs;
use crate::status::condition;
use crate::triggers::{self, TriggerOwner};

/// Ready=False reason (and Warning Event) for a ScaledJob that cannot run.
pub const CHECK_FAILED: &str = "ScaledJobCheckFailed";

fn key_of(sj: &ScaledJob) -> Key {
    (
        sj.metadata.namespace.clone().unwrap_or_default(),
        sj.metadata.name.clone().unwrap_or_default(),
    )
}

/// Whether a new version of the ScaledJob should wake its worker now (status writes,
/// including our own, should not).
fn wakes(old: &ScaledJob, new: &ScaledJob) -> bool {
    let (a, b) = (&old.metadata, &new.metadata);
    a.uid != b.uid
        || a.generation != b.generation
        || a.annotations != b.annotations
        || a.labels != b.labels
        || a.deletion_timestamp.is_some() != b.deletion_timestamp.is_some()
}

struct WorkerHandle {
    tx: watch::Sender<Arc<ScaledJob>>,
    task: tokio::task::JoinHandle<()>,
}

/// Watches every ScaledJob and keeps one worker per object. Runs until aborted.
pub(crate) async fn supervise(ctx: Arc<Ctx>) {
    let mut stream = pin!(
        watcher::watcher(
            Api::<ScaledJob>::all(ctx.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
    );
    let mut objects: BTreeMap<Key, Arc<ScaledJob>> = BTreeMap::new();
    let mut relist: Option<BTreeMap<Key, Arc<ScaledJob>>> = None;
    let mut workers: BTreeMap<Key, WorkerHandle> = BTreeMap::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => relist = Some(BTreeMap::new()),
            Ok(Event::InitApply(o)) => {
                if let Some(buffer) = relist.as_mut() {
                    buffer.insert(key_of(&o), Arc::new(o));
                }
            }
            Ok(Event::InitDone) => {
                if let Some(buffer) = relist.take() {
                    objects = buffer;
                }
            }
            Ok(Event::Apply(o)) => {
                objects.insert(key_of(&o), Arc::new(o));
            }
            Ok(Event::Delete(o)) => {
                objects.remove(&key_of(&o));
            }
            Err(e) => {
                tracing::warn!(error = %e, "ScaledJob watch failed; retrying");
                continue;
            }
        }
        if relist.is_none() {
            dispatch(&ctx, &objects, &mut workers);
        }
    }
}

fn dispatch(
    ctx: &Arc<Ctx>,
    objects: &BTreeMap<Key, Arc<ScaledJob>>,
    workers: &mut BTreeMap<Key, WorkerHandle>,
) {
    workers.retain(|k, w| {
        let keep = objects.contains_key(k);
        if !keep {
            w.task.abort();
        }
        keep
    });
    for (k, sj) in objects {
        if let Some(w) = workers.get(k) {
            w.tx.send_if_modified(|current| {
                let wake = wakes(current, sj);
                *current = sj.clone();
                wake
            });
        } else {
            let (tx, rx) = watch::channel(sj.clone());
            let task = tokio::spawn(run(ctx.clone(), rx));
            workers.insert(k.clone(), WorkerHandle { tx, task });
        }
    }
}

async fn run(ctx: Arc<Ctx>, mut rx: watch::Receiver<Arc<ScaledJob>>) {
    let mut worker = Worker::default();
    loop {
        let sj = rx.borrow_and_update().clone();
        let wait = worker.tick(&ctx, &sj).await;
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                worker.close_scalers().await;
                return;
            },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One trigger's scaler with the metric it is read on.
struct Built {
    scaler: Box<dyn Scaler>,
    /// The first External metric's name and its AverageValue target (`tᵢ`, 0 if none).
    metric: Option<(String, f64)>,
}

/// What one worker remembers between polls.
#[derive(Default)]
struct Worker {
    scalers: Vec<Option<Built>>,
    build_errors: Vec<Option<String>>,
    announced: Vec<bool>,
    scalers_generation: Option<i64>,
    watch_announced: bool,
    last_status: Option<serde_json::Value>,
}

/// One poll's trigger readings.
struct Readings {
    triggers: Vec<JobTrigger>,
    errors: usize,
    first_error: Option<String>,
}

impl Worker {
    /// One poll; returns how long to wait before the next.
    async fn tick(&mut self, ctx: &Ctx, sj: &ScaledJob) -> Duration {
        if sj.metadata.deletion_timestamp.is_some() {
            // Its Jobs go with it (owner references).
            return if self.finalize(ctx, sj).await {
                WAIT_FOR_CHANGE
            } else {
                Duration::from_secs(1)
            };
        }
        if let Err(e) = self.ensure_finalizer(ctx, sj).await {
            tracing::warn!(error = %e.chain(), "finalizer not added");
        }
        let polling = Duration::from_secs(
            u64::try_from(sj.spec.polling_interval_or_default())
                .unwrap_or(30)
                .max(1),
        );
        if let Err(e) = jobs::validate(sj) {
            self.fail(ctx, sj, &format!("{}: {}", e.field, e.message))
                .await;
            return WAIT_FOR_CHANGE;
        }
        let previous = sj
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let was = |type_: &str| {
            previous
                .iter()
                .find(|c| c.type_ == type_)
                .map(Condition::is_true)
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());

        if jobs::paused(sj) {
            self.close_scalers().await;
            self.scalers_generation = None;
            if was("Paused") != Some(true) {
                ctx.recorder
                    .publish(
                        sj,
                        Severity::Normal,
                        "ScaledJobPaused",
                        "ScaledJob is paused",
                    )
                    .await;
            }
            let mut st = sj.status.clone().unwrap_or_default();
            st.conditions = vec![
                ready_condition(&previous, &now),
                condition(
                    "Paused",
                    ConditionStatus::True,
                    "ScaledJobPaused",
                    "ScaledJob is paused".into(),
                    &previous,
                    now.clone(),
                ),
            ];
            st.paused = Some("true".into());
            self.write_status(ctx, sj, &st).await;
            return polling;
        }
        if was("Paused") == Some(true) {
            ctx.recorder
                .publish(
                    sj,
                    Severity::Normal,
                    "ScaledJobUnpaused",
                    "pause annotation removed for ScaledJob",
                )
                .await;
        }

        self.ensure_scalers(ctx, sj).await;
        if !self.watch_announced {
            self.watch_announced = true;
            ctx.recorder
                .publish(
                    sj,
                    Severity::Normal,
                    "KEDAScalersStarted",
                    "Started scalers watch",
                )
                .await;
        }
        let readings = self.measure(ctx, sj).await;

        let (ns, name) = key_of(sj);
        let config = jobs::config(sj);
        let plan = match self.scale(ctx, sj, &readings.triggers, &config).await {
            Ok(plan) => Some(plan),
            Err(e) => {
                tracing::warn!(error = %e.chain(), %ns, %name, "ScaledJob jobs not scaled");
                None
            }
        };

        // Status: Ready from the triggers' health, Active from the decision.
        let active = plan.is_some_and(|p| p.active);
        let (ready_status, ready_reason, ready_message) = if readings.errors == 0 {
            (
                ConditionStatus::True,
                "ScaledJobReady",
                "ScaledJob is defined correctly and is ready to scaling".to_owned(),
            )
        } else if readings.errors < readings.triggers.len() {
            (
                ConditionStatus::Unknown,
                "PartialTriggerError",
                with_error(
                    "Some triggers defined in ScaledJob are not working correctly",
                    readings.first_error.as_deref(),
                ),
            )
        } else {
            (
                ConditionStatus::False,
                "TriggerError",
                with_error(
                    "Triggers defined in ScaledJob are not working correctly",
                    readings.first_error.as_deref(),
                ),
            )
        };
        if ready_status == ConditionStatus::True && was("Ready") != Some(true) {
            ctx.recorder
                .publish(
                    sj,
                    Severity::Normal,
                    "ScaledJobReady",
                    "ScaledJob is ready for scaling",
                )
                .await;
        }
        if plan.is_some() && was("Active") != Some(active) {
            let (reason, message) = if active {
                ("ScaledJobActive", "ScaledJob is active")
            } else {
                ("ScaledJobInactive", "ScaledJob is inactive")
            };
            ctx.recorder
                .publish(sj, Severity::Normal, reason, message)
                .await;
        }
        let (active_status, active_reason, active_message) = match plan {
            Some(p) if p.active => (
                ConditionStatus::True,
                "ScalerActive",
                "Scaling is performed because triggers are active",
            ),
            Some(_) => (
                ConditionStatus::False,
                "ScalerNotActive",
                "Scaling is not performed because triggers are not active",
            ),
            None => (ConditionStatus::Unknown, "UnknownState", "State is unknown"),
        };
        let old = sj.status.clone().unwrap_or_default();
        let st = ScaledJobStatus {
            last_active_time: if active {
                Some(now.clone())
            } else {
                old.last_active_time
            },
            conditions: vec![
                condition(
                    "Ready",
                    ready_status,
                    ready_reason,
                    ready_message,
                    &previous,
                    now.clone(),
                ),
                condition(
                    "Active",
                    active_status,
                    active_reason,
                    active_message.into(),
                    &previous,
                    now.clone(),
                ),
                condition(
                    "Paused",
                    ConditionStatus::False,
                    "ScaledJobUnpaused",
                    "pause annotation removed for ScaledJob".into(),
                    &previous,
                    now.clone(),
                ),
            ],
            paused: None,
            triggers_types: Some(unique_join(
                sj.spec.triggers.iter().map(|t| t.type_.clone()),
            )),
            authentications_types: Some(unique_join(
                sj.spec
                    .triggers
                    .iter()
                    .filter_map(|t| t.authentication_ref.as_ref().map(|a| a.name.clone())),
            ))
            .filter(|s| !s.is_empty()),
            external_metric_names: Vec::new(),
            triggers_activity: BTreeMap::new(),
        };
        self.write_status(ctx, sj, &st).await;
        polling
    }

    /// Lists the ScaledJob's Jobs, deletes outdated and surplus finished ones, plans and
    /// creates new ones.
    async fn scale(
        &mut self,
        ctx: &Ctx,
        sj: &ScaledJob,
        triggers: &[JobTrigger],
        config: &tandem_podscaler::scaled_job::ScaledJobConfig,
    ) -> Result<JobPlan, Error> {
        let (ns, name) = key_of(sj);
        let uid = sj.metadata.uid.clone().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        let selector = format!("{}={name}", jobs::SCALED_JOB_LABEL);
        let listed = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| Error::kube(format!("list Jobs of ScaledJob {ns}/{name}"), e))?;
        let mut own: Vec<&Job> = listed
            .items
            .iter()
            .filter(|j| jobs::owned_by(j, &uid))
            .collect();

        // Rollout: unless gradual, Jobs of an older generation are deleted.
        if !jobs::gradual_rollout(sj) {
            let generation = sj.metadata.generation.unwrap_or(0);
            let old = jobs::outdated(&own, generation);
            if !old.is_empty() {
                self.rollout_cleanup(ctx, sj, &api, &old).await;
                own.retain(|j| j.metadata.name.as_ref().is_none_or(|n| !old.contains(n)));
            }
        }

        let pending_conditions = sj
            .spec
            .scaling_strategy
            .as_ref()
            .map(|s| s.pending_pod_conditions.clone())
            .unwrap_or_default();
        let any_running = own.iter().any(|j| jobs::finished(j).is_none());
        let pods = if any_running {
            Api::<Pod>::namespaced(ctx.client.clone(), &ns)
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| Error::kube(format!("list pods of ScaledJob {ns}/{name}"), e))?
                .items
        } else {
            Vec::new()
        };
        let counts = jobs::count(&own, &pods, &pending_conditions);
        let plan = tandem_podscaler::scaled_job::plan(config, triggers, counts);
        // Never more than maxReplicaCount running, whatever the strategy says.
        let max = u32::try_from(sj.spec.max_replica_count_or_default()).unwrap_or(0);
        let create = plan.create.min(max.saturating_sub(counts.running));
        if create > 0 {
            self.create_jobs(ctx, sj, &api, create).await;
        }

        let surplus = jobs::beyond_history(
            &own,
            sj.spec.successful_jobs_history_limit_or_default(),
            sj.spec.failed_jobs_history_limit_or_default(),
        );
        for job in surplus {
            if let Err(e) = api.delete(&job, &DeleteParams::background()).await
                && !is_not_found(&e)
            {
                tracing::warn!(error = %e, %ns, job, "finished Job not deleted");
            }
        }
        Ok(plan)
    }

    async fn create_jobs(&mut self, ctx: &Ctx, sj: &ScaledJob, api: &Api<Job>, n: u32) {
        let Some(job) = jobs::build_job(sj) else {
            return;
        };
        let mut created = 0u32;
        for _ in 0..n {
            match api.create(&PostParams::default(), &job).await {
                Ok(_) => created += 1,
                Err(e) => {
                    ctx.recorder
                        .publish(
                            sj,
                            Severity::Warning,
                            "KEDAJobCreateFailed",
                            &format!("Failed to create job: {e}"),
                        )
                        .await;
                    break;
                }
            }
        }
        if created > 0 {
            ctx.recorder
                .publish(
                    sj,
                    Severity::Normal,
                    "KEDAJobsCreated",
                    &format!("Created {created} jobs"),
                )
                .await;
        }
    }

    async fn rollout_cleanup(&mut self, ctx: &Ctx, sj: &ScaledJob, api: &Api<Job>, old: &[String]) {
        let foreground = sj
            .spec
            .rollout
            .as_ref()
            .and_then(|r| r.propagation_policy.as_deref())
            == Some("foreground");
        let params = if foreground {
            DeleteParams::foreground()
        } else {
            DeleteParams::background()
        };
        ctx.recorder
            .publish(
                sj,
                Severity::Normal,
                "ScaledJobRolloutCleanupStarted",
                &format!(
                    "Deleting {} jobs of the previous ScaledJob version",
                    old.len()
                ),
            )
            .await;
        let mut deleted = 0usize;
        for job in old {
            match api.delete(job, &params).await {
                Ok(_) => deleted += 1,
                Err(e) if is_not_found(&e) => deleted += 1,
                Err(e) => {
                    ctx.recorder
                        .publish(
                            sj,
                            Severity::Warning,
                            "ScaledJobRolloutCleanupFailed",
                            &format!("Failed to delete job {job}: {e}"),
                        )
                        .await;
                }
            }
        }
        ctx.recorder
            .publish(
                sj,
                Severity::Normal,
                "ScaledJobRolloutCleanupCompleted",
                &format!("Deleted {deleted} jobs of the previous ScaledJob version"),
            )
            .await;
    }

    /// Upstream's finalizer on the ScaledJob.
    async fn ensure_finalizer(&self, ctx: &Ctx, sj: &ScaledJob) -> Result<(), Error> {
        let finalizers = sj.metadata.finalizers.as_deref().unwrap_or_default();
        if finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let (ns, name) = key_of(sj);
        let mut list = finalizers.to_vec();
        list.push(FINALIZER.to_owned());
        let api: Api<ScaledJob> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(crate::worker::finalizers_patch(&sj.metadata, &list)),
        )
        .await
        .map(|_| ())
        .map_err(|e| Error::kube(format!("add finalizer to ScaledJob {ns}/{name}"), e))
    }

    /// Deletion: stop the scalers, drop the metrics, say so, remove the finalizer. Returns
    /// whether the finalizer is gone.
    async fn finalize(&mut self, ctx: &Ctx, sj: &ScaledJob) -> bool {
        let (ns, name) = key_of(sj);
        self.close_scalers().await;
        ctx.options.metrics.forget_job(&ns, &name);
        let finalizers = sj.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            return true;
        }
        ctx.recorder
            .publish(
                sj,
                Severity::Warning,
                "ScaledJobDeleted",
                "ScaledJob was deleted",
            )
            .await;
        let api: Api<ScaledJob> = Api::namespaced(ctx.client.clone(), &ns);
        crate::worker::remove_finalizer(&api, &sj.metadata).await
    }

    /// Reads every trigger: `qᵢ` (sum of the first metric's values), `tᵢ` and activity. A
    /// failed fetch closes the scaler; it is rebuilt next poll (re-reading its auth).
    async fn measure(&mut self, ctx: &Ctx, sj: &ScaledJob) -> Readings {
        let now = jiff::Timestamp::now();
        let (ns, name) = key_of(sj);
        let mut out = Readings {
            triggers: Vec::with_capacity(self.scalers.len()),
            errors: 0,
            first_error: None,
        };
        for i in 0..self.scalers.len() {
            let failed = JobTrigger {
                queue_length: 0.0,
                target_average: 0.0,
                active: false,
            };
            let Some(Some(built)) = self.scalers.get(i) else {
                out.errors += 1;
                if out.first_error.is_none() {
                    out.first_error = self.build_errors.get(i).cloned().flatten();
                }
                out.triggers.push(failed);
                continue;
            };
            let Some((metric, target)) = built.metric.clone() else {
                out.triggers.push(failed);
                continue;
            };
            let spec_trigger = sj.spec.triggers.get(i);
            let trigger_ref = crate::metrics::TriggerRef {
                kind: crate::metrics::Resource::ScaledJob,
                namespace: &ns,
                scaled_object: &name,
                metric: &metric,
                scaler: spec_trigger
                    .and_then(|s| s.name.as_deref())
                    .or(spec_trigger.map(|s| s.type_.as_str()))
                    .unwrap_or_default(),
                index: i,
            };
            let started = std::time::Instant::now();
            let measured =
                tokio::time::timeout(MEASURE_TIMEOUT, built.scaler.measure(&metric, now)).await;
            match measured {
                Ok(Ok(m)) => {
                    let matching: Vec<f64> = m
                        .values
                        .iter()
                        .filter(|v| v.name.eq_ignore_ascii_case(&metric))
                        .map(|v| v.value)
                        .collect();
                    let q = if matching.is_empty() {
                        m.values.first().map_or(0.0, |v| v.value)
                    } else {
                        matching.iter().sum()
                    };
                    ctx.options.metrics.measured(
                        trigger_ref,
                        q,
                        m.active,
                        started.elapsed().as_secs_f64(),
                    );
                    out.triggers.push(JobTrigger {
                        queue_length: q,
                        target_average: target,
                        active: m.active,
                    });
                }
                other => {
                    ctx.options.metrics.failed(trigger_ref);
                    let text = match other {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("trigger {i}: no answer within {MEASURE_TIMEOUT:?}"),
                    };
                    ctx.recorder
                        .publish(sj, Severity::Warning, "KEDAScalerFailed", &text)
                        .await;
                    if let Some(slot) = self.scalers.get_mut(i)
                        && let Some(b) = slot.take()
                    {
                        b.scaler.close().await;
                    }
                    if let Some(e) = self.build_errors.get_mut(i) {
                        *e = Some(text.clone());
                    }
                    out.errors += 1;
                    if out.first_error.is_none() {
                        out.first_error = Some(text);
                    }
                    out.triggers.push(failed);
                }
            }
        }
        out
    }

    /// Builds missing scalers; all of them again when the generation changed.
    async fn ensure_scalers(&mut self, ctx: &Ctx, sj: &ScaledJob) {
        let generation = sj.metadata.generation.unwrap_or(0);
        if self.scalers_generation != Some(generation) {
            self.close_scalers().await;
            let n = sj.spec.triggers.len();
            self.scalers = (0..n).map(|_| None).collect();
            self.build_errors = vec![None; n];
            self.announced = vec![false; n];
            self.scalers_generation = Some(generation);
        }
        if self.scalers.iter().all(Option::is_some) {
            return;
        }
        let (ns, name) = key_of(sj);
        // `*FromEnv` reads the literal env of the Job template's containers.
        let containers: Vec<(String, Vec<(String, String)>)> = sj
            .spec
            .job_target_ref
            .template
            .spec
            .iter()
            .flat_map(|p| p.containers.iter())
            .map(|c| {
                let env = c
                    .env
                    .iter()
                    .flatten()
                    .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
                    .collect();
                (c.name.clone(), env)
            })
            .collect();
        let env = triggers::target_env(&containers);
        let owner = TriggerOwner {
            namespace: &ns,
            name: &name,
            triggers: &sj.spec.triggers,
            env_source_container: sj.spec.env_source_container_name.as_deref(),
            uses_scaling_modifiers: false,
        };
        for i in 0..self.scalers.len() {
            if self.scalers[i].is_some() {
                continue;
            }
            // Sized from this generation's triggers above, so `i` is in range.
            let kind = sj
                .spec
                .triggers
                .get(i)
                .map(|t| t.type_.clone())
                .unwrap_or_default();
            let built =
                triggers::build_for(&ctx.client, &owner, i, &env, ctx.options.auth_scope()).await;
            let built = match built {
                Ok(scaler) => match scaler.metric_specs().await {
                    Ok(specs) => Ok(Built {
                        metric: first_external(&specs),
                        scaler,
                    }),
                    Err(e) => {
                        scaler.close().await;
                        Err(e.to_string())
                    }
                },
                Err(e) => Err(e.chain()),
            };
            match built {
                Ok(b) => {
                    self.scalers[i] = Some(b);
                    self.build_errors[i] = None;
                    if self.announced.get(i).copied().unwrap_or(true) {
                        continue;
                    }
                    if let Some(a) = self.announced.get_mut(i) {
                        *a = true;
                    }
                    ctx.recorder
                        .publish(
                            sj,
                            Severity::Normal,
                            "KEDAScalersStarted",
                            &format!("Scaler {kind} is built"),
                        )
                        .await;
                }
                Err(text) => {
                    ctx.recorder
                        .publish(sj, Severity::Warning, "KEDAScalerFailed", &text)
                        .await;
                    self.build_errors[i] = Some(text);
                }
            }
        }
    }

    async fn close_scalers(&mut self) {
        for b in self.scalers.drain(..).flatten() {
            b.scaler.close().await;
        }
        self.scalers_generation = None;
    }

    /// Refuses to run the ScaledJob: Ready=False `ScaledJobCheckFailed` naming the field,
    /// Active Unknown, a Warning Event; no Jobs are created.
    async fn fail(&mut self, ctx: &Ctx, sj: &ScaledJob, message: &str) {
        self.close_scalers().await;
        ctx.recorder
            .publish(sj, Severity::Warning, CHECK_FAILED, message)
            .await;
        let previous = sj
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let st = ScaledJobStatus {
            conditions: vec![
                condition(
                    "Ready",
                    ConditionStatus::False,
                    CHECK_FAILED,
                    message.to_owned(),
                    &previous,
                    now.clone(),
                ),
                condition(
                    "Active",
                    ConditionStatus::Unknown,
                    "UnknownState",
                    "State is unknown".into(),
                    &previous,
                    now.clone(),
                ),
            ],
            ..ScaledJobStatus::default()
        };
        self.write_status(ctx, sj, &st).await;
    }

    async fn write_status(&mut self, ctx: &Ctx, sj: &ScaledJob, st: &ScaledJobStatus) {
        let (ns, name) = key_of(sj);
        let Ok(body) = serde_json::to_value(st) else {
            return;
        };
        if self.last_status.as_ref() == Some(&body) {
            return;
        }
        let patch = json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledJob",
            "status": body,
        });
        let api: Api<ScaledJob> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => self.last_status = Some(patch["status"].clone()),
            Err(e) => tracing::warn!(error = %e, %ns, %name, "ScaledJob status not written"),
        }
    }
}

/// The Ready condition kept as it was (while paused nothing is measured).
fn ready_condition(previous: &[Condition], now: &Time) -> Condition {
    previous
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned()
        .unwrap_or_else(|| {
            condition(
                "Ready",
                ConditionStatus::Unknown,
                "ScaledJobPaused",
                "ScaledJob is paused".into(),
                previous,
                now.clone(),
            )
        })
}

/// The first External metric's name and AverageValue target (`tᵢ`; 0 for a Value target,
/// which upstream ignores for ScaledJobs).
fn first_external(specs: &[MetricSpec]) -> Option<(String, f64)> {
    specs.iter().find_map(|s| match s {
        MetricSpec::External { name, target } => Some((
            name.clone(),
            match target {
                Target::AverageValue(t) => *t,
                Target::Value(_) => 0.0,
            },
        )),
        MetricSpec::Resource { .. } => None,
    })
}

fn with_error(text: &str, error: Option<&str>) -> String {
    match error {
        Some(e) => format!("{text}: {e}"),
        None => text.to_owned(),
    }
}

fn unique_join(items: impl Iterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for i in items {
        if !seen.contains(&i) {
            seen.push(i);
        }
    }
    seen.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_external_metric_gives_the_average_target() {
        let specs = [
            MetricSpec::External {
                name: "s0-rabbitmq-q".into(),
                target: Target::AverageValue(2.0),
            },
            MetricSpec::External {
                name: "s0-other".into(),
                target: Target::AverageValue(9.0),
            },
        ];
        assert_eq!(
            first_external(&specs),
            Some(("s0-rabbitmq-q".to_owned(), 2.0))
        );
        let value = [MetricSpec::External {
            name: "s0-x".into(),
            target: Target::Value(3.0),
        }];
        assert_eq!(first_external(&value), Some(("s0-x".to_owned(), 0.0)));
    }

    #[test]
    fn status_writes_do_not_wake_a_worker() {
        let a: ScaledJob = serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
            "metadata": {"name": "a", "namespace": "ns", "generation": 1},
            "spec": {"jobTargetRef": {"template": {}}, "triggers": []},
        }))
        .unwrap();
        let mut b = a.clone();
        b.status = Some(ScaledJobStatus {
            paused: Some("x".into()),
            ..Default::default()
        });
        assert!(!wakes(&a, &b));
        b.metadata.generation = Some(2);
        assert!(wakes(&a, &b));
    }
}

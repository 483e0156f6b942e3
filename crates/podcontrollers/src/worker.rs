//! One ScaledObject's worker: every `pollingInterval` (or at once on a wake, a change of the
//! object or of its target conflict) it converts the object, resolves the target, builds the
//! scalers, measures, calls `podscaler::decide` and executes KEDA's part of the decision.
//!
//! ```text
//!   tick: convert ─► target (/scale) ─► scalers (auth) ─► measure ─► decide
//!           └─► values (served) ─► keda_effects (/scale, Events) ─► HPA ─► status (SSA)
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use tandem_api::keda::v1alpha1::{ScaledObject, ScaledObjectStatus};
use tandem_podscaler::TimeMs;
use tandem_podscaler::activation::{self, Effect, EventReason, Pause};
use tandem_podscaler::decision::{
    Decision, Observation, PodLayerState, TriggerKind, TriggerObservation,
};
use tandem_scalers::Scaler;
use tokio::sync::watch;

use crate::controller::{
    Ctx, FIELD_MANAGER, FINALIZER, HPA_REFRESH, HPA_WATCH_GRACE, Input, MEASURE_TIMEOUT,
    WAIT_FOR_CHANGE, key_of,
};
use crate::error::{Error, is_not_found};
use crate::events::Severity;
use crate::hpa;
use crate::metrics_server::MetricKey;
use crate::status;
use crate::target::{self, TargetType};
use crate::triggers;

/// How long after its own `/scale` write a worker reads `/scale` from the API server rather
/// than from [`crate::replicas::ReplicaCache`], whose watch may not have seen the write yet.
const OWN_WRITE_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs one ScaledObject until it is finalized or the supervisor drops its channel.
pub(crate) async fn run(ctx: Arc<Ctx>, mut rx: watch::Receiver<Input>) {
    let mut worker = Worker::default();
    loop {
        let input = rx.borrow_and_update().clone();
        // Boxed: a tick's state machine (every await of a poll, the HPA, status and Events) is
        // ~24 KB, and inline it sized every worker's future while it sleeps between polls
        // (dhat: 23 MiB of 93 at 1,000 ScaledObjects). Boxed, it exists only while ticking.
        let Some(wait) = Box::pin(worker.tick(&ctx, &input)).await else {
            return;
        };
        // A wake from a source (already rate-limited by the scaler) polls at once.
        let wake = async {
            match worker.wakes.as_mut() {
                Some(w) => w.next().await.is_some(),
                None => std::future::pending().await,
            }
        };
        let planned = tokio::time::Instant::now() + wait;
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            () = tokio::time::sleep_until(planned) => {
                let (ns, name) = key_of(&input.so);
                let late = tokio::time::Instant::now().saturating_duration_since(planned);
                ctx.options.metrics.loop_latency(&ns, &name, late.as_secs_f64());
            }
            more = wake => if !more {
                // Every source's stream ended: poll only until the scalers are rebuilt.
                worker.wakes = None;
            },
        }
    }
}

/// The effects of a decision that KEDA itself executes: all but the HPA's own rescale, which
/// the real HPA controller makes from the served metrics.
#[must_use]
pub fn keda_effects(decision: &Decision) -> Vec<Effect> {
    let mut effects = decision.effects.clone();
    if decision.hpa.as_ref().is_some_and(|o| o.rescale)
        && let Some(i) = effects
            .iter()
            .rposition(|e| matches!(e, Effect::SetReplicas { .. }))
    {
        effects.remove(i);
    }
    effects
}

/// Upstream's Event message for a decision Event.
#[must_use]
pub fn event_message(
    reason: EventReason,
    target: &str,
    from: u32,
    to: u32,
    triggered_by: &[String],
) -> String {
    match reason {
        EventReason::KedaScaleTargetActivated if triggered_by.is_empty() => {
            format!("Scaled {target} from {from} to {to}, caused by forced activation annotation")
        }
        EventReason::KedaScaleTargetActivated => format!(
            "Scaled {target} from {from} to {to}, triggered by {}",
            triggered_by.join(";")
        ),
        EventReason::KedaScaleTargetDeactivated => {
            format!("Deactivated {target} from {from} to {to}")
        }
        EventReason::ScaledObjectPaused => "ScaledObject is paused".into(),
        EventReason::ScaledObjectUnpaused => "ScaledObject is unpaused".into(),
        EventReason::ScaledObjectFallbackActivated => {
            format!("Fallback activated for {target}: replicas {from} to {to}")
        }
        EventReason::ScaledObjectFallbackDeactivated => {
            format!("Fallback deactivated for {target}")
        }
    }
}

/// A hash of an HPA's spec as serialized; see [`value_hash`].
fn spec_hash(hpa: &HorizontalPodAutoscaler) -> u64 {
    value_hash(&hpa.spec)
}

/// A hash of `v` as serialized (struct field order, and serde_json's sorted maps, make equal
/// values serialize equal): 8 bytes kept per ScaledObject instead of the last HPA and status
/// written (dhat: ~5 KB per object as `serde_json::Value`s).
fn value_hash(v: &impl serde::Serialize) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(v).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn milli(v: f64) -> i64 {
    let m = (v * 1000.0).trunc();
    if m.is_nan() {
        0
    } else {
        m.clamp(i64::MIN as f64, i64::MAX as f64) as i64
    }
}

/// What one worker remembers between polls.
#[derive(Default)]
struct Worker {
    state: PodLayerState,
    initialized: bool,
    /// Scalers by trigger index; `None` = to (re)build next poll.
    scalers: Vec<Option<Box<dyn Scaler>>>,
    /// Build errors by trigger index.
    build_errors: Vec<Option<String>>,
    /// Whether KEDAScalersStarted went out for the trigger in this generation.
    announced: Vec<bool>,
    /// Wake-ups of the current scalers ([`Options::push`]); rebuilt with them.
    wakes: Option<futures::stream::SelectAll<tandem_scalers::WakeStream>>,
    /// The generation the scalers were built for.
    scalers_generation: Option<i64>,
    /// The resolved target type and the `(apiVersion, kind)` it was resolved from.
    target: Option<((Option<String>, String), TargetType)>,
    /// The last HPA applied: name and spec.
    hpa_applied: Option<(String, u64)>,
    /// When it was last applied: re-applied after [`HPA_REFRESH`] even if it looks intact.
    hpa_applied_at: Option<tokio::time::Instant>,
    /// A hash of the spec the API server answered the last apply with (defaults filled in):
    /// an HPA the watch shows with another spec was edited by hand, one it no longer shows was
    /// deleted, and either is applied again at the next poll. (`metadata.generation` would not
    /// do: the HPA registry does not bump it on spec edits.)
    hpa_applied_spec: Option<u64>,
    /// The watch has shown the HPA since the last apply: its absence now means deleted.
    hpa_seen: bool,
    hpa_deleted: bool,
    /// A hash of the status last written ([`value_hash`]): an unchanged status is not sent.
    last_status: Option<u64>,
    /// The conditions last written: what transition times are kept from. The watched object
    /// may not show that write yet (the watch lags under load), and taking its older
    /// conditions would stamp a fresh transition time on every poll, so a write per poll
    /// and an event per write, feeding the lag (#15's bench at 3,000 objects).
    last_conditions: Option<Vec<tandem_api::condition::Condition>>,
    original_replicas: Option<u32>,
    /// When this worker last wrote the target's `/scale` (see [`OWN_WRITE_WINDOW`]).
    wrote_scale_at: Option<tokio::time::Instant>,
    ready: Option<bool>,
    /// The readings of the last poll that measured (stand-ins while paused).
    last_observations: Vec<TriggerObservation>,
    /// The target's pod as its template makes it, and when it was read (predictions).
    template: Option<(
        tokio::time::Instant,
        tandem_nodescaler::snapshot::PendingPod,
    )>,
}

/// How long a target's pod template is reused for predictions before it is read again.
const TEMPLATE_REFRESH: Duration = Duration::from_secs(60);

impl Worker {
    /// One poll. `None` when the worker should stop (the object was finalized).
    async fn tick(&mut self, ctx: &Ctx, input: &Input) -> Option<Duration> {
        let so = &*input.so;
        if ctx.options.observe_only && so.metadata.deletion_timestamp.is_some() {
            // The leader finalizes; an observer only stops serving the object.
            self.forget(ctx, so).await;
            return Some(WAIT_FOR_CHANGE);
        }
        if so.metadata.deletion_timestamp.is_some() {
            // Retried until the finalizer is gone; the worker stops with the object.
            return if self.finalize(ctx, so).await {
                None
            } else {
                Some(Duration::from_secs(2))
            };
        }
        if !ctx.options.observe_only
            && let Err(e) = self.ensure_finalizer(ctx, so).await
        {
            tracing::warn!(error = %e.chain(), "finalizer not added");
        }
        let polling = Duration::from_secs(
            u64::try_from(so.spec.polling_interval_or_default())
                .unwrap_or(30)
                .max(1),
        );
        if let Some(owner) = &input.conflict {
            let t = &so.spec.scale_target_ref;
            let message = format!(
                "spec.scaleTargetRef: workload '{}' of type '{}' is already managed by ScaledObject '{owner}'",
                t.name,
                t.kind_or_default()
            );
            self.fail(ctx, so, &message).await;
            return Some(WAIT_FOR_CHANGE);
        }
        let json = match serde_json::to_value(so) {
            Ok(v) => v,
            Err(e) => {
                self.fail(ctx, so, &format!("ScaledObject does not serialize: {e}"))
                    .await;
                return Some(WAIT_FOR_CHANGE);
            }
        };
        let mut converted = match tandem_manifest::convert::scaled_object::convert(&json) {
            Ok(c) => c,
            Err(fe) => {
                self.fail(ctx, so, &format!("{}: {}", fe.field, fe.message))
                    .await;
                return Some(WAIT_FOR_CHANGE);
            }
        };
        converted.config.created_at = TimeMs(
            so.metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_millisecond()),
        );
        let target_type = match self.resolve_target(ctx, so).await {
            Ok(t) => t,
            Err(e) => {
                self.fail(ctx, so, &e.chain()).await;
                return Some(polling);
            }
        };
        let (ns, name) = key_of(so);
        let target_name = &so.spec.scale_target_ref.name;
        let target_label = format!("{} {ns}/{target_name}", target_type.resource.kind);
        // From the watch, unless this worker wrote /scale moments ago (the watch may not show
        // that write yet, and the decision must not see the old count and write again). A
        // target the watch does not show is confirmed with /scale: it may be newer than the
        // watch, and "doesn't exist" turns the object Ready=False.
        let own_write_recent = self
            .wrote_scale_at
            .is_some_and(|at| at.elapsed() < OWN_WRITE_WINDOW);
        let cached = (!own_write_recent)
            .then(|| {
                ctx.replicas.get(
                    &target_type.gvkr.group,
                    &target_type.gvkr.kind,
                    &ns,
                    target_name,
                )
            })
            .flatten()
            .flatten();
        let read = match cached {
            Some(r) => Ok(Some(r)),
            None => target::read(&ctx.client, &ns, target_name, &target_type).await,
        };
        let replicas = match read {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.fail(
                    ctx,
                    so,
                    &format!("spec.scaleTargetRef: Target resource doesn't exist: {target_label}"),
                )
                .await;
                return Some(polling);
            }
            Err(e) => {
                tracing::warn!(error = %e.chain(), "scale target not read");
                return Some(polling);
            }
        };
        let status_now = so.status.clone().unwrap_or_default();
        if self.original_replicas.is_none() {
            self.original_replicas = status_now
                .original_replica_count
                .and_then(|n| u32::try_from(n).ok())
                .or(Some(replicas.spec));
        }
        if !self.initialized {
            let last_active = status_now
                .last_active_time
                .as_ref()
                .map(|t| TimeMs(t.0.as_millisecond()));
            self.state.activation = activation::State::Unknown { last_active };
            self.initialized = true;
        }
        // Paused (`paused` / `paused-replicas`): upstream stops the scale loop, so the sources
        // are left alone (a pause during a broker's maintenance must not hammer it); the last
        // readings stand in, and are not served since the HPA is gone.
        let paused = converted.config.annotations.pause != Pause::None;
        {
            let (ns, name) = key_of(so);
            ctx.options.metrics.paused(&ns, &name, paused);
        }
        if paused {
            self.close_scalers().await;
            self.scalers_generation = None;
        } else {
            self.ensure_scalers(ctx, so, &ns, target_name, &target_type)
                .await;
        }

        // Measure.
        let now = jiff::Timestamp::now();
        let mut observations = Vec::with_capacity(converted.config.triggers.len());
        let mut first_error: Option<String> = None;
        for (i, t) in converted.config.triggers.iter().enumerate() {
            if paused {
                observations.push(
                    self.last_observations
                        .get(i)
                        .copied()
                        .unwrap_or(TriggerObservation::value(0.0)),
                );
                continue;
            }
            if matches!(t.kind, TriggerKind::Resource { .. }) {
                observations.push(TriggerObservation::value(0.0));
                continue;
            }
            let Some(Some(scaler)) = self.scalers.get(i) else {
                if first_error.is_none() {
                    first_error = self.build_errors.get(i).cloned().flatten();
                }
                observations.push(TriggerObservation::failed());
                continue;
            };
            let (obj_ns, obj_name) = key_of(so);
            let spec_trigger = so.spec.triggers.get(i);
            let trigger_ref = crate::metrics::TriggerRef {
                kind: crate::metrics::Resource::ScaledObject,
                namespace: &obj_ns,
                scaled_object: &obj_name,
                metric: &t.metric_name,
                scaler: spec_trigger
                    .and_then(|s| s.name.as_deref())
                    .or(spec_trigger.map(|s| s.type_.as_str()))
                    .unwrap_or_default(),
                index: i,
            };
            let started = std::time::Instant::now();
            let measured =
                tokio::time::timeout(MEASURE_TIMEOUT, scaler.measure(&t.metric_name, now)).await;
            match measured {
                Ok(Ok(m)) => {
                    let value = m
                        .values
                        .iter()
                        .find(|v| v.name.eq_ignore_ascii_case(&t.metric_name))
                        .or(m.values.first())
                        .map_or(0.0, |v| v.value);
                    ctx.options.metrics.measured(
                        trigger_ref,
                        value,
                        m.active,
                        started.elapsed().as_secs_f64(),
                    );
                    observations.push(TriggerObservation {
                        value: Some(value),
                        is_active: Some(m.active),
                    });
                }
                failed => {
                    ctx.options.metrics.failed(trigger_ref);
                    let text = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("trigger {i}: no answer within {MEASURE_TIMEOUT:?}"),
                    };
                    ctx.recorder
                        .publish(so, Severity::Warning, "KEDAScalerFailed", &text)
                        .await;
                    if first_error.is_none() {
                        first_error = Some(text.clone());
                    }
                    if let Some(slot) = self.scalers.get_mut(i)
                        && let Some(s) = slot.take()
                    {
                        s.close().await;
                    }
                    if let Some(e) = self.build_errors.get_mut(i) {
                        *e = Some(text);
                    }
                    observations.push(TriggerObservation::failed());
                }
            }
        }
        if !paused {
            self.last_observations.clone_from(&observations);
        }
        let observation = Observation {
            current_replicas: replicas.spec,
            status_replicas: replicas.status,
            ready_pods: replicas.status,
            triggers: observations,
        };
        let (next, decision) = tandem_podscaler::decision::decide(
            &converted.config,
            &observation,
            &self.state,
            TimeMs(now.as_millisecond()),
        );
        self.state = next;
        if ctx.options.predictions.is_some() && !ctx.options.observe_only {
            self.predict(
                ctx,
                so,
                target_name,
                &target_type,
                &converted.config,
                &decision,
                replicas.status,
                polling,
            )
            .await;
        }

        // Serve values.
        for t in decision.triggers.iter().chain(decision.composite.iter()) {
            if t.target_type.is_none()
                || (converted.config.modifiers.is_some() && decision.composite.as_ref() != Some(t))
            {
                continue;
            }
            let key = MetricKey::new(&ns, &name, &t.metric_name);
            match t.value {
                Some(v) => ctx.options.values.set(key, milli(v)),
                None => ctx.options.values.remove(&key),
            }
        }

        if ctx.options.observe_only {
            // Everything below writes: the leader's part.
            return Some(polling);
        }

        // KEDA's effects.
        for effect in keda_effects(&decision) {
            match effect {
                Effect::SetReplicas { n } => {
                    self.wrote_scale_at = Some(tokio::time::Instant::now());
                    if let Err(e) =
                        target::write(&ctx.client, &ns, target_name, &target_type, n).await
                    {
                        let reason = if n > replicas.spec {
                            "KEDAScaleTargetActivationFailed"
                        } else {
                            "KEDAScaleTargetDeactivationFailed"
                        };
                        ctx.recorder
                            .publish(so, Severity::Warning, reason, &e.chain())
                            .await;
                    }
                }
                Effect::Event {
                    reason,
                    from,
                    to,
                    triggered_by,
                } => {
                    let message = event_message(reason, &target_label, from, to, &triggered_by);
                    ctx.recorder
                        .publish(so, Severity::Normal, reason.as_str(), &message)
                        .await;
                }
                Effect::SetCondition(_)
                | Effect::SetLastActiveTime { .. }
                | Effect::RemoveHpa
                | Effect::RestoreHpa => {}
            }
        }

        // The HPA: absent while paused, else as desired.
        let hpa_name = hpa::hpa_name(so);
        if self.state.activation.is_paused() {
            self.delete_hpa(ctx, so, &hpa_name).await;
        } else {
            let desired = hpa::desired_hpa(
                so,
                &converted,
                target_type.api_version(),
                &target_type.resource.kind,
            );
            let observed = input.hpa.as_deref();
            if let Err(e) = self
                .apply_hpa(ctx, (&ns, &hpa_name), &desired, observed)
                .await
            {
                ctx.recorder
                    .publish(
                        so,
                        Severity::Warning,
                        "ScaledObjectUpdateFailed",
                        &e.chain(),
                    )
                    .await;
            }
        }

        // Status.
        let now_time = Time(k8s_openapi::jiff::Timestamp::now());
        let previous = self
            .last_conditions
            .clone()
            .unwrap_or_else(|| status_now.conditions.clone());
        let mut st = status::from_decision(&converted.config, &decision, &self.state.health);
        st.conditions = status::conditions(
            &decision.conditions,
            first_error.as_deref(),
            &previous,
            &now_time,
        );
        // HPAActive mirrors the HPA's ScalingActive; once written it is kept, never reset.
        let hpa_active = input
            .hpa
            .as_deref()
            .filter(|h| {
                h.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| Some(&o.uid) == so.metadata.uid.as_ref())
            })
            .and_then(|h| status::hpa_active(h, &previous, &now_time))
            .or_else(|| previous.iter().find(|c| c.type_ == "HPAActive").cloned());
        st.conditions.extend(hpa_active);
        st.scale_target_kind = Some(target_type.kind_string());
        st.scale_target_gvkr = Some(target_type.gvkr.clone());
        st.original_replica_count = self.original_replicas.and_then(|n| i32::try_from(n).ok());
        st.last_active_time = self.state.activation.last_active().and_then(|t| {
            k8s_openapi::jiff::Timestamp::from_millisecond(t.as_millis())
                .ok()
                .map(Time)
        });
        st.hpa_name = Some(hpa_name);
        if let activation::State::Paused { hold: Some(n), .. } = self.state.activation {
            st.paused_replica_count = i32::try_from(n).ok();
        }
        st.triggers_types = Some(unique_join(
            so.spec.triggers.iter().map(|t| t.type_.clone()),
        ));
        let auths = unique_join(
            so.spec
                .triggers
                .iter()
                .filter_map(|t| t.authentication_ref.as_ref().map(|r| r.name.clone())),
        );
        st.authentications_types = (!auths.is_empty()).then_some(auths);
        let ready = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .is_some_and(tandem_api::condition::Condition::is_true);
        let was_ready = self
            .ready
            .unwrap_or_else(|| previous.iter().any(|c| c.type_ == "Ready" && c.is_true()));
        if ready && !was_ready {
            ctx.recorder
                .publish(
                    so,
                    Severity::Normal,
                    "ScaledObjectReady",
                    "ScaledObject is ready for scaling",
                )
                .await;
        }
        self.ready = Some(ready);
        self.write_status(ctx, so, st).await;
        Some(polling)
    }

    async fn resolve_target(&mut self, ctx: &Ctx, so: &ScaledObject) -> Result<TargetType, Error> {
        let t = &so.spec.scale_target_ref;
        let wanted = (t.api_version.clone(), t.kind_or_default().to_owned());
        if let Some((from, resolved)) = &self.target
            && *from == wanted
        {
            return Ok(resolved.clone());
        }
        let resolved = ctx.targets.get(&ctx.client, t).await?;
        self.target = Some((wanted, resolved.clone()));
        Ok(resolved)
    }

    async fn ensure_scalers(
        &mut self,
        ctx: &Ctx,
        so: &ScaledObject,
        ns: &str,
        target_name: &str,
        target_type: &TargetType,
    ) {
        self.build_scalers(ctx, so, ns, target_name, target_type)
            .await;
        if !ctx.options.push || switched_off(so, tandem_scalers::push::ANNOTATION) {
            // Turned off on a running object: its subscriptions go with the annotation.
            self.wakes = None;
        } else if self.wakes.is_none() && self.scalers.iter().any(Option::is_some) {
            self.subscribe();
        }
    }

    async fn build_scalers(
        &mut self,
        ctx: &Ctx,
        so: &ScaledObject,
        ns: &str,
        target_name: &str,
        target_type: &TargetType,
    ) {
        let generation = so.metadata.generation.unwrap_or(0);
        if self.scalers_generation != Some(generation)
            || self.scalers.len() != so.spec.triggers.len()
        {
            self.close_scalers().await;
            self.scalers = (0..so.spec.triggers.len()).map(|_| None).collect();
            self.build_errors = vec![None; so.spec.triggers.len()];
            self.announced = vec![false; so.spec.triggers.len()];
            self.scalers_generation = Some(generation);
        }
        if self.scalers.iter().all(Option::is_some) {
            return;
        }
        let containers = target::container_env(&ctx.client, ns, target_name, target_type)
            .await
            .unwrap_or_default();
        let env = triggers::target_env(&containers);
        // New scalers, new subscriptions.
        self.wakes = None;
        for i in 0..self.scalers.len() {
            if self.scalers[i].is_some() {
                continue;
            }
            let kind = so.spec.triggers[i].type_.clone();
            // Boxed: building a scaler (some connect or resolve credentials on the way) is a
            // ~19 KB state machine, and inline it sized every tick's future, all of which
            // wait in the client's rate limiter at start-up (#15: 10,000 at once).
            let build = Box::pin(triggers::build(
                &ctx.client,
                so,
                i,
                &env,
                ctx.options.auth_scope(),
            ));
            match build.await {
                Ok(s) => {
                    self.scalers[i] = Some(s);
                    self.build_errors[i] = None;
                    // Once per trigger and generation: a scaler rebuilt after each failed
                    // fetch must not announce itself every poll.
                    if self.announced.get(i).copied().unwrap_or(true) {
                        continue;
                    }
                    if let Some(a) = self.announced.get_mut(i) {
                        *a = true;
                    }
                    ctx.recorder
                        .publish(
                            so,
                            Severity::Normal,
                            "KEDAScalersStarted",
                            &format!("Scaler {kind} is built"),
                        )
                        .await;
                }
                Err(e) => {
                    let text = e.chain();
                    ctx.recorder
                        .publish(so, Severity::Warning, "KEDAScalerFailed", &text)
                        .await;
                    self.build_errors[i] = Some(text);
                }
            }
        }
    }

    /// Publishes where the target is heading (predictive provisioning), or clears it.
    #[allow(clippy::too_many_arguments)]
    async fn predict(
        &mut self,
        ctx: &Ctx,
        so: &ScaledObject,
        target_name: &str,
        target_type: &TargetType,
        config: &tandem_podscaler::decision::ScaledObjectConfig,
        decision: &Decision,
        pods: u32,
        polling: Duration,
    ) {
        let Some(predictions) = &ctx.options.predictions else {
            return;
        };
        let (ns, name) = key_of(so);
        let key = format!("{ns}/{name}");
        let heading = if switched_off(so, tandem_podscaler::forecast::ANNOTATION) {
            None
        } else {
            tandem_podscaler::forecast::heading_to(config, decision, pods)
        };
        let Some(heading_to) = heading else {
            predictions.set(&key, None);
            return;
        };
        let fresh = self
            .template
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < TEMPLATE_REFRESH);
        if !fresh {
            match target::pod_template(&ctx.client, &ns, target_name, target_type).await {
                Ok(Some(t)) => self.template = Some((tokio::time::Instant::now(), t)),
                Ok(None) => self.template = None,
                Err(e) => tracing::debug!(error = %e.chain(), "no pod template to predict with"),
            }
        }
        let Some((_, template)) = &self.template else {
            predictions.set(&key, None);
            return;
        };
        let now = k8s_openapi::jiff::Timestamp::now().as_millisecond();
        // Valid for two polls and an HPA sync: a live pod layer renews it well before.
        let ttl = i64::try_from(polling.as_millis()).unwrap_or(i64::MAX / 4) * 2 + 30_000;
        predictions.set(
            &key,
            Some(tandem_state::predictions::Prediction {
                target: (
                    ns,
                    target_type.resource.kind.clone(),
                    target_name.to_owned(),
                ),
                template: template.clone(),
                heading_to,
                until_ms: now + ttl,
            }),
        );
    }

    async fn close_scalers(&mut self) {
        self.wakes = None;
        for s in self.scalers.drain(..).flatten() {
            s.close().await;
        }
    }

    /// Subscribes to the wake-ups of every built scaler that has them.
    fn subscribe(&mut self) {
        let streams: Vec<_> = self
            .scalers
            .iter()
            .flatten()
            .filter_map(|s| s.watch())
            .collect();
        self.wakes = (!streams.is_empty()).then(|| futures::stream::select_all(streams));
    }

    /// Refuses to run the object: Ready=False with the reason, a Warning Event, no values.
    async fn fail(&mut self, ctx: &Ctx, so: &ScaledObject, message: &str) {
        let (ns, name) = key_of(so);
        ctx.options.values.remove_object(&ns, &name);
        self.close_scalers().await;
        self.scalers_generation = None;
        ctx.recorder
            .publish(so, Severity::Warning, status::CHECK_FAILED, message)
            .await;
        let previous = self.last_conditions.clone().unwrap_or_else(|| {
            so.status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default()
        });
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let st = ScaledObjectStatus {
            conditions: status::check_failed(message, &previous, &now),
            original_replica_count: self.original_replicas.and_then(|n| i32::try_from(n).ok()),
            ..ScaledObjectStatus::default()
        };
        self.ready = Some(false);
        self.write_status(ctx, so, st).await;
    }

    async fn write_status(&mut self, ctx: &Ctx, so: &ScaledObject, st: ScaledObjectStatus) {
        if ctx.options.observe_only {
            return;
        }
        let (ns, name) = key_of(so);
        let Ok(mut body) = serde_json::to_value(&st) else {
            return;
        };
        // Compare without transition times' churn: they only change with a status flip.
        let hash = value_hash(&body);
        if self.last_status == Some(hash) {
            return;
        }
        let conditions = st.conditions;
        let patch = json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "status": body.take(),
        });
        let api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => {
                self.last_status = Some(hash);
                self.last_conditions = Some(conditions);
            }
            Err(e) => {
                tracing::warn!(error = %e, %ns, %name, "ScaledObject status not written");
            }
        }
    }

    async fn apply_hpa(
        &mut self,
        ctx: &Ctx,
        (ns, name): (&str, &str),
        desired: &HorizontalPodAutoscaler,
        observed: Option<&HorizontalPodAutoscaler>,
    ) -> Result<(), Error> {
        let body = serde_json::to_value(desired).unwrap_or_default();
        let body_hash = value_hash(&body);
        if let Some((applied_name, applied)) = &self.hpa_applied {
            let since = self.hpa_applied_at.map(|at| at.elapsed());
            let fresh = since.is_some_and(|s| s < HPA_REFRESH);
            let intact = match observed {
                Some(h) => {
                    self.hpa_seen = true;
                    Some(spec_hash(h)) == self.hpa_applied_spec
                }
                None => !self.hpa_seen && since.is_some_and(|s| s < HPA_WATCH_GRACE),
            };
            if applied_name == name && *applied == body_hash && fresh && intact {
                return Ok(());
            }
            if applied_name != name {
                let old = applied_name.clone();
                let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), ns);
                if let Err(e) = api.delete(&old, &DeleteParams::default()).await
                    && !is_not_found(&e)
                {
                    return Err(Error::kube(format!("delete HPA {ns}/{old}"), e));
                }
            }
        }
        let mut patch = body;
        patch["apiVersion"] = json!("autoscaling/v2");
        patch["kind"] = json!("HorizontalPodAutoscaler");
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), ns);
        let stored = api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|e| Error::kube(format!("apply HPA {ns}/{name}"), e))?;
        self.hpa_applied = Some((name.to_owned(), body_hash));
        self.hpa_applied_at = Some(tokio::time::Instant::now());
        self.hpa_applied_spec = Some(spec_hash(&stored));
        self.hpa_seen = false;
        self.hpa_deleted = false;
        Ok(())
    }

    async fn delete_hpa(&mut self, ctx: &Ctx, so: &ScaledObject, name: &str) {
        if self.hpa_deleted {
            return;
        }
        match delete_owned_hpa(ctx, so, name).await {
            Ok(()) => {
                self.hpa_deleted = true;
                self.hpa_applied = None;
            }
            Err(e) => tracing::warn!(error = %e.chain(), "HPA not deleted"),
        }
    }

    /// The finalizer, and the `scaledobject.keda.sh/name` label upstream puts on the object.
    async fn ensure_finalizer(&mut self, ctx: &Ctx, so: &ScaledObject) -> Result<(), Error> {
        let (ns, name) = key_of(so);
        let finalizers = so.metadata.finalizers.as_deref().unwrap_or_default();
        let labelled = so
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::metrics_server::SCALED_OBJECT_LABEL))
            == Some(&name);
        if labelled && finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let mut list = finalizers.to_vec();
        if !list.iter().any(|f| f == FINALIZER) {
            list.push(FINALIZER.to_owned());
        }
        let mut patch = finalizers_patch(&so.metadata, &list);
        patch["metadata"]["labels"] = json!({crate::metrics_server::SCALED_OBJECT_LABEL: name});
        let api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| Error::kube(format!("add finalizer to ScaledObject {ns}/{name}"), e))
    }

    /// Stops polling the object and drops what it published: values, forecasts, series.
    async fn forget(&mut self, ctx: &Ctx, so: &ScaledObject) {
        let (ns, name) = key_of(so);
        self.close_scalers().await;
        self.scalers_generation = None;
        if let Some(p) = &ctx.options.predictions {
            p.set(&format!("{ns}/{name}"), None);
        }
        ctx.options.values.remove_object(&ns, &name);
        ctx.options.metrics.forget(&ns, &name);
    }

    /// Deletion: stop, delete the HPA, restore the original replicas if asked, drop the
    /// finalizer. Returns whether the finalizer is gone.
    async fn finalize(&mut self, ctx: &Ctx, so: &ScaledObject) -> bool {
        self.forget(ctx, so).await;
        let (ns, _) = key_of(so);
        let finalizers = so.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            return true;
        }
        let hpa_name = hpa::hpa_name(so);
        if let Err(e) = delete_owned_hpa(ctx, so, &hpa_name).await {
            tracing::warn!(error = %e.chain(), "HPA not deleted");
        }
        let restore = so
            .spec
            .advanced
            .as_ref()
            .is_some_and(|a| a.restore_to_original_replica_count);
        let original = so
            .status
            .as_ref()
            .and_then(|s| s.original_replica_count)
            .and_then(|n| u32::try_from(n).ok())
            .or(self.original_replicas);
        if restore
            && let Some(n) = original
            && let Ok(t) = self.resolve_target(ctx, so).await
            && let Err(e) =
                target::write(&ctx.client, &ns, &so.spec.scale_target_ref.name, &t, n).await
        {
            tracing::warn!(error = %e.chain(), "original replica count not restored");
        }
        ctx.recorder
            .publish(
                so,
                Severity::Warning,
                "ScaledObjectDeleted",
                "ScaledObject was deleted",
            )
            .await;
        let api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &ns);
        remove_finalizer(&api, &so.metadata).await
    }
}

/// Deletes the HPA `name` if this ScaledObject owns it (a ScaledObject refused for a taken
/// target must not delete the owner's HPA). Absent counts as deleted.
async fn delete_owned_hpa(ctx: &Ctx, so: &ScaledObject, name: &str) -> Result<(), Error> {
    let (ns, _) = key_of(so);
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = api
        .get_opt(name)
        .await
        .map_err(|e| Error::kube(format!("read HPA {ns}/{name}"), e))?;
    let owned = existing.is_some_and(|h| {
        h.metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|o| Some(&o.uid) == so.metadata.uid.as_ref())
    });
    if !owned {
        return Ok(());
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube(format!("delete HPA {ns}/{name}"), e)),
    }
}

/// A merge patch setting the finalizer list, guarded by the resourceVersion it was read at
/// (a conflict is retried on the next poll).
/// A per-object feature switch: the annotation `key` set to `"false"`.
fn switched_off(so: &ScaledObject, key: &str) -> bool {
    so.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .is_some_and(|v| v == "false")
}

/// Removes [`FINALIZER`] from the object `meta` describes; true when it is gone (or the
/// object is), false to retry.
pub(crate) async fn remove_finalizer<K>(api: &Api<K>, meta: &ObjectMeta) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let rest: Vec<String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let name = meta.name.as_deref().unwrap_or_default();
    match api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(finalizers_patch(meta, &rest)),
        )
        .await
    {
        Ok(_) => true,
        Err(e) if is_not_found(&e) => true,
        Err(e) => {
            tracing::warn!(error = %e, namespace = ?meta.namespace, %name, "finalizer not removed; retrying");
            false
        }
    }
}

/// A merge patch setting `finalizers`, guarded by the object's resourceVersion (a list in a
/// merge patch replaces the whole list: a concurrent change must not be overwritten).
pub(crate) fn finalizers_patch(meta: &ObjectMeta, finalizers: &[String]) -> serde_json::Value {
    json!({"metadata": {
        "resourceVersion": meta.resource_version,
        "finalizers": finalizers,
    }})
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
    use tandem_podscaler::activation::ActivationConfig;
    use tandem_podscaler::decision::{ScaledObjectConfig, TriggerConfig};
    use tandem_podscaler::fallback::TargetType as Tt;

    #[test]
    fn the_hpa_rescale_is_left_to_the_real_hpa() {
        let config = ScaledObjectConfig {
            activation: ActivationConfig {
                min_replicas: 1,
                max_replicas: 10,
                ..ActivationConfig::default()
            },
            triggers: vec![TriggerConfig {
                metric_name: "s0-rabbitmq-q".into(),
                name: None,
                kind: TriggerKind::External {
                    target: 10.0,
                    target_type: Tt::AverageValue,
                    activation_threshold: 0.0,
                },
            }],
            fallback: None,
            behavior: None,
            modifiers: None,
            annotations: Default::default(),
            created_at: TimeMs(0),
        };
        let obs = Observation {
            current_replicas: 1,
            status_replicas: 1,
            ready_pods: 1,
            triggers: vec![TriggerObservation::value(100.0)],
        };
        let (_, d) = tandem_podscaler::decision::decide(
            &config,
            &obs,
            &PodLayerState::default(),
            TimeMs(1_000_000),
        );
        // The HPA's default scale-up policy allows 1 -> 4 in one step.
        assert!(d.hpa.as_ref().is_some_and(|o| o.rescale));
        assert!(d.effects.contains(&Effect::SetReplicas { n: 4 }));
        assert!(
            !keda_effects(&d)
                .iter()
                .any(|e| matches!(e, Effect::SetReplicas { .. }))
        );
    }

    #[test]
    fn keda_activation_from_zero_is_executed() {
        let config = ScaledObjectConfig {
            activation: ActivationConfig::default(),
            triggers: vec![TriggerConfig {
                metric_name: "s0-m".into(),
                name: None,
                kind: TriggerKind::External {
                    target: 10.0,
                    target_type: Tt::AverageValue,
                    activation_threshold: 0.0,
                },
            }],
            fallback: None,
            behavior: None,
            modifiers: None,
            annotations: Default::default(),
            created_at: TimeMs(0),
        };
        let obs = Observation {
            current_replicas: 0,
            status_replicas: 0,
            ready_pods: 0,
            triggers: vec![TriggerObservation::value(5.0)],
        };
        let (_, d) = tandem_podscaler::decision::decide(
            &config,
            &obs,
            &PodLayerState::default(),
            TimeMs(1_000_000),
        );
        assert!(keda_effects(&d).contains(&Effect::SetReplicas { n: 1 }));
    }

    #[test]
    fn activation_events_read_like_upstream() {
        assert_eq!(
            event_message(
                EventReason::KedaScaleTargetActivated,
                "Deployment ns/web",
                0,
                1,
                &["s0-rabbitmq-q".into()]
            ),
            "Scaled Deployment ns/web from 0 to 1, triggered by s0-rabbitmq-q"
        );
    }
}

//! ScaledJob helpers with no I/O: reading the ScaledJob into `podscaler::scaled_job`'s config,
//! refusing what upstream's controller refuses, building a Job from `spec.jobTargetRef`,
//! counting running and pending Jobs, and choosing which finished or outdated Jobs to delete.
//! The live loop (`scaled_job`) only lists, creates and deletes what these return.
//!
//! Upstream: keda `pkg/scaling/executor/scale_jobs.go` (Job creation, counts, history
//! cleanup) and `controllers/keda/scaledjob_controller.go` (checks, rollout), keda.md §2.3, §6.5.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use tandem_api::keda::v1alpha1::ScaledJob;
use tandem_podscaler::scaled_job::{
    JobCounts, MultipleScalersCalculation, ScaledJobConfig, ScalingStrategy,
};

/// Label upstream puts on a ScaledJob's Jobs and their pods; Jobs are listed by it.
pub const SCALED_JOB_LABEL: &str = "scaledjob.keda.sh/name";
/// Annotation holding the ScaledJob generation a Job was created from (for rollout).
pub const GENERATION_ANNOTATION: &str = "scaledjob.keda.sh/generation";
/// Annotation on the ScaledJob listing its labels not to copy onto Jobs.
pub const EXCLUDED_LABELS_ANNOTATION: &str = "scaledjob.keda.sh/job-excluded-labels";
/// `app.kubernetes.io/managed-by` of created Jobs, as upstream.
pub const MANAGED_BY: &str = "keda-operator";

/// Why a ScaledJob cannot run; the message names the field, what is wrong and what would be
/// right, for the Ready condition and the `ScaledJobCheckFailed` Event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ScaledJob {namespace}/{name}: {field}: {message}")]
pub struct InvalidScaledJob {
    /// Namespace of the ScaledJob.
    pub namespace: String,
    /// Name of the ScaledJob.
    pub name: String,
    /// The field path, e.g. `spec.triggers[0].metricType`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn invalid(sj: &ScaledJob, field: String, message: &str) -> InvalidScaledJob {
    InvalidScaledJob {
        namespace: sj.metadata.namespace.clone().unwrap_or_default(),
        name: sj.metadata.name.clone().unwrap_or_default(),
        field,
        message: message.to_owned(),
    }
}

/// The checks upstream's ScaledJob controller makes before it runs an object (the API
/// server's schema has already enforced enums and minimums). Returns the first problem.
///
/// # Errors
/// [`InvalidScaledJob`] naming the offending field.
pub fn validate(sj: &ScaledJob) -> Result<(), InvalidScaledJob> {
    if sj.spec.triggers.is_empty() {
        return Err(invalid(
            sj,
            "spec.triggers".into(),
            "no triggers defined in the ScaledObject/ScaledJob; add at least one trigger",
        ));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, t) in sj.spec.triggers.iter().enumerate() {
        if t.metric_type.is_some() {
            return Err(invalid(
                sj,
                format!("spec.triggers[{i}].metricType"),
                "metricType cannot be set in ScaledJob triggers; remove it",
            ));
        }
        if matches!(t.type_.as_str(), "cpu" | "memory") {
            return Err(invalid(
                sj,
                format!("spec.triggers[{i}].type"),
                "cpu and memory triggers are not supported in ScaledJobs (a Job's pods come and go); use an event source",
            ));
        }
        if let Some(n) = t.name.as_deref() {
            if names.contains(&n) {
                return Err(invalid(
                    sj,
                    format!("spec.triggers[{i}].name"),
                    "triggerName is defined more than once; trigger names must be unique",
                ));
            }
            names.push(n);
        }
    }
    let has_containers = sj
        .spec
        .job_target_ref
        .template
        .spec
        .as_ref()
        .is_some_and(|p| !p.containers.is_empty());
    if !has_containers {
        return Err(invalid(
            sj,
            "spec.jobTargetRef.template.spec.containers".into(),
            "the Job template has no containers; give it at least one",
        ));
    }
    Ok(())
}

fn non_negative(v: Option<i32>) -> Option<u32> {
    v.map(|n| u32::try_from(n).unwrap_or(0))
}

/// The decision's view of a ScaledJob: bounds, strategy and trigger aggregation. A `custom`
/// strategy whose `customScalingRunningJobPercentage` does not parse as a number falls back
/// to `default`, as upstream (`NewScalingStrategy`).
#[must_use]
pub fn config(sj: &ScaledJob) -> ScaledJobConfig {
    let s = sj.spec.scaling_strategy.clone().unwrap_or_default();
    let strategy = match s.strategy.as_deref() {
        Some("custom") => s
            .custom_scaling_running_job_percentage
            .as_deref()
            .and_then(|p| p.trim().parse::<f64>().ok())
            .map_or(ScalingStrategy::Default, |p| ScalingStrategy::Custom {
                deduction: i64::from(s.custom_scaling_queue_length_deduction.unwrap_or(0)),
                running_job_percentage: p,
            }),
        Some("accurate") => ScalingStrategy::Accurate,
        Some("eager") => ScalingStrategy::Eager,
        _ => ScalingStrategy::Default,
    };
    let calculation = match s.multiple_scalers_calculation.as_deref() {
        Some("min") => MultipleScalersCalculation::Min,
        Some("avg") => MultipleScalersCalculation::Avg,
        Some("sum") => MultipleScalersCalculation::Sum,
        _ => MultipleScalersCalculation::Max,
    };
    ScaledJobConfig {
        min_replicas: non_negative(sj.spec.min_replica_count),
        max_replicas: non_negative(sj.spec.max_replica_count),
        strategy,
        calculation,
    }
}

/// Whether `rollout.strategy` (or the deprecated `rolloutStrategy`, which wins) is `gradual`:
/// running Jobs of an older generation are then left to finish.
#[must_use]
pub fn gradual_rollout(sj: &ScaledJob) -> bool {
    let strategy = sj
        .spec
        .rollout_strategy
        .as_deref()
        .or_else(|| sj.spec.rollout.as_ref().and_then(|r| r.strategy.as_deref()));
    strategy == Some("gradual")
}

/// Whether the ScaledJob is paused (`autoscaling.keda.sh/paused`): as upstream reads it with
/// Go's `strconv.ParseBool`, anything but a "false" spelling pauses (keda.md §3.1 QUIRK).
#[must_use]
pub fn paused(sj: &ScaledJob) -> bool {
    sj.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(tandem_podscaler::activation::ANNOTATION_PAUSED))
        .is_some_and(|v| !matches!(v.as_str(), "0" | "f" | "F" | "false" | "FALSE" | "False"))
}

/// The controller owner reference to the ScaledJob, `None` without a uid (not yet stored).
#[must_use]
pub fn owner_reference(sj: &ScaledJob) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: ScaledJob::api_version(&()).into_owned(),
        kind: ScaledJob::kind(&()).into_owned(),
        name: sj.metadata.name.clone()?,
        uid: sj.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// A new Job from `spec.jobTargetRef`, as upstream's `generateJobs`: `generateName:
/// <sj>-`, upstream's labels plus the ScaledJob's (minus `job-excluded-labels`), its
/// annotations plus the generation, the controller owner reference, the pod template
/// labelled with the ScaledJob, and `restartPolicy: OnFailure` when the template sets none.
/// `None` when the ScaledJob has no name or uid yet.
#[must_use]
pub fn build_job(sj: &ScaledJob) -> Option<Job> {
    let name = sj.metadata.name.clone()?;
    let owner = owner_reference(sj)?;
    let excluded: Vec<&str> = sj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(EXCLUDED_LABELS_ANNOTATION))
        .map(|v| v.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let mut labels: BTreeMap<String, String> = sj
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !excluded.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in [
        ("app.kubernetes.io/name", name.as_str()),
        ("app.kubernetes.io/version", env!("CARGO_PKG_VERSION")),
        ("app.kubernetes.io/part-of", name.as_str()),
        ("app.kubernetes.io/managed-by", MANAGED_BY),
        (SCALED_JOB_LABEL, name.as_str()),
    ] {
        labels.insert(k.to_owned(), v.to_owned());
    }
    let mut annotations = sj.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(
        GENERATION_ANNOTATION.to_owned(),
        sj.metadata.generation.unwrap_or(0).to_string(),
    );
    let mut spec = sj.spec.job_target_ref.clone();
    let template_meta = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    template_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(SCALED_JOB_LABEL.to_owned(), name.clone());
    if let Some(pod) = spec.template.spec.as_mut()
        && pod.restart_policy.as_deref().is_none_or(str::is_empty)
    {
        pod.restart_policy = Some("OnFailure".into());
    }
    Some(Job {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: sj.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// How a Job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Condition `Complete` is True.
    Succeeded,
    /// Condition `Failed` is True.
    Failed,
}

/// How `job` ended, `None` while it runs (upstream `isJobFinished`).
#[must_use]
pub fn finished(job: &Job) -> Option<Finished> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some(Finished::Succeeded),
            "Failed" => Some(Finished::Failed),
            _ => None,
        })
}

/// Whether `job` is controlled by the ScaledJob with `uid`.
#[must_use]
pub fn owned_by(job: &Job, uid: &str) -> bool {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

fn pods_of<'a>(job: &Job, pods: &'a [Pod]) -> impl Iterator<Item = &'a Pod> {
    let uid = job.metadata.uid.clone();
    pods.iter().filter(move |p| {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Job" && Some(&o.uid) == uid.as_ref())
    })
}

fn pod_phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn all_conditions_true(p: &Pod, wanted: &[String]) -> bool {
    let conditions = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    wanted.iter().all(|w| {
        conditions
            .iter()
            .any(|c| &c.type_ == w && c.status == "True")
    })
}

/// `R` and `P` for the decision: unfinished Jobs, and those of them still pending: with
/// `pendingPodConditions`, no pod of the Job has them all True; otherwise no pod of the
/// Job is Running or Succeeded (upstream `getPendingJobCount`). `jobs` are the ScaledJob's
/// own; `pods` may include others (matched by owner uid).
#[must_use]
pub fn count(jobs: &[&Job], pods: &[Pod], pending_pod_conditions: &[String]) -> JobCounts {
    let mut running = 0u32;
    let mut pending = 0u32;
    for job in jobs.iter().filter(|j| finished(j).is_none()) {
        running = running.saturating_add(1);
        let started = if pending_pod_conditions.is_empty() {
            pods_of(job, pods).any(|p| matches!(pod_phase(p), "Running" | "Succeeded"))
        } else {
            pods_of(job, pods).any(|p| all_conditions_true(p, pending_pod_conditions))
        };
        if !started {
            pending = pending.saturating_add(1);
        }
    }
    JobCounts { running, pending }
}

fn created_order(a: &&Job, b: &&Job) -> std::cmp::Ordering {
    let t = |j: &Job| {
        j.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_millisecond())
    };
    t(a).cmp(&t(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Names of finished Jobs beyond the history limits, oldest first (by creation time, then
/// name), as upstream's `deleteJobsWithHistoryLimit`. A negative limit counts as 0.
#[must_use]
pub fn beyond_history(jobs: &[&Job], successful_limit: i32, failed_limit: i32) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, limit) in [
        (Finished::Succeeded, successful_limit),
        (Finished::Failed, failed_limit),
    ] {
        let mut done: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|j| finished(j) == Some(kind))
            .collect();
        done.sort_by(created_order);
        let keep = usize::try_from(limit).unwrap_or(0);
        let extra = done.len().saturating_sub(keep);
        out.extend(
            done.iter()
                .take(extra)
                .filter_map(|j| j.metadata.name.clone()),
        );
    }
    out
}

/// Names of running Jobs created from an older generation of the ScaledJob: what a
/// non-gradual rollout deletes (upstream deletes the previous version's Jobs on update).
/// Jobs already being deleted (foreground propagation) are not asked twice.
#[must_use]
pub fn outdated(jobs: &[&Job], generation: i64) -> Vec<String> {
    let mut old: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| finished(j).is_none() && j.metadata.deletion_timestamp.is_none())
        .filter(|j| {
            j.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(GENERATION_ANNOTATION))
                .and_then(|g| g.parse::<i64>().ok())
                .is_some_and(|g| g < generation)
        })
        .collect();
    old.sort_by(created_order);
    old.iter().filter_map(|j| j.metadata.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sj(extra: serde_json::Value) -> ScaledJob {
        let mut doc = json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
            "metadata": {"name": "consume", "namespace": "ns", "uid": "sj-uid", "generation": 3,
                         "labels": {"team": "a", "secret-ish": "x"},
                         "annotations": {"scaledjob.keda.sh/job-excluded-labels": "secret-ish"}},
            "spec": {
                "jobTargetRef": {"template": {"spec": {"containers": [
                    {"name": "c", "image": "registry.invalid/consumer:1"}]}}},
                "triggers": [{"type": "rabbitmq", "metadata": {"queueName": "q"}}],
            },
        });
        if let (Some(spec), Some(extra)) = (doc["spec"].as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(doc).unwrap()
    }

    fn job(name: &str, created: i64, condition: Option<&str>, generation: i64) -> Job {
        let conditions = condition.map_or(json!([]), |c| json!([{"type": c, "status": "True"}]));
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "uid": format!("uid-{name}"),
                "creationTimestamp": k8s_openapi::jiff::Timestamp::from_second(created).unwrap().to_string(),
                "annotations": {GENERATION_ANNOTATION: generation.to_string()},
                "ownerReferences": [{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
                    "name": "consume", "uid": "sj-uid", "controller": true}]},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn pod(job: &str, phase: &str, ready: bool) -> Pod {
        let ready = if ready { "True" } else { "False" };
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{job}-p"), "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": format!("uid-{job}")}]},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": ready},
                {"type": "PodScheduled", "status": "True"}]},
        }))
        .unwrap()
    }

    #[test]
    fn a_job_is_built_from_the_template_with_upstreams_metadata() {
        let job = build_job(&sj(json!({}))).unwrap();
        let m = &job.metadata;
        assert_eq!(m.generate_name.as_deref(), Some("consume-"));
        assert_eq!(m.namespace.as_deref(), Some("ns"));
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels[SCALED_JOB_LABEL], "consume");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "keda-operator");
        assert_eq!(labels["team"], "a");
        assert!(!labels.contains_key("secret-ish"));
        assert_eq!(m.annotations.as_ref().unwrap()[GENERATION_ANNOTATION], "3");
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ScaledJob", "sj-uid", Some(true))
        );
        let spec = job.spec.unwrap();
        assert_eq!(
            spec.template.metadata.unwrap().labels.unwrap()[SCALED_JOB_LABEL],
            "consume"
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("registry.invalid/consumer:1")
        );
    }

    #[test]
    fn a_template_restart_policy_is_kept_and_no_uid_builds_nothing() {
        let mut s = sj(json!({}));
        if let Some(p) = s.spec.job_target_ref.template.spec.as_mut() {
            p.restart_policy = Some("Never".into());
        }
        let job = build_job(&s).unwrap();
        assert_eq!(
            job.spec
                .unwrap()
                .template
                .spec
                .unwrap()
                .restart_policy
                .as_deref(),
            Some("Never")
        );
        s.metadata.uid = None;
        assert!(build_job(&s).is_none());
    }

    #[test]
    fn history_keeps_the_newest_finished_jobs_per_outcome() {
        let jobs = [
            job("s1", 10, Some("Complete"), 1),
            job("s3", 30, Some("Complete"), 1),
            job("s2", 20, Some("Complete"), 1),
            job("f1", 15, Some("Failed"), 1),
            job("f2", 25, Some("Failed"), 1),
            job("r1", 5, None, 1),
        ];
        let refs: Vec<&Job> = jobs.iter().collect();
        assert_eq!(beyond_history(&refs, 1, 1), ["s1", "s2", "f1"]);
        assert_eq!(beyond_history(&refs, 0, 5), ["s1", "s2", "s3"]);
        assert!(beyond_history(&refs, 100, 100).is_empty());
        assert_eq!(beyond_history(&refs, -1, 2), ["s1", "s2", "s3"]);
    }

    #[test]
    fn running_and_pending_follow_the_pods() {
        let jobs = [
            job("a", 1, None, 1),
            job("b", 2, None, 1),
            job("c", 3, None, 1),
            job("done", 4, Some("Complete"), 1),
        ];
        let refs: Vec<&Job> = jobs.iter().collect();
        let pods = [pod("a", "Running", false), pod("b", "Pending", false)];
        assert_eq!(
            count(&refs, &pods, &[]),
            JobCounts {
                running: 3,
                pending: 2
            }
        );
        // With pendingPodConditions, a Running pod that is not Ready still counts as pending.
        assert_eq!(count(&refs, &pods, &["Ready".into()]).pending, 3);
        let pods = [pod("a", "Running", true)];
        assert_eq!(
            count(&refs, &pods, &["Ready".into(), "PodScheduled".into()]).pending,
            2
        );
    }

    #[test]
    fn outdated_jobs_are_the_running_ones_of_older_generations() {
        let jobs = [
            job("old", 1, None, 2),
            job("old-done", 2, Some("Complete"), 2),
            job("new", 3, None, 3),
        ];
        let refs: Vec<&Job> = jobs.iter().collect();
        assert_eq!(outdated(&refs, 3), ["old"]);
        assert!(!gradual_rollout(&sj(json!({}))));
        assert!(gradual_rollout(&sj(
            json!({"rollout": {"strategy": "gradual"}})
        )));
        assert!(!gradual_rollout(&sj(
            json!({"rollout": {"strategy": "gradual"}, "rolloutStrategy": "immediate"})
        )));
    }

    #[test]
    fn config_reads_strategies_and_falls_back_like_upstream() {
        let c = config(&sj(json!({"maxReplicaCount": 5, "scalingStrategy": {
            "strategy": "custom", "customScalingQueueLengthDeduction": 1,
            "customScalingRunningJobPercentage": "0.5", "multipleScalersCalculation": "sum"}})));
        assert_eq!(c.max_replicas, Some(5));
        assert_eq!(c.min_replicas, None);
        assert_eq!(
            c.strategy,
            ScalingStrategy::Custom {
                deduction: 1,
                running_job_percentage: 0.5
            }
        );
        assert_eq!(c.calculation, MultipleScalersCalculation::Sum);
        let c = config(&sj(json!({"scalingStrategy": {
            "strategy": "custom", "customScalingRunningJobPercentage": "half"}})));
        assert_eq!(c.strategy, ScalingStrategy::Default);
        assert_eq!(
            config(&sj(json!({"scalingStrategy": {"strategy": "accurate"}}))).strategy,
            ScalingStrategy::Accurate
        );
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(validate(&sj(json!({}))), Ok(()));
        let mut s = sj(json!({}));
        s.spec.triggers[0].metric_type = Some("Value".into());
        let e = validate(&s).unwrap_err();
        assert_eq!(e.field, "spec.triggers[0].metricType");
        assert_eq!(
            e.to_string(),
            "ScaledJob ns/consume: spec.triggers[0].metricType: metricType cannot be set in ScaledJob triggers; remove it"
        );
        let mut s = sj(json!({}));
        s.spec.triggers[0].type_ = "cpu".into();
        assert_eq!(validate(&s).unwrap_err().field, "spec.triggers[0].type");
        let mut s = sj(json!({}));
        s.spec.job_target_ref.template.spec = None;
        assert_eq!(
            validate(&s).unwrap_err().field,
            "spec.jobTargetRef.template.spec.containers"
        );
    }
}

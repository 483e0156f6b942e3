//! KEDA's kinds: the rules of KEDA's admission webhook and controller, so a ScaledObject that
//! KEDA would refuse is refused here first, with the field named.

use super::{Ctx, get, join, triggers};
use serde_json::Value;

/// `keda.sh/v1alpha1` ScaledObject.
pub(crate) fn scaled_object(ctx: &mut Ctx<'_>, v: &Value) {
    let spec = v.get("spec").cloned().unwrap_or(Value::Null);
    let name = get(v, "metadata.name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.len() > 63 {
        ctx.error("metadata.name", format!("name is {} characters; must be at most 63 because it is used as the scaledobject.keda.sh/name label value", name.len()));
    }
    let hpa_name =
        get(&spec, "advanced.horizontalPodAutoscalerConfig.name").and_then(Value::as_str);
    if hpa_name.is_none() && name.len() + "keda-hpa-".len() > 63 {
        ctx.error(
            "metadata.name",
            format!("the HPA name keda-hpa-{name} is {} characters, over 63: set spec.advanced.horizontalPodAutoscalerConfig.name or shorten the name", name.len() + 9),
        );
    }
    let min_set = spec.get("minReplicaCount").and_then(Value::as_i64);
    let max = spec
        .get("maxReplicaCount")
        .and_then(Value::as_i64)
        .unwrap_or(100);
    let min = min_set.unwrap_or(0);
    if min > max {
        ctx.error(
            "spec.minReplicaCount",
            format!("MinReplicaCount={min} must be less than MaxReplicaCount={max}"),
        );
    }
    if let Some(idle) = spec.get("idleReplicaCount").and_then(Value::as_i64) {
        // KEDA reads an explicit minReplicaCount 0 as 1 here (see reference/keda.md §4.1 rule 5).
        let effective_min = match min_set {
            Some(m) => m.max(1),
            None => 0,
        };
        if idle >= effective_min {
            ctx.error(
                "spec.idleReplicaCount",
                format!(
                    "IdleReplicaCount={idle} must be less than MinReplicaCount={effective_min}"
                ),
            );
        }
    }
    let trig = spec
        .get("triggers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let modifiers = get(&spec, "advanced.scalingModifiers");
    let has_formula = modifiers
        .and_then(|m| m.get("formula"))
        .and_then(Value::as_str)
        .is_some_and(|f| !f.is_empty());
    triggers::check_list(
        ctx,
        &trig,
        "spec.triggers",
        triggers::Owner::ScaledObject { has_formula },
    );
    let resource_only = !trig.is_empty()
        && trig.iter().all(|t| {
            matches!(
                t.get("type").and_then(Value::as_str),
                Some("cpu" | "memory")
            )
        });
    if let Some(fb) = spec.get("fallback") {
        for field in ["failureThreshold", "replicas"] {
            if fb.get(field).and_then(Value::as_i64).is_some_and(|n| n < 0) {
                ctx.error(&format!("spec.fallback.{field}"), "must be 0 or more");
            }
        }
        if resource_only && !has_formula {
            ctx.error("spec.fallback", "fallback needs at least one trigger that is not cpu or memory (their values come from the metrics server, which has no fallback)");
        }
        if fb.get("behavior").and_then(Value::as_str) == Some("scalingModifiers") && !has_formula {
            ctx.error("spec.fallback.behavior", "scalingModifiers fallback behavior requires spec.advanced.scalingModifiers.formula");
        }
    }
    if resource_only && min == 0 {
        ctx.error("spec.minReplicaCount", "the ScaledObject has only cpu/memory triggers and minReplicaCount 0: scale to zero cannot work (no pods, no cpu to measure); set minReplicaCount to 1 or more");
    }
    if let Some(m) = modifiers {
        let path = "spec.advanced.scalingModifiers";
        if !has_formula {
            ctx.error(
                &join(path, "formula"),
                "ScalingModifiers.Formula is mandatory",
            );
        } else {
            match m.get("target").and_then(Value::as_str) {
                None | Some("") => ctx.error(
                    &join(path, "target"),
                    "formula is given but target is empty",
                ),
                Some(t) => {
                    if !t.parse::<f64>().is_ok_and(|x| x > 0.0) {
                        ctx.error(
                            &join(path, "target"),
                            format!("{t:?} is not a number above 0"),
                        );
                    }
                }
            }
        }
        if m.get("metricType").and_then(Value::as_str) == Some("Utilization") {
            ctx.error(
                &join(path, "metricType"),
                "Utilization is for cpu/memory; use AverageValue or Value for a formula",
            );
        }
    }
    paused_annotations(ctx, v);
    if min > 0 && spec.get("idleReplicaCount").is_none() && spec.get("cooldownPeriod").is_some() {
        ctx.warn("spec.cooldownPeriod", format!("cooldownPeriod only applies to scaling to zero, and minReplicaCount is {min}: it has no effect"));
    }
}

/// `keda.sh/v1alpha1` ScaledJob.
pub(crate) fn scaled_job(ctx: &mut Ctx<'_>, v: &Value) {
    let trig = get(v, "spec.triggers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    triggers::check_list(ctx, &trig, "spec.triggers", triggers::Owner::ScaledJob);
    paused_annotations(ctx, v);
}

fn paused_annotations(ctx: &mut Ctx<'_>, v: &Value) {
    let Some(ann) = get(v, "metadata.annotations").and_then(Value::as_object) else {
        return;
    };
    if let Some(r) = ann.get("autoscaling.keda.sh/paused-replicas")
        && r.as_str().is_none_or(|s| s.parse::<u32>().is_err())
    {
        ctx.error(
            "metadata.annotations.autoscaling.keda.sh/paused-replicas",
            "must be a whole number of replicas as a string, e.g. \"0\"",
        );
    }
    if let Some(p) = ann.get("autoscaling.keda.sh/paused")
        && !p.as_str().is_some_and(|s| matches!(s, "true" | "false"))
    {
        ctx.error(
            "metadata.annotations.autoscaling.keda.sh/paused",
            "must be \"true\" or \"false\"",
        );
    }
}

/// `keda.sh/v1alpha1` TriggerAuthentication and ClusterTriggerAuthentication.
pub(crate) fn trigger_authentication(ctx: &mut Ctx<'_>, v: &Value) {
    let spec = v.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(pi) = spec.get("podIdentity") {
        let provider = pi
            .get("provider")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let s = |k: &str| pi.get(k).and_then(Value::as_str);
        if provider == "aws" {
            if s("roleArn").is_some_and(|r| !r.is_empty()) && s("identityOwner") == Some("workload")
            {
                ctx.error(
                    "spec.podIdentity.roleArn",
                    "roleArn of PodIdentity can't be set if KEDA isn't identityOwner",
                );
            }
            if s("externalID").is_some_and(|r| !r.is_empty())
                && s("roleArn").is_none_or(str::is_empty)
            {
                ctx.error(
                    "spec.podIdentity.externalID",
                    "externalID of PodIdentity requires roleArn",
                );
            }
        }
        if provider == "aws-eks" {
            ctx.warn(
                "spec.podIdentity.provider",
                "aws-eks is deprecated upstream; use provider: aws",
            );
        }
        if provider == "azure-workload" && s("identityId") == Some("") {
            ctx.error(
                "spec.podIdentity.identityId",
                "identityId of PodIdentity should not be empty",
            );
        }
    }
    for list in ["secretTargetRef", "configMapTargetRef", "env"] {
        let Some(items) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        let mut seen = std::collections::BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("spec.{list}[{i}]");
            if let Some(param) = item.get("parameter").and_then(Value::as_str)
                && !seen.insert(param.to_string())
            {
                ctx.warn(
                    &join(&p, "parameter"),
                    format!("parameter {param:?} is set twice in {list}; the later one wins"),
                );
            }
        }
    }
    if let Some(o) = spec.get("oauth2") {
        if o.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "clientCredentials")
        {
            ctx.error(
                "spec.oauth2.type",
                "oauth2.type must be 'clientCredentials'",
            );
        }
        if o.get("clientId")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            ctx.error("spec.oauth2.clientId", "oauth2.clientId is required");
        }
        match o.get("tokenUrl").and_then(Value::as_str) {
            None | Some("") => ctx.error("spec.oauth2.tokenUrl", "oauth2.tokenUrl is required"),
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => ctx.error(
                "spec.oauth2.tokenUrl",
                "oauth2.tokenUrl must be a valid http or https URL",
            ),
            _ => {}
        }
    }
}

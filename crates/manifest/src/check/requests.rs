//! `missing-requests`: a scaled target's container without a CPU or memory request.
//!
//! The node layer sizes nodes from requests: a pod that requests nothing is packed as if it
//! needed nothing, and a burst lands on nodes too small for it (seed 002: "If you don't set
//! requests, Karpenter assumes zero resources needed"). A cpu/memory trigger with the default
//! `metricType: Utilization` is worse: the HPA divides usage by the request, so without one it
//! cannot compute the metric at all and the target does not scale.

use tandem_model::resources::Resources;

use super::{CheckFinding, Inputs, Rule, Severity};

/// The resources the HPA needs requests for: cpu/memory triggers whose `metricType` is
/// `Utilization` (KEDA's default for them).
fn utilization_resources(raw: &serde_json::Value) -> Vec<&'static str> {
    let triggers = raw
        .pointer("/spec/triggers")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for t in &triggers {
        let kind = t.get("type").and_then(serde_json::Value::as_str);
        let metric_type = t
            .get("metricType")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("Utilization");
        if metric_type != "Utilization" {
            continue;
        }
        match kind {
            Some("cpu") => out.push("cpu"),
            Some("memory") => out.push("memory"),
            _ => {}
        }
    }
    out
}

/// One finding per container of a ScaledObject's target that lacks a CPU or memory request
/// (after the API server's defaulting of requests from limits). Error when a Utilization
/// trigger needs the missing request, warning otherwise.
pub fn missing_requests(inputs: &Inputs) -> Vec<CheckFinding> {
    let mut out = Vec::new();
    for (so, w) in inputs.scaled_targets() {
        let needed = utilization_resources(&so.raw);
        for (i, c) in w.value.template.shape.containers.iter().enumerate() {
            let missing = missing(&c.requests);
            if missing.is_empty() {
                continue;
            }
            let hpa_blind: Vec<&str> = missing
                .iter()
                .copied()
                .filter(|r| needed.contains(r))
                .collect();
            let field = format!("spec.template.spec.containers[{i}].resources");
            let (severity, consequence) = if hpa_blind.is_empty() {
                (
                    Severity::Warning,
                    "the node layer sizes nodes as if it needed none, so scaled-up replicas \
                     can land on nodes too small for them"
                        .to_owned(),
                )
            } else {
                (
                    Severity::Error,
                    format!(
                        "the ScaledObject's {} trigger (metricType Utilization) divides usage by \
                         the request, so the HPA cannot compute it and the target does not scale",
                        hpa_blind.join("/")
                    ),
                )
            };
            out.push(CheckFinding {
                rule: Rule::MissingRequests,
                severity,
                objects: vec![w.at(&field), so.at("spec.scaleTargetRef")],
                message: format!(
                    "container {:?} of {} (scaled by {}) has no {} request: {consequence}",
                    c.name,
                    w.display(),
                    so.display(),
                    missing.join(" or ")
                ),
                fix: format!(
                    "set {field}.requests.{} to what one replica uses under load",
                    missing.join(" and .requests.")
                ),
            });
        }
    }
    out
}

fn missing(r: &Resources) -> Vec<&'static str> {
    let mut out = Vec::new();
    if r.cpu.0 == 0 {
        out.push("cpu");
    }
    if r.memory.0 == 0 {
        out.push("memory");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{deployment, inputs, join, scaled_object};
    use super::*;

    fn pod(resources: &str) -> String {
        format!("      containers:\n      - name: c\n        image: x\n{resources}")
    }

    #[test]
    fn a_container_without_requests_is_a_warning_naming_both() {
        let i = inputs(&join(&[&deployment(&pod("")), &scaled_object("")]));
        let f = missing_requests(&i);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message.contains("no cpu or memory request"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].fix.contains("requests.cpu and .requests.memory"),
            "{}",
            f[0].fix
        );
    }

    #[test]
    fn limits_default_the_requests() {
        let r = "        resources:\n          limits:\n            cpu: 100m\n            memory: 64Mi\n";
        let i = inputs(&join(&[&deployment(&pod(r)), &scaled_object("")]));
        assert!(missing_requests(&i).is_empty());
    }

    #[test]
    fn an_unscaled_workload_is_not_judged() {
        let i = inputs(&deployment(&pod("")));
        assert!(missing_requests(&i).is_empty());
    }

    #[test]
    fn a_cpu_utilization_trigger_without_a_cpu_request_is_an_error() {
        let r = "        resources:\n          requests:\n            memory: 64Mi\n";
        let so = scaled_object("").replace(
            "  triggers:\n",
            "  triggers:\n  - type: cpu\n    metricType: Utilization\n    metadata:\n      value: \"60\"\n",
        );
        let i = inputs(&join(&[&deployment(&pod(r)), &so]));
        let f = missing_requests(&i);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("cpu trigger"), "{}", f[0].message);
    }
}

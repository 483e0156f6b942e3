//! `scale-to-zero-without-headroom`: a target that serves requests scales to zero, so the first
//! request after an idle period waits for the whole cold-start chain (activation after a poll,
//! a node launch, the node joining, the image pull: 60-140 s in seed 002's table). For a queue
//! consumer that is fine (messages wait); for something behind a Service it usually is not.
//! Warm capacity (DESIGN §3.3) does not exist yet, so the fix is `minReplicaCount: 1`.

use super::{CheckFinding, Inputs, Rule, Severity};

/// Info for each ScaledObject with `minReplicaCount: 0` (and no `idleReplicaCount` above 0)
/// whose target's pods a Service in the input selects.
pub fn scale_to_zero_without_headroom(inputs: &Inputs) -> Vec<CheckFinding> {
    let mut out = Vec::new();
    for (so, w) in inputs.scaled_targets() {
        let act = &so.value.config.activation;
        if act.min_replicas > 0 || act.idle_replicas.is_some_and(|n| n > 0) {
            continue;
        }
        let labels = &w.value.template.labels;
        let Some(svc) = inputs.services.iter().find(|s| {
            s.value.namespace == w.value.namespace
                && !s.value.selector.is_empty()
                && s.value
                    .selector
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
        }) else {
            continue;
        };
        out.push(CheckFinding {
            rule: Rule::ScaleToZeroWithoutHeadroom,
            severity: Severity::Info,
            objects: vec![
                so.at("spec.minReplicaCount"),
                w.at(""),
                svc.at("spec.selector"),
            ],
            message: format!(
                "{} scales {} to zero, and {} sends it requests: the first request after an \
                 idle period waits for activation (pollingInterval {} s), a node launch and an \
                 image pull",
                so.display(),
                w.display(),
                svc.display(),
                so.value.polling_interval_secs
            ),
            fix: format!(
                "set spec.minReplicaCount: 1 on {} if the service is latency-sensitive (one \
                 replica and its node stay warm)",
                so.display()
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{deployment, inputs, join, scaled_object};
    use super::*;

    const POD: &str = "      containers:\n      - name: c\n        image: x\n";
    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: ns\nspec:\n  selector:\n    app: w\n  ports:\n  - port: 80\n";

    #[test]
    fn a_served_target_scaled_to_zero_is_reported_as_info() {
        let i = inputs(&join(&[&deployment(POD), &scaled_object(""), SERVICE]));
        let f = scale_to_zero_without_headroom(&i);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(f[0].fix.contains("minReplicaCount: 1"));
        assert_eq!(f[0].objects.len(), 3);
    }

    #[test]
    fn a_queue_worker_or_a_minimum_of_one_is_fine() {
        let i = inputs(&join(&[&deployment(POD), &scaled_object("")]));
        assert!(scale_to_zero_without_headroom(&i).is_empty());
        let i = inputs(&join(&[
            &deployment(POD),
            &scaled_object("  minReplicaCount: 1\n"),
            SERVICE,
        ]));
        assert!(scale_to_zero_without_headroom(&i).is_empty());
    }

    #[test]
    fn a_service_in_another_namespace_does_not_count() {
        let other = SERVICE.replace("namespace: ns", "namespace: other");
        let i = inputs(&join(&[&deployment(POD), &scaled_object(""), &other]));
        assert!(scale_to_zero_without_headroom(&i).is_empty());
    }
}

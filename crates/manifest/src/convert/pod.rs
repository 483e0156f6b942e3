//! `v1` Pod → [`Workload`] of exactly one replica.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::pod_spec::{self, Workload, WorkloadKind};
use super::{FieldError, namespace_of};
use crate::typed::{parse_as, quantities_as_strings};

/// Converts a Pod document.
///
/// # Errors
/// [`FieldError`] when the document does not parse or a quantity is unreadable.
pub fn convert(v: &Value) -> Result<Workload, FieldError> {
    let p: Pod = parse_as(&quantities_as_strings(v.clone()))?;
    let spec = p
        .spec
        .as_ref()
        .ok_or_else(|| FieldError::new("spec", "a Pod needs a spec"))?;
    pod_spec::convert(
        WorkloadKind::Pod,
        &namespace_of(p.metadata.namespace.as_ref()),
        p.metadata.name.as_deref().unwrap_or_default(),
        1,
        Some(&p.metadata),
        spec,
        "spec",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::test_support::doc;
    use tandem_model::resources::MilliCpu;

    #[test]
    fn a_bare_pod_with_a_sidecar_requests_app_plus_sidecar() {
        let v = doc(r#"
apiVersion: v1
kind: Pod
metadata:
  name: one
  annotations: {karpenter.sh/do-not-disrupt: "true"}
spec:
  initContainers:
  - {name: proxy, image: envoy, restartPolicy: Always, resources: {requests: {cpu: 100m}}}
  containers:
  - {name: app, image: app, resources: {requests: {cpu: 400m}}, ports: [{containerPort: 80, hostPort: 8080}]}
"#);
        let w = convert(&v).unwrap();
        assert_eq!(w.replicas, 1);
        assert!(w.do_not_disrupt);
        assert_eq!(w.template.shape.effective_requests().cpu, MilliCpu(500));
        assert_eq!(w.template.shape.host_ports()[0].port, 8080);
    }
}

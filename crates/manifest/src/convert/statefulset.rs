//! `apps/v1` StatefulSet → [`Workload`]: like a Deployment for capacity purposes (its volumes'
//! zones are resolved by the state crate, not from the manifest).

use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::Value;

use super::FieldError;
use super::pod_spec::{self, Workload, WorkloadKind};
use crate::typed::{parse_as, quantities_as_strings};

/// Converts a StatefulSet document.
///
/// # Errors
/// [`FieldError`] when the document does not parse or a quantity is unreadable.
pub fn convert(v: &Value) -> Result<Workload, FieldError> {
    let s: StatefulSet = parse_as(&quantities_as_strings(v.clone()))?;
    let spec = s
        .spec
        .as_ref()
        .ok_or_else(|| FieldError::new("spec", "a StatefulSet needs a spec"))?;
    pod_spec::from_template(
        WorkloadKind::StatefulSet,
        &s.metadata,
        &spec.template,
        pod_spec::replicas(spec.replicas, 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::test_support::doc;
    use tandem_model::resources::MilliCpu;

    #[test]
    fn statefulset_replicas_and_requests_are_read() {
        let v = doc(r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: data}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: pg, image: postgres:17, resources: {requests: {cpu: 750m}}}
"#);
        let w = convert(&v).unwrap();
        assert_eq!((w.kind, w.replicas), (WorkloadKind::StatefulSet, 3));
        assert_eq!(w.template.shape.effective_requests().cpu, MilliCpu(750));
        assert_eq!(w.template.labels.get("app").unwrap(), "db");
    }
}

//! `batch/v1` Job → [`Workload`]: `parallelism` (API default 1) pods at once.

use k8s_openapi::api::batch::v1::Job;
use serde_json::Value;

use super::FieldError;
use super::pod_spec::{self, Workload, WorkloadKind};
use crate::typed::{parse_as, quantities_as_strings};

/// Converts a Job document.
///
/// # Errors
/// [`FieldError`] when the document does not parse or a quantity is unreadable.
pub fn convert(v: &Value) -> Result<Workload, FieldError> {
    let j: Job = parse_as(&quantities_as_strings(v.clone()))?;
    let spec = j
        .spec
        .as_ref()
        .ok_or_else(|| FieldError::new("spec", "a Job needs a spec"))?;
    let parallelism = pod_spec::replicas(spec.parallelism, 1);
    let completions = pod_spec::replicas(spec.completions, parallelism);
    pod_spec::from_template(
        WorkloadKind::Job,
        &j.metadata,
        &spec.template,
        parallelism.min(completions),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::test_support::doc;
    use tandem_model::resources::MilliCpu;

    #[test]
    fn job_runs_parallelism_pods_capped_by_completions() {
        let v = doc(r#"
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  parallelism: 4
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: w, image: busybox, resources: {requests: {cpu: 1}}}
"#);
        let w = convert(&v).unwrap();
        assert_eq!((w.kind, w.replicas), (WorkloadKind::Job, 2));
        assert_eq!(w.template.shape.effective_requests().cpu, MilliCpu(1000));
    }
}

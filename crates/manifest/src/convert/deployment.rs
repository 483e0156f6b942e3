//! `apps/v1` Deployment → [`Workload`]: `spec.replicas` (API default 1) copies of its template.

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;

use super::FieldError;
use super::pod_spec::{self, Workload, WorkloadKind};
use crate::typed::{parse_as, quantities_as_strings};

/// Converts a Deployment document.
///
/// # Errors
/// [`FieldError`] when the document does not parse or a quantity is unreadable.
pub fn convert(v: &Value) -> Result<Workload, FieldError> {
    let d: Deployment = parse_as(&quantities_as_strings(v.clone()))?;
    let spec = d
        .spec
        .as_ref()
        .ok_or_else(|| FieldError::new("spec", "a Deployment needs a spec"))?;
    pod_spec::from_template(
        WorkloadKind::Deployment,
        &d.metadata,
        &spec.template,
        pod_spec::replicas(spec.replicas, 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::test_support::{doc, seed};
    use tandem_model::resources::{Bytes, MilliCpu};
    use tandem_model::taints::TaintEffect;

    #[test]
    fn seed_002_consumer_keeps_requests_selector_and_toleration() {
        let files = seed("002_85c0937ec41394ee");
        let v = &files[3].documents[0].value;
        let w = convert(v).unwrap();
        assert_eq!(
            (w.namespace.as_str(), w.name.as_str()),
            ("processing", "sqs-consumer")
        );
        assert_eq!(w.replicas, 0);
        let r = w.template.shape.effective_requests();
        assert_eq!(r.cpu, MilliCpu(256));
        assert_eq!(r.memory, Bytes::from_mib(512));
        assert_eq!(w.template.node_selector.get("intent").unwrap(), "apps");
        let t = &w.template.tolerations[0];
        assert_eq!(
            (t.key.as_str(), t.value.as_str()),
            ("intent", "workload-split")
        );
        assert_eq!(t.effect, Some(TaintEffect::NoSchedule));
        assert_eq!(w.image, "myregistry/sqs-consumer:latest");
    }

    #[test]
    fn seed_000_inflate_reads_a_numeric_cpu_request() {
        let files = seed("000_1be3bceeb5274a7a");
        let doc = files
            .iter()
            .find(|f| f.name.ends_with("03-deployment-inflate.yaml"))
            .unwrap();
        let w = convert(&doc.documents[0].value).unwrap();
        assert_eq!(w.namespace, "default");
        assert_eq!(w.template.shape.effective_requests().cpu, MilliCpu(1000));
    }

    #[test]
    fn seed_004_nginx_has_ten_replicas_of_half_a_core() {
        let files = seed("004_27f72e644f865756");
        let w = convert(&files[2].documents[0].value).unwrap();
        assert_eq!(w.replicas, 10);
        assert_eq!(w.template.shape.effective_requests().cpu, MilliCpu(500));
    }

    #[test]
    fn limit_without_request_becomes_the_request_and_affinity_is_kept() {
        let v = doc(r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {key: kubernetes.io/arch, operator: In, values: [arm64]}
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector: {matchLabels: {app: web}}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: c
        resources: {limits: {cpu: 2, memory: 1Gi}}
"#);
        let w = convert(&v).unwrap();
        assert_eq!(w.replicas, 1);
        let r = w.template.shape.effective_requests();
        assert_eq!((r.cpu, r.memory), (MilliCpu(2000), Bytes::from_gib(1)));
        assert!(w.template.required_affinity[0].has("kubernetes.io/arch", "arm64"));
        assert_eq!(
            w.template.pod_anti_affinity[0].topology_key,
            "kubernetes.io/hostname"
        );
        assert_eq!(w.template.topology_spread[0].max_skew, 1);
    }

    #[test]
    fn a_bad_quantity_names_its_field() {
        let v = doc(r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    spec:
      containers:
      - name: c
        resources: {requests: {cpu: lots}}
"#);
        let e = convert(&v).unwrap_err();
        assert_eq!(
            e.field,
            "spec.template.spec.containers[0].resources.requests.cpu"
        );
    }
}

use super::*;
use crate::source::from_text;

fn findings(text: &str) -> Vec<String> {
    let report = validate(&[from_text("t.yaml", text)]);
    report
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Note)
        .map(ToString::to_string)
        .collect()
}

#[test]
fn helm_values_are_skipped_with_a_note() {
    let report = validate(&[from_text(
        "v.yaml",
        "karpenter:\n  settings:\n    clusterName: x\n",
    )]);
    assert_eq!(report.objects, 0);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].severity, Severity::Note);
}

#[test]
fn missing_kind_is_an_error_on_its_line() {
    assert_eq!(
        findings("apiVersion: v1\nmetadata:\n  name: x\n"),
        vec![
            "t.yaml:1: kind: required: every Kubernetes object has both apiVersion and kind (as strings)"
        ]
    );
}

#[test]
fn gt_with_a_word_is_refused() {
    let text = "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: p\nspec:\n  template:\n    spec:\n      nodeClassRef: {group: karpenter.kwok.sh, kind: KWOKNodeClass, name: k}\n      requirements:\n      - key: karpenter.kwok.sh/instance-cpu\n        operator: Gt\n        values: [\"two\"]\n";
    let f = findings(text);
    assert!(f.iter().any(|l| l.starts_with("t.yaml:12: NodePool p: spec.template.spec.requirements[0].values: requirements operator 'Gt'")), "{f:?}");
}

#[test]
fn two_scaled_objects_on_one_deployment_are_refused() {
    let so = |n: &str| {
        format!(
            "---\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata:\n  name: {n}\n  namespace: a\nspec:\n  scaleTargetRef:\n    name: web\n  minReplicaCount: 1\n  triggers:\n  - type: cpu\n    metricType: Utilization\n    metadata:\n      value: \"60\"\n"
        )
    };
    let f = findings(&(so("one") + &so("two")));
    assert!(f.iter().any(|l| l.contains("ScaledObject a/two: spec.scaleTargetRef: workload \"web\" of kind Deployment is already managed by ScaledObject \"one\"")), "{f:?}");
}

#[test]
fn secret_data_must_be_base64() {
    let f = findings(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  host: not base64!\n",
    );
    assert_eq!(
        f,
        vec![
            "t.yaml:6: Secret s: data.host: is not base64: put plain text under stringData, or encode it (base64 -w0)"
        ]
    );
}

#[test]
fn a_headroom_annotation_is_read_and_a_bad_one_refused() {
    let pool = |ann: &str| {
        format!(
            "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: warm\n  annotations:\n{ann}spec:\n  template:\n    spec:\n      nodeClassRef: {{group: karpenter.kwok.sh, kind: KWOKNodeClass, name: k}}\n      requirements: []\n"
        )
    };
    let good = findings(&pool(
        "    tandem.dev/headroom: \"nodes=2,cpu=2,memory=4Gi\"\n    tandem.dev/headroom-schedule: \"0 8 * * 1-5\"\n    tandem.dev/headroom-duration: 10h\n",
    ));
    assert!(!good.iter().any(|l| l.contains("headroom")), "{good:?}");
    let bad = findings(&pool("    tandem.dev/headroom: \"pods=four\"\n"));
    assert!(
        bad.iter().any(|l| l.contains("NodePool warm: metadata.annotations[\"tandem.dev/headroom\"]: tandem.dev/headroom: pods=\"four\" is not a whole number")),
        "{bad:?}"
    );
    let no_window = findings(&pool(
        "    tandem.dev/headroom: \"pods=2\"\n    tandem.dev/headroom-schedule: \"0 8 * * *\"\n",
    ));
    assert!(
        no_window
            .iter()
            .any(|l| l.contains("a schedule needs tandem.dev/headroom-duration")),
        "{no_window:?}"
    );
    let bad_duration = findings(&pool(
        "    tandem.dev/headroom: \"pods=2\"\n    tandem.dev/headroom-schedule: \"0 8 * * *\"\n    tandem.dev/headroom-duration: ten hours\n",
    ));
    assert!(
        bad_duration
            .iter()
            .any(|l| l.contains("metadata.annotations[\"tandem.dev/headroom-duration\"]")),
        "{bad_duration:?}"
    );
}

#[test]
fn kafka_triggers_refuse_what_the_scaler_refuses() {
    let so = |extra: &str| {
        format!(
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata:\n  name: k\n  namespace: a\nspec:\n  scaleTargetRef:\n    name: web\n  triggers:\n  - type: kafka\n    metadata:\n      bootstrapServers: kafka:9092\n      consumerGroup: g\n      topic: t\n{extra}"
        )
    };
    // Only errors: the missing Deployment is a warning.
    let errors = |text: String| {
        findings(&text)
            .into_iter()
            .filter(|f| !f.contains(": warning: "))
            .collect::<Vec<_>>()
    };
    assert_eq!(errors(so("")), Vec::<String>::new());
    let f = errors(so(
        "      sasl: gssapi\n      allowIdleConsumers: \"true\"\n      limitToPartitionsWithLag: \"true\"\n      excludePersistentLag: \"yes\"\n",
    ));
    assert_eq!(f.len(), 3, "{f:#?}");
    assert!(
        f.iter()
            .any(|m| m.contains("spec.triggers[0].metadata.sasl")
                && m.contains("gssapi is not supported by Tandem yet")),
        "{f:#?}"
    );
    assert!(
        f.iter().any(|m| m.contains("limitToPartitionsWithLag")
            && m.contains("cannot be combined with allowIdleConsumers")),
        "{f:#?}"
    );
    assert!(
        f.iter()
            .any(|m| m.contains("excludePersistentLag")
                && m.contains("must be \"true\" or \"false\"")),
        "{f:#?}"
    );
}

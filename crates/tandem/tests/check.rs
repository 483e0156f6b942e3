//! `tandem check` end to end, as a user runs it: the seeds' manifests and a clean example
//! against checked-in golden outputs (`tests/data/check/`, whose README explains every finding),
//! the JSON shape, and the exit codes.
//!
//! The goldens are regenerated only by hand and reviewed: every finding in them must be true.
//! `tandem check examples/seeds/00N_* > crates/tandem/tests/data/check/seed-00N.txt`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the binary from the repository root: (exit code, stdout, stderr).
fn tandem(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn golden(input: &str, name: &str) {
    let (code, out, err) = tandem(&["check", input]);
    assert_eq!(code, 0, "{input}: {err}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/check")
        .join(name);
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(out, want, "{input}: output differs from {}", path.display());
}

/// Seed 000 has no NodePool object (its NodePool is Helm values) and no ScaledObject: nothing
/// cross-layer to judge.
#[test]
fn seed_000_has_no_finding() {
    golden("examples/seeds/000_1be3bceeb5274a7a", "seed-000.txt");
}

/// Seed 001 holds only the legacy v1alpha5 Provisioner and AWSNodeTemplate (`tandem migrate`
/// converts them); check reads v1 objects.
#[test]
fn seed_001_has_no_finding() {
    golden("examples/seeds/001_51459dee51fdb46a", "seed-001.txt");
}

/// Seed 002's gotcha: `consolidateAfter: 1m` against the ScaledObject's 60 s cooldown and the
/// HPA's default 300 s scale-down stabilization. Its limits (1k CPU, 500Gi) hold 50 × 256m /
/// 512Mi, and the consumer selects and tolerates the spot pool, so nothing else.
#[test]
fn seed_002_reports_the_cooldown_vs_consolidate_after_gotcha() {
    golden("examples/seeds/002_85c0937ec41394ee", "seed-002.txt");
}

/// Seed 003's ScaledObject targets a Deployment that is not in the article; the untainted ARM
/// NodePool consolidates after 1 s, so an info names it conditionally.
#[test]
fn seed_003_names_the_one_second_pool_conditionally() {
    golden("examples/seeds/003_76bb3cb27d73d62f", "seed-003.txt");
}

/// Seed 004's nginx is not scaled by a ScaledObject and fits the default pool.
#[test]
fn seed_004_has_no_finding() {
    golden("examples/seeds/004_27f72e644f865756", "seed-004.txt");
}

/// The clean `tandem up` example: a kwok NodePool alone.
#[test]
fn up_example_has_no_finding() {
    golden("examples/up", "up.txt");
}

/// The JSON is a list of findings with exactly `rule`, `severity`, `objects`, `message`, `fix`,
/// and each object exactly `kind`, `namespace`, `name`, `file`, `line`.
#[test]
fn json_lists_findings_with_the_documented_keys() {
    let (code, out, err) = tandem(&[
        "check",
        "--format",
        "json",
        "examples/seeds/002_85c0937ec41394ee",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let f = list[0].as_object().unwrap();
    let keys: Vec<&str> = f.keys().map(String::as_str).collect();
    assert_eq!(keys, ["fix", "message", "objects", "rule", "severity"]);
    assert_eq!(f["rule"], "cooldown-vs-consolidate-after");
    assert_eq!(f["severity"], "warning");
    let o = f["objects"][0].as_object().unwrap();
    let keys: Vec<&str> = o.keys().map(String::as_str).collect();
    assert_eq!(keys, ["file", "kind", "line", "name", "namespace"]);
    assert_eq!(o["kind"], "NodePool");
    assert_eq!(o["line"], 9);
    assert!(o["namespace"].is_null());
}

/// Every rule at once on a broken variant of seed 002: the pool's CPU limit too small for 50
/// replicas, a second consumer without the toleration, a third too big for any c/m/r type, no
/// requests on a scaled target behind a Service. Errors make the exit code 1.
#[test]
fn every_rule_fires_on_a_broken_setup_and_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let pool = std::fs::read_to_string(
        root().join("examples/seeds/002_85c0937ec41394ee/01-nodepool-node-spot.yaml"),
    )
    .unwrap()
    .replace("cpu: 1k", "cpu: 10");
    let workloads = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: ok, namespace: p}
spec:
  selector: {matchLabels: {app: ok}}
  template:
    metadata: {labels: {app: ok}}
    spec:
      nodeSelector: {intent: apps}
      tolerations: [{key: intent, operator: Equal, value: workload-split, effect: NoSchedule}]
      containers: [{name: c, image: x, resources: {requests: {cpu: 256m, memory: 512Mi}}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: ok, namespace: p}
spec:
  scaleTargetRef: {name: ok}
  maxReplicaCount: 50
  triggers: [{type: cron, metadata: {timezone: UTC, start: "0 8 * * *", end: "0 9 * * *", desiredReplicas: "2"}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: untolerated, namespace: p}
spec:
  selector: {matchLabels: {app: u}}
  template:
    metadata: {labels: {app: u}}
    spec:
      nodeSelector: {intent: apps}
      containers: [{name: c, image: x}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: untolerated, namespace: p}
spec:
  scaleTargetRef: {name: untolerated}
  triggers: [{type: cron, metadata: {timezone: UTC, start: "0 8 * * *", end: "0 9 * * *", desiredReplicas: "2"}}]
---
apiVersion: v1
kind: Service
metadata: {name: untolerated, namespace: p}
spec:
  selector: {app: u}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: huge, namespace: p}
spec:
  selector: {matchLabels: {app: h}}
  template:
    metadata: {labels: {app: h}}
    spec:
      nodeSelector: {intent: apps}
      tolerations: [{key: intent, operator: Equal, value: workload-split, effect: NoSchedule}]
      containers: [{name: c, image: x, resources: {requests: {cpu: "1000", memory: 1Gi}}}]
"#;
    std::fs::write(dir.path().join("pool.yaml"), pool).unwrap();
    std::fs::write(dir.path().join("workloads.yaml"), workloads).unwrap();
    let (code, out, err) = tandem(&["check", "--format", "json", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut rules: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            ("cooldown-vs-consolidate-after", "warning"),
            ("missing-requests", "warning"),
            ("no-matching-nodepool", "error"),
            ("replicas-exceed-nodepool-limits", "warning"),
            ("scale-to-zero-without-headroom", "info"),
            ("unfittable-pod", "error"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned())),
        "{out}"
    );
}

/// A path that does not exist is unreadable input: exit 2, as `tandem validate`.
#[test]
fn unreadable_input_exits_2() {
    let (code, _, err) = tandem(&["check", "examples/does-not-exist"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

/// Seed 002's SQS bursts as Prometheus remembers them: `keda_scaler_active` of its
/// ScaledObject, active 4 min in every 12 for the last 6 hours (OpenMetrics for promtool).
fn seed_002_burst_history(now_s: u64) -> String {
    let start = now_s - 6 * 3600;
    let mut text = String::from("# TYPE keda_scaler_active gauge\n");
    for t in (start..now_s - 60).step_by(30) {
        let active = u8::from((t - start) % 720 < 240);
        text.push_str(&format!(
            "keda_scaler_active{{namespace=\"processing\",scaledObject=\"sqs-consumer-scaler\",scaler=\"aws-sqs-queue\",metric=\"s0-aws-sqs-queue\",triggerIndex=\"0\",type=\"scaledobject\"}} {active} {t}\n"
        ));
    }
    text.push_str("# EOF\n");
    text
}

fn findings_of(out: &str) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(out)
        .unwrap_or_else(|e| panic!("{e}: {out}"))
        .as_array()
        .cloned()
        .unwrap()
}

fn rules(findings: &[serde_json::Value]) -> Vec<&str> {
    findings
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect()
}

/// `tandem check --kubeconfig --prometheus`: seed 002's objects as the API server holds them,
/// and six hours of its bursts in a real Prometheus (backfilled with promtool). The gaps
/// (8.5 min) outlast the pod layer's 5 min window plus `consolidateAfter: 1m`, so every burst
/// waited for new nodes: `consolidate-after-vs-event-period`. With `consolidateAfter: 10m`
/// the finding goes; without `--prometheus` the file rules still run and a note says what is
/// missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_check_reads_the_cluster_and_its_metrics_history() {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    use tandem_testkit::ControlPlane;
    use tandem_testkit::services::Prometheus;

    let cp = ControlPlane::shared().await.expect("control plane");
    let client = cp.client().expect("client");
    tandem_testkit::manifest::ensure_namespace(&client, "processing")
        .await
        .expect("namespace");
    let seed = root().join("examples/seeds/002_85c0937ec41394ee");
    for file in [
        "01-nodepool-node-spot.yaml",
        "03-scaledobject-sqs-consumer-scaler.yaml",
        "04-deployment-sqs-consumer.yaml",
    ] {
        for doc in tandem_testkit::manifest::read_documents(&seed.join(file)).expect("seed") {
            tandem_testkit::manifest::apply(&client, &doc, "default")
                .await
                .expect("apply");
        }
    }
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let prometheus = Prometheus::start_with_history(&seed_002_burst_history(now_s))
        .await
        .expect("prometheus with history");
    let kubeconfig = cp.kubeconfig_path().display().to_string();
    let url = prometheus.url();
    let live = |extra: &[&str]| {
        let mut args = vec!["check", "--kubeconfig", &kubeconfig, "--format", "json"];
        args.extend_from_slice(extra);
        tandem(&args)
    };

    let (code, out, err) = live(&["--prometheus", &url, "--history", "6h"]);
    assert_eq!(code, 0, "warnings only: {err}");
    let findings = findings_of(&out);
    let rs = rules(&findings);
    assert!(rs.contains(&"cooldown-vs-consolidate-after"), "{rs:?}");
    let period = findings
        .iter()
        .find(|f| f["rule"] == "consolidate-after-vs-event-period")
        .unwrap_or_else(|| panic!("no event-period finding: {out}\n{err}"));
    assert_eq!(period["severity"], "warning");
    let objects: Vec<(&str, &str)> = period["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["kind"].as_str().unwrap(), o["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        objects,
        [
            ("NodePool", "node-spot"),
            ("ScaledObject", "sqs-consumer-scaler"),
            ("Deployment", "sqs-consumer")
        ]
    );
    let message = period["message"].as_str().unwrap();
    assert!(
        message.contains("8m 30s apart") && message.contains("in the last 6h"),
        "{message}"
    );
    assert!(
        period["fix"]
            .as_str()
            .unwrap()
            .contains("consolidateAfter of NodePool node-spot to 4m"),
        "{period}"
    );
    assert!(
        period["objects"][0]["file"]
            .as_str()
            .unwrap()
            .starts_with("cluster:NodePool/node-spot"),
        "{period}"
    );

    // Without the history: the file rules, and a note naming what is missing.
    let (code, out, err) = live(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(!rules(&findings_of(&out)).contains(&"consolidate-after-vs-event-period"));
    assert!(err.contains("add --prometheus URL"), "{err}");

    // The fix applied in the cluster: both timer findings go.
    let pools: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool"),
            "nodepools",
        ),
    );
    pools
        .patch(
            "node-spot",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"disruption": {"consolidateAfter": "10m"}}})),
        )
        .await
        .expect("patch");
    let (code, out, err) = live(&["--prometheus", &url, "--history", "6h"]);
    assert_eq!(code, 0, "{err}");
    let findings = findings_of(&out);
    let rs = rules(&findings);
    assert!(
        !rs.contains(&"consolidate-after-vs-event-period")
            && !rs.contains(&"cooldown-vs-consolidate-after"),
        "{rs:?}"
    );
}

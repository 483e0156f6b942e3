//! The Helm chart, rendered by a real `helm` (built from its Go module by `hack/helm/build.sh`)
//! and installed on the real control plane: the controller runs as a local process with the
//! chart's ServiceAccount token, so the chart's RBAC is what the API server enforces. A missing
//! permission fails the seed-000 `inflate` scenario or shows as "forbidden" in the log.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tandem_api::karpenter::NodePool;
use tandem_testkit::manifest::{apply, parse_documents};
use tandem_testkit::{ControlPlane, wait_for, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(180);

fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("TANDEM_HELM") {
        return PathBuf::from(path);
    }
    let out = Command::new("bash")
        .arg(workspace_root().join("hack/helm/build.sh"))
        .output()
        .expect("run hack/helm/build.sh");
    assert!(
        out.status.success(),
        "hack/helm/build.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `helm template <release> charts/tandem --namespace <ns> [args]` as JSON documents.
fn render(release: &str, namespace: &str, args: &[&str]) -> Vec<Value> {
    let out = Command::new(helm())
        .args(["template", release])
        .arg(workspace_root().join("charts/tandem"))
        .args(["--namespace", namespace])
        .args(args)
        .output()
        .expect("helm template");
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_documents(&String::from_utf8_lossy(&out.stdout)).expect("rendered YAML")
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn seed_000_values_render_into_the_deployment() {
    // Seed 000 nests Karpenter's values under `karpenter:` (an umbrella chart); the same
    // subtree is a values file for this chart.
    let seed =
        workspace_root().join("examples/seeds/000_1be3bceeb5274a7a/01-values-karpenter.yaml");
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&seed).expect("seed")).expect("yaml");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("values.yaml");
    std::fs::write(
        &file,
        serde_yaml_ng::to_string(&values["karpenter"]).expect("yaml"),
    )
    .expect("write values");
    let docs = render(
        "tandem",
        "tandem",
        &["-f", file.to_str().expect("utf-8 path")],
    );

    let sa = find(&docs, "ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::0123456789:role/KarpenterController"
    );
    let deployment = find(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0],
        json!({"key": "karpenter.sh/nodepool", "operator": "DoesNotExist"})
    );
    let env = pod["containers"][0]["env"].as_array().expect("env");
    assert!(
        env.contains(&json!({"name": "CLUSTER_NAME", "value": "<CLUSTER_NAME>"})),
        "{env:?}"
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert!(docs.iter().any(|d| d["kind"] == "PodDisruptionBudget"));

    // Switching the node layer off removes its RBAC and tells the binary.
    let docs = render("tandem", "tandem", &["--set", "nodeLayer.enabled=false"]);
    assert!(
        !docs
            .iter()
            .any(|d| d["metadata"]["name"] == "tandem-node-layer")
    );
    let args = &find(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array()
            .is_some_and(|a| a.contains(&json!("--disable-node-layer")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rbac_is_enough_for_the_inflate_scenario() {
    let cp = ControlPlane::shared().await.expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("chart").await.expect("namespace");

    // Install everything the chart renders except what needs a container runtime.
    let docs = render(&ns, &ns, &[]);
    for doc in &docs {
        if matches!(doc["kind"].as_str(), Some("Deployment")) {
            continue;
        }
        apply(&client, doc, &ns)
            .await
            .expect("apply rendered object");
    }
    let sa_name = find(&docs, "ServiceAccount")["metadata"]["name"]
        .as_str()
        .expect("sa name")
        .to_owned();

    // A token of that ServiceAccount, as the pod would mount.
    let token = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create_token_request(
            &sa_name,
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            },
        )
        .await
        .expect("token request")
        .status
        .expect("token status")
        .token
        .expect("a token");
    let mut kubeconfig =
        kube::config::Kubeconfig::read_from(cp.kubeconfig_path()).expect("admin kubeconfig");
    for user in &mut kubeconfig.auth_infos {
        if let Some(auth) = user.auth_info.as_mut() {
            *auth = kube::config::AuthInfo {
                token: Some(token.clone().into()),
                ..kube::config::AuthInfo::default()
            };
        }
    }
    let sa_kubeconfig = cp.dir().join(format!("kubeconfig-{ns}"));
    std::fs::write(
        &sa_kubeconfig,
        serde_yaml_ng::to_string(&kubeconfig).expect("kubeconfig yaml"),
    )
    .expect("write kubeconfig");

    let class = format!("{ns}-kwok");
    common::kwok_class(&client, &class).await;
    let pool: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": ns},
        "spec": {"limits": {"cpu": "1000"}, "template": {"spec": {
            "requirements": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}],
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    }))
    .expect("nodepool");
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &pool)
        .await
        .expect("create nodepool");

    // The metrics server's certificate from the chart's Secret, as the pod would mount it.
    let secret = find(&docs, "Secret");
    let certs = cp.dir().join(format!("certs-{ns}"));
    std::fs::create_dir_all(&certs).expect("cert dir");
    for key in ["tls.crt", "tls.key"] {
        use base64::Engine as _;
        let b64 = secret["data"][key].as_str().expect("cert data");
        let pem = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        std::fs::write(certs.join(key), pem).expect("write cert");
    }
    let metrics_port = common::free_port().to_string();
    let controller = common::Replica::start(
        "chart",
        &sa_kubeconfig,
        &ns,
        cp.dir(),
        &[
            "--log-level",
            "info",
            "--cluster-object-namespace",
            &ns,
            "--metrics-server-cert-dir",
            certs.to_str().expect("utf-8"),
            "--metrics-server-port",
            &metrics_port,
        ],
    );

    let seed =
        workspace_root().join("examples/seeds/000_1be3bceeb5274a7a/03-deployment-inflate.yaml");
    let deployment: Deployment =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&seed).expect("seed")).expect("inflate");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create inflate");
    // The pod layer under the chart's RBAC: a ScaledObject whose cron window is open activates
    // inflate 0 → 1 through /scale and gets its HPA.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let at = |secs: u64| format!("{} {} * * *", (secs / 60) % 60, (secs / 3600) % 24);
    apply(
        &client,
        &json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "inflate", "namespace": ns},
            "spec": {"scaleTargetRef": {"name": "inflate"}, "minReplicaCount": 0,
                "maxReplicaCount": 5, "pollingInterval": 1,
                "triggers": [{"type": "cron", "metadata": {"timezone": "UTC",
                    "start": at(now - 120), "end": at(now + 1800), "desiredReplicas": "1"}}]},
        }),
        &ns,
    )
    .await
    .expect("apply ScaledObject");
    wait_for("inflate activated by the pod layer", TIMEOUT, || async {
        let d = deployments.get("inflate").await.ok()?;
        let hpa = Api::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>::namespaced(
            client.clone(),
            &ns,
        )
        .get_opt("keda-hpa-inflate")
        .await
        .ok()??;
        (d.spec?.replicas == Some(1)).then_some(hpa)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", controller.log()));
    assert!(
        controller
            .log()
            .contains("external metrics API on https://"),
        "the metrics server did not start with the chart's certificate:\n{}",
        controller.log()
    );
    // KEDA's operator metrics on /metrics: the cron trigger is active, the object not paused.
    let text = wait_for(
        "keda_scaler_active of the cron trigger",
        TIMEOUT,
        || async {
            let (_, text) = common::get(controller.metrics, "/metrics").await?;
            // The loop-latency gauge appears after the first scheduled tick.
            (text.contains(&format!(
                "keda_scaler_active{{namespace=\"{ns}\",metric=\"s0-cron-UTC-"
            )) && text.contains("keda_internal_scale_loop_latency_seconds{"))
            .then_some(text)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", controller.log()));
    let active = text
        .lines()
        .find(|l| {
            l.starts_with("keda_scaler_active{") && l.contains(&format!("namespace=\"{ns}\""))
        })
        .unwrap_or_default();
    assert!(
        active.contains(
            "scaledObject=\"inflate\",scaler=\"cron\",triggerIndex=\"0\",type=\"scaledobject\"}"
        ) && active.ends_with(" 1"),
        "{active}"
    );
    assert!(
        text.contains(&format!(
            "keda_scaled_object_paused{{namespace=\"{ns}\",scaledObject=\"inflate\"}} 0"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "keda_internal_scale_loop_latency_seconds{{namespace=\"{ns}\",type=\"scaledobject\",resource=\"inflate\"}}"
        )),
        "{text}"
    );
    // Then a person scales it by hand (the HPA cannot reach this test's metrics server, so it
    // leaves the count alone): the node layer gives the 5 pods nodes.
    deployments
        .patch(
            "inflate",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("scale to 5");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for("5 inflate pods Running", TIMEOUT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=inflate"))
            .await
            .ok()?;
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (running == 5).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", controller.log()));
    assert!(controller.led(), "{}", controller.log());
    let log = controller.log();
    assert!(
        !log.contains("forbidden"),
        "the chart's RBAC denied the controller something:\n{log}"
    );
}

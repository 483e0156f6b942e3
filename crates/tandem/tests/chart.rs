//! The Helm chart, rendered by a real `helm` (built from its Go module by `hack/helm/build.sh`)
//! and installed on the real control plane: the controller runs as a local process with the
//! chart's ServiceAccount token, so the chart's RBAC is what the API server enforces. A missing
//! permission fails the scenario or shows as "forbidden" in the log; the API server's audit
//! log then shows every request the ServiceAccount made, and a grant none of them used fails
//! too (least privilege, issue #13).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_api::keda::v1alpha1::{ScaledJob, ScaledObject};
use tandem_testkit::manifest::{apply, parse_documents};
use tandem_testkit::{ControlPlane, Options, wait_for, workspace_root};

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

/// The admission plugin that makes the API server check, for every owner reference with
/// `blockOwnerDeletion: true`, that its creator may `update` the owner's `finalizers`
/// subresource. Off upstream by default, on in OpenShift and hardened clusters; on here, so
/// the chart's `*/finalizers` grants are proven: creating the owned object fails without them.
const OWNER_REFERENCES_PLUGIN: &str = "OwnerReferencesPermissionEnforcement";

/// Grants the audit log cannot show in use, each with why the chart keeps it:
/// (role without the release prefix, API group, resource, verb, reason). An entry whose grant
/// is gone or in use fails the test too, so the list cannot go stale.
const UNUSED_BUT_KEPT: &[rbac::Kept] = &[
    // Checked by the OwnerReferencesPermissionEnforcement admission plugin (on in this test)
    // when an owned object is created with a blocking owner reference: an authorization check
    // inside the API server, never a request, so never in the audit log. Removing one fails
    // the scenario (NodeClaims, Nodes, the HPA, the Jobs are refused).
    (
        "node-layer",
        "karpenter.sh",
        "nodepools/finalizers",
        "update",
        "owner reference check",
    ),
    (
        "node-layer",
        "karpenter.sh",
        "nodeclaims/finalizers",
        "update",
        "owner reference check",
    ),
    (
        "pod-layer",
        "keda.sh",
        "scaledobjects/finalizers",
        "update",
        "owner reference check",
    ),
    (
        "pod-layer",
        "keda.sh",
        "scaledjobs/finalizers",
        "update",
        "owner reference check",
    ),
    // A server-side apply that creates its object is a `patch` request, which the API server
    // also authorizes as `create` inside its patch handler: not a request of its own.
    // Removing it leaves the ScaledObject without its HPA.
    (
        "pod-layer",
        "autoscaling",
        "horizontalpodautoscalers",
        "create",
        "server-side apply creation",
    ),
    // The code path that reads a Deployment target's pod template reads a StatefulSet's too
    // (podcontrollers::target::container_env); the scenario's target is a Deployment.
    (
        "pod-layer",
        "apps",
        "statefulsets",
        "get",
        "StatefulSet scale targets",
    ),
    // Upstream's Role for aggregated API servers, bound as every one binds it; we only `get`.
    (
        "extension-apiserver-authentication-reader",
        "",
        "configmaps",
        "list",
        "upstream's role",
    ),
    (
        "extension-apiserver-authentication-reader",
        "",
        "configmaps",
        "watch",
        "upstream's role",
    ),
];

/// The chart installed on a control plane that audits every request and enforces owner
/// reference permissions; `tandem run` runs with the chart's ServiceAccount token through the
/// seed-000 `inflate` scenario and the rest of its write paths (a TriggerAuthentication, a
/// ScaledJob and its rollout, deleting a ScaledObject, deleting a NodeClaim holding pods,
/// consolidation). Then the (group, resource, verb) set the audit log shows the ServiceAccount
/// used is compared with what the chart's Roles and ClusterRoles grant it: a request the chart
/// does not allow fails (issue #13), and so does a grant nothing used, unless it is in
/// [`UNUSED_BUT_KEPT`] with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rbac_grants_what_the_controller_uses_and_nothing_more() {
    let started = std::time::Instant::now();
    let cp = ControlPlane::start_with(Options {
        audit_log: true,
        admission_plugins: vec![OWNER_REFERENCES_PLUGIN.into()],
        ..Options::default()
    })
    .await
    .expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("chart").await.expect("namespace");

    // Install everything the chart renders except what needs a container runtime.
    let docs = render(&ns, &ns, &[]);
    let (sa_name, sa_kubeconfig) = install(&cp, &client, &docs, &ns).await;

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
    // The pod the replica would run in (scheduling-gated: an API object only), named through
    // the downward API as the chart's Deployment does.
    let own_pod = common::gated_pod(&client, &ns, "tandem-0").await;
    let controller = common::Replica::start_with_env(
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
        &[("POD_NAME", "tandem-0"), ("POD_NAMESPACE", &ns)],
    );
    // Leading, it serves the external metrics API and labels its pod for the chart's Service.
    common::wait_serving_label(&own_pod, "tandem-0", true)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", controller.log()));

    let seed =
        workspace_root().join("examples/seeds/000_1be3bceeb5274a7a/03-deployment-inflate.yaml");
    let deployment: Deployment =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&seed).expect("seed")).expect("inflate");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create inflate");
    // A TriggerAuthentication naming a Secret and a ConfigMap, as a real trigger's would: the
    // pod layer reads both (cron takes no credentials and ignores what it is given).
    for doc in [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cron-auth"},
            "stringData": {"token": "not-a-secret"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cron-auth"},
            "data": {"host": "example.invalid"}}),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "cron-auth"},
            "spec": {
                "secretTargetRef": [{"parameter": "token", "name": "cron-auth", "key": "token"}],
                "configMapTargetRef": [{"parameter": "host", "name": "cron-auth", "key": "host"}]}}),
    ] {
        apply(&client, &doc, &ns).await.expect("apply auth");
    }
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
                    "start": at(now - 120), "end": at(now + 1800), "desiredReplicas": "1"},
                    "authenticationRef": {"name": "cron-auth"}}]},
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

    // The rest of the controller's write paths, each a few seconds.
    // A ScaledJob whose cron window is open: 2 Jobs (owned, so the admission plugin checks
    // `scaledjobs/finalizers`); a changed spec rolls them out (Jobs deleted, new ones made).
    let scaled_job = |image: &str| {
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
            "metadata": {"name": "batch", "namespace": ns},
            "spec": {"pollingInterval": 1, "maxReplicaCount": 2,
                "jobTargetRef": {"template": {"spec": {"containers": [{"name": "work",
                    "image": image, "resources": {"requests": {"cpu": "100m"}}}]}}},
                "triggers": [{"type": "cron", "metadata": {"timezone": "UTC",
                    "start": at(now - 120), "end": at(now + 1800), "desiredReplicas": "2"},
                    "authenticationRef": {"kind": "ClusterTriggerAuthentication",
                        "name": format!("{ns}-cron")}}]},
        })
    };
    // Its trigger names a ClusterTriggerAuthentication (with nothing to read in it).
    apply(
        &client,
        &json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ClusterTriggerAuthentication",
            "metadata": {"name": format!("{ns}-cron")}, "spec": {}}),
        &ns,
    )
    .await
    .expect("apply ClusterTriggerAuthentication");
    apply(&client, &scaled_job("registry.invalid/work:1"), &ns)
        .await
        .expect("apply ScaledJob");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let first = wait_for("2 Jobs of ScaledJob batch", TIMEOUT, || async {
        let names = job_names(&jobs).await?;
        (names.len() == 2).then_some(names)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", controller.log()));
    apply(&client, &scaled_job("registry.invalid/work:2"), &ns)
        .await
        .expect("change ScaledJob");
    wait_for("the rollout replaced both Jobs", TIMEOUT, || async {
        let names = job_names(&jobs).await?;
        (names.len() == 2 && names.iter().all(|n| !first.contains(n))).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", controller.log()));

    // Deleting the ScaledObject: its finalizer deletes the HPA, then lets go.
    let scaled_objects: Api<ScaledObject> = Api::namespaced(client.clone(), &ns);
    scaled_objects
        .delete("inflate", &DeleteParams::default())
        .await
        .expect("delete ScaledObject");
    wait_for("ScaledObject inflate gone", TIMEOUT, || async {
        scaled_objects
            .get_opt("inflate")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", controller.log()));

    // Deleting a NodeClaim that holds inflate pods: taint, evictions, instance gone.
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let pool_claims = ListParams::default().labels(&format!("karpenter.sh/nodepool={ns}"));
    let node = pods
        .list(&ListParams::default().labels("app=inflate"))
        .await
        .expect("list pods")
        .items
        .iter()
        .find_map(|p| p.spec.as_ref()?.node_name.clone())
        .expect("a scheduled inflate pod");
    let claim = claims
        .list(&pool_claims)
        .await
        .expect("list claims")
        .items
        .into_iter()
        .find(|c| c.status.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str()))
        .and_then(|c| c.metadata.name)
        .expect("the claim of an inflate pod's node");
    claims
        .delete(&claim, &DeleteParams::default())
        .await
        .expect("delete claim");
    wait_for("the deleted claim drained and gone", TIMEOUT, || async {
        claims.get_opt(&claim).await.ok()?.is_none().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", controller.log()));

    // Nothing left to run: consolidation deletes every claim of the pool.
    deployments
        .patch(
            "inflate",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale to 0");
    Api::<ScaledJob>::namespaced(client.clone(), &ns)
        .delete("batch", &DeleteParams::background())
        .await
        .expect("delete ScaledJob");
    wait_for(
        "every claim of the pool consolidated away",
        TIMEOUT,
        || async {
            claims
                .list(&pool_claims)
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", controller.log()));

    let log = controller.log();
    assert!(
        !log.contains("forbidden"),
        "the chart's RBAC denied the controller something:\n{log}"
    );
    // SIGTERM: the Lease is released, the last request it makes.
    controller.signal("-TERM");
    wait_for("tandem run exited", Duration::from_secs(30), || async {
        std::fs::read_to_string(format!("/proc/{}/stat", controller.child.id()))
            .ok()
            .is_none_or(|stat| stat.contains(") Z "))
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // What the chart grants the ServiceAccount against what the audit log says it asked for.
    let user = format!("system:serviceaccount:{ns}:{sa_name}");
    let audit = std::fs::read_to_string(cp.audit_log_path().expect("audit log on"))
        .expect("read the audit log");
    let requests = rbac::requests_of(&audit, &user);
    assert!(
        !requests.is_empty(),
        "no request by {user} in the audit log"
    );
    // Every request says who made it, as client-go's `<binary>/<version>` does.
    let agents: std::collections::BTreeSet<String> = audit
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["user"]["username"] == user.as_str())
        .map(|e| e["userAgent"].as_str().unwrap_or("<none>").to_owned())
        .collect();
    assert_eq!(
        agents,
        std::collections::BTreeSet::from([format!("tandem/{}", env!("CARGO_PKG_VERSION"))]),
        "user agents of {user}"
    );
    let grants = bound_grants(&client, &docs, &ns, &sa_name).await;
    let prefix = format!(
        "{}-",
        find(&docs, "Deployment")["metadata"]["name"]
            .as_str()
            .expect("name")
    );
    let report = rbac::compare(&grants, &requests, &prefix, UNUSED_BUT_KEPT);
    assert!(report.is_clean(), "{report}");
    eprintln!(
        "rbac audit: {} distinct requests by {user}, {} grants, {:.1}s",
        requests.len(),
        grants.len(),
        started.elapsed().as_secs_f64()
    );
}

/// `podLayer.restrictSecretAccess: true` (KEDA's `permissions.operator.restrict.secret`),
/// installed and enforced: the chart's ClusterRole grants no Secret and a Role grants those of
/// the release namespace; `tandem run` runs with that ServiceAccount and the flag the chart
/// sets. A ScaledObject in another namespace whose TriggerAuthentication names a Secret there
/// is refused (Ready=False saying why, its target untouched) without a request for the
/// Secret; one using a ClusterTriggerAuthentication, whose Secret lives in the release
/// namespace, works. The audit log then shows every Secret the ServiceAccount read, all in
/// the release namespace and all allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_secret_access_reads_secrets_of_the_release_namespace_only() {
    let cp = ControlPlane::start_with(Options {
        audit_log: true,
        ..Options::default()
    })
    .await
    .expect("control plane");
    let client: Client = cp.client().expect("client");
    let ns = cp.namespace("restricted").await.expect("namespace");
    let app = cp.namespace("app").await.expect("namespace");
    let docs = render(
        &ns,
        &ns,
        &[
            "--set",
            "podLayer.restrictSecretAccess=true",
            "--set",
            "nodeLayer.enabled=false",
            "--set",
            "podLayer.metricsServer.apiService=false",
        ],
    );
    let deployment = find(&docs, "Deployment");
    let prefix = format!(
        "{}-",
        deployment["metadata"]["name"].as_str().expect("name")
    );
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env");
    assert!(
        env.contains(&json!({"name": "KEDA_RESTRICT_SECRET_ACCESS", "value": "true"})),
        "{env:?}"
    );
    let grants_secrets = |doc: &Value| {
        doc["rules"].as_array().is_some_and(|rules| {
            rules.iter().any(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|res| res.contains(&json!("secrets")))
            })
        })
    };
    for role in docs.iter().filter(|d| d["kind"] == "ClusterRole") {
        assert!(
            !grants_secrets(role),
            "a ClusterRole grants Secrets: {role}"
        );
    }
    let secrets_role = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == format!("{prefix}secrets"))
        .expect("the Role for the release namespace's Secrets");
    assert!(grants_secrets(secrets_role) && secrets_role["metadata"]["namespace"] == ns.as_str());
    let (sa_name, sa_kubeconfig) = install(&cp, &client, &docs, &ns).await;

    // The same credentials twice: in the application's namespace behind a
    // TriggerAuthentication, and in the release namespace behind a ClusterTriggerAuthentication.
    let cta = format!("{ns}-creds");
    let secret = |namespace: &str| {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": namespace},
            "stringData": {"token": "not-a-secret"}})
    };
    let auth =
        json!({"secretTargetRef": [{"parameter": "token", "name": "creds", "key": "token"}]});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let at = |secs: u64| format!("{} {} * * *", (secs / 60) % 60, (secs / 3600) % 24);
    let scaled = |name: &str, reference: Value| {
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": app},
            "spec": {"scaleTargetRef": {"name": name}, "minReplicaCount": 0,
                "maxReplicaCount": 5, "pollingInterval": 1,
                "triggers": [{"type": "cron", "metadata": {"timezone": "UTC",
                    "start": at(now - 120), "end": at(now + 1800), "desiredReplicas": "1"},
                    "authenticationRef": reference}]}})
    };
    let target = |name: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": app},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}}}})
    };
    for doc in [
        secret(&app),
        secret(&ns),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "creds", "namespace": app}, "spec": auth}),
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ClusterTriggerAuthentication",
            "metadata": {"name": cta}, "spec": auth}),
        target("by-ta"),
        target("by-cta"),
        scaled("by-ta", json!({"name": "creds"})),
        scaled(
            "by-cta",
            json!({"name": cta, "kind": "ClusterTriggerAuthentication"}),
        ),
    ] {
        apply(&client, &doc, &app).await.expect("apply");
    }

    let restrict = env
        .iter()
        .find(|e| e["name"] == "KEDA_RESTRICT_SECRET_ACCESS")
        .and_then(|e| e["value"].as_str())
        .expect("the chart's flag");
    let controller = common::Replica::start_with_env(
        "restricted",
        &sa_kubeconfig,
        &ns,
        cp.dir(),
        &[
            "--log-level",
            "info",
            "--cluster-object-namespace",
            &ns,
            "--disable-node-layer",
        ],
        &[("KEDA_RESTRICT_SECRET_ACCESS", restrict)],
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &app);
    wait_for(
        "by-cta activated through its ClusterTriggerAuthentication",
        TIMEOUT,
        || async {
            (deployments.get("by-cta").await.ok()?.spec?.replicas == Some(1)).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", controller.log()));
    let objects: Api<ScaledObject> = Api::namespaced(client.clone(), &app);
    let refused = wait_for("by-ta refused with a reason", TIMEOUT, || async {
        let so = objects.get("by-ta").await.ok()?;
        so.status?
            .conditions
            .into_iter()
            .find(|c| {
                c.type_ == "Ready" && c.status == tandem_api::condition::ConditionStatus::False
            })
            .and_then(|c| c.message)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", controller.log()));
    assert!(
        refused.contains(&format!(
            "TriggerAuthentication {app}/creds names Secret {app}/creds"
        )) && refused.contains(&format!("restricted to namespace \"{ns}\"")),
        "{refused}"
    );
    let by_ta = deployments.get("by-ta").await.expect("by-ta");
    assert_eq!(
        by_ta.spec.and_then(|s| s.replicas),
        Some(0),
        "by-ta was scaled"
    );

    let user = format!("system:serviceaccount:{ns}:{sa_name}");
    let audit = std::fs::read_to_string(cp.audit_log_path().expect("audit log on"))
        .expect("read the audit log");
    let secrets: Vec<rbac::Request> = rbac::requests_of(&audit, &user)
        .into_iter()
        .filter(|r| r.group.is_empty() && r.resource == "secrets")
        .collect();
    assert!(
        secrets
            .iter()
            .any(|r| r.namespace.as_deref() == Some(ns.as_str()) && r.code == 200),
        "the ClusterTriggerAuthentication's Secret was never read: {secrets:?}"
    );
    let elsewhere: Vec<String> = secrets
        .iter()
        .filter(|r| r.namespace.as_deref() != Some(ns.as_str()) || r.code != 200)
        .map(ToString::to_string)
        .collect();
    assert!(
        elsewhere.is_empty(),
        "Secret requests outside {ns}: {elsewhere:?}"
    );
}

/// Installs everything the chart rendered but the Deployment (it needs a container runtime;
/// the tests run the controller as a local process instead); returns the chart's
/// ServiceAccount and a kubeconfig that authenticates as it.
async fn install(
    cp: &ControlPlane,
    client: &Client,
    docs: &[Value],
    ns: &str,
) -> (String, PathBuf) {
    for doc in docs.iter().filter(|d| d["kind"] != "Deployment") {
        apply(client, doc, ns).await.expect("apply rendered object");
    }
    let sa_name = find(docs, "ServiceAccount")["metadata"]["name"]
        .as_str()
        .expect("sa name")
        .to_owned();
    let kubeconfig = service_account_kubeconfig(cp, client, ns, &sa_name).await;
    (sa_name, kubeconfig)
}

/// A kubeconfig that authenticates as ServiceAccount `ns/sa` with a token, as the pod would
/// mount it: the chart's RBAC is then what the API server enforces on the controller.
async fn service_account_kubeconfig(
    cp: &ControlPlane,
    client: &Client,
    ns: &str,
    sa_name: &str,
) -> PathBuf {
    let token = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(
            sa_name,
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
    let path = cp.dir().join(format!("kubeconfig-{ns}"));
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&kubeconfig).expect("kubeconfig yaml"),
    )
    .expect("write kubeconfig");
    path
}

async fn job_names(jobs: &Api<Job>) -> Option<Vec<String>> {
    let list = jobs
        .list(&ListParams::default().labels("scaledjob.keda.sh/name=batch"))
        .await
        .ok()?;
    Some(
        list.items
            .into_iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .filter_map(|j| j.metadata.name)
            .collect(),
    )
}

/// The rules of every Role and ClusterRole the rendered chart binds to `sa` in `ns`, each
/// scoped as its binding scopes it. A role the chart binds but does not render (upstream's
/// `extension-apiserver-authentication-reader`) is read from the API server.
async fn bound_grants(client: &Client, docs: &[Value], ns: &str, sa: &str) -> Vec<rbac::Grant> {
    let mut grants = Vec::new();
    for binding in docs.iter().filter(|d| {
        matches!(
            d["kind"].as_str(),
            Some("RoleBinding" | "ClusterRoleBinding")
        )
    }) {
        let ours = binding["subjects"].as_array().is_some_and(|subjects| {
            subjects
                .iter()
                .any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == ns)
        });
        if !ours {
            continue;
        }
        // A RoleBinding grants only in its namespace, even a ClusterRole's rules.
        let scope = (binding["kind"] == "RoleBinding").then(|| {
            binding["metadata"]["namespace"]
                .as_str()
                .unwrap_or(ns)
                .to_owned()
        });
        let (kind, name) = (
            binding["roleRef"]["kind"].as_str().expect("roleRef.kind"),
            binding["roleRef"]["name"].as_str().expect("roleRef.name"),
        );
        let rendered = docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name);
        let role = match rendered {
            Some(role) => role.clone(),
            None if kind == "ClusterRole" => serde_json::to_value(
                Api::<ClusterRole>::all(client.clone())
                    .get(name)
                    .await
                    .unwrap_or_else(|e| panic!("ClusterRole {name}: {e}")),
            )
            .expect("json"),
            None => serde_json::to_value(
                Api::<Role>::namespaced(client.clone(), scope.as_deref().unwrap_or(ns))
                    .get(name)
                    .await
                    .unwrap_or_else(|e| panic!("Role {name}: {e}")),
            )
            .expect("json"),
        };
        grants.extend(rbac::grants_of(&role, scope.as_deref()));
    }
    grants
}

/// The pure half of the RBAC audit: audit-log lines → requests, Roles → grants, and the
/// comparison, with RBAC's matching rules (wildcards, `*/subresource`, resourceNames, a
/// RoleBinding's namespace).
mod rbac {
    use serde_json::Value;
    use std::collections::BTreeSet;
    use std::fmt;

    /// A grant the audit log cannot show in use: (role without the release prefix, API group,
    /// resource, verb, why the chart keeps it).
    pub type Kept = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );

    /// One resource request as a `Metadata` audit event records it.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Request {
        pub group: String,
        /// `pods`, or `pods/eviction` for a subresource.
        pub resource: String,
        pub verb: String,
        pub namespace: Option<String>,
        pub name: Option<String>,
        /// The response code; 403 is a denial.
        pub code: u16,
    }

    impl fmt::Display for Request {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let group = if self.group.is_empty() {
                "core"
            } else {
                &self.group
            };
            write!(f, "{} {group}/{}", self.verb, self.resource)?;
            match (&self.namespace, &self.name) {
                (Some(ns), Some(n)) => write!(f, " {ns}/{n}")?,
                (Some(ns), None) => write!(f, " in {ns}")?,
                (None, Some(n)) => write!(f, " {n}")?,
                (None, None) => {}
            }
            write!(f, " → {}", self.code)
        }
    }

    /// The distinct resource requests `user` made, from an audit log of JSON lines. Requests
    /// without an object (discovery, `/version`) are left out: the chart grants none of them.
    pub fn requests_of(audit: &str, user: &str) -> BTreeSet<Request> {
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        audit
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|e| e["user"]["username"] == user)
            .filter_map(|e| {
                let object = &e["objectRef"];
                let mut resource = text(&object["resource"])?;
                if let Some(sub) = text(&object["subresource"]) {
                    resource = format!("{resource}/{sub}");
                }
                Some(Request {
                    group: text(&object["apiGroup"]).unwrap_or_default(),
                    resource,
                    verb: text(&e["verb"])?,
                    namespace: text(&object["namespace"]),
                    name: text(&object["name"]),
                    code: e["responseStatus"]["code"]
                        .as_u64()
                        .and_then(|c| u16::try_from(c).ok())
                        .unwrap_or(0),
                })
            })
            .collect()
    }

    /// One (group, resource, verb) of one rule, scoped as its binding scopes it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Grant {
        pub role: String,
        /// `Some(ns)` when bound by a RoleBinding: it grants in that namespace only.
        pub namespace: Option<String>,
        pub group: String,
        pub resource: String,
        pub verb: String,
        pub names: Vec<String>,
    }

    impl Grant {
        /// Whether this grant authorizes `r` (RBAC's rule matching).
        pub fn covers(&self, r: &Request) -> bool {
            let namespace = self
                .namespace
                .as_ref()
                .is_none_or(|ns| r.namespace.as_ref() == Some(ns));
            let group = self.group == "*" || self.group == r.group;
            let resource = self.resource == "*"
                || self.resource == r.resource
                || self.resource.strip_prefix("*/").is_some_and(|sub| {
                    r.resource
                        .split_once('/')
                        .is_some_and(|(_, requested)| requested == sub)
                });
            let verb = self.verb == "*" || self.verb == r.verb;
            let name =
                self.names.is_empty() || r.name.as_ref().is_some_and(|n| self.names.contains(n));
            namespace && group && resource && verb && name
        }
    }

    impl fmt::Display for Grant {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let group = if self.group.is_empty() {
                "core"
            } else {
                &self.group
            };
            write!(f, "{}: {} {group}/{}", self.role, self.verb, self.resource)?;
            if !self.names.is_empty() {
                write!(f, " {:?}", self.names)?;
            }
            if let Some(ns) = &self.namespace {
                write!(f, " in {ns}")?;
            }
            Ok(())
        }
    }

    /// Every (group, resource, verb) of a Role or ClusterRole (`role` as JSON), scoped to
    /// `namespace` when a RoleBinding binds it. Non-resource URLs are skipped.
    pub fn grants_of(role: &Value, namespace: Option<&str>) -> Vec<Grant> {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let name = format!(
            "{} {}",
            role["kind"].as_str().unwrap_or("Role"),
            role["metadata"]["name"].as_str().unwrap_or("?")
        );
        let mut grants = Vec::new();
        for rule in role["rules"].as_array().into_iter().flatten() {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        grants.push(Grant {
                            role: name.clone(),
                            namespace: namespace.map(str::to_owned),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                            names: strings(&rule["resourceNames"]),
                        });
                    }
                }
            }
        }
        grants
    }

    /// What the audit found wrong.
    #[derive(Debug, Default)]
    pub struct Report {
        /// Requests no grant allows, or that were denied.
        pub missing: Vec<Request>,
        /// Grants no request used and the allow-list does not keep.
        pub unused: Vec<Grant>,
        /// Allow-list entries that match no grant, or a grant that is in use.
        pub stale: Vec<String>,
    }

    impl Report {
        /// Nothing missing, nothing unused, no stale allow-list entry.
        pub fn is_clean(&self) -> bool {
            self.missing.is_empty() && self.unused.is_empty() && self.stale.is_empty()
        }
    }

    impl fmt::Display for Report {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for r in &self.missing {
                writeln!(f, "missing: the chart does not allow {r}")?;
            }
            for g in &self.unused {
                writeln!(
                    f,
                    "unused: {g} (remove it, or keep it in UNUSED_BUT_KEPT with the reason)"
                )?;
            }
            for s in &self.stale {
                writeln!(f, "stale allow-list entry: {s}")?;
            }
            Ok(())
        }
    }

    /// The role's name without the chart's `<fullname>-` prefix (`node-layer`), or whole for
    /// a role the chart does not own.
    fn short(role: &str, prefix: &str) -> String {
        let name = role.split_once(' ').map_or(role, |(_, n)| n);
        name.strip_prefix(prefix).unwrap_or(name).to_owned()
    }

    /// Compares grants with requests; `prefix` is the chart's `<fullname>-`.
    pub fn compare(
        grants: &[Grant],
        requests: &BTreeSet<Request>,
        prefix: &str,
        kept: &[Kept],
    ) -> Report {
        let mut report = Report::default();
        for r in requests {
            if r.code == 403 || !grants.iter().any(|g| g.covers(r)) {
                report.missing.push(r.clone());
            }
        }
        let is_kept = |g: &Grant| {
            kept.iter().any(|(role, group, resource, verb, _)| {
                short(&g.role, prefix) == *role
                    && g.group == *group
                    && g.resource == *resource
                    && g.verb == *verb
            })
        };
        let used = |g: &Grant| requests.iter().any(|r| g.covers(r));
        for g in grants {
            if !used(g) && !is_kept(g) {
                report.unused.push(g.clone());
            }
        }
        for entry @ (role, group, resource, verb, _) in kept {
            let matching: Vec<&Grant> = grants
                .iter()
                .filter(|g| {
                    short(&g.role, prefix) == *role
                        && g.group == *group
                        && g.resource == *resource
                        && g.verb == *verb
                })
                .collect();
            if matching.is_empty() {
                report.stale.push(format!("{entry:?}: no such grant"));
            } else if matching.iter().all(|g| used(g)) {
                report
                    .stale
                    .push(format!("{entry:?}: the scenario uses it"));
            }
        }
        report
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        fn request(group: &str, resource: &str, verb: &str, ns: Option<&str>) -> Request {
            Request {
                group: group.into(),
                resource: resource.into(),
                verb: verb.into(),
                namespace: ns.map(Into::into),
                name: Some("x".into()),
                code: 200,
            }
        }

        #[test]
        fn audit_lines_become_distinct_requests_of_one_user() {
            let sa = "system:serviceaccount:t:tandem";
            let log = [
                json!({"user": {"username": sa}, "verb": "create", "stage": "ResponseComplete",
                    "objectRef": {"resource": "pods", "subresource": "eviction",
                        "namespace": "a", "name": "p", "apiVersion": "v1"},
                    "responseStatus": {"code": 201}}),
                json!({"user": {"username": sa}, "verb": "watch", "stage": "ResponseStarted",
                    "objectRef": {"resource": "nodeclaims", "apiGroup": "karpenter.sh"},
                    "responseStatus": {"code": 200}}),
                json!({"user": {"username": sa}, "verb": "watch", "stage": "ResponseStarted",
                    "objectRef": {"resource": "nodeclaims", "apiGroup": "karpenter.sh"},
                    "responseStatus": {"code": 200}}),
                json!({"user": {"username": sa}, "verb": "get",
                    "requestURI": "/apis", "responseStatus": {"code": 200}}),
                json!({"user": {"username": "system:admin"}, "verb": "delete",
                    "objectRef": {"resource": "nodes", "name": "n"},
                    "responseStatus": {"code": 200}}),
            ]
            .map(|e| e.to_string())
            .join("\n");
            let got: Vec<String> = requests_of(&log, sa)
                .iter()
                .map(|r| r.to_string())
                .collect();
            assert_eq!(
                got,
                [
                    "create core/pods/eviction a/p → 201",
                    "watch karpenter.sh/nodeclaims → 200"
                ]
            );
        }

        #[test]
        fn grants_match_as_rbac_does() {
            let role = json!({"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [
                {"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["get"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                    "resourceNames": ["mine"], "verbs": ["update"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
            ]});
            let cluster = grants_of(&role, None);
            assert_eq!(cluster.len(), 4);
            let allowed = |r: &Request, grants: &[Grant]| grants.iter().any(|g| g.covers(r));
            assert!(allowed(
                &request("apps", "deployments/scale", "get", Some("a")),
                &cluster
            ));
            assert!(!allowed(
                &request("apps", "deployments", "get", Some("a")),
                &cluster
            ));
            assert!(!allowed(
                &request("apps", "deployments/scale", "patch", Some("a")),
                &cluster
            ));
            let mut lease = request("coordination.k8s.io", "leases", "update", Some("a"));
            assert!(!allowed(&lease, &cluster));
            lease.name = Some("mine".into());
            assert!(allowed(&lease, &cluster));
            // Bound by a RoleBinding in `a`: nothing elsewhere, nothing cluster-scoped.
            let bound = grants_of(&role, Some("a"));
            assert!(allowed(&request("", "pods", "list", Some("a")), &bound));
            assert!(!allowed(&request("", "pods", "list", Some("b")), &bound));
            assert!(!allowed(&request("", "pods", "list", None), &bound));
        }

        #[test]
        fn missing_unused_and_stale_entries_are_reported() {
            let role = json!({"kind": "ClusterRole", "metadata": {"name": "t-node-layer"},
                "rules": [{"apiGroups": [""], "resources": ["nodes"],
                    "verbs": ["get", "delete", "update"]}]});
            let grants = grants_of(&role, None);
            let requests = [
                request("", "nodes", "get", None),
                request("", "nodes", "patch", None),
            ]
            .into_iter()
            .collect();
            let kept: &[Kept] = &[
                ("node-layer", "", "nodes", "update", "a reason"),
                ("node-layer", "", "nodes", "get", "in use"),
                ("node-layer", "", "nodes", "create", "no such grant"),
            ];
            let report = compare(&grants, &requests, "t-", kept);
            assert_eq!(report.missing.len(), 1, "{report}");
            assert_eq!(report.missing[0].verb, "patch");
            assert_eq!(report.unused.len(), 1, "{report}");
            assert_eq!(report.unused[0].verb, "delete");
            assert_eq!(report.stale.len(), 2, "{report}");
            assert!(!report.is_clean());
        }
    }
}

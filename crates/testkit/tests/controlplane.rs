//! Proof that the control plane built from upstream sources does what Tandem's end-to-end tests
//! rely on: real scheduling onto fake nodes, the HPA controller reading an external metric
//! through the aggregation layer, surviving an API server restart, and the CRDs accepting the
//! seed manifests and rejecting the broken ones. Each test fails if that piece is broken.

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{ListParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use serde_json::json;
use std::time::Duration;
use tandem_testkit::manifest::{
    DryRun, dry_run, ensure_namespace, namespace_of, read_documents, yaml_files,
};
use tandem_testkit::{ControlPlane, FakeNode, Options, wait_for, wait_for_object, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(90);

async fn shared() -> (&'static ControlPlane, Client) {
    let cp = ControlPlane::shared()
        .await
        .unwrap_or_else(|e| panic!("control plane: {e}"));
    (cp, cp.client().expect("client"))
}

fn pod(name: &str, node_selector: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": node_selector,
            "containers": [{
                "name": "app", "image": "registry.invalid/app:1",
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }],
        },
    }))
    .expect("pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_binds_pending_pod_to_ready_fake_node_and_reports_unschedulable_pod() {
    let (cp, client) = shared().await;
    let ns = cp.namespace("scheduling").await.expect("namespace");
    let node = FakeNode::builder(&format!("{ns}-node"))
        .cpu("2")
        .memory("8Gi")
        .label("tandem.dev/test", &ns)
        .create(&client)
        .await
        .expect("fake node");
    node.wait_schedulable(TIMEOUT)
        .await
        .expect("node lifecycle controller removes the not-ready taint");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(
        &PostParams::default(),
        &pod("fits", json!({"tandem.dev/test": ns})),
    )
    .await
    .expect("create pod");
    pods.create(
        &PostParams::default(),
        &pod(
            "nowhere",
            json!({"tandem.dev/test": format!("{ns}-no-such-node")}),
        ),
    )
    .await
    .expect("create pod");

    let bound = wait_for_object(&pods, "fits", TIMEOUT, |p: Option<&Pod>| {
        p.and_then(|p| p.spec.as_ref())
            .is_some_and(|s| s.node_name.is_some())
    })
    .await
    .expect("scheduler binds the pod")
    .expect("pod exists");
    assert_eq!(
        bound.spec.and_then(|s| s.node_name).as_deref(),
        Some(node.name())
    );

    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let failed = wait_for(
        "FailedScheduling event for pod nowhere",
        TIMEOUT,
        || async {
            let list = events
                .list(&ListParams::default().fields("involvedObject.name=nowhere"))
                .await
                .ok()?;
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
        },
    )
    .await
    .expect("scheduler reports FailedScheduling");
    eprintln!("FailedScheduling: {}", failed.message.unwrap_or_default());
    let still = pods.get("nowhere").await.expect("get pod");
    assert_eq!(still.spec.and_then(|s| s.node_name), None);
    assert_eq!(
        still.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );
    eprintln!("memory: {}", cp.memory().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_scales_deployment_on_external_metric_served_through_the_aggregation_layer() {
    let (cp, client) = shared().await;
    let ns = cp.namespace("hpa").await.expect("namespace");
    let metrics = cp
        .external_metrics()
        .await
        .expect("external metrics APIService becomes Available");
    let metric = "queue-length";
    metrics.set(&ns, metric, "50");
    // The same path the HPA controller uses, through kube-apiserver's aggregator.
    let via_apiserver = client
        .request_text(
            http::Request::get(format!(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}"
            ))
            .body(Vec::new())
            .expect("request"),
        )
        .await
        .expect("read the metric through the aggregation layer");
    let list: serde_json::Value = serde_json::from_str(&via_apiserver).expect("json");
    assert_eq!(list["kind"], "ExternalMetricValueList", "{via_apiserver}");
    assert_eq!(list["items"][0]["value"], "50", "{via_apiserver}");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "worker"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "worker"}},
            "template": {
                "metadata": {"labels": {"app": "worker"}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/worker:1"}]},
            },
        },
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "minReplicas": 1, "maxReplicas": 10,
            "metrics": [{
                "type": "External",
                "external": {
                    "metric": {"name": metric},
                    "target": {"type": "AverageValue", "averageValue": "10"},
                },
            }],
        },
    }))
    .expect("hpa");
    hpas.create(&PostParams::default(), &hpa)
        .await
        .expect("create hpa");

    let replicas = |want: i32| {
        move |d: Option<&Deployment>| {
            d.and_then(|d| d.spec.as_ref())
                .and_then(|s| s.replicas)
                .is_some_and(|r| r == want)
        }
    };
    // 50 / averageValue 10 = 5 replicas.
    wait_for_object(&deployments, "worker", TIMEOUT, replicas(5))
        .await
        .unwrap_or_else(|e| panic!("HPA scales 1 -> 5: {e}"));
    // The HPA writes the scale before its own status, so the status is read until it catches up.
    wait_for_object(
        &hpas,
        "worker",
        TIMEOUT,
        |h: Option<&HorizontalPodAutoscaler>| {
            h.and_then(|h| h.status.as_ref())
                .is_some_and(|s| s.desired_replicas == 5)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("HPA status desiredReplicas 5: {e}"));
    assert!(
        metrics.reads(&ns, metric) > 0,
        "the value must have come from the in-test server"
    );

    // 20 / 10 = 2: the metric is live, not read once.
    metrics.set(&ns, metric, "20");
    wait_for_object(&deployments, "worker", TIMEOUT, replicas(2))
        .await
        .unwrap_or_else(|e| panic!("HPA scales 5 -> 2: {e}"));
    eprintln!("memory: {}", cp.memory().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_watcher_recover_after_apiserver_restart() {
    // Its own control plane: restarting the shared one would break the tests running beside.
    let cp = ControlPlane::start_with(Options {
        controller_manager: false,
        scheduler: false,
        crds_dir: None,
        ..Options::default()
    })
    .await
    .unwrap_or_else(|e| panic!("control plane: {e}"));
    let client = cp.client().expect("client");
    let ns = cp.namespace("restart").await.expect("namespace");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(
        watcher(configmaps.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .for_each(move |cm| {
                if let Ok(cm) = cm
                    && let Some(name) = cm.metadata.name
                {
                    let _ = seen_tx.send(name);
                }
                async {}
            }),
    );
    async fn wait_seen(
        seen: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
        want: &str,
    ) -> Result<(), tokio::time::error::Elapsed> {
        tokio::time::timeout(TIMEOUT, async {
            while let Some(name) = seen.recv().await {
                if name == want {
                    return;
                }
            }
            panic!("watch task ended");
        })
        .await
    }
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).expect("cm")
    };

    configmaps
        .create(&PostParams::default(), &cm("before"))
        .await
        .expect("create before restart");
    wait_seen(&mut seen, "before")
        .await
        .expect("watcher sees the object created before the restart");

    let t = std::time::Instant::now();
    cp.restart_apiserver()
        .await
        .expect("restart kube-apiserver");
    eprintln!(
        "kube-apiserver restarted in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    configmaps
        .create(&PostParams::default(), &cm("after"))
        .await
        .expect("the same client works after the restart");
    wait_seen(&mut seen, "after")
        .await
        .expect("watcher recovers and sees the object created after the restart");
    watch.abort();
    eprintln!("memory: {}", cp.memory().await);
}

/// The API server's own words for a refusal.
fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_manifests_pass_and_broken_manifests_fail_server_side_dry_run() {
    let root = workspace_root();
    let crds = yaml_files(&root.join("config/crds")).expect("list CRDs");
    assert!(
        !crds.is_empty(),
        "config/crds has no CRDs: run cargo run -p tandem -- crds --out config/crds"
    );
    let (cp, client) = shared().await;
    let ns = cp.namespace("seeds").await.expect("namespace");

    let mut checked = 0;
    let mut failures = Vec::new();
    // The seeds as the articles wrote them, and seed 001 as `tandem migrate` converts it.
    let mut accepted_inputs = yaml_files(&root.join("examples/seeds")).expect("list seeds");
    accepted_inputs.extend(yaml_files(&root.join("examples/migrate")).expect("list migrations"));
    for file in accepted_inputs {
        for doc in read_documents(&file).expect("seed parses as YAML") {
            if let Some(ns) = namespace_of(&doc) {
                ensure_namespace(&client, ns).await.expect("namespace");
            }
            match dry_run(&client, &doc, &ns).await.expect("dry run") {
                DryRun::Accepted => checked += 1,
                DryRun::UnknownKind(kind) => {
                    eprintln!("NOTE: skipped {} ({kind} is not served)", file.display());
                }
                DryRun::Rejected(err) => {
                    failures.push(format!("{}: {}", file.display(), api_message(&err)));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "seed manifests rejected by the API server:\n{}",
        failures.join("\n")
    );
    // 16 seed objects (the 4 Helm values files are not objects) + the 2 migrated ones.
    assert!(checked >= 18, "only {checked} objects were dry-run");
    eprintln!("{checked} seed objects accepted by server-side dry run");

    let mut rejected = 0;
    let mut accepted = Vec::new();
    // examples/broken/api holds what the API server must refuse; examples/broken/semantic is
    // accepted by the server and left to `tandem validate` (see examples/broken/README.md).
    let broken = root.join("examples/broken/api");
    let broken = if broken.is_dir() {
        broken
    } else {
        root.join("examples/broken")
    };
    for file in yaml_files(&broken).expect("list broken") {
        let mut outcome = None;
        for doc in read_documents(&file).expect("broken example parses as YAML") {
            if let Some(ns) = namespace_of(&doc) {
                ensure_namespace(&client, ns).await.expect("namespace");
            }
            match dry_run(&client, &doc, &ns).await.expect("dry run") {
                DryRun::Rejected(err) => {
                    outcome = Some(Ok(api_message(&err)));
                    break;
                }
                DryRun::Accepted => outcome = outcome.or(Some(Err(()))),
                DryRun::UnknownKind(kind) => {
                    eprintln!(
                        "NOTE: skipped a document of {} ({kind} is not served)",
                        file.display()
                    );
                }
            }
        }
        match outcome {
            Some(Ok(err)) => {
                rejected += 1;
                eprintln!("rejected as expected: {}: {err}", file.display());
            }
            Some(Err(())) => accepted.push(file.display().to_string()),
            None => eprintln!("NOTE: skipped {} (no served kind in it)", file.display()),
        }
    }
    assert!(
        accepted.is_empty(),
        "broken manifests accepted by the API server:\n{}",
        accepted.join("\n")
    );
    eprintln!("{rejected} broken examples rejected by the API server");
}

/// One raw HTTPS GET to the metrics backend, as the given client identity.
async fn get_backend(
    port: u16,
    ca_der: &[u8],
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .expect("CA");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(cert).expect("cert")],
                PrivateKeyDer::from_pem_file(key).expect("key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("external-metrics.tandem-testkit.svc").expect("name");
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(
            b"GET /apis/external.metrics.k8s.io/v1beta1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        tls.read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_metrics_backend_only_serves_the_apiserver_front_proxy_identity() {
    let (cp, _client) = shared().await;
    let metrics = cp.external_metrics().await.expect("external metrics");
    let pki = cp.pki();
    let ok = |r: &Result<String, String>| r.as_ref().is_ok_and(|r| r.starts_with("HTTP/1.1 200"));

    let front_proxy = get_backend(
        metrics.port(),
        pki.ca_der(),
        Some((&pki.front_proxy_client.cert, &pki.front_proxy_client.key)),
    )
    .await;
    assert!(
        ok(&front_proxy),
        "front-proxy identity must be served: {front_proxy:?}"
    );
    assert!(front_proxy.unwrap_or_default().contains("APIResourceList"));

    let anonymous = get_backend(metrics.port(), pki.ca_der(), None).await;
    assert!(
        !ok(&anonymous),
        "no client cert must be refused: {anonymous:?}"
    );
    let admin = get_backend(
        metrics.port(),
        pki.ca_der(),
        Some((&pki.admin.cert, &pki.admin.key)),
    )
    .await;
    assert!(
        !ok(&admin),
        "a cluster-CA client cert must be refused: {admin:?}"
    );
}

//! `tandem run`: the controllers as a long-running service, the way upstream's deployments run:
//! leader election on a Lease, probes on :8081, metrics on :8080, both configurable by the
//! same environment variables Karpenter reads.
//!
//! Only the leader acts (launches, kubelet play for kwok nodes, NodeClaim lifecycle). A
//! follower serves its probes and waits; when the leader stops renewing it takes over within
//! the lease duration. A leader that loses its lease exits with status 1 at once, as
//! controller-runtime does, so it never acts beside a new leader.

use anyhow::Context as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_cloud::kwok::{Kubelet, KwokCloud, KwokOptions};
use tandem_controllers::batcher::BatchOptions;
use tandem_controllers::gc::GcOptions;
use tandem_controllers::metrics::{DisruptionMetrics, LifecycleMetrics, NodeLayerMetrics};
use tandem_controllers::{Controllers, Options};
use tandem_model::catalog::Catalog;
use tandem_operations::api_client::{ApiClientLayer, ApiClientMetrics, RateLimit};
use tandem_operations::endpoints::{self, Routes};
use tandem_operations::fence::Fence;
use tandem_operations::leader::{Elector, Role, Timings};
use tandem_operations::prometheus_client::registry::Registry;
use tokio::sync::watch;

/// Which cloud the node layer launches in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    /// Nodes are Node objects the provider creates and keeps Ready itself (no real machines):
    /// for local clusters (`tandem up`), demos and tests.
    Kwok,
    /// EC2: EC2NodeClasses resolved against AWS, instances launched with EC2 Fleet, interruption
    /// from the SQS queue. Needs `--cluster-name`, `--cluster-endpoint` and a region; the
    /// bundled prices cover us-east-1.
    Aws,
}

/// Instance types the kwok provider offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CatalogChoice {
    /// Karpenter's KWOK catalog (c/s/m families, 1–256 vCPU).
    Kwok,
    /// AWS us-east-1 types and prices from the bundled data.
    AwsUsEast1,
    /// Azure eastus types and prices from the bundled data.
    AzureEastus,
}

/// Run Tandem's controllers against a cluster until SIGTERM or Ctrl-C.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kubeconfig to use [default: $KUBECONFIG, ~/.kube/config, or the in-cluster service
    /// account].
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,

    /// Cloud provider of the node layer.
    #[arg(long, value_enum, default_value = "kwok")]
    provider: Provider,

    /// Catalog of instance types (kwok provider).
    #[arg(long, value_enum, default_value = "kwok")]
    catalog: CatalogChoice,

    /// Do not run the node layer.
    #[arg(long)]
    disable_node_layer: bool,

    /// Do not run the pod layer (ScaledObjects and the external metrics API).
    #[arg(long)]
    disable_pod_layer: bool,

    /// Turn predictive provisioning off: the node layer then waits for pending pods, as
    /// Karpenter does, instead of planning capacity for the pods the pod layer is about to
    /// create. Per ScaledObject: annotation `tandem.dev/predictive-provisioning: "false"`.
    #[arg(long)]
    no_predictive_provisioning: bool,

    /// Turn push triggers off: every ScaledObject waits for its `pollingInterval`, as KEDA
    /// does, instead of polling at once when a source reports growth. Per ScaledObject:
    /// annotation `tandem.dev/push: "false"`.
    #[arg(long)]
    no_push: bool,

    /// Port of the `external.metrics.k8s.io` API server the HPA reads (HTTPS).
    #[arg(long, env = "METRICS_SERVER_PORT", default_value_t = 6443)]
    metrics_server_port: u16,

    /// Only the leader polls the sources and serves the external metrics API. By default
    /// every replica serves it, followers from an observe-only pod layer that polls the
    /// sources as the leader does (each replica's polls count against a source billed per
    /// request); with this flag the Service reaches the leader alone and a failover leaves the
    /// API unanswered until the new leader has polled.
    #[arg(long, env = "LEADER_ONLY_METRICS_SERVER")]
    leader_only_metrics_server: bool,

    /// Directory with `tls.crt` and `tls.key` (PEM) of the external metrics API server, valid
    /// for the APIService's Service name. Without it the server does not start and the HPA
    /// cannot read the pod layer's metrics (activation 0 ↔ 1 still works).
    #[arg(long, env = "METRICS_SERVER_CERT_DIR", value_name = "DIR")]
    metrics_server_cert_dir: Option<PathBuf>,

    /// CA (PEM) the aggregator's client certificate must chain to [default: the
    /// `requestheader-client-ca-file` of ConfigMap kube-system/extension-apiserver-authentication,
    /// as every aggregated API server reads it].
    #[arg(long, value_name = "PATH")]
    requestheader_client_ca_file: Option<PathBuf>,

    /// Namespace whose Secrets ClusterTriggerAuthentications read (KEDA: its own namespace).
    #[arg(long, env = "KEDA_CLUSTER_OBJECT_NAMESPACE", default_value = "keda")]
    cluster_object_namespace: String,

    /// Read Secrets only from the cluster object namespace: TriggerAuthentications elsewhere
    /// that name a Secret are refused (Ready=False says why), ClusterTriggerAuthentications
    /// work. For clusters that grant the autoscaler no Secret outside its own namespace (the
    /// chart's `podLayer.restrictSecretAccess`).
    #[arg(long, env = "KEDA_RESTRICT_SECRET_ACCESS")]
    restrict_secret_access: bool,

    /// Requests per second the Kubernetes client may send, sustained (both layers together;
    /// 0 turns the limit off). Waits show in `rest_client_rate_limiter_duration_seconds`.
    #[arg(long, env = "KUBE_CLIENT_QPS", default_value_t = tandem_operations::api_client::DEFAULT_QPS)]
    kube_client_qps: f64,

    /// Requests the Kubernetes client may send at once after a quiet period.
    #[arg(long, env = "KUBE_CLIENT_BURST", default_value_t = tandem_operations::api_client::DEFAULT_BURST)]
    kube_client_burst: u32,

    /// Address the metrics and probe listeners bind.
    #[arg(long, default_value = "0.0.0.0", value_name = "IP")]
    bind_address: IpAddr,

    /// Port of `/metrics`.
    #[arg(long, env = "METRICS_PORT", default_value_t = 8080)]
    metrics_port: u16,

    /// Port of `/healthz` and `/readyz`.
    #[arg(long, env = "HEALTH_PROBE_PORT", default_value_t = 8081)]
    health_probe_port: u16,

    /// Act without electing a leader (one replica only).
    #[arg(long, env = "DISABLE_LEADER_ELECTION")]
    disable_leader_election: bool,

    /// Name of the Lease the replicas elect a leader on.
    #[arg(
        long,
        env = "LEADER_ELECTION_NAME",
        default_value = "tandem-leader-election"
    )]
    leader_election_name: String,

    /// Namespace of that Lease.
    #[arg(long, env = "SYSTEM_NAMESPACE", default_value = "kube-system")]
    leader_election_namespace: String,

    /// This replica's pod (downward API), labelled `tandem.dev/external-metrics: "true"`
    /// while it serves the external metrics API so that the APIService's Service reaches only
    /// replicas that answer. Outside a pod, leave unset.
    #[arg(long, env = "POD_NAME", requires = "pod_namespace")]
    pod_name: Option<String>,

    /// Namespace of that pod.
    #[arg(long, env = "POD_NAMESPACE", requires = "pod_name")]
    pod_namespace: Option<String>,

    /// Lease duration; a follower takes over this long after the leader's last renewal.
    #[arg(long, default_value = "15s", value_parser = super::parse_duration)]
    lease_duration: Duration,

    /// How long the leader keeps retrying a failed renewal before it gives up and exits.
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    renew_deadline: Duration,

    /// How often the lease is read and renewed.
    #[arg(long, default_value = "2s", value_parser = super::parse_duration)]
    retry_period: Duration,

    /// Close a provisioning batch after this long without a new pending pod.
    #[arg(long, env = "BATCH_IDLE_DURATION", default_value = "1s", value_parser = super::parse_duration)]
    batch_idle_duration: Duration,

    /// Close a provisioning batch after this long at the latest.
    #[arg(long, env = "BATCH_MAX_DURATION", default_value = "10s", value_parser = super::parse_duration)]
    batch_max_duration: Duration,

    /// Also close a provisioning batch as soon as every pending pod's ReplicaSet has all the
    /// pods it wants and kube-scheduler has ruled on each (nothing more is coming), instead of
    /// waiting out the idle window. Watches ReplicaSets.
    #[arg(long, env = "TANDEM_BATCH_CLOSE_WHEN_SETTLED")]
    batch_close_when_settled: bool,

    /// How often instances without a NodeClaim and claims without an instance are collected.
    #[arg(long, default_value = "2m", value_parser = super::parse_duration)]
    gc_interval: Duration,

    /// How old an instance without a NodeClaim must be before it is terminated.
    #[arg(long, default_value = "30s", value_parser = super::parse_duration)]
    gc_orphan_grace: Duration,

    /// kwok provider: how long a launch (the cloud API call) takes.
    #[arg(long, default_value = "0s", value_parser = super::parse_duration)]
    kwok_launch_delay: Duration,

    /// kwok provider: how long after launch the Node registers.
    #[arg(long, default_value = "0s", value_parser = super::parse_duration)]
    kwok_registration_delay: Duration,

    /// kwok provider: how long after registering the Node turns Ready.
    #[arg(long, default_value = "0s", value_parser = super::parse_duration)]
    kwok_ready_delay: Duration,

    /// Log level: error, warn, info, debug, trace (or a tracing filter such as
    /// `info,tandem_controllers=debug`).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,

    /// Cluster name (upstream's CLUSTER_NAME). Read for compatibility with Karpenter's settings;
    /// the kwok provider does not use it.
    #[arg(long, env = "CLUSTER_NAME")]
    cluster_name: Option<String>,

    /// Cluster endpoint (upstream's CLUSTER_ENDPOINT); unused by the kwok provider.
    #[arg(long, env = "CLUSTER_ENDPOINT")]
    cluster_endpoint: Option<String>,

    /// SQS interruption queue (upstream's INTERRUPTION_QUEUE); unused by the kwok provider.
    #[arg(long, env = "INTERRUPTION_QUEUE")]
    interruption_queue: Option<String>,

    /// AWS region (aws provider).
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    aws_region: String,

    /// Endpoint for every AWS service (aws provider): a VPC endpoint, or moto in tests.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    aws_endpoint_url: Option<String>,

    /// How often every EC2NodeClass is resolved again (aws provider).
    #[arg(long, default_value = "1m", value_parser = super::parse_duration)]
    ec2nodeclass_resync: Duration,

    /// Feature gates as upstream writes them: `SpotToSpotConsolidation=true,NodeRepair=false`.
    #[arg(long, env = "FEATURE_GATES", value_parser = parse_feature_gates, default_value = "")]
    feature_gates: FeatureGates,

    /// Identity in the Lease [default: hostname plus a random suffix].
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
}

/// `FEATURE_GATES`, parsed: gate name → on/off.
pub type FeatureGates = std::collections::BTreeMap<String, bool>;

fn parse_feature_gates(text: &str) -> Result<FeatureGates, String> {
    text.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|gate| {
            let (name, value) = gate
                .split_once('=')
                .ok_or_else(|| format!("feature gate `{gate}` is not `Name=true|false`"))?;
            let on = value.trim().parse::<bool>().map_err(|_| {
                format!(
                    "feature gate `{}`: `{value}` is not true or false",
                    name.trim()
                )
            })?;
            Ok((name.trim().to_owned(), on))
        })
        .collect()
}

/// Runs `tandem run`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).with_context(|| {
        format!(
            "LOG_LEVEL `{}` is not a log level or filter",
            args.log_level
        )
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .json()
        .init();
    for (name, value) in [
        ("CLUSTER_NAME", &args.cluster_name),
        ("CLUSTER_ENDPOINT", &args.cluster_endpoint),
        ("INTERRUPTION_QUEUE", &args.interruption_queue),
    ] {
        if value.is_some() && args.provider == Provider::Kwok {
            eprintln!("tandem: {name} is set but the kwok provider does not use it");
        }
    }
    if !args.feature_gates.is_empty() {
        eprintln!("tandem: feature gates {:?}", args.feature_gates);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(serve(args))
}

fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tandem".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{host}_{:x}{nanos:08x}", std::process::id())
}

/// A client from `kubeconfig`, or the inferred configuration (`$KUBECONFIG`, `~/.kube/config`,
/// in-cluster).
pub(crate) async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    kube::Client::try_from(config(kubeconfig).await?).context("cannot build a Kubernetes client")
}

/// The client `tandem run` acts with: [`client`]'s configuration behind the client-side rate
/// limit, counting every request into `rest_client_requests_total`.
/// Writes also stop at `fence` once this replica's leadership lapses.
async fn limited_client(
    kubeconfig: Option<&PathBuf>,
    limit: RateLimit,
    metrics: ApiClientMetrics,
    fence: Arc<Fence>,
) -> anyhow::Result<kube::Client> {
    let builder = kube::client::ClientBuilder::try_from(config(kubeconfig).await?)
        .context("cannot build a Kubernetes client")?;
    Ok(builder
        .with_layer(&ApiClientLayer::new(limit, metrics).with_fence(fence))
        .build())
}

/// The `User-Agent` of every request, as client-go's `<binary>/<version>`: what the API
/// server's audit log and `apiserver_request_total` attribute Tandem's requests by.
const USER_AGENT: &str = concat!("tandem/", env!("CARGO_PKG_VERSION"));

async fn config(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Config> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {} is not usable", path.display()))?
        }
        None => kube::Config::infer().await.context(
            "no kubeconfig given and none found ($KUBECONFIG, ~/.kube/config, in-cluster)",
        )?,
    };
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    Ok(config)
}

async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let limit = RateLimit {
        qps: args.kube_client_qps,
        burst: args.kube_client_burst,
    };
    let client_metrics = ApiClientMetrics::register(
        &mut registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    // Armed by the elector; with leader election disabled it is never armed.
    let fence = Arc::new(Fence::new(
        &args.leader_election_namespace,
        &args.leader_election_name,
    ));
    let client = limited_client(
        args.kubeconfig.as_ref(),
        limit,
        client_metrics,
        fence.clone(),
    )
    .await?;
    if limit.qps > 0.0 {
        eprintln!(
            "tandem: Kubernetes client limited to {} requests/s, burst {}",
            limit.qps, limit.burst
        );
    } else {
        eprintln!("tandem: Kubernetes client not rate-limited (--kube-client-qps 0)");
    }
    let own_pod = args
        .pod_name
        .clone()
        .zip(args.pod_namespace.clone())
        .map(|(name, namespace)| super::serving::OwnPod { namespace, name });
    // A label left by this pod's previous process (it lost the lease and restarted).
    if let Some(pod) = &own_pod {
        super::serving::mark(&client, pod, false).await;
    }
    // Every layer's metrics in one registry, registered once, before any leader acts.
    let (node_metrics, disruption_metrics, lifecycle_metrics, pod_metrics) = {
        let mut r = registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            NodeLayerMetrics::register(&mut r),
            DisruptionMetrics::register(&mut r),
            LifecycleMetrics::register(&mut r),
            tandem_podcontrollers::metrics::PodLayerMetrics::register(&mut r),
        )
    };

    let (role_tx, mut role_rx) = watch::channel(Role::Unknown);
    let (state_tx, state_rx) = watch::channel(None::<Arc<tandem_state::ClusterState>>);
    let ready = {
        let role = role_rx.clone();
        let state = state_rx.clone();
        Arc::new(move || -> Result<(), String> {
            match &*role.borrow() {
                Role::Unknown => Err("leader election has not completed a round".into()),
                Role::Lost => Err("leadership lost".into()),
                Role::Follower { .. } => Ok(()),
                Role::Leader => match &*state.borrow() {
                    Some(st) if st.synced => Ok(()),
                    _ => Err("cluster state not synced yet".into()),
                },
            }
        })
    };
    let (metrics_addr, _metrics_task) = endpoints::serve(
        SocketAddr::new(args.bind_address, args.metrics_port),
        Routes {
            probes: None,
            metrics: Some(registry.clone()),
        },
    )
    .await
    .context("cannot bind the metrics port")?;
    let (probe_addr, _probe_task) = endpoints::serve(
        SocketAddr::new(args.bind_address, args.health_probe_port),
        Routes {
            probes: Some(ready),
            metrics: None,
        },
    )
    .await
    .context("cannot bind the health probe port")?;
    eprintln!(
        "tandem: metrics on http://{metrics_addr}/metrics, probes on http://{probe_addr}/healthz"
    );

    let elector = if args.disable_leader_election {
        role_tx.send_replace(Role::Leader);
        None
    } else {
        let id = args.identity.clone().unwrap_or_else(identity);
        let elector = Elector::new(
            client.clone(),
            &args.leader_election_namespace,
            &args.leader_election_name,
            &id,
            Timings {
                lease_duration: args.lease_duration,
                renew_deadline: args.renew_deadline,
                retry_period: args.retry_period,
            },
        )
        .with_fence(fence.clone());
        eprintln!(
            "tandem: electing a leader on Lease {}/{} as {id}",
            args.leader_election_namespace, args.leader_election_name
        );
        tokio::spawn(elector.clone().run(role_tx));
        Some(elector)
    };

    // The external metrics API. Every replica serves it: a follower from an observe-only pod
    // layer (it polls the sources and publishes values; the leader alone writes), so the
    // Service spreads the API server's requests over all replicas and a failover leaves no gap.
    let pod_settings = PodLayerSettings {
        cluster_object_namespace: args.cluster_object_namespace.clone(),
        restrict_secret_access: args.restrict_secret_access,
        metrics: pod_metrics.clone(),
        push: !args.no_push,
    };
    let mut tls = match (&args.metrics_server_cert_dir, args.disable_pod_layer) {
        (Some(dir), false) => Some(
            metrics_server_tls(&client, dir, args.requestheader_client_ca_file.as_deref()).await?,
        ),
        (None, false) => {
            eprintln!(
                "tandem: no --metrics-server-cert-dir: the external metrics API is not served"
            );
            None
        }
        (_, true) => None,
    };
    let metrics_server_addr = SocketAddr::new(args.bind_address, args.metrics_server_port);
    let mut pod_layer = None;
    if tls.is_some() && elector.is_some() && !args.leader_only_metrics_server {
        pod_layer = Some(
            PodLayerRunning::start(
                client.clone(),
                pod_settings.clone(),
                true,
                None,
                tls.take().map(|t| (metrics_server_addr, t)),
            )
            .await?,
        );
        eprintln!("tandem: following; serving the external metrics API from observed values");
        if let Some(pod) = &own_pod {
            super::serving::mark(&client, pod, true).await;
        }
    }

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // Wait to lead (or for a signal).
    loop {
        if *role_rx.borrow_and_update() == Role::Leader {
            break;
        }
        tokio::select! {
            _ = &mut shutdown => {
                // A follower that served takes its pod out of the Service as it stops.
                if pod_layer.is_some()
                    && let Some(pod) = &own_pod
                {
                    super::serving::mark(&client, pod, false).await;
                }
                return Ok(ExitCode::SUCCESS);
            }
            changed = role_rx.changed() => { changed.context("leader election stopped")?; }
        }
    }
    eprintln!("tandem: leading; starting the node layer and the pod layer");

    // Forecasts from the pod layer to the node layer, when both run here.
    let predictions =
        (!args.no_predictive_provisioning && !args.disable_node_layer && !args.disable_pod_layer)
            .then(tandem_state::predictions::Predictions::new);
    let node_layer = if args.disable_node_layer {
        None
    } else {
        let options = Options {
            batch: BatchOptions {
                idle: args.batch_idle_duration,
                max: args.batch_max_duration,
                close_when_settled: args.batch_close_when_settled,
                ..BatchOptions::default()
            },
            gc: GcOptions {
                interval: args.gc_interval,
                orphan_grace: args.gc_orphan_grace,
                ..GcOptions::default()
            },
            disruption: tandem_controllers::disruption::DisruptionOptions {
                metrics: disruption_metrics.clone(),
                ..Default::default()
            },
            metrics: lifecycle_metrics.clone(),
            ..Options::default()
        };
        Some(match args.provider {
            Provider::Kwok => NodeLayer::start(
                client.clone(),
                // The cloud and kubelets the provider plays stand in for a cloud API and the
                // nodes' own: they neither wait for nor count against Tandem's client limit.
                // They are fenced like the rest: they run in the leader only.
                limited_client(
                    args.kubeconfig.as_ref(),
                    RateLimit { qps: 0.0, burst: 0 },
                    ApiClientMetrics::unregistered(),
                    fence.clone(),
                )
                .await?,
                args.catalog,
                predictions.as_ref(),
                options,
                KwokOptions {
                    launch_delay: args.kwok_launch_delay,
                    registration_delay: args.kwok_registration_delay,
                    ready_delay: args.kwok_ready_delay,
                },
            )?,
            Provider::Aws => {
                NodeLayer::start_aws(client.clone(), &args, predictions.as_ref(), options).await?
            }
        })
    };

    let pod_layer = match (pod_layer, args.disable_pod_layer) {
        (Some(mut observing), _) => {
            observing.lead(predictions.clone()).await?;
            Some(observing)
        }
        (None, false) => {
            let serving = tls.is_some();
            let running = PodLayerRunning::start(
                client.clone(),
                pod_settings,
                false,
                predictions.clone(),
                tls.map(|t| (metrics_server_addr, t)),
            )
            .await?;
            if serving && let Some(pod) = &own_pod {
                super::serving::mark(&client, pod, true).await;
            }
            Some(running)
        }
        (None, true) => None,
    };

    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            changed = role_rx.changed() => {
                if changed.is_err() || *role_rx.borrow() == Role::Lost {
                    eprintln!("tandem: leadership lost; exiting so a new leader acts alone");
                    if let Some(pod) = &own_pod {
                        super::serving::mark(&client, pod, false).await;
                    }
                    return Ok(ExitCode::from(1));
                }
            }
            _ = tick.tick() => {
                if let Some(layer) = &node_layer {
                    let st = layer.controllers.state();
                    node_metrics.observe(&st);
                    state_tx.send_replace(Some(st));
                }
            }
        }
    }
    if pod_layer.is_some()
        && let Some(pod) = &own_pod
    {
        super::serving::mark(&client, pod, false).await;
    }
    drop(pod_layer);
    drop(node_layer);
    if let Some(elector) = elector
        && let Err(e) = elector.release().await
    {
        eprintln!("tandem: could not release the lease: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The node layer: the controllers plus the provider's own tasks (the kubelet kwok plays for
/// its nodes; the EC2NodeClass controller for AWS). Dropping it stops them all.
pub(crate) struct NodeLayer {
    /// The provisioner and lifecycle loops.
    pub(crate) controllers: Controllers,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl NodeLayer {
    /// Starts the kwok provider's node layer on the current runtime; `kubelet_client` is the
    /// one the fake cloud and kubelets write with.
    pub(crate) fn start(
        client: kube::Client,
        kubelet_client: kube::Client,
        catalog: CatalogChoice,
        predictions: Option<&tandem_state::predictions::Predictions>,
        options: Options,
        kwok: KwokOptions,
    ) -> anyhow::Result<NodeLayer> {
        let catalog = Arc::new(match catalog {
            CatalogChoice::Kwok => Catalog::kwok(),
            CatalogChoice::AwsUsEast1 => {
                Catalog::aws_us_east_1().context("the bundled AWS catalog does not load")?
            }
            CatalogChoice::AzureEastus => {
                Catalog::azure_eastus().context("the bundled Azure catalog does not load")?
            }
        });
        // The kwok "cloud" (its Node objects are its instances) and its kubelets stand in for
        // a cloud API and machines: they write with their own client, outside Tandem's limit
        // and its `rest_client_requests_total`, as EC2 calls would be.
        let cloud = Arc::new(KwokCloud::with_catalog(
            kubelet_client.clone(),
            catalog.clone(),
            kwok,
        ));
        let kubelet = tokio::spawn(Kubelet::new(kubelet_client).run());
        let mut index = tandem_state::Index::new(catalog);
        if let Some(p) = predictions {
            index = index.with_predictions(p);
        }
        let controllers = Controllers::spawn_with(client, cloud, index, options);
        Ok(NodeLayer {
            controllers,
            tasks: vec![kubelet],
        })
    }

    /// Starts the AWS provider's node layer: the EC2NodeClass controller and the controllers
    /// over [`tandem_cloud_aws::AwsCloud`].
    async fn start_aws(
        client: kube::Client,
        args: &Args,
        predictions: Option<&tandem_state::predictions::Predictions>,
        options: Options,
    ) -> anyhow::Result<NodeLayer> {
        let cluster_name = args
            .cluster_name
            .clone()
            .context("the aws provider needs --cluster-name (CLUSTER_NAME)")?;
        let cluster_endpoint = args
            .cluster_endpoint
            .clone()
            .context("the aws provider needs --cluster-endpoint (CLUSTER_ENDPOINT)")?;
        if args.aws_region != "us-east-1" {
            anyhow::bail!(
                "--aws-region {}: the bundled instance prices cover us-east-1 only",
                args.aws_region
            );
        }
        let version = client
            .apiserver_version()
            .await
            .context("cannot read the API server version (needed for AMI aliases)")?;
        let settings = tandem_cloud_aws::AwsSettings {
            region: args.aws_region.clone(),
            endpoint: args.aws_endpoint_url.clone(),
            credentials: None,
            cluster_name,
            cluster_endpoint,
            interruption_queue: args.interruption_queue.clone(),
            kubernetes_version: format!(
                "{}.{}",
                version.major,
                version.minor.trim_end_matches('+')
            ),
            request_timeout: tandem_cloud_aws::settings::DEFAULT_REQUEST_TIMEOUT,
        };
        let catalog =
            Arc::new(Catalog::aws_us_east_1().context("the bundled AWS catalog does not load")?);
        let clients = tandem_cloud_aws::Clients::new(&settings).await;
        let nodeclasses = tokio::spawn(tandem_cloud_aws::nodeclass::run(
            client.clone(),
            clients.clone(),
            settings.clone(),
            args.ec2nodeclass_resync,
        ));
        let cloud = Arc::new(tandem_cloud_aws::AwsCloud::new(
            clients,
            settings,
            client.clone(),
            catalog.clone(),
        ));
        // Offerings and spot prices from EC2: now, then every 10 minutes.
        let refresher = {
            let cloud = cloud.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(600));
                loop {
                    tick.tick().await;
                    match cloud.refresh_offerings().await {
                        Ok(r) => eprintln!(
                            "tandem: EC2 offerings refreshed: {} offerings, {} spot prices",
                            r.offered.len(),
                            r.spot_prices.len()
                        ),
                        Err(e) => eprintln!(
                            "tandem: refreshing EC2 offerings failed, keeping the last ones: {e}"
                        ),
                    }
                }
            })
        };
        let zones = cloud.clone();
        let mut index = tandem_state::Index::new(catalog)
            .with_zone_catalog(Arc::new(move |z: &[String]| zones.catalog_for_zones(z)));
        if let Some(p) = predictions {
            index = index.with_predictions(p);
        }
        let controllers = Controllers::spawn_with(client, cloud, index, options);
        Ok(NodeLayer {
            controllers,
            tasks: vec![nodeclasses, refresher],
        })
    }
}

impl Drop for NodeLayer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What the pod layer is started with; kept to start it again when a follower comes to lead.
#[derive(Clone)]
pub(crate) struct PodLayerSettings {
    /// Where ClusterTriggerAuthentication Secrets live.
    pub(crate) cluster_object_namespace: String,
    /// Secrets only from `cluster_object_namespace`.
    pub(crate) restrict_secret_access: bool,
    /// KEDA's operator metrics.
    pub(crate) metrics: tandem_podcontrollers::metrics::PodLayerMetrics,
    /// Poll at once when a source reports growth.
    pub(crate) push: bool,
}

/// The pod layer and, when it has a certificate, the external metrics API server.
pub(crate) struct PodLayerRunning {
    layer: tandem_podcontrollers::PodLayer,
    server: Option<tandem_podcontrollers::MetricsServer>,
    client: kube::Client,
    settings: PodLayerSettings,
}

impl PodLayerRunning {
    /// The port the external metrics API listens on, when it runs.
    pub(crate) fn metrics_port(&self) -> Option<u16> {
        self.server.as_ref().map(|s| s.local_addr().port())
    }

    /// Starts the ScaledObject controller (observe-only on a follower: it measures and
    /// serves, the leader writes) and, given an address and TLS, the metrics server that
    /// serves the controller's values.
    pub(crate) async fn start(
        client: kube::Client,
        settings: PodLayerSettings,
        observe_only: bool,
        predictions: Option<tandem_state::predictions::Predictions>,
        server: Option<(SocketAddr, tandem_podcontrollers::TlsConfig)>,
    ) -> anyhow::Result<PodLayerRunning> {
        let values = tandem_podcontrollers::MetricValues::new();
        let layer = Self::spawn(
            &client,
            &settings,
            values.clone(),
            observe_only,
            predictions,
        )
        .await?;
        let server = match server {
            Some((addr, tls)) => {
                let s = tandem_podcontrollers::serve_external_metrics(addr, tls, values)
                    .await
                    .context("the external metrics API server cannot start")?;
                eprintln!("tandem: external metrics API on https://{}", s.local_addr());
                Some(s)
            }
            None => None,
        };
        Ok(PodLayerRunning {
            layer,
            server,
            client,
            settings,
        })
    }

    /// A follower's observe-only layer gives way to one that acts. The metrics server and the
    /// values it serves stay: the API server's requests are answered throughout the handover.
    pub(crate) async fn lead(
        &mut self,
        predictions: Option<tandem_state::predictions::Predictions>,
    ) -> anyhow::Result<()> {
        let values = self.layer.values().clone();
        self.layer = Self::spawn(&self.client, &self.settings, values, false, predictions).await?;
        Ok(())
    }

    async fn spawn(
        client: &kube::Client,
        settings: &PodLayerSettings,
        values: tandem_podcontrollers::MetricValues,
        observe_only: bool,
        predictions: Option<tandem_state::predictions::Predictions>,
    ) -> anyhow::Result<tandem_podcontrollers::PodLayer> {
        tandem_podcontrollers::PodLayer::spawn(
            client.clone(),
            tandem_podcontrollers::Options {
                cluster_object_namespace: settings.cluster_object_namespace.clone(),
                restrict_secret_access: settings.restrict_secret_access,
                values,
                metrics: settings.metrics.clone(),
                predictions,
                push: settings.push,
                observe_only,
            },
        )
        .await
        .context("the pod layer cannot start")
    }
}

/// Reads the metrics server's certificate and key from `dir` and the aggregator's client CA
/// from `ca_file` or, as aggregated API servers do, from the cluster's
/// extension-apiserver-authentication ConfigMap.
async fn metrics_server_tls(
    client: &kube::Client,
    dir: &std::path::Path,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<tandem_podcontrollers::TlsConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    let cert_chain_der = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", cert_path.display()))?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("cannot read a private key from {}", key_path.display()))?;
    let key_pkcs8_der = match key {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        // Helm's genSignedCert writes RSA keys as PKCS#1 (BEGIN RSA PRIVATE KEY).
        PrivateKeyDer::Pkcs1(k) => pkcs8_of_rsa(k.secret_pkcs1_der()),
        _ => anyhow::bail!(
            "{}: the key must be PKCS#8 (BEGIN PRIVATE KEY) or RSA (BEGIN RSA PRIVATE KEY)",
            key_path.display()
        ),
    };
    let ca_pem = match ca_file {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => {
            let cm = kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
                client.clone(),
                "kube-system",
            )
            .get("extension-apiserver-authentication")
            .await
            .context("cannot read ConfigMap kube-system/extension-apiserver-authentication")?;
            cm.data
                .and_then(|d| d.get("requestheader-client-ca-file").cloned())
                .context(
                    "ConfigMap kube-system/extension-apiserver-authentication has no \
                     requestheader-client-ca-file: the API server runs without a front proxy",
                )?
                .into_bytes()
        }
    };
    let client_ca_der = CertificateDer::pem_slice_iter(&ca_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("the requestheader client CA is not PEM certificates")?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    Ok(tandem_podcontrollers::TlsConfig {
        cert_chain_der,
        key_pkcs8_der,
        client_ca_der,
    })
}

/// Wraps a PKCS#1 RSA private key in a PKCS#8 PrivateKeyInfo (RFC 5208):
/// `SEQUENCE { INTEGER 0, SEQUENCE { OID rsaEncryption, NULL }, OCTET STRING pkcs1 }`.
fn pkcs8_of_rsa(pkcs1: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = body.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(body);
        out
    }
    const RSA_ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(&RSA_ALGORITHM);
    body.extend(tlv(0x04, pkcs1));
    tlv(0x30, &body)
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    crate::write_heap_profile();
}

#[cfg(test)]
mod tests {
    use super::parse_feature_gates;

    #[test]
    fn an_rsa_key_from_helm_is_usable_by_rustls() {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject as _;
        // A PKCS#1 RSA key as `openssl genrsa -traditional` and Helm's genSignedCert write it.
        let pem = include_str!("../../tests/data/rsa-pkcs1.pem");
        let PrivateKeyDer::Pkcs1(k) = PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("pem")
        else {
            panic!("not PKCS#1");
        };
        let pkcs8 = super::pkcs8_of_rsa(k.secret_pkcs1_der());
        let der = PrivateKeyDer::Pkcs8(pkcs8.into());
        rustls::crypto::ring::sign::any_supported_type(&der).expect("rustls accepts the key");
    }

    #[test]
    fn feature_gates_parse_as_upstream_writes_them() {
        let gates =
            parse_feature_gates("SpotToSpotConsolidation=true, NodeRepair=false").expect("gates");
        assert_eq!(gates.get("SpotToSpotConsolidation"), Some(&true));
        assert_eq!(gates.get("NodeRepair"), Some(&false));
        assert!(parse_feature_gates("").expect("empty").is_empty());
        let err = parse_feature_gates("NodeRepair=yes").expect_err("not a bool");
        assert!(err.contains("`yes` is not true or false"), "{err}");
    }
}

//! `tandem up`: a local control plane for a person, the same one the end-to-end tests use.

use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tandem_testkit::{ControlPlane, Error as TestkitError, FakeNode, Options};

/// Start a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
/// kube-scheduler, built from upstream sources by `hack/controlplane/build.sh`) with Tandem's
/// CRDs installed, print its kubeconfig, and keep it running until Ctrl-C; then stop every
/// process and delete its files.
///
/// Everything listens on 127.0.0.1 only. Set TANDEM_CONTROLPLANE_DIR to use binaries from
/// another directory.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How often the HPA controller re-evaluates (`--horizontal-pod-autoscaler-sync-period`;
    /// upstream default 15s). Units: ms, s, m, h.
    #[arg(long, default_value = "1s", value_parser = super::parse_duration)]
    hpa_sync_period: Duration,

    /// HPA downscale stabilization window (upstream default 5m). Units: ms, s, m, h.
    #[arg(long, default_value = "0s", value_parser = super::parse_duration)]
    hpa_downscale_stabilization: Duration,

    /// Directory of CRD manifests to apply [default: config/crds of the source tree].
    #[arg(long, value_name = "DIR")]
    crds: Option<PathBuf>,

    /// Also create this many fake Ready nodes (4 CPU, 16Gi, 110 pods each), kept alive by
    /// lease renewals, so pods can be scheduled.
    #[arg(long, default_value_t = 0, value_name = "N")]
    nodes: u32,

    /// Do not run Tandem's controllers in this process (then run `tandem run --kubeconfig …`
    /// yourself, e.g. from a debugger).
    #[arg(long)]
    no_controllers: bool,

    /// Instance types the kwok provider offers.
    #[arg(long, value_enum, default_value = "kwok")]
    catalog: super::run::CatalogChoice,

    /// Give up if a component is not ready after this long. Units: ms, s, m, h.
    #[arg(long, default_value = "120s", value_parser = super::parse_duration)]
    ready_timeout: Duration,
}

/// Runs `tandem up`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(up(args))
}

async fn up(args: Args) -> anyhow::Result<ExitCode> {
    let mut options = Options {
        hpa_sync_period: args.hpa_sync_period,
        hpa_downscale_stabilization: args.hpa_downscale_stabilization,
        ready_timeout: args.ready_timeout,
        ..Options::default()
    };
    if let Some(dir) = args.crds {
        options.crds_dir = Some(dir);
    }
    let plane = match ControlPlane::start_with(options).await {
        Ok(plane) => plane,
        Err(err @ TestkitError::BinariesMissing { .. }) => {
            eprintln!("error: {err}");
            eprintln!(
                "hint: from the source tree, run `hack/controlplane/build.sh` (needs Go 1.26 and \
                 the Go module proxy; about 10 minutes and 3 GB the first time), then retry"
            );
            return Ok(ExitCode::from(2));
        }
        Err(err) => return Err(err).context("failed to start the control plane"),
    };
    let client = plane.client()?;
    let mut nodes = Vec::new();
    for i in 0..args.nodes {
        let node = FakeNode::builder(&format!("tandem-node-{i}"))
            .create(&client)
            .await
            .with_context(|| format!("failed to create fake node tandem-node-{i}"))?;
        nodes.push(node);
    }

    let node_layer = if args.no_controllers {
        None
    } else {
        Some(super::run::NodeLayer::start(
            client.clone(),
            args.catalog,
            tandem_controllers::Options::default(),
            tandem_cloud::kwok::KwokOptions::default(),
        )?)
    };

    let pod_layer = if args.no_controllers {
        None
    } else {
        // The external metrics API: a serving certificate from the control plane's CA, the
        // aggregator's front-proxy CA, and the APIService pointing at this process.
        let [svc, ip] = tandem_testkit::external_metrics_serving_names();
        let cert = plane
            .pki()
            .issue_serving(&[&svc, &ip])
            .context("cannot issue the external metrics API's certificate")?;
        let layer = super::run::PodLayerRunning::start(
            client.clone(),
            "keda".into(),
            tandem_podcontrollers::metrics::PodLayerMetrics::default(),
            Some((
                "127.0.0.1:0".parse().context("address")?,
                tandem_podcontrollers::TlsConfig {
                    cert_chain_der: vec![cert.cert_der],
                    key_pkcs8_der: cert.key_der,
                    client_ca_der: vec![plane.pki().front_proxy_ca_der().to_vec()],
                },
            )),
        )
        .await?;
        let port = layer
            .metrics_port()
            .context("the metrics server did not start")?;
        tandem_testkit::register_external_metrics(&client, plane.pki(), port, args.ready_timeout)
            .await
            .context("cannot register the external metrics APIService")?;
        Some(layer)
    };

    let kubeconfig = plane.kubeconfig_path().display().to_string();
    println!(
        "Kubernetes {} is up at {} (started in {:.1}s).",
        plane.version(),
        plane.server(),
        plane.started_in().as_secs_f64()
    );
    println!("kubeconfig: {kubeconfig}");
    println!("logs:       {}", plane.dir().join("logs").display());
    if !nodes.is_empty() {
        let names: Vec<&str> = nodes.iter().map(FakeNode::name).collect();
        println!("fake nodes: {}", names.join(", "));
    }
    if node_layer.is_some() {
        println!(
            "node layer: running here with the kwok provider (NodePools whose nodeClassRef is a \
             KWOKNodeClass get nodes; try examples/up/)"
        );
    }
    if pod_layer.is_some() {
        println!(
            "pod layer:  running here; ScaledObjects get their keda-hpa-<name> and the HPA \
             reads external.metrics.k8s.io from this process"
        );
    }
    println!();
    println!("export KUBECONFIG={kubeconfig}");
    println!();
    println!("Press Ctrl-C to stop it and delete everything.");

    wait_for_shutdown().await?;
    eprintln!("stopping…");
    drop(pod_layer);
    drop(node_layer);
    drop(nodes);
    drop(plane);
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_shutdown() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("failed to listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("failed to listen for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("3d").is_err());
    }
}

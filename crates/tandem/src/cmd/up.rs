//! `tandem up`: a local control plane for a person, the same one the end-to-end tests use;
//! `tandem up --down`: stop one, or clean up after one that was killed.
//!
//! `tandem up` records itself, the control plane's processes and its directory in a state
//! file (`<state dir>/up.json`, see [`state`]) and deletes it when it stops. `--down` reads
//! it: SIGTERM to a running `tandem up` (which then stops everything as on Ctrl-C), SIGKILL
//! to any recorded process still alive, then the directory and the state file are deleted.

mod state;

use anyhow::Context as _;
use state::{STATE_FILE, Seen, State};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tandem_testkit::{ControlPlane, Error as TestkitError, FakeNode, Options};

/// Start a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
/// kube-scheduler, built from upstream sources by `hack/controlplane/build.sh`) with Tandem's
/// CRDs installed, print its kubeconfig, and keep it running until Ctrl-C; then stop every
/// process and delete its files. `tandem up --down` does the same from another terminal, and
/// also cleans up after a `tandem up` that was killed.
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

    /// Stop the `tandem up` recorded in the state directory, or clean up after one that was
    /// killed: its processes, its directory (etcd data, logs, kubeconfig) and the state file.
    /// With nothing recorded it says so and exits 0.
    #[arg(long)]
    down: bool,

    /// Where `tandem up` records what it started, for `--down` [default:
    /// $XDG_STATE_HOME/tandem, else ~/.local/state/tandem]. One `tandem up` per directory.
    #[arg(long, env = "TANDEM_UP_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// The state directory: the flag, else `$XDG_STATE_HOME/tandem`, else
/// `~/.local/state/tandem` (the XDG base directory default).
fn state_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_owned());
    }
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("XDG_STATE_HOME") {
        return Ok(PathBuf::from(dir).join("tandem"));
    }
    non_empty("HOME")
        .map(|home| PathBuf::from(home).join(".local/state/tandem"))
        .context("neither --state-dir, XDG_STATE_HOME nor HOME is set: cannot place the state file")
}

/// Runs `tandem up`, or `tandem up --down`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = state_dir(args.state_dir.as_deref())?;
    if args.down {
        return down(&dir);
    }
    // One `tandem up` per state directory; a dead one's leftovers are cleaned first.
    if let Some(previous) = read_state(&dir)? {
        if observe(&previous.up) == Seen::Running {
            eprintln!(
                "error: tandem up is already running (pid {}, kubeconfig {})",
                previous.up.pid,
                previous.kubeconfig.display()
            );
            eprintln!("hint: stop it with `tandem up --down`, or pass another --state-dir");
            return Ok(ExitCode::from(1));
        }
        eprintln!(
            "a previous tandem up (pid {}) stopped without cleaning up; cleaning up first",
            previous.up.pid
        );
        for line in clean_up(&dir, &previous)? {
            eprintln!("  {line}");
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(up(args, &dir))
}

async fn up(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
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
    let recorded = record(state_dir, &plane).await?;
    let client = plane.client()?;
    let mut nodes = Vec::new();
    for i in 0..args.nodes {
        let node = FakeNode::builder(&format!("tandem-node-{i}"))
            .create(&client)
            .await
            .with_context(|| format!("failed to create fake node tandem-node-{i}"))?;
        nodes.push(node);
    }

    // `tandem up` runs both layers in one process: predictive provisioning is on.
    let predictions = tandem_state::predictions::Predictions::new();
    let node_layer = if args.no_controllers {
        None
    } else {
        Some(super::run::NodeLayer::start(
            client.clone(),
            client.clone(),
            args.catalog,
            Some(&predictions),
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
            super::run::PodLayerSettings {
                cluster_object_namespace: "keda".into(),
                restrict_secret_access: false,
                metrics: tandem_podcontrollers::metrics::PodLayerMetrics::default(),
                push: true,
            },
            false,
            Some(predictions.clone()),
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
    println!("state:      {}", recorded.0.display());
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
    println!("Press Ctrl-C (or run `tandem up --down`) to stop it and delete everything.");

    wait_for_shutdown().await?;
    eprintln!("stopping…");
    drop(pod_layer);
    drop(node_layer);
    drop(nodes);
    drop(plane);
    drop(recorded);
    Ok(ExitCode::SUCCESS)
}

/// The state file of a running `tandem up`; deleted when dropped, so every way out of `up`
/// that is not a kill leaves none behind.
struct Recorded(PathBuf);

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.0)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("warning: cannot delete {}: {err}", self.0.display());
        }
    }
}

/// Writes the state file for `plane` (through a temporary file and a rename, so `--down`
/// never reads half of one).
async fn record(state_dir: &Path, plane: &ControlPlane) -> anyhow::Result<Recorded> {
    let process = |name: &str, pid: u32| -> anyhow::Result<state::Process> {
        let stat = read_stat(pid).with_context(|| format!("{name} (pid {pid}) is not running"))?;
        let start_time = state::start_time(&stat)
            .with_context(|| format!("cannot read the start time of {name} (pid {pid})"))?;
        Ok(state::Process {
            name: name.to_owned(),
            pid,
            start_time,
        })
    };
    let mut components = Vec::new();
    for (name, pid) in plane.processes().await {
        components.push(process(name, pid)?);
    }
    let state = State {
        up: process("tandem up", std::process::id())?,
        components,
        dir: plane.dir().to_owned(),
        kubeconfig: plane.kubeconfig_path().to_owned(),
    };
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    let path = state_dir.join(STATE_FILE);
    let partial = state_dir.join(format!("{STATE_FILE}.partial"));
    let text = serde_json::to_string_pretty(&state).context("cannot serialize the state")?;
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, &path))
        .with_context(|| format!("cannot write the state file {}", path.display()))?;
    Ok(Recorded(path))
}

/// The state file in `dir`, `None` when there is none.
fn read_state(dir: &Path) -> anyhow::Result<Option<State>> {
    let path = dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str(&text).map(Some).with_context(|| {
        format!(
            "{} is not a state file of tandem up; delete it if nothing of tandem up runs",
            path.display()
        )
    })
}

fn read_stat(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

fn observe(p: &state::Process) -> Seen {
    state::seen(p, read_stat(p.pid).as_deref())
}

/// Sends `signal` (`TERM`, `KILL`) with kill(1): no `unsafe` in this workspace, so no libc.
fn signal(p: &state::Process, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-s", signal, &p.pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run kill(1)")?;
    // It may have exited between the look and the signal; that is what we wanted.
    anyhow::ensure!(
        status.success() || observe(p) == Seen::Gone,
        "cannot send SIG{signal} to {} (pid {})",
        p.name,
        p.pid
    );
    Ok(())
}

/// Waits until `p` is gone, at most `timeout`; true if it is.
fn wait_gone(p: &state::Process, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if observe(p) == Seen::Gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long a running `tandem up` gets to stop on SIGTERM before it is killed: it stops its
/// controllers and four processes, which takes a second or two.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// `tandem up --down`.
fn down(dir: &Path) -> anyhow::Result<ExitCode> {
    let Some(state) = read_state(dir)? else {
        println!("nothing is running: no {}", dir.join(STATE_FILE).display());
        return Ok(ExitCode::SUCCESS);
    };
    for line in clean_up(dir, &state)? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops what `state` records and deletes its files; returns what it did, one line each.
fn clean_up(dir: &Path, state: &State) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    let up = &state.up;
    // After a clean stop the watchdog still needs a moment to exit on its own.
    let mut grace = Duration::ZERO;
    if observe(up) == Seen::Running {
        signal(up, "TERM")?;
        if wait_gone(up, STOP_TIMEOUT) {
            done.push(format!("stopped tandem up (pid {})", up.pid));
            grace = Duration::from_secs(2);
        } else {
            signal(up, "KILL")?;
            wait_gone(up, Duration::from_secs(5));
            done.push(format!(
                "killed tandem up (pid {}): it did not stop within {}s of SIGTERM",
                up.pid,
                STOP_TIMEOUT.as_secs()
            ));
        }
    } else {
        done.push(format!(
            "tandem up (pid {}) was not running; cleaning up after it",
            up.pid
        ));
    }
    for p in &state.components {
        if !wait_gone(p, grace) {
            signal(p, "KILL")?;
            if !wait_gone(p, Duration::from_secs(5)) {
                anyhow::bail!("{} (pid {}) is still running after SIGKILL", p.name, p.pid);
            }
            done.push(format!("killed {} (pid {})", p.name, p.pid));
        }
    }
    if state::is_controlplane_dir(&state.dir) {
        match std::fs::remove_dir_all(&state.dir) {
            Ok(()) => done.push(format!("deleted {}", state.dir.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot delete {}", state.dir.display()));
            }
        }
    } else {
        done.push(format!(
            "left {} alone: not a control plane directory",
            state.dir.display()
        ));
    }
    let path = dir.join(STATE_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => done.push(format!("deleted {}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot delete {}", path.display())),
    }
    Ok(done)
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

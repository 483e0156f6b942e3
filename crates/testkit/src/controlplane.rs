//! The control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

use crate::binaries::{Binaries, workspace_root};
use crate::error::{Error, Result};
use crate::metrics::ExternalMetrics;
use crate::pki::{CertFiles, FRONT_PROXY_CLIENT_CN, Pki};
use crate::process::{Component, Spec, Watchdog, log_tail, rss_of};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::conditions::is_crd_established;
use kube::{Api, Client, Config};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

/// Service ClusterIP range. Pods, nodes and services use the RFC 2544 benchmarking block
/// 198.18.0.0/15: never loopback or link-local (rejected in EndpointSlices), never a range
/// anyone routes to, and the three do not overlap.
pub const SERVICE_CIDR: &str = "198.18.0.0/16";
/// The first service IP: the `kubernetes` Service's ClusterIP (also in the serving cert).
pub const FIRST_SERVICE_IP: &str = "198.18.0.1";
/// Range for fake pod IPs (see [`SERVICE_CIDR`]).
pub const POD_CIDR: &str = "198.19.0.0/17";
/// Range for fake node InternalIPs (see [`SERVICE_CIDR`]).
pub const NODE_CIDR: &str = "198.19.128.0/17";

/// Field manager for everything the testkit applies.
pub const FIELD_MANAGER: &str = "tandem-testkit";

/// How to start a [`ControlPlane`]. `Default` is what tests want.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--horizontal-pod-autoscaler-sync-period`. Default 1 s (upstream 15 s).
    pub hpa_sync_period: Duration,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`. Default 0 s (upstream 5 min), so
    /// downscale tests need no waiting; HPAs can still set `spec.behavior`.
    pub hpa_downscale_stabilization: Duration,
    /// `--node-monitor-period` of the node lifecycle controller. Default 2 s (upstream 5 s), so
    /// the creation-time `not-ready` taint leaves a fresh Ready node quickly.
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period`: how long a node may miss lease renewals before it turns
    /// `Unknown`. Default 50 s (upstream).
    pub node_monitor_grace_period: Duration,
    /// Start kube-controller-manager. Default true.
    pub controller_manager: bool,
    /// Start kube-scheduler. Default true.
    pub scheduler: bool,
    /// Directory of CRD manifests applied after start (`*.yaml`, `*.yml`; multi-document
    /// files allowed). Default `<workspace>/config/crds`; skipped when absent or empty.
    pub crds_dir: Option<PathBuf>,
    /// Bound for each component to become ready. Default 120 s.
    pub ready_timeout: Duration,
    /// Binary directory; default [`Binaries::locate`].
    pub binaries_dir: Option<PathBuf>,
    /// Have kube-apiserver write an audit log at level `Metadata` (who, verb, resource,
    /// response code; no bodies) to `logs/audit.log`, one JSON event per line, for tests that
    /// check which requests a client really made, such as the Helm chart's RBAC audit. Off by
    /// default: it costs a write per request. See [`ControlPlane::audit_log_path`].
    pub audit_log: bool,
    /// Admission plugins to enable besides kube-apiserver's defaults
    /// (`--enable-admission-plugins`), e.g. `OwnerReferencesPermissionEnforcement`, which
    /// hardened clusters turn on and which makes RBAC tests stricter. Default none.
    pub admission_plugins: Vec<String>,
    /// `--kube-api-qps` and `--kube-api-burst` of kube-controller-manager and kube-scheduler.
    /// Default none: upstream's 20/30 and 50/100, which make the ReplicaSet controller create
    /// 1,000 pods in ≈ 50 s; scale benchmarks raise them so that the autoscaler is measured,
    /// not the cluster's own controllers.
    pub component_client_limit: Option<(u32, u32)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hpa_sync_period: Duration::from_secs(1),
            hpa_downscale_stabilization: Duration::ZERO,
            node_monitor_period: Duration::from_secs(2),
            node_monitor_grace_period: Duration::from_secs(50),
            controller_manager: true,
            scheduler: true,
            crds_dir: Some(workspace_root().join("config/crds")),
            ready_timeout: Duration::from_secs(120),
            binaries_dir: None,
            audit_log: false,
            admission_plugins: Vec::new(),
            component_client_limit: None,
        }
    }
}

/// The audit policy behind [`Options::audit_log`]: every request at `Metadata`, logged once
/// when its response completes (a watch also when its response starts).
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n\
                            rules:\n- level: Metadata\n";

/// Memory of the control-plane processes, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Per component: (name, current RSS bytes, peak RSS bytes).
    pub components: Vec<(&'static str, u64, u64)>,
}

impl MemoryUsage {
    /// Sum of current RSS, bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.components.iter().map(|c| c.1).sum()
    }

    /// Sum of each process's peak RSS (VmHWM), bytes: an upper bound of the peak of the sum.
    pub fn peak_bytes(&self) -> u64 {
        self.components.iter().map(|c| c.2).sum()
    }
}

impl std::fmt::Display for MemoryUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MIB: u64 = 1024 * 1024;
        write!(
            f,
            "rss {} MiB (peak ≤ {} MiB):",
            self.rss_bytes() / MIB,
            self.peak_bytes() / MIB
        )?;
        for (name, rss, peak) in &self.components {
            write!(f, " {name} {}/{} MiB", rss / MIB, peak / MIB)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Processes {
    etcd: Component,
    apiserver: Component,
    controller_manager: Option<Component>,
    scheduler: Option<Component>,
}

impl Processes {
    fn all(&self) -> impl Iterator<Item = &Component> {
        [Some(&self.etcd), Some(&self.apiserver)]
            .into_iter()
            .chain([self.controller_manager.as_ref(), self.scheduler.as_ref()])
            .flatten()
    }
}

/// A running single-host Kubernetes control plane. Dropping it kills every process and removes
/// its directory; see the crate docs for what happens when the test process dies instead.
pub struct ControlPlane {
    // Field order matters for Drop: processes first, then the watchdog, then the directory.
    processes: Mutex<Processes>,
    watchdog: Watchdog,
    pki: Pki,
    config: Config,
    kubeconfig: PathBuf,
    server: String,
    version: String,
    started_in: Duration,
    controller_manager: bool,
    ready_timeout: Duration,
    external_metrics: OnceCell<ExternalMetrics>,
    audit_log: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server)
            .field("kubeconfig", &self.kubeconfig)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::io("bind a free port on", "127.0.0.1", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("read the address of", "127.0.0.1", e))
}

fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn yaml_str(p: &Path) -> String {
    // A JSON string is a valid YAML scalar and escapes anything odd in the path.
    serde_json::Value::String(p.display().to_string()).to_string()
}

fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    user: &str,
    cert: &CertFiles,
) -> Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: tandem\n  cluster:\n    server: {server}\n    \
         certificate-authority: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate: {cert}\n    \
         client-key: {key}\ncontexts:\n- name: tandem\n  context:\n    cluster: tandem\n    user: {user}\n    \
         namespace: default\ncurrent-context: tandem\n",
        ca = yaml_str(ca),
        cert = yaml_str(&cert.cert),
        key = yaml_str(&cert.key),
    );
    std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
}

fn args(list: &[(&str, String)]) -> Vec<String> {
    list.iter().map(|(k, v)| format!("--{k}={v}")).collect()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Waits until `GET path` on `client` answers `ok`, while checking that `component` still runs.
async fn wait_healthy(
    component: &mut Component,
    client: &Client,
    path: &str,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        component.check_running()?;
        let request = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| Error::Spawn {
                component: component.spec.name.to_owned(),
                source: std::io::Error::other(e),
            })?;
        let last = match tokio::time::timeout(Duration::from_secs(5), client.request_text(request))
            .await
        {
            Ok(Ok(body)) if body.trim() == "ok" => return Ok(()),
            Ok(Ok(body)) => body,
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("GET {path} took longer than 5s"),
        };
        if Instant::now() >= deadline {
            return Err(Error::NotReady {
                component: component.spec.name.to_owned(),
                waited: started.elapsed(),
                log: component.spec.log.clone(),
                tail: format!(
                    "last answer to GET {path}: {last}\n{}",
                    log_tail(&component.spec.log, 40)
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until etcd accepts TCP connections on its client port.
async fn wait_listening(component: &mut Component, port: u16, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        component.check_running()?;
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(Error::NotReady {
                component: component.spec.name.to_owned(),
                waited: started.elapsed(),
                log: component.spec.log.clone(),
                tail: log_tail(&component.spec.log, 40),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn client_config(kubeconfig: &Path) -> Result<Config> {
    let err = |source| Error::Kubeconfig {
        path: kubeconfig.to_owned(),
        source,
    };
    let kc = Kubeconfig::read_from(kubeconfig).map_err(err)?;
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(err)
}

fn client_for(config: &Config, url: Option<&str>) -> Result<Client> {
    let mut config = config.clone();
    if let Some(url) = url {
        config.cluster_url = url.parse().map_err(|source| Error::InvalidUrl {
            url: url.to_owned(),
            source,
        })?;
    }
    Client::try_from(config).map_err(Error::Client)
}

/// Makes sure a rustls crypto provider is installed; kube's rustls client config uses the
/// process default, which is ambiguous if several providers end up compiled in.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ControlPlane {
    /// Starts a control plane with [`Options::default`].
    pub async fn start() -> Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// Starts a control plane: PKI, etcd, kube-apiserver, then kube-controller-manager and
    /// kube-scheduler, each awaited (bounded by `options.ready_timeout`), then the CRDs.
    ///
    /// Ports are picked free just before use; if another process grabs one in between (the
    /// component exits with "address already in use"), the whole start is retried, up to
    /// three attempts.
    pub async fn start_with(options: Options) -> Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_once(&options).await {
                Err(Error::Exited { ref tail, .. })
                    if attempt < 3 && tail.contains("address already in use") =>
                {
                    eprintln!("tandem-testkit: a port was taken meanwhile; starting again");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(options: &Options) -> Result<Self> {
        install_crypto_provider();
        let started = Instant::now();
        let binaries = match &options.binaries_dir {
            Some(dir) => Binaries::in_dir(dir)?,
            None => Binaries::locate()?,
        };
        let dir = tempfile::Builder::new()
            .prefix("tandem-controlplane-")
            .tempdir()
            .map_err(|e| Error::io("create a temp dir in", std::env::temp_dir(), e))?;
        let root = dir.path().to_owned();
        let logs = root.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io("create", &logs, e))?;
        let watchdog = Watchdog::start(&root).await?;
        let pki = Pki::generate(&root.join("pki"), FIRST_SERVICE_IP)?;

        // etcd
        let (etcd_port, peer_port) = (free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_spec = Spec {
            name: "etcd",
            binary: binaries.path("etcd"),
            args: args(&[
                ("name", "tandem".into()),
                ("data-dir", p(&root.join("etcd"))),
                ("listen-client-urls", etcd_url.clone()),
                ("advertise-client-urls", etcd_url.clone()),
                ("listen-peer-urls", peer_url.clone()),
                ("initial-advertise-peer-urls", peer_url.clone()),
                ("initial-cluster", format!("tandem={peer_url}")),
                ("unsafe-no-fsync", "true".into()),
                ("auto-compaction-retention", "1".into()),
                ("quota-backend-bytes", (4u64 << 30).to_string()),
                ("log-level", "warn".into()),
            ]),
            log: logs.join("etcd.log"),
        };
        let mut etcd = Component::start(etcd_spec, &watchdog).await?;
        wait_listening(&mut etcd, etcd_port, options.ready_timeout).await?;

        // kube-apiserver
        let api_port = free_port()?;
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = root.join("kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            &server,
            &pki.ca_cert,
            "tandem-admin",
            &pki.admin,
        )?;
        let kcm_kubeconfig = root.join("kube-controller-manager.kubeconfig");
        write_kubeconfig(
            &kcm_kubeconfig,
            &server,
            &pki.ca_cert,
            "kube-controller-manager",
            &pki.controller_manager,
        )?;
        let scheduler_kubeconfig = root.join("kube-scheduler.kubeconfig");
        write_kubeconfig(
            &scheduler_kubeconfig,
            &server,
            &pki.ca_cert,
            "kube-scheduler",
            &pki.scheduler,
        )?;
        let mut apiserver_flags = vec![
            ("etcd-servers", etcd_url),
            ("bind-address", "127.0.0.1".into()),
            ("secure-port", api_port.to_string()),
            ("advertise-address", "127.0.0.1".into()),
            ("endpoint-reconciler-type", "none".into()),
            ("cert-dir", p(&root.join("apiserver-certs"))),
            ("tls-cert-file", p(&pki.serving.cert)),
            ("tls-private-key-file", p(&pki.serving.key)),
            ("client-ca-file", p(&pki.ca_cert)),
            (
                "service-account-issuer",
                "https://kubernetes.default.svc.cluster.local".into(),
            ),
            ("service-account-key-file", p(&pki.service_account_pub)),
            (
                "service-account-signing-key-file",
                p(&pki.service_account_key),
            ),
            ("service-cluster-ip-range", SERVICE_CIDR.into()),
            ("authorization-mode", "RBAC".into()),
            ("allow-privileged", "true".into()),
            ("requestheader-client-ca-file", p(&pki.front_proxy_ca_cert)),
            ("requestheader-allowed-names", FRONT_PROXY_CLIENT_CN.into()),
            ("requestheader-username-headers", "X-Remote-User".into()),
            ("requestheader-group-headers", "X-Remote-Group".into()),
            (
                "requestheader-extra-headers-prefix",
                "X-Remote-Extra-".into(),
            ),
            ("proxy-client-cert-file", p(&pki.front_proxy_client.cert)),
            ("proxy-client-key-file", p(&pki.front_proxy_client.key)),
            // ExternalName route to in-process backends needs this off (crate docs).
            ("enable-aggregator-routing", "false".into()),
            ("enable-priority-and-fairness", "false".into()),
            ("profiling", "false".into()),
        ];
        if !options.admission_plugins.is_empty() {
            apiserver_flags.push((
                "enable-admission-plugins",
                options.admission_plugins.join(","),
            ));
        }
        let audit_log = options.audit_log.then(|| logs.join("audit.log"));
        if let Some(log) = &audit_log {
            let policy = root.join("audit-policy.yaml");
            std::fs::write(&policy, AUDIT_POLICY).map_err(|e| Error::io("write", &policy, e))?;
            apiserver_flags.extend([
                ("audit-policy-file", p(&policy)),
                ("audit-log-path", p(log)),
                ("audit-log-format", "json".into()),
                // One file however long the run: the default rotates at 100 MB, which a scale
                // bench passes in minutes, and a reader keeping a byte offset would lose it.
                ("audit-log-maxsize", "1000000".into()),
                // Blocking: an event is on disk before its response is sent, so a test reads
                // every request made before it looked.
                ("audit-log-mode", "blocking".into()),
            ]);
        }
        let apiserver_spec = Spec {
            name: "kube-apiserver",
            binary: binaries.path("kube-apiserver"),
            args: args(&apiserver_flags),
            log: logs.join("kube-apiserver.log"),
        };
        let mut apiserver = Component::start(apiserver_spec, &watchdog).await?;
        let config = client_config(&kubeconfig).await?;
        let client = client_for(&config, None)?;
        wait_healthy(&mut apiserver, &client, "/readyz", options.ready_timeout).await?;

        // kube-controller-manager and kube-scheduler: flags shared by both.
        let component_flags = |kubeconfig: &Path, port: u16| {
            let mut flags = vec![
                ("kubeconfig", p(kubeconfig)),
                ("authentication-kubeconfig", p(kubeconfig)),
                ("authorization-kubeconfig", p(kubeconfig)),
                ("leader-elect", "false".to_owned()),
                ("bind-address", "127.0.0.1".to_owned()),
                ("secure-port", port.to_string()),
                ("tls-cert-file", p(&pki.serving.cert)),
                ("tls-private-key-file", p(&pki.serving.key)),
            ];
            if let Some((qps, burst)) = options.component_client_limit {
                flags.push(("kube-api-qps", qps.to_string()));
                flags.push(("kube-api-burst", burst.to_string()));
            }
            flags
        };
        let mut controller_manager = None;
        if options.controller_manager {
            let port = free_port()?;
            let mut flags = component_flags(&kcm_kubeconfig, port);
            flags.extend([
                ("controllers", "*".to_owned()),
                ("use-service-account-credentials", "false".to_owned()),
                ("root-ca-file", p(&pki.ca_cert)),
                (
                    "service-account-private-key-file",
                    p(&pki.service_account_key),
                ),
                ("cluster-signing-cert-file", p(&pki.ca_cert)),
                ("cluster-signing-key-file", p(&pki.ca_key)),
                (
                    "horizontal-pod-autoscaler-sync-period",
                    go_duration(options.hpa_sync_period),
                ),
                (
                    "horizontal-pod-autoscaler-downscale-stabilization",
                    go_duration(options.hpa_downscale_stabilization),
                ),
                (
                    "node-monitor-period",
                    go_duration(options.node_monitor_period),
                ),
                (
                    "node-monitor-grace-period",
                    go_duration(options.node_monitor_grace_period),
                ),
            ]);
            let spec = Spec {
                name: "kube-controller-manager",
                binary: binaries.path("kube-controller-manager"),
                args: args(&flags),
                log: logs.join("kube-controller-manager.log"),
            };
            controller_manager = Some((Component::start(spec, &watchdog).await?, port));
        }
        let mut scheduler = None;
        if options.scheduler {
            let port = free_port()?;
            let spec = Spec {
                name: "kube-scheduler",
                binary: binaries.path("kube-scheduler"),
                args: args(&component_flags(&scheduler_kubeconfig, port)),
                log: logs.join("kube-scheduler.log"),
            };
            scheduler = Some((Component::start(spec, &watchdog).await?, port));
        }
        // Both were started before either is awaited, so their start-ups overlap.
        for (component, port) in [controller_manager.as_mut(), scheduler.as_mut()]
            .into_iter()
            .flatten()
        {
            let health = client_for(&config, Some(&format!("https://127.0.0.1:{port}")))?;
            wait_healthy(component, &health, "/healthz", options.ready_timeout).await?;
        }

        let version = client
            .apiserver_version()
            .await
            .map(|info| info.git_version)
            .map_err(|e| Error::kube("read the apiserver version", e))?;
        let crds = match &options.crds_dir {
            Some(dir) => apply_crds(&client, dir).await?,
            None => 0,
        };
        let plane = ControlPlane {
            processes: Mutex::new(Processes {
                etcd,
                apiserver,
                controller_manager: controller_manager.map(|c| c.0),
                scheduler: scheduler.map(|c| c.0),
            }),
            watchdog,
            pki,
            config,
            kubeconfig,
            server,
            version,
            started_in: started.elapsed(),
            controller_manager: options.controller_manager,
            ready_timeout: options.ready_timeout,
            external_metrics: OnceCell::new(),
            audit_log,
            dir,
        };
        eprintln!(
            "tandem-testkit: control plane {} (binaries in {}) ready in {:.1}s at {}, {crds} CRDs; \
             KUBECONFIG={}",
            plane.version,
            binaries.dir().display(),
            plane.started_in.as_secs_f64(),
            plane.server,
            plane.kubeconfig.display(),
        );
        Ok(plane)
    }

    /// The control plane shared by every test of this test binary, started on first use with
    /// [`Options::default`]. Isolate tests with [`ControlPlane::namespace`]. It is never
    /// dropped; its processes and directory go when the test process exits (crate docs). A
    /// failed start is remembered: later callers get the same error instead of a retry.
    pub async fn shared() -> Result<&'static ControlPlane> {
        static SHARED: OnceCell<std::result::Result<ControlPlane, String>> = OnceCell::const_new();
        let result = SHARED
            .get_or_init(|| async {
                ControlPlane::start().await.map_err(|e| {
                    let mut text = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        text.push_str(": ");
                        text.push_str(&s.to_string());
                        source = s.source();
                    }
                    text
                })
            })
            .await;
        result
            .as_ref()
            .map_err(|e| Error::SharedStartFailed(e.clone()))
    }

    /// A new admin client (O=system:masters) bound to the calling tokio runtime. Make one per
    /// test: a client must not outlive the runtime it was made on.
    pub fn client(&self) -> Result<Client> {
        client_for(&self.config, None)
    }

    /// The admin client configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The admin kubeconfig file (paths inside point into [`ControlPlane::dir`]).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server URL, `https://127.0.0.1:<port>`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The API server's `gitVersion`, e.g. `v1.36.3`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The temp directory holding PKI, etcd data, kubeconfigs and `logs/<component>.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file of a component (`etcd`, `kube-apiserver`, …).
    pub fn log_path(&self, component: &str) -> PathBuf {
        self.dir
            .path()
            .join("logs")
            .join(format!("{component}.log"))
    }

    /// kube-apiserver's audit log (JSON lines, `audit.k8s.io/v1` `Event`s), when started with
    /// [`Options::audit_log`].
    pub fn audit_log_path(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// The generated PKI (for issuing backend certificates).
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Wall time `start` took, PKI to CRDs Established.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Every process this control plane started and keeps running, by component name
    /// (`etcd`, `kube-apiserver`, …, and the `watchdog` `sh`), so a tool can find them again
    /// after the process that started them died without cleaning up (`tandem up --down`).
    pub async fn processes(&self) -> Vec<(&'static str, u32)> {
        let processes = self.processes.lock().await;
        processes
            .all()
            .map(|c| (c.spec.name, c.pid()))
            .chain([("watchdog", self.watchdog.pid())])
            .collect()
    }

    /// Current and peak RSS of every control-plane process.
    pub async fn memory(&self) -> MemoryUsage {
        let processes = self.processes.lock().await;
        MemoryUsage {
            components: processes
                .all()
                .map(|c| {
                    let (rss, peak) = rss_of(c.pid());
                    (c.spec.name, rss, peak)
                })
                .collect(),
        }
    }

    /// Creates a namespace named `<prefix>-<n>` (unique in this process) and, when the
    /// controller manager runs, waits until its `default` ServiceAccount exists so pods can be
    /// created in it right away. Returns the name.
    pub async fn namespace(&self, prefix: &str) -> Result<String> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut clean: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        clean.truncate(50);
        let clean = clean.trim_matches('-');
        let clean = if clean.is_empty() { "test" } else { clean };
        let name = format!("{clean}-{n}");
        let client = self.client()?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("tandem.dev/testkit".to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|e| Error::kube(format!("create namespace {name}"), e))?;
        if self.controller_manager {
            let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
            crate::wait::wait_for(
                &format!("ServiceAccount {name}/default"),
                Duration::from_secs(30),
                || async { accounts.get_opt("default").await.ok().flatten() },
            )
            .await?;
        }
        Ok(name)
    }

    /// Kills kube-apiserver (SIGKILL, like a crash) and starts it again with the same flags and
    /// port, then waits for `/readyz`. etcd and the other components keep running.
    pub async fn restart_apiserver(&self) -> Result<()> {
        let mut processes = self.processes.lock().await;
        let spec = processes.apiserver.spec.clone();
        processes.apiserver.kill();
        let mut last = None;
        // The port is free again at once (Go listeners set SO_REUSEADDR); retry anyway in case
        // the new process loses a race for it.
        for _ in 0..3 {
            let mut apiserver = Component::start(spec.clone(), &self.watchdog).await?;
            match wait_healthy(
                &mut apiserver,
                &self.client()?,
                "/readyz",
                self.ready_timeout,
            )
            .await
            {
                Ok(()) => {
                    processes.apiserver = apiserver;
                    return Ok(());
                }
                Err(err @ Error::Exited { .. }) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or(Error::Timeout {
            what: "kube-apiserver restart".into(),
            after: self.ready_timeout,
        }))
    }

    /// Kills etcd (SIGKILL, like a crash) and starts it again with the same flags, port and
    /// data directory, then waits until it listens and kube-apiserver, which kept running and
    /// reconnects on its own, answers `/readyz` again. Nothing written before the kill is lost
    /// (the process dies, the page cache does not), so resource versions continue where they
    /// were and watches can resume.
    pub async fn restart_etcd(&self) -> Result<()> {
        self.restart_etcd_after(Duration::ZERO).await
    }

    /// [`ControlPlane::restart_etcd`], etcd staying down for `down` before it starts again:
    /// an outage kube-apiserver answers with errors meanwhile.
    pub async fn restart_etcd_after(&self, down: Duration) -> Result<()> {
        let mut processes = self.processes.lock().await;
        let spec = processes.etcd.spec.clone();
        let port = spec
            .args
            .iter()
            .find_map(|a| a.strip_prefix("--listen-client-urls="))
            .and_then(|url| url.rsplit(':').next())
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or_else(|| Error::Spawn {
                component: spec.name.to_owned(),
                source: std::io::Error::other("no --listen-client-urls port in etcd's flags"),
            })?;
        processes.etcd.kill();
        tokio::time::sleep(down).await;
        let mut last = None;
        // As in `restart_apiserver`: the ports are free again at once; retry in case the new
        // process loses a race for one.
        for _ in 0..3 {
            let mut etcd = Component::start(spec.clone(), &self.watchdog).await?;
            match wait_listening(&mut etcd, port, self.ready_timeout).await {
                Ok(()) => {
                    processes.etcd = etcd;
                    return wait_healthy(
                        &mut processes.apiserver,
                        &self.client()?,
                        "/readyz",
                        self.ready_timeout,
                    )
                    .await;
                }
                Err(err @ Error::Exited { .. }) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or(Error::Timeout {
            what: "etcd restart".into(),
            after: self.ready_timeout,
        }))
    }

    /// The in-process external-metrics backend of this control plane, started and registered
    /// as `v1beta1.external.metrics.k8s.io` on first use (then awaited until Available).
    pub async fn external_metrics(&self) -> Result<&ExternalMetrics> {
        self.external_metrics
            .get_or_try_init(|| async {
                let client = self.client()?;
                ExternalMetrics::start(&client, &self.pki, self.ready_timeout).await
            })
            .await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let processes = self.processes.get_mut();
        for component in [
            processes.scheduler.as_mut(),
            processes.controller_manager.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            component.kill();
        }
        processes.apiserver.kill();
        processes.etcd.kill();
        self.watchdog.release();
        // `dir` (a TempDir) is removed when the fields drop, after this.
    }
}

/// Applies every CRD in `dir` with server-side apply and waits until each is Established.
/// Returns how many were applied; a missing or empty directory is not an error.
pub async fn apply_crds(client: &Client, dir: &Path) -> Result<usize> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    files.sort();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for file in &files {
        for doc in crate::manifest::read_documents(file)? {
            if doc.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
                eprintln!(
                    "tandem-testkit: {} holds a non-CRD document; skipped",
                    file.display()
                );
                continue;
            }
            let crd: CustomResourceDefinition =
                serde_json::from_value(doc).map_err(|e| Error::Manifest {
                    path: file.clone(),
                    reason: e.to_string(),
                })?;
            let name = crd.metadata.name.clone().ok_or_else(|| Error::Manifest {
                path: file.clone(),
                reason: "CustomResourceDefinition without metadata.name".into(),
            })?;
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .map_err(|e| Error::kube(format!("apply CRD {name} from {}", file.display()), e))?;
            names.push(name);
        }
    }
    for name in &names {
        crate::wait::wait_for_object(&api, name, Duration::from_secs(60), is_crd_established())
            .await?;
    }
    Ok(names.len())
}

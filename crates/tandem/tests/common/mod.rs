//! Helpers shared by the test binaries that run the `tandem` binary.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A `tandem run` child process, killed when dropped; its stderr goes to a file we can read.
pub struct Replica {
    pub id: String,
    pub child: Child,
    pub probes: u16,
    pub metrics: u16,
    pub log: std::path::PathBuf,
}

impl Replica {
    pub fn start(
        id: &str,
        kubeconfig: &Path,
        namespace: &str,
        dir: &Path,
        extra: &[&str],
    ) -> Replica {
        Self::start_with_env(id, kubeconfig, namespace, dir, extra, &[])
    }

    /// [`Replica::start`] with extra environment variables (the aws provider's credentials).
    pub fn start_with_env(
        id: &str,
        kubeconfig: &Path,
        namespace: &str,
        dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Replica {
        let (probes, metrics) = (free_port(), free_port());
        let log = dir.join(format!("tandem-run-{id}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        // Under `setpriv --pdeathsig KILL`, as testkit starts the control plane: a test binary
        // killed mid-run must not leave a `tandem run` behind holding memory and retrying.
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", env!("CARGO_BIN_EXE_tandem")])
            .args(["run", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--bind-address", "127.0.0.1", "--identity", id])
            .args(["--leader-election-namespace", namespace])
            .args(["--metrics-port", &metrics.to_string()])
            .args(["--health-probe-port", &probes.to_string()])
            .args([
                "--lease-duration",
                "4s",
                "--renew-deadline",
                "3s",
                "--retry-period",
                "500ms",
            ])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn tandem run");
        Replica {
            id: id.to_owned(),
            child,
            probes,
            metrics,
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn led(&self) -> bool {
        self.log().contains("leading; starting the node layer")
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a serving certificate for the external metrics API (for the names its APIService's
/// Service resolves to, signed by the control plane's CA) into `<control plane dir>/<dir>`
/// and returns that directory, for `--metrics-server-cert-dir`.
pub fn metrics_server_certs(cp: &tandem_testkit::ControlPlane, dir: &str) -> std::path::PathBuf {
    let names = tandem_testkit::external_metrics_serving_names();
    let cert = cp
        .pki()
        .issue_serving(&names.iter().map(String::as_str).collect::<Vec<_>>())
        .expect("serving cert");
    let certs = cp.dir().join(dir);
    std::fs::create_dir_all(&certs).expect("cert dir");
    std::fs::write(certs.join("tls.crt"), &cert.cert_pem).expect("cert");
    std::fs::write(certs.join("tls.key"), &cert.key_pem).expect("key");
    certs
}

/// A small deterministic generator: fault and kill moments must replay from a seed.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value in `0..bound`.
    pub fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET path` on 127.0.0.1:port → (status code, body); None when nothing answers.
pub async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

/// Creates an empty KWOKNodeClass: the node class every kwok NodePool of these tests refers to.
pub async fn kwok_class(client: &kube::Client, name: &str) {
    let class: tandem_api::kwok::KWOKNodeClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass",
        "metadata": {"name": name}, "spec": {},
    }))
    .expect("class");
    kube::Api::<tandem_api::kwok::KWOKNodeClass>::all(client.clone())
        .create(&kube::api::PostParams::default(), &class)
        .await
        .expect("create class");
}

/// A Pod object that never runs (a scheduling gate holds it): the pod a `tandem run` replica
/// would run in, for what it writes on its own pod.
pub async fn gated_pod(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> kube::Api<k8s_openapi::api::core::v1::Pod> {
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), ns);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "tandem"}},
        "spec": {
            "schedulingGates": [{"name": "tandem.dev/test-only"}],
            "containers": [{"name": "controller", "image": "registry.invalid/tandem:test"}],
        },
    }))
    .expect("pod");
    api.create(&kube::api::PostParams::default(), &pod)
        .await
        .expect("create pod");
    api
}

/// Waits until pod `name` carries `tandem.dev/external-metrics: "true"` (`serving`) or not.
pub async fn wait_serving_label(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    serving: bool,
) -> tandem_testkit::Result<()> {
    tandem_testkit::wait_for(
        "the external metrics label",
        std::time::Duration::from_secs(60),
        || async {
            let pod = pods.get(name).await.ok()?;
            let labelled = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("tandem.dev/external-metrics"))
                .is_some_and(|v| v == "true");
            (labelled == serving).then_some(())
        },
    )
    .await
    .map(|_| ())
}

/// Resident set (MiB) and CPU time used so far (user + system, seconds) of a process, from
/// /proc: what the scale reports sample. Zeros once the process is gone.
pub fn process_figures(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let cpu = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (ticks(11) + ticks(12)) / 100.0
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

/// The processes a scale bench reports the CPU of beside Tandem's: every control-plane
/// component (not its watchdog shell) and the bench itself.
pub async fn cpu_watched(cp: &tandem_testkit::ControlPlane) -> Vec<(&'static str, u32)> {
    let mut watched = cp.processes().await;
    watched.retain(|(name, _)| *name != "watchdog");
    watched.push(("bench", std::process::id()));
    watched
}

/// CPU seconds of named processes and of the whole machine at the start of a phase; the
/// difference at its end says where the machine's cores went.
pub struct CpuClock {
    processes: Vec<(&'static str, u32, f64)>,
    machine_busy: f64,
}

/// Average cores over a phase, per named process and for the whole machine.
#[derive(Debug)]
pub struct CpuShares {
    pub processes: Vec<(&'static str, f64)>,
    pub machine_busy: f64,
    pub machine_cores: usize,
}

impl CpuClock {
    pub fn start(processes: &[(&'static str, u32)]) -> CpuClock {
        CpuClock {
            processes: processes
                .iter()
                .map(|&(name, pid)| (name, pid, process_figures(pid).1))
                .collect(),
            machine_busy: machine_busy_seconds(),
        }
    }

    pub fn shares(&self, wall: f64) -> CpuShares {
        CpuShares {
            processes: self
                .processes
                .iter()
                .map(|&(name, pid, at_start)| (name, (process_figures(pid).1 - at_start) / wall))
                .collect(),
            machine_busy: (machine_busy_seconds() - self.machine_busy) / wall,
            machine_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl std::fmt::Display for CpuShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "machine busy {:.2} of {} cores:",
            self.machine_busy, self.machine_cores
        )?;
        for (name, cores) in &self.processes {
            write!(f, " {name} {cores:.2}")?;
        }
        Ok(())
    }
}

/// Seconds every CPU of the machine spent not idle (`/proc/stat`'s first line, all but idle
/// and iowait), summed over CPUs.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    (ticks.iter().take(8).sum::<f64>() - idle) / 100.0
}

/// The `p` quantile (0–1) of sorted values, nearest rank; 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0)
}

/// Sum of the values of every series of `metric` (a name followed by `{` or a space) in
/// `tandem run`'s `/metrics` on `port` whose line contains `with`.
pub async fn metric_sum(port: u16, metric: &str, with: &str) -> f64 {
    metric_values(port, metric, with).await.iter().sum()
}

/// The values of those series.
pub async fn metric_values(port: u16, metric: &str, with: &str) -> Vec<f64> {
    let Some((_, text)) = get(port, "/metrics").await else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(with))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .collect()
}

/// Names of the Nodes of NodePool `pool` (its `karpenter.sh/nodepool` label); empty when the
/// list fails, as a sample taken while the API server is busy.
pub async fn pool_node_names(
    nodes: &kube::Api<k8s_openapi::api::core::v1::Node>,
    pool: &str,
) -> std::collections::BTreeSet<String> {
    let params = kube::api::ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}"));
    nodes
        .list_metadata(&params)
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect()
        })
        .unwrap_or_default()
}

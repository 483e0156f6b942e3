//! Data servers for integration tests, one file per server: Prometheus, RabbitMQ (with the
//! management plugin), Redis, PostgreSQL, Kafka (KRaft, from Maven Central's jars), moto
//! (SQS), plus a tiny HTTP fixture that plays an exporter or a metrics API.
//!
//! Every server:
//! - listens on 127.0.0.1 only, on free ports picked at start, with its state in a fresh
//!   temp dir (never reused: Prometheus and RabbitMQ would answer with old data);
//! - is waited for with a bounded deadline that also notices a server that died;
//! - runs under `setpriv --pdeathsig KILL` from the testkit's spawner thread and is
//!   registered with a watchdog, exactly like the control plane (see `process.rs`), so it
//!   dies with the test process even on SIGKILL; `Drop` kills it and removes the temp dir.
//!
//! A missing binary is an error that says to run `hack/services.sh`: tests that need a
//! server fail, loudly, rather than skip.
//!
//! Recipes follow `shared/reference/services.md` (verified on this machine kind).

mod http_fixture;
mod kafka;
mod moto;
mod postgres;
mod prometheus;
mod rabbitmq;
mod redis;

pub use http_fixture::{Fault, HttpFixture};
pub use kafka::{
    KAFKA_VERSION, Kafka, KafkaUser, LIBS_ENV as KAFKA_LIBS_ENV, libs_dir as kafka_libs_dir,
};
pub use moto::{EKS_AL2023_AMD64_AMI, EKS_AL2023_ARM64_AMI, EksAccount, Moto};
pub use postgres::Postgres;
pub use prometheus::Prometheus;
pub use rabbitmq::RabbitMq;
pub use redis::Redis;

use crate::process::{Component, Spec, Watchdog, log_tail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a test server could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The server's binary is not installed.
    #[error("{server}: {binary} not found; install the test servers with `hack/services.sh`")]
    Missing {
        /// Which server.
        server: &'static str,
        /// The binary looked for.
        binary: String,
    },
    /// Starting a process failed.
    #[error("{server}: failed to start")]
    Start {
        /// Which server.
        server: &'static str,
        /// Why.
        #[source]
        source: crate::Error,
    },
    /// The server did not become ready in time, or exited.
    #[error("{server}: not ready after {waited:?} ({why}); last lines of {log}:\n{tail}")]
    NotReady {
        /// Which server.
        server: &'static str,
        /// How long we waited.
        waited: Duration,
        /// What was observed.
        why: String,
        /// Its log.
        log: PathBuf,
        /// The log's tail.
        tail: String,
    },
    /// A file operation or helper command failed.
    #[error("{server}: {action} failed: {detail}")]
    Setup {
        /// Which server.
        server: &'static str,
        /// What was being done.
        action: String,
        /// What happened.
        detail: String,
    },
}

/// `Result` with [`ServiceError`].
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// A free TCP port on 127.0.0.1 (the kernel's pick; racy by nature, acceptable in tests).
pub(crate) fn free_port(server: &'static str) -> Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| setup(server, "pick a free port", e))
}

pub(crate) fn setup(
    server: &'static str,
    action: impl Into<String>,
    detail: impl std::fmt::Display,
) -> ServiceError {
    ServiceError::Setup {
        server,
        action: action.into(),
        detail: detail.to_string(),
    }
}

/// The path of `binary` if it is executable, looked up on PATH unless absolute.
pub(crate) fn find_binary(server: &'static str, binary: &str) -> Result<PathBuf> {
    let missing = || ServiceError::Missing {
        server,
        binary: binary.to_owned(),
    };
    let p = Path::new(binary);
    if p.is_absolute() {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(missing())
        };
    }
    let path = std::env::var_os("PATH").ok_or_else(missing)?;
    std::env::split_paths(&path)
        .map(|d| d.join(binary))
        .find(|c| c.is_file())
        .ok_or_else(missing)
}

/// The temp dir, watchdog and processes of one server.
pub(crate) struct Instance {
    pub(crate) server: &'static str,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) watchdog: Watchdog,
    pub(crate) components: Vec<Component>,
    pub(crate) started: Instant,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("server", &self.server)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Instance {
    pub(crate) async fn new(server: &'static str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tandem-{server}-"))
            .tempdir()
            .map_err(|e| setup(server, "create a temp dir", e))?;
        let watchdog = Watchdog::start(dir.path())
            .await
            .map_err(|source| ServiceError::Start { server, source })?;
        Ok(Instance {
            server,
            dir,
            watchdog,
            components: Vec::new(),
            started: Instant::now(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// Starts `binary args` with `env`, logging to `<name>.log`; returns its index.
    pub(crate) async fn spawn(
        &mut self,
        name: &'static str,
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<usize> {
        // `env` execs, so the pid stays the server's and the watchdog's marker (the temp
        // dir on the command line) is present when the args mention it.
        let mut all: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        all.push(binary.display().to_string());
        all.extend(args.iter().cloned());
        let spec = Spec {
            name,
            binary: PathBuf::from("env"),
            args: all,
            log: self.log(name),
        };
        let c = Component::start(spec, &self.watchdog)
            .await
            .map_err(|source| ServiceError::Start {
                server: self.server,
                source,
            })?;
        self.components.push(c);
        Ok(self.components.len() - 1)
    }

    /// Polls `ready` every 100 ms until it is true, the process `component` exits, or
    /// `timeout` passes.
    pub(crate) async fn wait_ready<F, Fut>(
        &mut self,
        component: usize,
        timeout: Duration,
        mut ready: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        let log = self.components[component].spec.log.clone();
        loop {
            if let Err(e) = self.components[component].check_running() {
                return Err(ServiceError::NotReady {
                    server: self.server,
                    waited: start.elapsed(),
                    why: format!("exited: {e}"),
                    tail: log_tail(&log, 30),
                    log,
                });
            }
            if tokio::time::timeout(Duration::from_secs(5), ready())
                .await
                .unwrap_or(false)
            {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(ServiceError::NotReady {
                    server: self.server,
                    waited: start.elapsed(),
                    why: "deadline passed".into(),
                    tail: log_tail(&log, 30),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Prints how long the start took (the figure the suite's report quotes).
    pub(crate) fn report(&self, detail: &str) {
        eprintln!(
            "tandem-testkit: {} ready in {:.2?}{detail}",
            self.server,
            self.started.elapsed()
        );
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        for c in self.components.iter_mut().rev() {
            c.kill();
        }
        self.watchdog.release();
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub(crate) async fn listening(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// A minimal HTTP GET on 127.0.0.1 returning (status, body); for readiness checks only.
pub(crate) async fn http_get(port: u16, path: &str, basic: Option<&str>) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let auth = basic
        .map(|b| format!("Authorization: Basic {b}\r\n"))
        .unwrap_or_default();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Runs a helper command to completion, bounded by `timeout`; returns stdout.
pub(crate) async fn run(
    server: &'static str,
    what: &str,
    cmd: &mut tokio::process::Command,
    timeout: Duration,
) -> Result<String> {
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| setup(server, what, format!("timed out after {timeout:?}")))?
        .map_err(|e| setup(server, what, e))?;
    if !out.status.success() {
        return Err(setup(
            server,
            what,
            format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

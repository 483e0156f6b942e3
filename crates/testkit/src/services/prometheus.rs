//! Prometheus 2.x (Debian `prometheus`) scraping given targets every second.

use super::{Instance, Result, find_binary, free_port, http_get, run, setup};
use std::net::SocketAddr;
use std::time::Duration;

const SERVER: &str = "prometheus";

/// A running Prometheus on 127.0.0.1.
#[derive(Debug)]
pub struct Prometheus {
    instance: Instance,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`/metrics`, every 1 s) and waits for `/-/ready`
    /// (bounded, 30 s). The first scrape lands ~5 s after start: use
    /// [`Prometheus::wait_for_sample`] before querying.
    pub async fn start(targets: &[SocketAddr]) -> Result<Self> {
        let instance = Instance::new(SERVER).await?;
        Self::start_in(instance, targets).await
    }

    /// Starts Prometheus on a TSDB that already holds `history`: OpenMetrics text with
    /// timestamps (seconds), ending in `# EOF`, turned into blocks by Debian's `promtool tsdb
    /// create-blocks-from openmetrics` (the backfill users run). How a test gets hours of
    /// metrics history in seconds, queried through the real server.
    pub async fn start_with_history(history: &str) -> Result<Self> {
        let promtool = find_binary(SERVER, "promtool")?;
        let instance = Instance::new(SERVER).await?;
        let input = instance.path().join("history.om");
        std::fs::write(&input, history).map_err(|e| setup(SERVER, "write history.om", e))?;
        run(
            SERVER,
            "promtool tsdb create-blocks-from openmetrics",
            tokio::process::Command::new(promtool)
                .arg("tsdb")
                .arg("create-blocks-from")
                .arg("openmetrics")
                .arg(&input)
                .arg(instance.path().join("data")),
            Duration::from_secs(60),
        )
        .await?;
        Self::start_in(instance, &[]).await
    }

    async fn start_in(mut instance: Instance, targets: &[SocketAddr]) -> Result<Self> {
        let binary = find_binary(SERVER, "prometheus")?;
        let port = free_port(SERVER)?;
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: test\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: [{list}]\n"
        );
        let config_path = instance.path().join("prometheus.yml");
        std::fs::write(&config_path, config)
            .map_err(|e| setup(SERVER, "write prometheus.yml", e))?;
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!(
                "--storage.tsdb.path={}",
                instance.path().join("data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        let c = instance.spawn(SERVER, &binary, &args, &[]).await?;
        instance
            .wait_ready(c, Duration::from_secs(30), || async move {
                matches!(http_get(port, "/-/ready", None).await, Some((200, _)))
            })
            .await?;
        instance.report("");
        Ok(Prometheus { instance, port })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits (bounded) until `metric` has a sample, i.e. the first scrape is stored.
    pub async fn wait_for_sample(&mut self, metric: &str, timeout: Duration) -> Result<()> {
        let port = self.port;
        let path = format!("/api/v1/query?query={metric}");
        let start = std::time::Instant::now();
        self.instance
            .wait_ready(0, timeout, || {
                let path = path.clone();
                async move {
                    matches!(http_get(port, &path, None).await, Some((200, body)) if body.contains("\"value\""))
                }
            })
            .await?;
        eprintln!(
            "tandem-testkit: prometheus first sample of {metric} after {:.2?}",
            start.elapsed()
        );
        Ok(())
    }
}

//! Redis (Debian `redis-server`), no persistence, keyspace notifications for lists and
//! streams on (what Tandem's push watch listens to), optionally with a password.

use super::{Instance, Result, find_binary, free_port, listening};
use std::time::Duration;

const SERVER: &str = "redis";

/// A running Redis on 127.0.0.1.
#[derive(Debug)]
pub struct Redis {
    instance: Instance,
    port: u16,
}

impl Redis {
    /// Starts Redis; with `password`, clients must `AUTH` (user `default`).
    pub async fn start(password: Option<&str>) -> Result<Self> {
        let binary = find_binary(SERVER, "redis-server")?;
        let mut instance = Instance::new(SERVER).await?;
        let port = free_port(SERVER)?;
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--notify-keyspace-events",
            "Klt",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(["--dir".to_owned(), instance.path().display().to_string()]);
        if let Some(pw) = password {
            args.extend(["--requirepass".to_owned(), pw.to_owned()]);
        }
        let c = instance.spawn(SERVER, &binary, &args, &[]).await?;
        instance
            .wait_ready(c, Duration::from_secs(20), || listening(port))
            .await?;
        instance.report("");
        Ok(Redis { instance, port })
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server now (to test a source that is down).
    pub fn stop(&mut self) {
        for c in &mut self.instance.components {
            c.kill();
        }
    }
}

//! RabbitMQ (Debian `rabbitmq-server`) with the management plugin: AMQP and the HTTP API on
//! free loopback ports, its own epmd, all state in the temp dir (recipe: services.md §2).
//!
//! `rabbitmq-server` is a script that starts the Erlang VM as a child; killing the script
//! alone would orphan the VM, so the VM's pid (from the pid file) is registered with the
//! watchdog and killed on drop as well.

use super::{Instance, Result, find_binary, free_port, http_get, run, setup};
use std::path::PathBuf;
use std::time::Duration;

const SERVER: &str = "rabbitmq";
const BIN: &str = "/usr/lib/rabbitmq/bin";
const GUEST_BASIC: &str = "Z3Vlc3Q6Z3Vlc3Q="; // guest:guest

/// A running RabbitMQ on 127.0.0.1.
#[derive(Debug)]
pub struct RabbitMq {
    instance: Instance,
    env: Vec<(String, String)>,
    amqp_port: u16,
    http_port: u16,
    beam_pid: Option<u32>,
}

impl RabbitMq {
    /// Starts epmd and the broker and waits until both `await_startup` and the management
    /// API answer (bounded, 90 s; a cold start takes 5–8 s).
    pub async fn start() -> Result<Self> {
        let server = find_binary(SERVER, &format!("{BIN}/rabbitmq-server"))?;
        let epmd = find_binary(SERVER, "epmd")?;
        let mut instance = Instance::new(SERVER).await?;
        let dir = instance.path().to_path_buf();
        let (amqp_port, http_port, dist_port, epmd_port) = (
            free_port(SERVER)?,
            free_port(SERVER)?,
            free_port(SERVER)?,
            free_port(SERVER)?,
        );
        let ctl_min = free_port(SERVER)?;
        let p = |name: &str| dir.join(name).display().to_string();
        let env: Vec<(String, String)> = [
            ("HOME", p("")),
            ("RABBITMQ_NODENAME", "rabbit@localhost".to_owned()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
            ("RABBITMQ_NODE_PORT", amqp_port.to_string()),
            ("RABBITMQ_DIST_PORT", dist_port.to_string()),
            ("RABBITMQ_CTL_DIST_PORT_MIN", ctl_min.to_string()),
            (
                "RABBITMQ_CTL_DIST_PORT_MAX",
                (ctl_min.saturating_add(10)).to_string(),
            ),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".to_owned()),
            ("ERL_EPMD_PORT", epmd_port.to_string()),
            ("RABBITMQ_CONF_ENV_FILE", p("rabbitmq-env.conf")),
            ("RABBITMQ_CONFIG_FILE", p("rabbitmq.conf")),
            ("RABBITMQ_ADVANCED_CONFIG_FILE", p("advanced.config")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", p("enabled_plugins")),
            ("RABBITMQ_MNESIA_BASE", p("mnesia")),
            ("RABBITMQ_LOG_BASE", p("log")),
            ("RABBITMQ_PID_FILE", p("rabbit.pid")),
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
            ),
            (
                "RABBITMQ_CTL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text)
                .map_err(|e| setup(SERVER, format!("write {name}"), e))
        };
        write("rabbitmq-env.conf", String::new())?;
        write("enabled_plugins", "[rabbitmq_management].\n".into())?;
        write(
            "rabbitmq.conf",
            format!(
                "listeners.tcp.default = 127.0.0.1:{amqp_port}\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {http_port}\ncollect_statistics_interval = 1000\nlog.console = false\nlog.file.level = info\n"
            ),
        )?;
        // Fresher HTTP counts (0.7–1.9 s instead of ~5 s; services.md §2).
        write(
            "advanced.config",
            "[{rabbitmq_management_agent,\n  [{sample_retention_policies,\n    [{global, [{605, 1}, {3660, 60}]}, {basic, [{605, 1}, {3600, 60}]}, {detailed, [{605, 1}]}]}]}].\n".into(),
        )?;
        // Our own epmd, with a known pid (else the broker daemonises one we cannot stop).
        let e = instance
            .spawn(
                "epmd",
                &epmd,
                &[
                    "-address".into(),
                    "127.0.0.1".into(),
                    "-port".into(),
                    epmd_port.to_string(),
                ],
                &env,
            )
            .await?;
        instance
            .wait_ready(e, Duration::from_secs(10), || super::listening(epmd_port))
            .await?;
        let c = instance.spawn(SERVER, &server, &[], &env).await?;
        let mut me = RabbitMq {
            instance,
            env,
            amqp_port,
            http_port,
            beam_pid: None,
        };
        me.instance
            .wait_ready(c, Duration::from_secs(90), || async move {
                matches!(
                    http_get(http_port, "/api/overview", Some(GUEST_BASIC)).await,
                    Some((200, _))
                )
            })
            .await?;
        me.beam_pid = std::fs::read_to_string(dir.join("rabbit.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let Some(pid) = me.beam_pid {
            me.instance.watchdog.watch(pid);
        }
        me.ctl(&["await_startup"]).await?;
        me.instance.report("");
        Ok(me)
    }

    /// `amqp://<user>:<password>@127.0.0.1:<port>/<vhost>` (vhost percent-encoded).
    pub fn amqp_url(&self, user: &str, password: &str, vhost: &str) -> String {
        format!(
            "amqp://{user}:{password}@127.0.0.1:{}/{}",
            self.amqp_port,
            encode(vhost)
        )
    }

    /// `http://<user>:<password>@127.0.0.1:<port>/<vhost>`, the management API.
    pub fn http_url(&self, user: &str, password: &str, vhost: &str) -> String {
        format!(
            "http://{user}:{password}@127.0.0.1:{}/{}",
            self.http_port,
            encode(vhost)
        )
    }

    /// The AMQP port.
    pub fn amqp_port(&self) -> u16 {
        self.amqp_port
    }

    /// The management API port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Runs `rabbitmqctl <args>` with this node's environment (bounded, 60 s).
    pub async fn ctl(&self, args: &[&str]) -> Result<String> {
        let mut cmd = tokio::process::Command::new(PathBuf::from(BIN).join("rabbitmqctl"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        run(
            SERVER,
            &format!("rabbitmqctl {}", args.join(" ")),
            &mut cmd,
            Duration::from_secs(60),
        )
        .await
    }

    /// Creates `vhost` and a user with full rights on it and the management tag.
    pub async fn add_user_and_vhost(&self, user: &str, password: &str, vhost: &str) -> Result<()> {
        self.ctl(&["-q", "add_vhost", vhost]).await?;
        self.ctl(&["-q", "add_user", user, password]).await?;
        self.ctl(&["-q", "set_user_tags", user, "management"])
            .await?;
        self.ctl(&["-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"])
            .await?;
        Ok(())
    }

    /// Stops the broker now (to test a source that is down).
    pub fn stop(&mut self) {
        self.kill_beam();
        for c in &mut self.instance.components {
            c.kill();
        }
    }

    fn kill_beam(&mut self) {
        if let Some(pid) = self.beam_pid.take() {
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.kill_beam();
    }
}

fn encode(vhost: &str) -> String {
    vhost
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

//! PostgreSQL 15 (Debian `postgresql`), initialised per test with password authentication
//! over TCP (scram-sha-256), so a wrong password is refused as in production.
//!
//! `initdb` and the server refuse to run as root; both run as the `postgres` user through
//! `setpriv`, which also re-arms the parent-death signal after the uid change (a credential
//! change clears it).

use super::{Instance, Result, find_binary, free_port, listening, run, setup};
use std::path::PathBuf;
use std::time::Duration;

const SERVER: &str = "postgresql";
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// A running PostgreSQL on 127.0.0.1.
#[derive(Debug)]
pub struct Postgres {
    instance: Instance,
    port: u16,
    password: String,
}

impl Postgres {
    /// Initialises a cluster whose superuser `postgres` has `password`, starts it, and waits
    /// until it accepts connections (bounded, 30 s).
    pub async fn start(password: &str) -> Result<Self> {
        let bin = |b: &str| find_binary(SERVER, &format!("{BIN_DIR}/{b}"));
        let (initdb, postgres) = (bin("initdb")?, bin("postgres")?);
        let mut instance = Instance::new(SERVER).await?;
        let dir = instance.path().to_path_buf();
        let chown = |p: &PathBuf| {
            std::process::Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(p)
                .status()
                .map_err(|e| setup(SERVER, "chown the temp dir", e))
        };
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, password)
            .map_err(|e| setup(SERVER, "write the password file", e))?;
        chown(&dir)?;
        let data = dir.join("data");
        run(
            SERVER,
            "initdb",
            tokio::process::Command::new("setpriv")
                .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(&initdb)
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", pwfile.display())),
            Duration::from_secs(60),
        )
        .await?;
        let port = free_port(SERVER)?;
        let args = vec![
            "--reuid=postgres".into(),
            "--regid=postgres".into(),
            "--init-groups".into(),
            "--pdeathsig".into(),
            "KILL".into(),
            postgres.display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            dir.display().to_string(),
            "-c".into(),
            "fsync=off".into(),
        ];
        // The log file must be writable by postgres too: create it first, then chown.
        std::fs::write(instance.log(SERVER), "").map_err(|e| setup(SERVER, "create the log", e))?;
        chown(&instance.log(SERVER))?;
        let setpriv = find_binary(SERVER, "setpriv")?;
        let c = instance.spawn(SERVER, &setpriv, &args, &[]).await?;
        instance
            .wait_ready(c, Duration::from_secs(30), || listening(port))
            .await?;
        // Listening comes a moment before accepting logins; probe with pg_isready.
        let isready = bin("pg_isready")?;
        instance
            .wait_ready(c, Duration::from_secs(30), || {
                let isready = isready.clone();
                async move {
                    tokio::process::Command::new(&isready)
                        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                        .output()
                        .await
                        .is_ok_and(|o| o.status.success())
                }
            })
            .await?;
        instance.report("");
        Ok(Postgres {
            instance,
            port,
            password: password.to_owned(),
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres:<password>@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// Stops the server now (to test a source that is down).
    pub fn stop(&mut self) {
        for c in &mut self.instance.components {
            c.kill();
        }
    }

    /// Runs SQL as the superuser through `psql` (bounded, 30 s); returns its output.
    pub async fn psql(&self, db: &str, sql: &str) -> Result<String> {
        run(
            SERVER,
            "psql",
            tokio::process::Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    db,
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-tAc",
                    sql,
                ])
                .env("PGPASSWORD", &self.password),
            Duration::from_secs(30),
        )
        .await
    }
}

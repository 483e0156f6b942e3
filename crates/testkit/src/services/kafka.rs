//! Apache Kafka in KRaft mode (one JVM that is both broker and controller), from the jars
//! `hack/kafka/fetch.sh` copies out of Maven Central into `$TANDEM_CACHE/kafka/<version>/libs`
//! (Apache's download mirrors are not reachable from CI; Maven Central is).
//!
//! Listeners, all on 127.0.0.1 with free ports: `PLAINTEXT` for clients, `CONTROLLER` for the
//! quorum, when a user is asked for `SASL_PLAINTEXT` with the PLAIN mechanism and that one
//! user, and when a certificate is given `SSL` serving it (inline PEM), so the scaler's SASL
//! and TLS settings can be checked against a broker that enforces them.
//! Internal topics have replication factor 1 and the group coordinator starts rebalances at
//! once, so a fresh broker serves consumer groups without the default 3 s wait.

use super::{Instance, Result, ServiceError, find_binary, free_port, listening, run, setup};
use crate::pki::CertPair;
use std::path::PathBuf;
use std::time::Duration;

const SERVER: &str = "kafka";
/// The Kafka release `hack/kafka/pom.xml` fetches; the cache dir is named after it.
pub const KAFKA_VERSION: &str = "4.1.1";
/// Overrides where the jars are (a directory of `*.jar`).
pub const LIBS_ENV: &str = "TANDEM_KAFKA_LIBS";
/// A fixed KRaft cluster id (any 16 bytes in URL-safe base64); each broker has its own dir.
const CLUSTER_ID: &str = "TandemKafkaTestCluster";

/// A user the broker's SASL_PLAINTEXT listener accepts (mechanism PLAIN).
#[derive(Debug, Clone)]
pub struct KafkaUser {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// A running single-node Kafka on 127.0.0.1.
#[derive(Debug)]
pub struct Kafka {
    instance: Instance,
    port: u16,
    sasl_port: Option<u16>,
    ssl_port: Option<u16>,
}

/// Where the broker's jars are: [`LIBS_ENV`], else `$TANDEM_CACHE/kafka/<version>/libs`.
pub fn libs_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(LIBS_ENV) {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("TANDEM_CACHE").unwrap_or_else(|| "/var/cache/tandem".into());
    PathBuf::from(cache)
        .join("kafka")
        .join(KAFKA_VERSION)
        .join("libs")
}

impl Kafka {
    /// Formats a fresh log dir and starts the broker; waits (bounded, 60 s; ≈ 3 s here) until
    /// its log says the server started and the client port accepts connections. With `user`,
    /// a SASL_PLAINTEXT listener accepting only that user is opened too; with `tls`, an SSL
    /// listener serving that certificate (its key unencrypted PKCS#8, as `Pki` issues).
    pub async fn start(user: Option<KafkaUser>, tls: Option<&CertPair>) -> Result<Self> {
        let java = find_binary(SERVER, "java")?;
        let libs = libs_dir();
        if !libs
            .join(format!("kafka_2.13-{KAFKA_VERSION}.jar"))
            .is_file()
        {
            return Err(ServiceError::Missing {
                server: SERVER,
                binary: format!(
                    "{}/kafka_2.13-{KAFKA_VERSION}.jar (fetch the jars with `hack/kafka/fetch.sh`)",
                    libs.display()
                ),
            });
        }
        let mut instance = Instance::new(SERVER).await?;
        let dir = instance.path().to_path_buf();
        let (port, controller_port) = (free_port(SERVER)?, free_port(SERVER)?);
        let sasl_port = match user {
            Some(_) => Some(free_port(SERVER)?),
            None => None,
        };
        let mut listeners = vec![
            format!("PLAINTEXT://127.0.0.1:{port}"),
            format!("CONTROLLER://127.0.0.1:{controller_port}"),
        ];
        let mut advertised = vec![format!("PLAINTEXT://127.0.0.1:{port}")];
        let mut protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_owned();
        let ssl_port = match tls {
            Some(_) => Some(free_port(SERVER)?),
            None => None,
        };
        let mut security = String::new();
        if let (Some(u), Some(p)) = (&user, sasl_port) {
            listeners.push(format!("SASL_PLAINTEXT://127.0.0.1:{p}"));
            advertised.push(format!("SASL_PLAINTEXT://127.0.0.1:{p}"));
            protocols.push_str(",SASL_PLAINTEXT:SASL_PLAINTEXT");
            let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
            security = format!(
                "sasl.enabled.mechanisms=PLAIN\n\
                 listener.name.sasl_plaintext.plain.sasl.jaas.config=\
                 org.apache.kafka.common.security.plain.PlainLoginModule required \
                 user_{}=\"{}\";\n",
                u.name,
                quote(&u.password)
            );
        }
        if let (Some(pair), Some(p)) = (tls, ssl_port) {
            listeners.push(format!("SSL://127.0.0.1:{p}"));
            advertised.push(format!("SSL://127.0.0.1:{p}"));
            protocols.push_str(",SSL:SSL");
            // Java properties turn the `\n` escapes back into the PEM's newlines.
            let inline = |pem: &str| pem.trim_end().replace('\n', "\\n");
            security.push_str(&format!(
                "listener.name.ssl.ssl.keystore.type=PEM\n\
                 listener.name.ssl.ssl.keystore.certificate.chain={}\n\
                 listener.name.ssl.ssl.keystore.key={}\n",
                inline(&pair.cert_pem),
                inline(&pair.key_pem)
            ));
        }
        let config = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller_port}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listeners={}\n\
             advertised.listeners={}\n\
             listener.security.protocol.map={protocols}\n\
             {security}\
             log.dirs={}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             auto.create.topics.enable=false\n",
            listeners.join(","),
            advertised.join(","),
            dir.join("data").display(),
        );
        let props = dir.join("server.properties");
        std::fs::write(&props, config).map_err(|e| setup(SERVER, "write server.properties", e))?;
        let classpath = format!("{}/*", libs.display());
        run(
            SERVER,
            "format the KRaft log dir (kafka.tools.StorageTool)",
            tokio::process::Command::new(&java)
                .args(["-cp", &classpath, "kafka.tools.StorageTool", "format"])
                .args(["-t", CLUSTER_ID, "-c"])
                .arg(&props),
            Duration::from_secs(60),
        )
        .await?;
        let args: Vec<String> = vec![
            "-Xms64m".into(),
            "-Xmx512m".into(),
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn".into(),
            // The one INFO line the readiness check reads.
            "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info".into(),
            "-cp".into(),
            classpath,
            "kafka.Kafka".into(),
            props.display().to_string(),
        ];
        let c = instance.spawn(SERVER, &java, &args, &[]).await?;
        let log = instance.log(SERVER);
        instance
            .wait_ready(c, Duration::from_secs(60), || {
                let log = log.clone();
                async move {
                    let started = std::fs::read_to_string(&log)
                        .is_ok_and(|t| t.contains("Kafka Server started"));
                    started && listening(port).await
                }
            })
            .await?;
        instance.report(&format!(" on 127.0.0.1:{port}"));
        Ok(Kafka {
            instance,
            port,
            sasl_port,
            ssl_port,
        })
    }

    /// `127.0.0.1:<port>` of the PLAINTEXT listener.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>` of the SASL_PLAINTEXT listener, if started with a user.
    pub fn sasl_bootstrap(&self) -> Option<String> {
        self.sasl_port.map(|p| format!("127.0.0.1:{p}"))
    }

    /// `127.0.0.1:<port>` of the SSL listener, if started with a certificate.
    pub fn ssl_bootstrap(&self) -> Option<String> {
        self.ssl_port.map(|p| format!("127.0.0.1:{p}"))
    }

    /// Stops the broker now (to test a source that is down).
    pub fn stop(&mut self) {
        for c in &mut self.instance.components {
            c.kill();
        }
    }
}

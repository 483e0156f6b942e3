//! moto's server (PyPI `moto[server]`) for SQS, with IAM authentication switched on, so a
//! wrong access key is refused as by AWS.
//!
//! moto checks credentials only after `INITIAL_NO_AUTH_ACTION_COUNT` unauthenticated
//! actions; [`Moto::start`] spends exactly those on creating one IAM user with full rights
//! and an access key for it (through boto3, which moto depends on), then every request
//! must be signed with that key.

use super::{Instance, Result, find_binary, free_port, http_get, run, setup};
use std::time::Duration;

const SERVER: &str = "moto";
/// CreateUser, PutUserPolicy, CreateAccessKey.
const BOOTSTRAP_ACTIONS: u32 = 3;

const BOOTSTRAP: &str = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="tandem")
iam.put_user_policy(UserName="tandem", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="tandem")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

/// A running moto server on 127.0.0.1, with one valid access key.
#[derive(Debug)]
pub struct Moto {
    instance: Instance,
    port: u16,
    access_key_id: String,
    secret_access_key: String,
}

impl Moto {
    /// Starts moto, waits for `/moto-api/` (bounded, 30 s) and creates the access key.
    pub async fn start() -> Result<Self> {
        let binary = find_binary(SERVER, "moto_server")?;
        let mut instance = Instance::new(SERVER).await?;
        let port = free_port(SERVER)?;
        let args = vec![
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        // moto keeps no state on disk, so its command line does not name the temp dir and
        // the watchdog cannot recognise it; the parent-death signal alone ties it to us.
        let env = vec![(
            "INITIAL_NO_AUTH_ACTION_COUNT".to_owned(),
            BOOTSTRAP_ACTIONS.to_string(),
        )];
        let c = instance.spawn(SERVER, &binary, &args, &env).await?;
        instance
            .wait_ready(c, Duration::from_secs(30), || async move {
                matches!(http_get(port, "/moto-api/", None).await, Some((200, _)))
            })
            .await?;
        let out = run(
            SERVER,
            "create an IAM access key with boto3",
            tokio::process::Command::new("python3")
                .arg("-c")
                .arg(BOOTSTRAP)
                .arg(format!("http://127.0.0.1:{port}")),
            Duration::from_secs(60),
        )
        .await?;
        let mut parts = out.split_whitespace();
        let (Some(id), Some(secret)) = (parts.next(), parts.next()) else {
            return Err(setup(
                SERVER,
                "read the access key",
                format!("unexpected output {out:?}"),
            ));
        };
        instance.report("");
        Ok(Moto {
            instance,
            port,
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_owned(),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The valid access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The valid secret key.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// Runs a boto3 snippet against this server with the valid key; `sqs` is an SQS client
    /// in `us-east-1`. Returns stdout. Bounded (60 s).
    pub async fn boto3(&self, code: &str) -> Result<String> {
        let script = format!(
            "import boto3\nsqs = boto3.client('sqs', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='{}', aws_secret_access_key='{}')\n{code}\n",
            self.endpoint(),
            self.access_key_id,
            self.secret_access_key
        );
        run(
            SERVER,
            "run boto3",
            tokio::process::Command::new("python3")
                .arg("-c")
                .arg(script),
            Duration::from_secs(60),
        )
        .await
    }

    /// Stops the server now.
    pub fn stop(&mut self) {
        for c in &mut self.instance.components {
            c.kill();
        }
    }
}

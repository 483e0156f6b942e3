//! moto's server (PyPI `moto[server]`) for SQS, with IAM authentication switched on, so a
//! wrong access key is refused as by AWS.
//!
//! moto is started through a small Python launcher that first seeds what every real region
//! has and moto lacks: the public EKS-optimized AMI parameters in SSM
//! (`/aws/service/eks/optimized-ami/<1.28…1.40>/amazon-linux-2023/<arch>/standard/recommended/image_id`,
//! pointing at moto's own default images), so an EC2NodeClass with `alias: al2023@latest`
//! resolves as on AWS. moto refuses `PutParameter` under `/aws/`, hence the seeding inside its
//! process.
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

/// Seeds the EKS AMI parameters, then runs moto's server with the arguments given.
const LAUNCHER: &str = r#"
import sys, time
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ssm.models import ssm_backends, Parameter
backend = ssm_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
for minor in range(28, 41):
    for arch, image in (("x86_64", "ami-ekslinux"), ("arm64", "ami-0e9271c829888680e")):
        name = f"/aws/service/eks/optimized-ami/1.{minor}/amazon-linux-2023/{arch}/standard/recommended/image_id"
        backend._parameters[name].append(Parameter(
            account_id=DEFAULT_ACCOUNT_ID, name=name, value=image, parameter_type="String",
            description=None, allowed_pattern=None, keyid=None,
            last_modified_date=time.time(), version=1, data_type="aws:ec2:image"))
from moto.server import main
main(sys.argv[1:])
"#;

/// The image moto's seeded `al2023@latest` parameter names for x86_64.
pub const EKS_AL2023_AMD64_AMI: &str = "ami-ekslinux";
/// The image moto's seeded `al2023@latest` parameter names for arm64.
pub const EKS_AL2023_ARM64_AMI: &str = "ami-0e9271c829888680e";

/// An AWS account shaped like the EKS getting-started guide leaves it for `cluster`.
#[derive(Debug, Clone)]
pub struct EksAccount {
    /// The subnets tagged `karpenter.sh/discovery=<cluster>` (us-east-1a, us-east-1b).
    pub subnets: Vec<String>,
    /// The security group tagged for discovery (the default VPC's default group).
    pub security_group: String,
    /// The node role (`KarpenterNodeRole-<cluster>`).
    pub role: String,
}

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
        // moto_server must be installed (services.sh); the launcher runs the same package.
        find_binary(SERVER, "moto_server")?;
        let binary = find_binary(SERVER, "python3")?;
        let mut instance = Instance::new(SERVER).await?;
        let port = free_port(SERVER)?;
        let args = vec![
            "-c".into(),
            LAUNCHER.into(),
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

    /// Runs a boto3 snippet against this server with the valid key; `sqs`, `ec2`, `iam` and
    /// `ssm` are clients in `us-east-1`, `json` is imported. Returns stdout. Bounded (60 s).
    pub async fn boto3(&self, code: &str) -> Result<String> {
        let script = format!(
            "import boto3, json\nsession = boto3.session.Session(region_name='us-east-1', aws_access_key_id='{}', aws_secret_access_key='{}')\nsqs, ec2, iam, ssm = (session.client(s, endpoint_url='{}') for s in ('sqs', 'ec2', 'iam', 'ssm'))\n{code}\n",
            self.access_key_id,
            self.secret_access_key,
            self.endpoint(),
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

    /// Tags two default subnets (us-east-1a, us-east-1b) and the default VPC's default security
    /// group with `karpenter.sh/discovery=<cluster>` and creates the node role — what an
    /// EC2NodeClass with discovery selectors and `role:` needs. The default group, because moto
    /// puts fleet instances into it whatever the launch template says; tagging it keeps an
    /// instance's groups equal to its class's, as on EC2.
    pub async fn eks_account(&self, cluster: &str) -> Result<EksAccount> {
        let out = self
            .boto3(&format!(
                r#"
cluster = "{cluster}"
vpc = ec2.describe_vpcs(Filters=[{{"Name": "isDefault", "Values": ["true"]}}])["Vpcs"][0]["VpcId"]
subs = ec2.describe_subnets(Filters=[{{"Name": "vpc-id", "Values": [vpc]}}])["Subnets"]
picked = sorted([s for s in subs if s["AvailabilityZone"] in ("us-east-1a", "us-east-1b")], key=lambda s: s["AvailabilityZone"])
ec2.create_tags(Resources=[s["SubnetId"] for s in picked], Tags=[{{"Key": "karpenter.sh/discovery", "Value": cluster}}])
sg = ec2.describe_security_groups(Filters=[{{"Name": "vpc-id", "Values": [vpc]}}, {{"Name": "group-name", "Values": ["default"]}}])["SecurityGroups"][0]["GroupId"]
ec2.create_tags(Resources=[sg], Tags=[{{"Key": "karpenter.sh/discovery", "Value": cluster}}])
role = "KarpenterNodeRole-" + cluster
iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Principal": {{"Service": "ec2.amazonaws.com"}}, "Action": "sts:AssumeRole"}}]}}))
print(" ".join([role, sg] + [s["SubnetId"] for s in picked]))
"#
            ))
            .await?;
        let mut words = out.split_whitespace().map(str::to_owned);
        let (Some(role), Some(security_group)) = (words.next(), words.next()) else {
            return Err(setup(
                SERVER,
                "set up the EKS account",
                format!("unexpected output {out:?}"),
            ));
        };
        Ok(EksAccount {
            subnets: words.collect(),
            security_group,
            role,
        })
    }

    /// Stops the server now.
    pub fn stop(&mut self) {
        for c in &mut self.instance.components {
            c.kill();
        }
    }
}

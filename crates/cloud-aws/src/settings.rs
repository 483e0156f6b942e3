//! How the AWS provider reaches AWS: region, optional endpoint (moto, VPC endpoints), cluster
//! identity and the interruption queue — upstream's `settings.*` Helm values — and the SDK
//! clients built from them.

use std::time::Duration;

/// Static credentials, for endpoints (moto) that are not reached through the default chain.
#[derive(Clone)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Provider settings.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// Region (`us-east-1`).
    pub region: String,
    /// Endpoint override for every service (`http://127.0.0.1:5000` for moto).
    pub endpoint: Option<String>,
    /// Credentials; `None` uses the default chain (IRSA, pod identity, instance profile).
    pub credentials: Option<StaticCredentials>,
    /// `settings.clusterName`: tags instances (`kubernetes.io/cluster/<name>`,
    /// `eks:eks-cluster-name`) and names instance profiles.
    pub cluster_name: String,
    /// `settings.clusterEndpoint`, written into the node bootstrap user data.
    pub cluster_endpoint: String,
    /// `settings.interruptionQueue`: the SQS queue name; `None` turns interruption off.
    pub interruption_queue: Option<String>,
    /// Kubernetes minor version (`1.36`) for AMI aliases.
    pub kubernetes_version: String,
    /// How long one attempt of an AWS request may take before it is abandoned (and retried by
    /// the SDK); four times that bounds a request with its retries. Without it a request EC2
    /// never answers would hold its claim's launch forever: the SDK sets no read timeout.
    pub request_timeout: Duration,
}

/// [`AwsSettings::request_timeout`] unless a test needs another.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The SDK clients the provider uses.
#[derive(Debug, Clone)]
pub struct Clients {
    /// EC2: selectors, launch templates, fleets, instances.
    pub ec2: aws_sdk_ec2::Client,
    /// SSM: AMI alias parameters.
    pub ssm: aws_sdk_ssm::Client,
    /// IAM: the instance profile made for a class's `role`.
    pub iam: aws_sdk_iam::Client,
    /// SQS: the interruption queue.
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    /// Builds every client from `settings` (no request is made).
    pub async fn new(settings: &AwsSettings) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .http_client(http)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5).min(settings.request_timeout))
                    .operation_attempt_timeout(settings.request_timeout)
                    .operation_timeout(settings.request_timeout * 4)
                    .build(),
            );
        if let Some(c) = &settings.credentials {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                None,
                None,
                "tandem-settings",
            ));
        }
        if let Some(e) = &settings.endpoint {
            loader = loader.endpoint_url(e);
        }
        let sdk = loader.load().await;
        Clients {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
            iam: aws_sdk_iam::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
        }
    }
}

/// `code: message` of an SDK error, the text a user can search for.
pub fn describe<E, R>(e: &aws_sdk_ec2::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_ec2::error::SdkError;
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("Unknown");
            match err.message() {
                Some(m) if !m.is_empty() => format!("{code}: {m}"),
                _ => code.to_owned(),
            }
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// The service error code of an SDK error, if the service answered.
pub fn code<E, R>(e: &aws_sdk_ec2::error::SdkError<E, R>) -> Option<&str>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata,
{
    match e {
        aws_sdk_ec2::error::SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

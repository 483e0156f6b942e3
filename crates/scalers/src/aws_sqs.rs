//! `aws-sqs-queue`: the queue's approximate message counts from `GetQueueAttributes`.
//! Upstream: keda `pkg/scalers/aws_sqs_queue_scaler.go`; keda.md §7.
//!
//! Credentials: `awsAccessKeyID` / `awsSecretAccessKey` (/ `awsSessionToken`) from the
//! authentication, or `podIdentity: aws`, which is the SDK's default chain (web identity
//! token from IRSA, env, profile, IMDS), optionally assuming `roleArn`. The HTTP client is
//! rustls with ring, set explicitly so the SDK brings no second crypto stack.
//!
//! Push: while the queue is empty, [`Scaler::watch`] long-polls `ReceiveMessage`
//! (20 s, visibility timeout 0, so the message stays available to consumers) and wakes the
//! pod layer when a message arrives; while it has messages, it probes the counts every
//! second. A long-poll receive increments the message's receive count, which would push it
//! toward a dead-letter queue, so on queues with a `RedrivePolicy` only the probe is used.

use crate::error::ErrorContext;
use crate::params::{A, AE, M, MA, ME, PodIdentity};
use crate::push::{self, Wake, WakeStream};
use crate::{
    Measurement, MetricSpec, ParamError, Scaler, ScalerError, Secret, Target, TriggerId,
    TriggerParams, external_name, plain_measurement,
};
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::types::QueueAttributeName;
use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;

/// Upstream default target.
pub const DEFAULT_QUEUE_LENGTH: f64 = 5.0;

/// Where credentials come from.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Static keys from the authentication.
    Static {
        /// Access key id.
        access_key_id: Secret<String>,
        /// Secret key.
        secret_access_key: Secret<String>,
        /// Session token.
        session_token: Option<Secret<String>>,
    },
    /// The default AWS chain (`podIdentity: aws`), optionally assuming a role.
    Chain {
        /// Role to assume (from the pod identity or `awsRoleArn`).
        role_arn: Option<String>,
        /// External id for the assume-role call.
        external_id: Option<String>,
    },
}

/// Parsed `aws-sqs-queue` trigger.
#[derive(Debug, Clone)]
pub struct SqsConfig {
    /// Queue URL.
    pub queue_url: String,
    /// Target per replica.
    pub queue_length: f64,
    /// Active above this.
    pub activation_queue_length: f64,
    /// Count in-flight messages (`ApproximateNumberOfMessagesNotVisible`).
    pub scale_on_in_flight: bool,
    /// Count delayed messages (`ApproximateNumberOfMessagesDelayed`).
    pub scale_on_delayed: bool,
    /// Region.
    pub region: String,
    /// Endpoint override (moto, LocalStack, VPC endpoints).
    pub endpoint: Option<String>,
    /// Credentials.
    pub credentials: Credentials,
}

impl SqsConfig {
    /// Parses and validates the trigger's parameters.
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let queue_url = p.required_text("queueURL", ME)?;
        let queue_length = p.f64_or("queueLength", M, DEFAULT_QUEUE_LENGTH)?;
        if queue_length <= 0.0 {
            return Err(p.invalid("queueLength", "must be greater than 0"));
        }
        let region = p.required_text("awsRegion", MA)?;
        let endpoint = p.text("awsEndpoint", M);
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(p.invalid("awsEndpoint", format!("{e:?} is not an http(s) URL")));
        }
        let key_id = p
            .secret("awsAccessKeyID", AE)
            .or_else(|| p.secret("awsAccessKeyId", AE));
        let credentials = match (&p.pod_identity, key_id) {
            (
                Some(PodIdentity::Aws {
                    role_arn,
                    external_id,
                }),
                _,
            ) => Credentials::Chain {
                role_arn: role_arn.clone().or_else(|| p.text("awsRoleArn", A)),
                external_id: external_id.clone(),
            },
            (Some(PodIdentity::Other(provider)), _) => {
                return Err(p.invalid(
                    "podIdentity",
                    format!("provider {provider:?} cannot authenticate to AWS; use aws"),
                ));
            }
            (None, Some(access_key_id)) => Credentials::Static {
                access_key_id,
                secret_access_key: p.secret("awsSecretAccessKey", AE).ok_or_else(|| {
                    ParamError::Missing {
                        trigger: p.id.clone(),
                        param: "awsSecretAccessKey".into(),
                    }
                })?,
                session_token: p.secret("awsSessionToken", A),
            },
            (None, None) => match p.text("awsRoleArn", A) {
                Some(role) => Credentials::Chain {
                    role_arn: Some(role),
                    external_id: None,
                },
                None => {
                    return Err(p.invalid(
                        "awsAccessKeyID",
                        "no credentials: set awsAccessKeyID and awsSecretAccessKey in the authentication, or podIdentity provider aws",
                    ));
                }
            },
        };
        Ok(SqsConfig {
            queue_url,
            queue_length,
            activation_queue_length: p.f64_or("activationQueueLength", M, 0.0)?,
            scale_on_in_flight: p.bool_or("scaleOnInFlight", M, true)?,
            scale_on_delayed: p.bool_or("scaleOnDelayed", M, false)?,
            region,
            endpoint,
            credentials,
        })
    }

    fn attributes(&self) -> Vec<QueueAttributeName> {
        let mut a = vec![QueueAttributeName::ApproximateNumberOfMessages];
        if self.scale_on_in_flight {
            a.push(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        }
        if self.scale_on_delayed {
            a.push(QueueAttributeName::ApproximateNumberOfMessagesDelayed);
        }
        a
    }
}

struct Inner {
    config: SqsConfig,
    client: aws_sdk_sqs::Client,
    errors: ErrorContext,
}

/// The `aws-sqs-queue` trigger.
pub struct SqsScaler {
    id: TriggerId,
    name: String,
    target: Target,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqsScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsScaler")
            .field("id", &self.id)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl SqsScaler {
    /// Parses the trigger and builds the SDK client (no request yet; with pod identity the
    /// chain is resolved lazily on the first call).
    pub async fn new(p: &TriggerParams) -> Result<Self, ScalerError> {
        let config = SqsConfig::parse(p)?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()))
            .http_client(http);
        let mut secrets = p.secrets();
        if let Credentials::Static {
            access_key_id,
            secret_access_key,
            session_token,
        } = &config.credentials
        {
            secrets.extend([access_key_id.clone(), secret_access_key.clone()]);
            secrets.extend(session_token.iter().cloned());
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                access_key_id.expose(),
                secret_access_key.expose(),
                session_token.as_ref().map(|t| t.expose().clone()),
                None,
                "tandem-trigger-authentication",
            ));
        }
        let mut sdk = loader.load().await;
        if let Credentials::Chain {
            role_arn: Some(role),
            external_id,
        } = &config.credentials
        {
            let mut b = aws_config::sts::AssumeRoleProvider::builder(role.clone())
                .session_name(
                    format!("tandem-{}", p.owner.name)
                        .chars()
                        .take(64)
                        .collect::<String>(),
                )
                .configure(&sdk);
            if let Some(x) = external_id {
                b = b.external_id(x.clone());
            }
            let provider = b.build().await;
            sdk = sdk
                .into_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build();
        }
        let mut sqs = aws_sdk_sqs::config::Builder::from(&sdk);
        if let Some(e) = &config.endpoint {
            sqs = sqs.endpoint_url(e);
        }
        let client = aws_sdk_sqs::Client::from_conf(sqs.build());
        Ok(SqsScaler {
            id: p.id.clone(),
            name: external_name(p)?,
            target: Target::of(p, config.queue_length)?,
            inner: Arc::new(Inner {
                errors: ErrorContext::new(
                    p.id.clone(),
                    config.endpoint.as_deref().unwrap_or(&config.queue_url),
                    secrets,
                ),
                config,
                client,
            }),
        })
    }
}

impl Inner {
    async fn attributes(
        &self,
        names: Vec<QueueAttributeName>,
    ) -> Result<std::collections::HashMap<QueueAttributeName, String>, ScalerError> {
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            self.client
                .get_queue_attributes()
                .queue_url(&self.config.queue_url)
                .set_attribute_names(Some(names))
                .send(),
        )
        .await
        .map_err(|_| self.errors.unreachable("timed out"))?
        .map_err(|e| self.sdk_error(&e))?;
        Ok(out.attributes().cloned().unwrap_or_default())
    }

    async fn count(&self) -> Result<f64, ScalerError> {
        let attrs = self.attributes(self.config.attributes()).await?;
        let mut total = 0.0;
        for name in self.config.attributes() {
            let raw = attrs.get(&name).ok_or_else(|| {
                self.errors
                    .bad_response(format!("no {} in the answer", name.as_str()))
            })?;
            total += raw.parse::<f64>().map_err(|_| {
                self.errors
                    .bad_response(format!("{} is {raw:?}", name.as_str()))
            })?;
        }
        Ok(total)
    }

    fn sdk_error<E>(&self, e: &SdkError<E, aws_sdk_sqs::config::http::HttpResponse>) -> ScalerError
    where
        E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        match e {
            SdkError::ServiceError(se) => {
                let err = se.err();
                let status = se.raw().status().as_u16();
                let code = err.code().unwrap_or("unknown");
                let msg = match err.message() {
                    Some(m) if !m.is_empty() => format!("{code}: {m}"),
                    _ => format!("{code} (HTTP {status})"),
                };
                match code {
                    // Some endpoints (moto among them) answer errors in a shape the JSON
                    // protocol cannot read; the status still says what happened.
                    "unknown" if status == 401 || status == 403 => self.errors.unauthorized(msg),
                    "InvalidClientTokenId"
                    | "SignatureDoesNotMatch"
                    | "AccessDenied"
                    | "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "InvalidAccessKeyId"
                    | "ExpiredToken" => self.errors.unauthorized(msg),
                    "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist" => {
                        self.errors.not_found(format!(
                            "queue {}",
                            crate::printable_url(&self.config.queue_url)
                        ))
                    }
                    _ => self.errors.query(msg),
                }
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                self.errors.unreachable(crate::http::error_chain(e))
            }
            other => {
                let text = crate::http::error_chain(other);
                if text.contains("credentials") {
                    self.errors.unauthorized(text)
                } else {
                    self.errors.query(text)
                }
            }
        }
    }

    /// Long-polls once (20 s) for a message without hiding it; true if one arrived.
    async fn long_poll(&self) -> Result<bool, ScalerError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.config.queue_url)
            .max_number_of_messages(1)
            .visibility_timeout(0)
            .wait_time_seconds(20)
            .send()
            .await
            .map_err(|e| self.sdk_error(&e))?;
        Ok(!out.messages().is_empty())
    }
}

#[async_trait::async_trait]
impl Scaler for SqsScaler {
    fn id(&self) -> &TriggerId {
        &self.id
    }

    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec::External {
            name: self.name.clone(),
            target: self.target,
        }])
    }

    async fn measure(
        &self,
        _metric: &str,
        _now: jiff::Timestamp,
    ) -> Result<Measurement, ScalerError> {
        let v = self.inner.count().await?;
        Ok(plain_measurement(
            &self.name,
            v,
            self.inner.config.activation_queue_length,
        ))
    }

    fn watch(&self) -> Option<WakeStream> {
        let inner = self.inner.clone();
        let events = futures::stream::unfold(
            (inner, None::<f64>, None::<bool>),
            |(inner, mut prev, mut redrive)| async move {
                loop {
                    let has_redrive = match redrive {
                        Some(r) => r,
                        None => match inner
                            .attributes(vec![QueueAttributeName::RedrivePolicy])
                            .await
                        {
                            Ok(a) => {
                                *redrive.insert(a.contains_key(&QueueAttributeName::RedrivePolicy))
                            }
                            Err(_) => {
                                tokio::time::sleep(Duration::from_secs(5)).await;
                                continue;
                            }
                        },
                    };
                    let Ok(now) = inner.count().await else {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        continue;
                    };
                    let grew = prev.is_some_and(|p| now > p);
                    prev = Some(now);
                    if grew {
                        return Some((
                            Wake {
                                reason: "queue-grew",
                            },
                            (inner, prev, redrive),
                        ));
                    }
                    if now <= 0.0 && !has_redrive {
                        match inner.long_poll().await {
                            Ok(true) => {
                                prev = Some(1.0);
                                return Some((
                                    Wake {
                                        reason: "message-arrived",
                                    },
                                    (inner, prev, redrive),
                                ));
                            }
                            Ok(false) => continue,
                            Err(_) => tokio::time::sleep(Duration::from_secs(5)).await,
                        }
                    } else {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            },
        );
        Some(push::rate_limited(
            events.boxed(),
            push::DEFAULT_MIN_WAKE_INTERVAL,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> TriggerParams {
        let md = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TriggerParams::new("aws-sqs-queue", 0, &md)
    }

    fn with_keys(p: TriggerParams) -> TriggerParams {
        let mut auth = crate::auth::ResolvedAuth::default();
        auth.params
            .insert("awsAccessKeyID".into(), Secret::from("AKIDEXAMPLE"));
        auth.params.insert(
            "awsSecretAccessKey".into(),
            Secret::from("canary-secret-key"),
        );
        p.with_auth(auth)
    }

    #[test]
    fn defaults_follow_upstream() {
        let c = SqsConfig::parse(&with_keys(params(&[
            ("queueURL", "https://sqs.eu-west-1.amazonaws.com/1/q"),
            ("awsRegion", "eu-west-1"),
        ])))
        .unwrap();
        assert_eq!(c.queue_length, 5.0);
        assert_eq!(c.activation_queue_length, 0.0);
        assert!(c.scale_on_in_flight && !c.scale_on_delayed);
        assert!(
            format!("{c:?}").contains("[redacted]")
                && !format!("{c:?}").contains("canary-secret-key")
        );
    }

    #[test]
    fn pod_identity_aws_uses_the_default_chain() {
        let auth = crate::auth::ResolvedAuth {
            pod_identity: Some(PodIdentity::Aws {
                role_arn: None,
                external_id: None,
            }),
            ..Default::default()
        };
        let c = SqsConfig::parse(
            &params(&[("queueURL", "q"), ("awsRegion", "us-east-1")]).with_auth(auth),
        )
        .unwrap();
        assert!(matches!(
            c.credentials,
            Credentials::Chain { role_arn: None, .. }
        ));
    }

    #[test]
    fn validation_names_the_parameter() {
        let e = SqsConfig::parse(&params(&[("queueURL", "q"), ("awsRegion", "us-east-1")]))
            .unwrap_err();
        assert!(e.to_string().contains("awsAccessKeyID"), "{e}");
        let e = SqsConfig::parse(&with_keys(params(&[("queueURL", "q")]))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "aws-sqs-queue trigger 0: missing required parameter awsRegion"
        );
        let e = SqsConfig::parse(&with_keys(params(&[
            ("queueURL", "q"),
            ("awsRegion", "r"),
            ("queueLength", "0"),
        ])))
        .unwrap_err();
        assert!(
            e.to_string().contains("invalid parameter queueLength"),
            "{e}"
        );
    }
}

//! TriggerAuthentication (namespaced) and ClusterTriggerAuthentication (cluster-scoped): where a
//! trigger's secrets come from. Both share one spec (keda.md §8); `filePath` is only honoured
//! on the cluster kind.
//!
//! Upstream: keda `apis/keda/v1alpha1/triggerauthentication_types.go` (@8b4f083c).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

/// Desired state of a TriggerAuthentication: parameter sources, resolved in the order
/// env → filePath → configMap → secret → vaults → bound token → oauth2.
#[derive(
    CustomResource, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "TriggerAuthentication",
    plural = "triggerauthentications",
    singular = "triggerauthentication",
    shortname = "ta",
    shortname = "triggerauth",
    namespaced,
    status = "TriggerAuthenticationStatus",
    derive = "PartialEq",
    doc = "TriggerAuthentication defines how a trigger can authenticate",
    printcolumn(
        name = "PodIdentity",
        type_ = "string",
        json_path = ".spec.podIdentity.provider"
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".spec.secretTargetRef[*].name"
    ),
    printcolumn(name = "Env", type_ = "string", json_path = ".spec.env[*].name"),
    printcolumn(
        name = "VaultAddress",
        type_ = "string",
        json_path = ".spec.hashiCorpVault.address"
    ),
    printcolumn(
        name = "ScaledObjects",
        type_ = "string",
        json_path = ".status.scaledobjects",
        priority = 1
    ),
    printcolumn(
        name = "ScaledJobs",
        type_ = "string",
        json_path = ".status.scaledjobs",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TriggerAuthenticationSpec {
    /// Workload identity of the scaler (IRSA, Azure workload identity, GCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<PodIdentity>,
    /// Parameters read from Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_target_ref: Vec<SecretTargetRef>,
    /// Parameters read from the scale target's container environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvRef>,
    /// Parameters read from HashiCorp Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashi_corp_vault: Option<HashiCorpVault>,
    /// Parameters read from Azure Key Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_key_vault: Option<AzureKeyVault>,
    /// Parameters read from GCP Secret Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_secret_manager: Option<GcpSecretManager>,
    /// Parameters read from AWS Secrets Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_manager: Option<AwsSecretManager>,
    /// Parameters read from ConfigMaps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_map_target_ref: Vec<SecretTargetRef>,
    /// Parameters filled with tokens minted for a ServiceAccount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bound_service_account_token: Vec<BoundServiceAccountToken>,
    /// File under the operator's auth root (ClusterTriggerAuthentication only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
    /// OAuth2 client-credentials settings exposed to scalers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
}

/// Desired state of a ClusterTriggerAuthentication: the same fields as
/// [`TriggerAuthenticationSpec`], with secrets read from the operator's namespace.
///
/// A wrapper rather than a second copy so the two kinds cannot drift apart; it derefs to
/// the shared spec.
#[derive(
    CustomResource, Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ClusterTriggerAuthentication",
    plural = "clustertriggerauthentications",
    singular = "clustertriggerauthentication",
    shortname = "cta",
    shortname = "clustertriggerauth",
    status = "TriggerAuthenticationStatus",
    derive = "PartialEq",
    doc = "ClusterTriggerAuthentication defines how a trigger can authenticate globally",
    printcolumn(
        name = "PodIdentity",
        type_ = "string",
        json_path = ".spec.podIdentity.provider"
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".spec.secretTargetRef[*].name"
    ),
    printcolumn(name = "Env", type_ = "string", json_path = ".spec.env[*].name"),
    printcolumn(name = "FilePath", type_ = "string", json_path = ".spec.filePath"),
    printcolumn(
        name = "VaultAddress",
        type_ = "string",
        json_path = ".spec.hashiCorpVault.address"
    ),
    printcolumn(
        name = "ScaledObjects",
        type_ = "string",
        json_path = ".status.scaledobjects",
        priority = 1
    ),
    printcolumn(
        name = "ScaledJobs",
        type_ = "string",
        json_path = ".status.scaledjobs",
        priority = 1
    )
)]
pub struct ClusterTriggerAuthenticationSpec {
    /// The shared spec.
    #[serde(flatten)]
    pub inner: TriggerAuthenticationSpec,
}

impl Deref for ClusterTriggerAuthenticationSpec {
    type Target = TriggerAuthenticationSpec;
    fn deref(&self) -> &TriggerAuthenticationSpec {
        &self.inner
    }
}

impl DerefMut for ClusterTriggerAuthenticationSpec {
    fn deref_mut(&mut self) -> &mut TriggerAuthenticationSpec {
        &mut self.inner
    }
}

/// Which objects use an authentication (printer columns, wide output).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct TriggerAuthenticationStatus {
    /// Comma-joined ScaledObject names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaledobjects: Option<String>,
    /// Comma-joined ScaledJob names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaledjobs: Option<String>,
}

/// Pod identity settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentity {
    /// `azure-workload`, `gcp`, `aws`, `aws-eks` (deprecated) or `none`.
    #[schemars(extend("enum" = ["azure-workload", "gcp", "aws", "aws-eks", "none"]))]
    pub provider: String,
    /// Azure: client id of the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,
    /// Azure: tenant of the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_tenant_id: Option<String>,
    /// Azure: authority host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_authority_host: Option<String>,
    /// AWS: role to assume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// AWS: external id for the assume-role call.
    #[serde(
        default,
        rename = "externalID",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,
    /// AWS: whose identity is used, `keda` or `workload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["keda", "workload"]))]
    pub identity_owner: Option<String>,
}

/// A parameter from a key of a Secret or ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretTargetRef {
    /// Scaler parameter to fill.
    pub parameter: String,
    /// Object name.
    pub name: String,
    /// Key in the object.
    pub key: String,
}

/// A parameter from an environment variable of the scale target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvRef {
    /// Scaler parameter to fill.
    pub parameter: String,
    /// Environment variable name.
    pub name: String,
    /// Container to read it from (default: the target's envSourceContainerName).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

/// A parameter filled with a token for a ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoundServiceAccountToken {
    /// Scaler parameter to fill.
    pub parameter: String,
    /// ServiceAccount to mint a token for.
    pub service_account_name: String,
}

/// HashiCorp Vault source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HashiCorpVault {
    /// Vault address.
    pub address: String,
    /// Vault namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `token` or `kubernetes`.
    #[schemars(extend("enum" = ["token", "kubernetes"]))]
    pub authentication: String,
    /// Role for kubernetes auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Auth mount path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    /// Token or service account used to log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<VaultCredential>,
    /// Secrets to read.
    #[schemars(length(min = 1))]
    pub secrets: Vec<VaultSecret>,
}

/// Vault login material.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultCredential {
    /// A Vault token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Path to a service-account token file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// ServiceAccount to mint a token for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// One Vault secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultSecret {
    /// Scaler parameter to fill.
    pub parameter: String,
    /// Secret path.
    pub path: String,
    /// Key within the secret.
    pub key: String,
    /// Engine type: ``, `secretV2`, `secret` or `pki`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["", "secretV2", "secret", "pki"]))]
    pub type_: Option<String>,
    /// PKI request data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki_data: Option<VaultPkiData>,
}

/// Parameters of a Vault PKI issue request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // Fields are Vault's PKI request fields of the same names.
pub struct VaultPkiData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_names: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_sans: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_sans: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_sans: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// A value held in a Secret key: `valueFrom.secretKeyRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFromSecret {
    /// Where the value is.
    pub value_from: ValueFrom,
}

/// Source of a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// The Secret key.
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key.
    pub key: String,
}

/// Azure Key Vault source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVault {
    /// Vault URI.
    pub vault_uri: String,
    /// Service principal credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<AzureKeyVaultCredentials>,
    /// Pod identity to use instead of credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<PodIdentity>,
    /// Secrets to read.
    #[schemars(length(min = 1))]
    pub secrets: Vec<AzureKeyVaultSecret>,
    /// Sovereign cloud settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<AzureKeyVaultCloud>,
}

/// Azure service principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVaultCredentials {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: ValueFromSecret,
    /// Tenant id.
    pub tenant_id: String,
}

/// One Azure Key Vault secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AzureKeyVaultSecret {
    /// Scaler parameter to fill.
    pub parameter: String,
    /// Secret name.
    pub name: String,
    /// Secret version (default latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Azure cloud selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVaultCloud {
    /// Cloud name or `Private`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Key Vault resource URL for private clouds.
    #[serde(
        default,
        rename = "keyVaultResourceURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_vault_resource_url: Option<String>,
    /// AAD endpoint for private clouds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_directory_endpoint: Option<String>,
}

/// GCP Secret Manager source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSecretManager {
    /// Secrets to read.
    #[schemars(length(min = 1))]
    pub secrets: Vec<GcpSecret>,
    /// Service account key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<GcpCredentials>,
    /// Pod identity to use instead of credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<PodIdentity>,
}

/// GCP credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpCredentials {
    /// The service account key JSON.
    pub client_secret: ValueFromSecret,
}

/// One GCP secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GcpSecret {
    /// Scaler parameter to fill.
    pub parameter: String,
    /// Secret id.
    pub id: String,
    /// Version (default `latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// AWS Secrets Manager source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretManager {
    /// Secrets to read.
    #[schemars(length(min = 1))]
    pub secrets: Vec<AwsSecret>,
    /// Static credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<AwsCredentials>,
    /// Pod identity to use instead of credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<PodIdentity>,
    /// Region of the secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// AWS static credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key: ValueFromSecret,
    /// Secret access key.
    pub access_secret_key: ValueFromSecret,
    /// Session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<ValueFromSecret>,
}

/// One AWS secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecret {
    /// Scaler parameter to fill.
    pub parameter: String,
    /// Secret name or ARN.
    pub name: String,
    /// Version id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Version stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_stage: Option<String>,
    /// Key inside a JSON secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
}

/// OAuth2 client-credentials settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2 {
    /// Grant type; only `clientCredentials` (the CRD default).
    #[serde(rename = "type", default = "client_credentials")]
    #[schemars(extend("enum" = ["clientCredentials"]))]
    pub type_: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ValueFromSecret>,
    /// Token endpoint (http or https).
    pub token_url: String,
    /// Scopes requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Extra token request parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub token_url_params: BTreeMap<String, String>,
}

/// Upstream default grant type.
fn client_credentials() -> String {
    "clientCredentials".to_owned()
}

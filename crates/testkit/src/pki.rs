//! Throwaway PKI for one control plane, generated with `rcgen` (ECDSA P-256 everywhere).
//!
//! ```text
//! cluster CA ──► serving cert (127.0.0.1, localhost, kubernetes.default.svc…)  apiserver, kcm, scheduler
//!            ├─► client certs O=system:masters                                  admin, kcm, scheduler
//!            └─► backend serving certs (<svc>.<ns>.svc)                        aggregated API servers
//! front-proxy CA ──► front-proxy-client                                         apiserver → backends
//! service-account key (PKCS#8)                                                  token signing
//! ```

use crate::error::{Error, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// Common name the API server's proxy client cert carries; `--requestheader-allowed-names`.
pub const FRONT_PROXY_CLIENT_CN: &str = "front-proxy-client";

/// DNS names in the API server's serving certificate (plus 127.0.0.1 and the first service IP).
const APISERVER_DNS: [&str; 5] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// A certificate with its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// PKCS#8 private key, PEM.
    pub key_pem: String,
    /// Certificate, DER.
    pub cert_der: Vec<u8>,
    /// PKCS#8 private key, DER.
    pub key_der: Vec<u8>,
}

/// Paths of one certificate and its key on disk.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// Certificate file.
    pub cert: PathBuf,
    /// Key file.
    pub key: PathBuf,
}

/// Every key and certificate of one control plane, written under `<dir>/pki`.
pub struct Pki {
    ca: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_der: Vec<u8>,
    front_proxy_ca_der: Vec<u8>,
    /// Cluster CA certificate file (`--client-ca-file`, kubeconfigs).
    pub ca_cert: PathBuf,
    /// Cluster CA key file (kcm's CSR signer).
    pub ca_key: PathBuf,
    /// Serving certificate shared by the apiserver, kcm and scheduler.
    pub serving: CertFiles,
    /// Admin client certificate (O=system:masters).
    pub admin: CertFiles,
    /// kube-controller-manager's client certificate.
    pub controller_manager: CertFiles,
    /// kube-scheduler's client certificate.
    pub scheduler: CertFiles,
    /// Service-account signing key (private, PKCS#8 PEM).
    pub service_account_key: PathBuf,
    /// Service-account verification key (public, PEM).
    pub service_account_pub: PathBuf,
    /// Front-proxy CA certificate (`--requestheader-client-ca-file`).
    pub front_proxy_ca_cert: PathBuf,
    /// The apiserver's proxy client certificate (`--proxy-client-cert-file`).
    pub front_proxy_client: CertFiles,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("ca_cert", &self.ca_cert)
            .finish_non_exhaustive()
    }
}

fn pki_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |source| Error::Pki { what, source }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn new_ca(cn: &str, what: &'static str) -> Result<(Issuer<'static, KeyPair>, CertPair)> {
    let key = KeyPair::generate().map_err(pki_err(what))?;
    let params = ca_params(cn);
    let cert = params.self_signed(&key).map_err(pki_err(what))?;
    let pair = CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    };
    Ok((Issuer::new(params, key), pair))
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    what: &'static str,
    cn: &str,
    org: Option<&str>,
    sans: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<CertPair> {
    let key = KeyPair::generate().map_err(pki_err(what))?;
    let mut params = CertificateParams::new(sans).map_err(pki_err(what))?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    if let Some(org) = org {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer).map_err(pki_err(what))?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    })
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(|e| Error::io("write", path, e))
}

fn write_pair(dir: &Path, name: &str, pair: &CertPair) -> Result<CertFiles> {
    let files = CertFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    write(&files.cert, &pair.cert_pem)?;
    write(&files.key, &pair.key_pem)?;
    Ok(files)
}

impl Pki {
    /// Generates everything and writes it under `dir` (created if needed).
    ///
    /// `service_ip` is the first address of the service range (the `kubernetes` Service's
    /// ClusterIP), added to the serving certificate like kubeadm does.
    pub fn generate(dir: &Path, service_ip: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let (ca, ca_pair) = new_ca("tandem-testkit-ca", "cluster CA")?;
        let (front_proxy_ca, front_proxy_ca_pair) =
            new_ca("tandem-testkit-front-proxy-ca", "front-proxy CA")?;

        let mut sans: Vec<String> = vec!["127.0.0.1".into(), service_ip.into()];
        sans.extend(APISERVER_DNS.iter().map(|s| (*s).to_owned()));
        let serving = leaf(
            &ca,
            "serving certificate",
            "kube-apiserver",
            None,
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let client = |what, cn: &str| {
            leaf(
                &ca,
                what,
                cn,
                Some("system:masters"),
                Vec::new(),
                ExtendedKeyUsagePurpose::ClientAuth,
            )
        };
        let admin = client("admin client certificate", "tandem-admin")?;
        let kcm = client(
            "controller-manager client certificate",
            "system:kube-controller-manager",
        )?;
        let scheduler = client("scheduler client certificate", "system:kube-scheduler")?;
        let proxy_client = leaf(
            &front_proxy_ca,
            "front-proxy client certificate",
            FRONT_PROXY_CLIENT_CN,
            None,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let sa = KeyPair::generate().map_err(pki_err("service-account key"))?;

        let ca_files = write_pair(dir, "ca", &ca_pair)?;
        let fp_ca_files = write_pair(dir, "front-proxy-ca", &front_proxy_ca_pair)?;
        let service_account_key = dir.join("sa.key");
        let service_account_pub = dir.join("sa.pub");
        write(&service_account_key, &sa.serialize_pem())?;
        write(&service_account_pub, &sa.public_key_pem())?;
        Ok(Pki {
            ca_pem: ca_pair.cert_pem.clone(),
            ca_der: ca_pair.cert_der.clone(),
            front_proxy_ca_der: front_proxy_ca_pair.cert_der.clone(),
            ca,
            ca_cert: ca_files.cert,
            ca_key: ca_files.key,
            serving: write_pair(dir, "serving", &serving)?,
            admin: write_pair(dir, "admin", &admin)?,
            controller_manager: write_pair(dir, "kube-controller-manager", &kcm)?,
            scheduler: write_pair(dir, "kube-scheduler", &scheduler)?,
            service_account_key,
            service_account_pub,
            front_proxy_ca_cert: fp_ca_files.cert,
            front_proxy_client: write_pair(dir, "front-proxy-client", &proxy_client)?,
        })
    }

    /// The cluster CA certificate, PEM (what an APIService `caBundle` holds).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The cluster CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The front-proxy CA certificate, DER: backends verify the apiserver's client cert with it.
    pub fn front_proxy_ca_der(&self) -> &[u8] {
        &self.front_proxy_ca_der
    }

    /// Issues a serving certificate from the cluster CA for the given DNS names / IPs, e.g.
    /// `<service>.<namespace>.svc` for an aggregated API backend.
    pub fn issue_serving(&self, names: &[&str]) -> Result<CertPair> {
        let cn = names.first().copied().unwrap_or("tandem-testkit");
        leaf(
            &self.ca,
            "backend serving certificate",
            cn,
            None,
            names.iter().map(|s| (*s).to_owned()).collect(),
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }
}

//! AMI aliases (`al2023@latest`, `bottlerocket@v1.20.0`): which public SSM parameter names the
//! image for each architecture, as upstream resolves them
//! (aws `pkg/providers/amifamily/{al2023,al2,bottlerocket}.go`).
//!
//! The parameter path depends on the cluster's Kubernetes minor version (`1.36`), which the
//! caller passes in: the core never asks the API server.

use std::fmt;
use std::str::FromStr;

/// A parsed alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// Family (`al2023`, `al2`, `bottlerocket`).
    pub family: String,
    /// Version (`latest`, `v20240807`).
    pub version: String,
}

/// Why an alias is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// Not `family@version`.
    #[error("amiSelectorTerms.alias {0:?}: must be family@version, e.g. al2023@latest")]
    Malformed(String),
    /// A family this provider cannot resolve.
    #[error("amiSelectorTerms.alias {0:?}: family must be one of al2023, al2, bottlerocket")]
    UnknownFamily(String),
}

impl FromStr for Alias {
    type Err = AliasError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (family, version) = s
            .split_once('@')
            .filter(|(f, v)| !f.is_empty() && !v.is_empty())
            .ok_or_else(|| AliasError::Malformed(s.to_owned()))?;
        if !matches!(family, "al2023" | "al2" | "bottlerocket") {
            return Err(AliasError::UnknownFamily(s.to_owned()));
        }
        Ok(Alias {
            family: family.to_owned(),
            version: version.to_owned(),
        })
    }
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.family, self.version)
    }
}

/// One SSM parameter to read, and the Kubernetes architecture the image serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasParameter {
    /// Full parameter name.
    pub name: String,
    /// `amd64` or `arm64`.
    pub arch: &'static str,
}

impl Alias {
    /// The parameters naming this alias's images for Kubernetes `k8s_minor` (`1.36`): one per
    /// architecture (AL2023, Bottlerocket) — AL2 also has GPU variants upstream, left out
    /// here because no catalog here has GPU-specific AMIs.
    pub fn parameters(&self, k8s_minor: &str) -> Vec<AliasParameter> {
        let arches = [("amd64", "x86_64"), ("arm64", "arm64")];
        arches
            .into_iter()
            .map(|(arch, aws)| {
                let name = match self.family.as_str() {
                    "al2023" => {
                        let leaf = if self.version == "latest" {
                            "recommended/image_id".to_owned()
                        } else {
                            format!("amazon-eks-node-al2023-{aws}-standard-{k8s_minor}-{}/image_id", self.version)
                        };
                        format!("/aws/service/eks/optimized-ami/{k8s_minor}/amazon-linux-2023/{aws}/standard/{leaf}")
                    }
                    "al2" => {
                        let suffix = if aws == "arm64" { "-arm64" } else { "" };
                        let leaf = if self.version == "latest" {
                            "recommended/image_id".to_owned()
                        } else {
                            format!("amazon-eks{suffix}-node-{k8s_minor}-{}/image_id", self.version)
                        };
                        format!("/aws/service/eks/optimized-ami/{k8s_minor}/amazon-linux-2{suffix}/{leaf}")
                    }
                    _ => {
                        let v = self.version.trim_start_matches('v');
                        format!("/aws/service/bottlerocket/aws-k8s-{k8s_minor}/{aws}/{v}/image_id")
                    }
                };
                AliasParameter { name, arch }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn al2023_latest_reads_the_recommended_parameters() {
        let a: Alias = "al2023@latest".parse().unwrap();
        let p = a.parameters("1.36");
        assert_eq!(
            p[0].name,
            "/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id"
        );
        assert_eq!(p[0].arch, "amd64");
        assert_eq!(p[1].arch, "arm64");
        assert!(p[1].name.contains("/arm64/standard/"));
    }

    #[test]
    fn pinned_versions_and_other_families() {
        let a: Alias = "al2023@v20240807".parse().unwrap();
        assert!(a.parameters("1.30")[0].name.ends_with(
            "x86_64/standard/amazon-eks-node-al2023-x86_64-standard-1.30-v20240807/image_id"
        ));
        let b: Alias = "bottlerocket@latest".parse().unwrap();
        assert_eq!(
            b.parameters("1.30")[1].name,
            "/aws/service/bottlerocket/aws-k8s-1.30/arm64/latest/image_id"
        );
        assert_eq!(
            "al2023".parse::<Alias>(),
            Err(AliasError::Malformed("al2023".into()))
        );
        assert!(matches!(
            "windows2022@latest".parse::<Alias>(),
            Err(AliasError::UnknownFamily(_))
        ));
    }
}

//! NodeClasses → which instance-type catalog a NodePool draws from.
//!
//! The decisions need only the catalog: the provider's instance types, offerings and prices.
//! Which one is decided by the NodeClass's API group (`karpenter.k8s.aws` → AWS,
//! `karpenter.azure.com` → Azure, `karpenter.kwok.sh` → KWOK), so a NodePool whose NodeClass is
//! not among the input files still gets the right catalog from its `nodeClassRef.group`.

/// The catalog family a NodeClass selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CatalogKind {
    /// AWS EC2 (EC2NodeClass).
    Aws,
    /// Azure (AKSNodeClass).
    Azure,
    /// KWOK, the simulated provider (KWOKNodeClass).
    Kwok,
}

impl CatalogKind {
    /// The catalog of a NodeClass API group, if Tandem knows it.
    pub fn of_group(group: &str) -> Option<CatalogKind> {
        match group {
            "karpenter.k8s.aws" => Some(CatalogKind::Aws),
            "karpenter.azure.com" => Some(CatalogKind::Azure),
            "karpenter.kwok.sh" => Some(CatalogKind::Kwok),
            _ => None,
        }
    }

    /// Lower-case name, as scenario files spell it (`aws`, `azure`, `kwok`).
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogKind::Aws => "aws",
            CatalogKind::Azure => "azure",
            CatalogKind::Kwok => "kwok",
        }
    }
}

/// A NodeClass of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeClass {
    /// Kind (`EC2NodeClass` …).
    pub kind: String,
    /// Name.
    pub name: String,
    /// Its catalog.
    pub catalog: CatalogKind,
}

/// A NodeClass when `(api_version, kind)` is one; `None` for any other object.
pub fn convert(api_version: &str, kind: &str, name: &str) -> Option<NodeClass> {
    let catalog = match (api_version, kind) {
        ("karpenter.k8s.aws/v1", "EC2NodeClass") => CatalogKind::Aws,
        ("karpenter.azure.com/v1beta1", "AKSNodeClass") => CatalogKind::Azure,
        ("karpenter.kwok.sh/v1alpha1", "KWOKNodeClass") => CatalogKind::Kwok,
        _ => return None,
    };
    Some(NodeClass {
        kind: kind.to_owned(),
        name: name.to_owned(),
        catalog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::test_support::seed;

    #[test]
    fn seed_node_classes_select_their_provider_catalog() {
        let c = crate::convert::convert(&seed("004_27f72e644f865756")).unwrap();
        assert_eq!(c.node_classes[0].catalog, CatalogKind::Aws);
        let c = crate::convert::convert(&seed("003_76bb3cb27d73d62f")).unwrap();
        assert_eq!(c.node_classes[0].catalog, CatalogKind::Azure);
        assert_eq!(c.node_classes[0].name, "default-azurelinux");
        assert_eq!(
            convert("karpenter.kwok.sh/v1alpha1", "KWOKNodeClass", "k")
                .unwrap()
                .catalog,
            CatalogKind::Kwok
        );
        assert_eq!(
            CatalogKind::of_group("karpenter.k8s.aws"),
            Some(CatalogKind::Aws)
        );
        assert!(convert("v1", "Secret", "s").is_none());
    }
}

//! Node bootstrap user data for AL2023 (`nodeadm`): a MIME multipart document whose
//! `NodeConfig` names the cluster and registers the node with the NodeClaim's labels and taints,
//! followed by the class's own `userData` part if it has one — the shape upstream writes
//! (aws `pkg/providers/amifamily/bootstrap/nodeadm.go`). Pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tandem_api::karpenter::v1::Taint;

const BOUNDARY: &str = "//";

/// What a node needs to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap<'a> {
    /// `settings.clusterName`.
    pub cluster_name: &'a str,
    /// `settings.clusterEndpoint`.
    pub cluster_endpoint: &'a str,
    /// Labels the kubelet registers the node with.
    pub labels: &'a BTreeMap<String, String>,
    /// Taints (and startup taints) the kubelet registers it with.
    pub taints: &'a [Taint],
    /// The class's `userData`, appended as its own part.
    pub custom: Option<&'a str>,
}

/// The user data text (before base64).
pub fn al2023(b: &Bootstrap<'_>) -> String {
    let labels: Vec<String> = b.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let taints: Vec<String> = b
        .taints
        .iter()
        .map(|t| {
            let effect = serde_json::to_value(t.effect)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!(
                "{}={}:{effect}",
                t.key,
                t.value.as_deref().unwrap_or_default()
            )
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "MIME-Version: 1.0");
    let _ = writeln!(
        out,
        "Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\""
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "--{BOUNDARY}");
    let _ = writeln!(out, "Content-Type: application/node.eks.aws");
    let _ = writeln!(out);
    let _ = writeln!(out, "apiVersion: node.eks.aws/v1alpha1");
    let _ = writeln!(out, "kind: NodeConfig");
    let _ = writeln!(out, "spec:");
    let _ = writeln!(out, "  cluster:");
    let _ = writeln!(out, "    name: {}", b.cluster_name);
    let _ = writeln!(out, "    apiServerEndpoint: {}", b.cluster_endpoint);
    let _ = writeln!(out, "  kubelet:");
    let _ = writeln!(out, "    flags:");
    let _ = writeln!(out, "    - --node-labels={:?}", labels.join(","));
    if !taints.is_empty() {
        let _ = writeln!(out, "    - --register-with-taints={:?}", taints.join(","));
    }
    if let Some(custom) = b.custom {
        let _ = writeln!(out);
        let _ = writeln!(out, "--{BOUNDARY}");
        let _ = writeln!(
            out,
            "Content-Type: text/x-shellscript; charset=\"us-ascii\""
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", custom.trim_end());
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "--{BOUNDARY}--");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_api::karpenter::v1::TaintEffect;

    #[test]
    fn names_the_cluster_and_registers_labels_and_taints() {
        let labels: BTreeMap<String, String> =
            [("karpenter.sh/nodepool".to_owned(), "default".to_owned())].into();
        let taints = [Taint {
            key: "karpenter.sh/unregistered".into(),
            value: None,
            effect: TaintEffect::NoExecute,
            time_added: None,
        }];
        let text = al2023(&Bootstrap {
            cluster_name: "demo",
            cluster_endpoint: "https://demo.example",
            labels: &labels,
            taints: &taints,
            custom: Some("echo hi"),
        });
        assert!(text.contains("    name: demo\n"));
        assert!(text.contains("--node-labels=\"karpenter.sh/nodepool=default\""));
        assert!(text.contains("--register-with-taints=\"karpenter.sh/unregistered=:NoExecute\""));
        assert!(text.contains("text/x-shellscript"));
        assert!(text.ends_with("--//--\n"));
    }
}

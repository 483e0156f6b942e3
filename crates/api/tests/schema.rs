//! Properties of the generated schemas that Kubernetes compatibility depends on:
//! int-or-string quantities, upstream CEL rules, defaults, printer columns and names.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

fn crd(name: &str) -> CustomResourceDefinition {
    tandem_api::crds::all()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no CRD {name}"))
}

fn schema(name: &str) -> Value {
    let c = crd(name);
    let s = c.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(s.expect("has a schema")).expect("serializes")
}

/// Walks `path` (object keys; `[]` = items, `{}` = additionalProperties).
fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    let mut here = schema;
    for step in path.split('.').filter(|s| !s.is_empty()) {
        here = match step {
            "[]" => &here["items"],
            "{}" => &here["additionalProperties"],
            key => &here["properties"][key],
        };
        assert!(!here.is_null(), "no schema at {path} (stopped at {step})");
    }
    here
}

fn messages(node: &Value) -> Vec<String> {
    node["x-kubernetes-validations"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r["message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_int_or_string(node: &Value, what: &str) {
    assert_eq!(
        node["x-kubernetes-int-or-string"], true,
        "{what}: not int-or-string"
    );
    assert_eq!(
        node["anyOf"],
        serde_json::json!([{"type": "integer"}, {"type": "string"}]),
        "{what}: anyOf integer/string"
    );
    assert!(node["pattern"].is_string(), "{what}: quantity pattern");
    assert!(
        node.get("type").is_none(),
        "{what}: int-or-string must not have a type"
    );
}

#[test]
fn quantities_are_int_or_string() {
    let np = schema("nodepools.karpenter.sh");
    assert_int_or_string(at(&np, "spec.limits.{}"), "NodePool limits");
    assert_int_or_string(at(&np, "status.resources.{}"), "NodePool status.resources");
    let nc = schema("nodeclaims.karpenter.sh");
    assert_int_or_string(at(&nc, "spec.resources.requests.{}"), "NodeClaim requests");
    assert_int_or_string(at(&nc, "status.capacity.{}"), "NodeClaim capacity");
    assert_int_or_string(at(&nc, "status.allocatable.{}"), "NodeClaim allocatable");
    let sj = schema("scaledjobs.keda.sh");
    let requests = at(
        &sj,
        "spec.jobTargetRef.template.spec.containers.[].resources.requests.{}",
    );
    assert_eq!(
        requests["x-kubernetes-int-or-string"], true,
        "pod requests in a ScaledJob"
    );
}

#[test]
fn nodepool_cel_rules_are_present() {
    let np = schema("nodepools.karpenter.sh");
    let spec = messages(at(&np, "spec"));
    assert!(
        spec.iter()
            .any(|m| m.starts_with("Cannot transition NodePool between static"))
    );
    assert!(spec.contains(&"only 'limits.nodes' is supported on static NodePools".to_owned()));
    assert!(spec.contains(&"'weight' is not supported on static NodePools".to_owned()));
    let reqs = at(&np, "spec.template.spec.requirements");
    assert_eq!(reqs["maxItems"], 100, "CEL cost needs a bound");
    assert_eq!(
        messages(reqs),
        [
            "requirements with operator 'In' must have a value defined",
            "requirements operator 'Gt', 'Lt', 'Gte', or 'Lte' must have a single positive integer value",
            "requirements with 'minValues' must have at least that many values specified in the 'values' field",
        ]
    );
    let key = at(&np, "spec.template.spec.requirements.[].key");
    assert_eq!(key["maxLength"], 316);
    assert_eq!(
        messages(key),
        [
            "label domain \"karpenter.sh\" is restricted",
            "label \"karpenter.sh/nodepool\" is restricted",
            "label \"kubernetes.io/hostname\" is restricted",
        ]
    );
    assert_eq!(messages(at(&np, "spec.template.metadata.labels")).len(), 3);
    assert_eq!(
        messages(at(&np, "spec.disruption.budgets")),
        ["'schedule' must be set with 'duration'"]
    );
    assert_eq!(
        messages(at(&np, "spec.template.spec.nodeClassRef")),
        [
            "nodeClassRef.group is immutable",
            "nodeClassRef.kind is immutable"
        ]
    );
    assert_eq!(
        messages(at(&np, "spec.template.spec.nodeClassRef.group")),
        ["group may not be empty"]
    );
}

#[test]
fn nodeclaim_allows_the_nodepool_key_and_freezes_its_spec() {
    let nc = schema("nodeclaims.karpenter.sh");
    assert_eq!(messages(at(&nc, "spec")), ["spec is immutable"]);
    let key = messages(at(&nc, "spec.requirements.[].key"));
    assert_eq!(key.len(), 2);
    assert!(!key.iter().any(|m| m.contains("karpenter.sh/nodepool")));
}

#[test]
fn duration_patterns_and_defaults_match_upstream() {
    let np = schema("nodepools.karpenter.sh");
    let d = at(&np, "spec.disruption");
    assert_eq!(d["default"], serde_json::json!({"consolidateAfter": "0s"}));
    let after = at(&np, "spec.disruption.consolidateAfter");
    assert_eq!(after["pattern"], "^(([0-9]+(s|m|h))+|Never)$");
    assert_eq!(after["default"], "0s");
    assert_eq!(
        at(&np, "spec.disruption.consolidationPolicy")["default"],
        "WhenEmptyOrUnderutilized"
    );
    assert_eq!(
        at(&np, "spec.disruption.budgets")["default"],
        serde_json::json!([{"nodes": "10%"}])
    );
    assert_eq!(
        at(&np, "spec.disruption.budgets.[].duration")["pattern"],
        "^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$"
    );
    let expire = at(&np, "spec.template.spec.expireAfter");
    assert_eq!(expire["default"], "720h");
    let tgp = at(&np, "spec.template.spec.terminationGracePeriod");
    assert_eq!(tgp["pattern"], "^([0-9]+(s|m|h))+$");
    assert!(
        tgp.get("default").is_none(),
        "no terminationGracePeriod by default"
    );
    assert_eq!(at(&np, "spec.weight")["maximum"].as_f64(), Some(100.0));
}

#[test]
fn scaledobject_min_max_rule_is_enforced_by_the_api_server() {
    let so = schema("scaledobjects.keda.sh");
    assert_eq!(
        messages(at(&so, "spec")),
        ["minReplicaCount must be less than or equal to maxReplicaCount"]
    );
    assert!(
        at(&so, "spec.pollingInterval").get("default").is_none(),
        "KEDA defaults are code defaults"
    );
    assert_eq!(at(&so, "spec.triggers")["minItems"], 1);
    let metadata = at(&so, "spec.triggers.[].metadata");
    assert_eq!(
        metadata["additionalProperties"]["type"], "string",
        "map[string]string"
    );
    assert_eq!(at(&so, "spec.fallback.behavior")["default"], "static");
}

#[test]
fn ec2nodeclass_cel_rules_are_present() {
    let s = schema("ec2nodeclasses.karpenter.k8s.aws");
    let spec = messages(at(&s, "spec"));
    assert_eq!(spec.len(), 8);
    assert_eq!(
        spec[0],
        "must specify exactly one of ['role', 'instanceProfile']"
    );
    assert!(spec.contains(
        &"if set, amiFamily must be 'AL2023' or 'Custom' when using an AL2023 alias".to_owned()
    ));
    assert_eq!(messages(at(&s, "spec.amiSelectorTerms")).len(), 4);
    assert_eq!(messages(at(&s, "spec.amiSelectorTerms.[].alias")).len(), 3);
    assert_eq!(messages(at(&s, "spec.tags")).len(), 6);
    assert_eq!(
        at(&s, "spec.metadataOptions")["default"]["httpTokens"],
        "required"
    );
    assert!(
        s.get("required")
            .is_none_or(|r| !r.as_array().is_some_and(|a| a.contains(&"spec".into())))
    );
}

fn columns(name: &str) -> Vec<(String, String, i32)> {
    crd(name).spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.json_path, c.priority.unwrap_or(0)))
        .collect()
}

#[test]
fn printer_columns_match_upstream() {
    let np: Vec<_> = columns("nodepools.karpenter.sh")
        .into_iter()
        .map(|c| (c.0, c.2))
        .collect();
    let expect = [
        ("NodeClass", 0),
        ("Nodes", 0),
        ("Ready", 0),
        ("Age", 0),
        ("Weight", 1),
        ("CPU", 1),
        ("Memory", 1),
    ];
    assert_eq!(np, expect.map(|(n, p)| (n.to_owned(), p)));
    let so: Vec<_> = columns("scaledobjects.keda.sh")
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        so,
        [
            "ScaleTargetKind",
            "ScaleTargetName",
            "Min",
            "Max",
            "Ready",
            "Active",
            "Fallback",
            "Paused",
            "Triggers",
            "Authentications",
            "Age"
        ]
    );
    let sj: Vec<_> = columns("scaledjobs.keda.sh")
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        sj,
        [
            "Min",
            "Max",
            "Ready",
            "Active",
            "Paused",
            "Triggers",
            "Authentications",
            "Age"
        ]
    );
    let nc = columns("nodeclaims.karpenter.sh");
    assert_eq!(
        nc[0].1,
        ".metadata.labels.node\\.kubernetes\\.io/instance-type"
    );
    assert_eq!(nc.len(), 11);
    let cta: Vec<_> = columns("clustertriggerauthentications.keda.sh")
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(cta[3], "FilePath");
    assert_eq!(columns("triggerauthentications.keda.sh").len(), 6);
    assert_eq!(
        columns("aksnodeclasses.karpenter.azure.com")[0].1,
        ".status.conditions[?(@.type=='Ready')].status"
    );
    assert!(columns("kwoknodeclasses.karpenter.kwok.sh").is_empty());
}

#[test]
fn names_scopes_and_subresources_match_upstream() {
    let cases = [
        ("scaledobjects.keda.sh", "Namespaced", vec!["so"], vec![]),
        ("scaledjobs.keda.sh", "Namespaced", vec!["sj"], vec![]),
        (
            "triggerauthentications.keda.sh",
            "Namespaced",
            vec!["ta", "triggerauth"],
            vec![],
        ),
        (
            "clustertriggerauthentications.keda.sh",
            "Cluster",
            vec!["cta", "clustertriggerauth"],
            vec![],
        ),
        (
            "nodepools.karpenter.sh",
            "Cluster",
            vec![],
            vec!["karpenter"],
        ),
        (
            "nodeclaims.karpenter.sh",
            "Cluster",
            vec![],
            vec!["karpenter"],
        ),
        (
            "ec2nodeclasses.karpenter.k8s.aws",
            "Cluster",
            vec!["ec2nc", "ec2ncs"],
            vec!["karpenter"],
        ),
        (
            "aksnodeclasses.karpenter.azure.com",
            "Cluster",
            vec!["aksnc", "aksncs"],
            vec!["karpenter", "nap"],
        ),
        (
            "kwoknodeclasses.karpenter.kwok.sh",
            "Cluster",
            vec!["kwoknc", "kwokncs"],
            vec!["karpenter"],
        ),
    ];
    for (name, scope, short, categories) in cases {
        let c = crd(name);
        assert_eq!(c.spec.scope, scope, "{name}");
        assert_eq!(
            c.spec.names.short_names.clone().unwrap_or_default(),
            short,
            "{name}"
        );
        assert_eq!(
            c.spec.names.categories.clone().unwrap_or_default(),
            categories,
            "{name}"
        );
        let sub = c.spec.versions[0]
            .subresources
            .as_ref()
            .expect("subresources");
        assert!(sub.status.is_some(), "{name}: status subresource");
    }
    let scale = crd("nodepools.karpenter.sh").spec.versions[0]
        .subresources
        .clone()
        .and_then(|s| s.scale);
    let scale = scale.expect("NodePool has a scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.nodes");
    for legacy in [
        "provisioners.karpenter.sh",
        "awsnodetemplates.karpenter.k8s.aws",
    ] {
        assert_eq!(
            crd(legacy).spec.versions[0].deprecated,
            Some(true),
            "{legacy} is marked deprecated"
        );
    }
}

#[test]
fn no_schema_node_is_nullable() {
    fn walk(v: &Value, path: &str) {
        match v {
            Value::Object(o) => {
                assert!(o.get("nullable").is_none(), "nullable at {path}");
                for (k, c) in o {
                    walk(c, &format!("{path}/{k}"));
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, path)),
            _ => {}
        }
    }
    for c in tandem_api::crds::all() {
        let name = c.metadata.name.clone().unwrap_or_default();
        walk(&serde_json::to_value(&c).expect("serializes"), &name);
    }
}

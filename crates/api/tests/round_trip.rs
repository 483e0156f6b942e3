//! Upstream YAML reads into the types and writes back without losing anything: the seed
//! articles' manifests exactly as published, and one full fixture per kind (spec and status).

mod common;

use common::{documents, round_trip, round_trip_known, workspace_root, yaml_files};
use std::time::Duration;
use tandem_api::duration::NillableDuration;
use tandem_api::{aws, azure, karpenter, keda, kwok, legacy};

#[test]
fn every_seed_manifest_of_our_kinds_round_trips_losslessly() {
    let dir = workspace_root().join("examples/seeds");
    let files = yaml_files(&dir);
    assert!(
        !files.is_empty(),
        "no seed manifests under {}",
        dir.display()
    );
    let mut ours = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("seed file is readable");
        for (n, doc) in documents(&text).iter().enumerate() {
            if round_trip_known(doc, &format!("{}#{n}", file.display())) {
                ours += 1;
            }
        }
    }
    // Seeds 001–004 hold 2 + 3 + 3 + 2 + 5 objects of our kinds (see examples/seeds/README.md).
    assert!(ours >= 12, "only {ours} seed objects of our kinds found");
}

#[test]
fn every_fixture_round_trips_losslessly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for file in yaml_files(&dir) {
        let text = std::fs::read_to_string(&file).expect("fixture is readable");
        for doc in documents(&text) {
            assert!(
                round_trip_known(&doc, &file.display().to_string()),
                "{}: not one of our kinds",
                file.display()
            );
        }
    }
}

fn fixture(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    documents(&text).remove(0)
}

fn seed(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(workspace_root().join("examples/seeds").join(path))
        .expect("seed is readable");
    documents(&text).remove(0)
}

#[test]
fn seed_002_nodepool_keeps_durations_and_quantities_as_written() {
    let np: karpenter::NodePool = round_trip(
        &seed("002_85c0937ec41394ee/01-nodepool-node-spot.yaml"),
        "seed 002 NodePool",
    );
    let d = &np.spec.disruption;
    assert_eq!(d.consolidate_after.as_str(), "1m");
    assert_eq!(
        d.consolidate_after.value(),
        &NillableDuration::Duration(Duration::from_secs(60))
    );
    assert_eq!(np.spec.template.spec.expire_after.as_str(), "168h0m0s");
    assert_eq!(np.spec.limits["cpu"].as_str(), "1k");
    assert_eq!(np.spec.limits["memory"].as_str(), "500Gi");
    let back = serde_json::to_value(&np).expect("serializes");
    assert_eq!(back["spec"]["disruption"]["consolidateAfter"], "1m");
}

#[test]
fn seed_004_nodepool_reads_numeric_cpu_limit() {
    let np: karpenter::NodePool = round_trip(
        &seed("004_27f72e644f865756/01-nodepool-default.yaml"),
        "seed 004 NodePool",
    );
    assert_eq!(np.spec.limits["cpu"].as_str(), "64");
    assert_eq!(np.spec.weight, Some(10));
    assert_eq!(np.spec.template.spec.expire_after.as_str(), "720h");
}

#[test]
fn seed_003_nodepool_reads_one_second_consolidation() {
    let np: karpenter::NodePool = round_trip(
        &seed("003_76bb3cb27d73d62f/04-nodepool-arm-nodepool.yaml"),
        "seed 003 NodePool",
    );
    assert_eq!(
        np.spec.disruption.consolidate_after.value().as_duration(),
        Some(Duration::from_secs(1))
    );
}

#[test]
fn seed_001_legacy_kinds_read() {
    let p: legacy::Provisioner = round_trip(
        &seed("001_51459dee51fdb46a/01-provisioner-default.yaml"),
        "seed 001 Provisioner",
    );
    assert_eq!(p.spec.ttl_seconds_after_empty, Some(30));
    assert_eq!(p.spec.requirements[0].values, ["t"]);
    let t: legacy::AWSNodeTemplate = round_trip(
        &seed("001_51459dee51fdb46a/02-awsnodetemplate-default.yaml"),
        "seed 001 AWSNodeTemplate",
    );
    let subnets = t.spec.subnet_selector.expect("subnetSelector is set");
    assert_eq!(subnets["karpenter.sh/discovery"], "CLUSTER_NAME");
}

#[test]
fn nodepool_defaults_match_upstream() {
    let np: karpenter::NodePool = serde_yaml_ng::from_str(
        "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      nodeClassRef: {group: karpenter.kwok.sh, kind: KWOKNodeClass, name: default}\n      requirements: []\n",
    )
    .expect("minimal NodePool parses");
    let d = &np.spec.disruption;
    assert_eq!(
        d.consolidation_policy,
        karpenter::v1::ConsolidationPolicy::WhenEmptyOrUnderutilized
    );
    assert_eq!(d.consolidate_after.as_str(), "0s");
    assert_eq!(d.budgets.len(), 1);
    assert_eq!(d.budgets[0].nodes, "10%");
    let t = &np.spec.template.spec;
    assert_eq!(t.expire_after.as_str(), "720h");
    assert_eq!(
        t.expire_after.value().as_duration(),
        Some(Duration::from_secs(720 * 3600))
    );
    assert_eq!(t.termination_grace_period, None);
    assert_eq!(np.spec.weight, None);
    assert!(np.spec.limits.is_empty());
}

#[test]
fn explicit_empty_budgets_stay_empty() {
    let d: karpenter::v1::Disruption =
        serde_yaml_ng::from_str("budgets: []").expect("disruption parses");
    assert!(d.budgets.is_empty(), "[] means no budgets, not the default");
    assert_eq!(
        serde_json::to_value(&d).expect("serializes")["budgets"],
        serde_json::json!([])
    );
}

#[test]
fn never_disables_expiry_and_consolidation() {
    let np: karpenter::NodePool = round_trip(&fixture("nodepool-full.yaml"), "NodePool fixture");
    assert_eq!(
        np.spec.template.spec.expire_after.value(),
        &NillableDuration::Never
    );
    let tgp = np
        .spec
        .template
        .spec
        .termination_grace_period
        .expect("set in fixture");
    assert_eq!(tgp.value().0, Duration::from_secs(48 * 3600));
    assert_eq!(
        np.spec.disruption.budgets[0]
            .duration
            .as_ref()
            .map(|d| d.as_str()),
        Some("8h")
    );
}

#[test]
fn nodeclaim_defaults_match_upstream() {
    let nc: karpenter::NodeClaim = serde_yaml_ng::from_str(
        "apiVersion: karpenter.sh/v1\nkind: NodeClaim\nmetadata: {name: c}\nspec:\n  nodeClassRef: {group: g, kind: K, name: n}\n  requirements: []\n",
    )
    .expect("minimal NodeClaim parses");
    assert_eq!(nc.spec.expire_after.as_str(), "720h");
    assert_eq!(
        nc.spec.termination_grace_period, None,
        "no terminationGracePeriod by default"
    );
}

#[test]
fn scaledobject_defaults_are_keda_code_defaults() {
    let so: keda::ScaledObject = round_trip(
        &seed("003_76bb3cb27d73d62f/03-scaledobject-virtual-worker-rabbitmq-scaledobject.yaml"),
        "seed 003 ScaledObject",
    );
    let s = &so.spec;
    assert_eq!(s.polling_interval_or_default(), 60, "set in the seed");
    assert_eq!(s.cooldown_period_or_default(), 300);
    assert_eq!(s.max_replica_count_or_default(), 100);
    assert_eq!(s.min_replica_count_or_default(), 1);
    assert_eq!(s.scale_target_ref.kind_or_default(), "Deployment");
    assert_eq!(s.scale_target_ref.api_version_or_default(), "apps/v1");
    assert_eq!(
        s.max_replica_count, None,
        "presence is kept: webhook rules depend on it"
    );
    assert_eq!(s.triggers[0].metadata["value"], "10");
    let auth = s.triggers[0]
        .authentication_ref
        .as_ref()
        .expect("set in the seed");
    assert_eq!(auth.kind_or_default(), "TriggerAuthentication");
}

#[test]
fn scaledobject_fixture_reads_every_field() {
    let so: keda::ScaledObject =
        round_trip(&fixture("scaledobject-full.yaml"), "ScaledObject fixture");
    let fallback = so.spec.fallback.expect("fallback set");
    assert_eq!(
        fallback.behavior,
        keda::v1alpha1::FallbackBehavior::CurrentReplicasIfHigher
    );
    let status = so.status.expect("status set");
    assert_eq!(status.paused_replica_count, Some(3));
    assert!(status.triggers_activity["s0-rabbitmq-orders"].is_active);
}

#[test]
fn fallback_behavior_defaults_to_static() {
    let f: keda::v1alpha1::Fallback =
        serde_yaml_ng::from_str("failureThreshold: 3\nreplicas: 2").expect("fallback parses");
    assert_eq!(f.behavior, keda::v1alpha1::FallbackBehavior::Static);
}

#[test]
fn scaledjob_defaults_are_keda_code_defaults() {
    let sj: keda::ScaledJob = round_trip(&fixture("scaledjob-full.yaml"), "ScaledJob fixture");
    assert_eq!(sj.spec.successful_jobs_history_limit_or_default(), 10);
    let mut spec = sj.spec.clone();
    spec.successful_jobs_history_limit = None;
    spec.max_replica_count = Some(2);
    spec.min_replica_count = Some(5);
    assert_eq!(spec.successful_jobs_history_limit_or_default(), 100);
    assert_eq!(
        spec.min_replica_count_or_default(),
        2,
        "min is clamped to max like KEDA"
    );
    assert_eq!(sj.status.and_then(|s| s.paused).as_deref(), Some("false"));
}

#[test]
fn cluster_trigger_authentication_shares_the_spec() {
    let cta: keda::ClusterTriggerAuthentication = round_trip(
        &fixture("clustertriggerauthentication-full.yaml"),
        "CTA fixture",
    );
    assert_eq!(cta.spec.file_path.as_deref(), Some("tenants/a/creds.json"));
    assert_eq!(
        cta.spec.oauth2.as_ref().map(|o| o.type_.as_str()),
        Some("clientCredentials")
    );
}

#[test]
fn ec2nodeclass_metadata_options_default_to_imdsv2() {
    let nc: aws::EC2NodeClass = round_trip(
        &seed("004_27f72e644f865756/02-ec2nodeclass-default.yaml"),
        "seed 004 EC2NodeClass",
    );
    assert_eq!(
        nc.spec.ami_selector_terms[0].alias.as_deref(),
        Some("al2023@latest")
    );
    let m = &nc.spec.metadata_options;
    assert_eq!(
        (
            m.http_endpoint.as_str(),
            m.http_protocol_ipv6.as_str(),
            m.http_put_response_hop_limit,
            m.http_tokens.as_str()
        ),
        ("enabled", "disabled", 1, "required")
    );
}

#[test]
fn aksnodeclass_defaults_match_upstream() {
    let nc: azure::AKSNodeClass = round_trip(
        &seed("003_76bb3cb27d73d62f/05-aksnodeclass-default-azurelinux.yaml"),
        "seed 003 AKSNodeClass",
    );
    assert_eq!(nc.spec.image_family, "AzureLinux");
    assert_eq!(nc.spec.os_disk_size_gb, 128);
    let empty: azure::v1beta1::AKSNodeClassSpec = serde_yaml_ng::from_str("{}").expect("parses");
    assert_eq!(empty.image_family, "Ubuntu");
}

#[test]
fn kwoknodeclass_reads_registration_delay() {
    let nc: kwok::KWOKNodeClass =
        round_trip(&fixture("kwoknodeclass.yaml"), "KWOKNodeClass fixture");
    let delay = nc.spec.node_registration_delay.expect("set in fixture");
    assert_eq!(delay.value().0, Duration::from_secs(5));
}

#[test]
fn bad_durations_are_rejected_with_the_parse_error() {
    let err = serde_yaml_ng::from_str::<karpenter::v1::Disruption>("consolidateAfter: 1 minute")
        .expect_err("not a Go duration");
    assert!(err.to_string().contains("duration"), "{err}");
}

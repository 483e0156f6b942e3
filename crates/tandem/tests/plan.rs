//! `tandem plan` end to end, as a user runs it: the seeds' manifests, metric values on the
//! command line, the pod layer's replicas, then the node layer's NodeClaims or reasons.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tandem(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SEED_002: &str = "examples/seeds/002_85c0937ec41394ee";
const EC2_NODE_CLASS: &str = "examples/seeds/004_27f72e644f865756/02-ec2nodeclass-default.yaml";

/// Seed 002: 250 messages at queueLength 5 → 50 replicas; the pods tolerate the spot pool's
/// taint and land there on spot capacity from the c/m/r families.
#[test]
fn seed_002_burst_scales_to_fifty_and_launches_spot_capacity() {
    let (code, j, err) = tandem(&[
        "plan",
        SEED_002,
        EC2_NODE_CLASS,
        "--metric",
        "processing/sqs-consumer-scaler/0=250",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let s = &j["scaling"][0];
    assert_eq!(s["scaledObject"], "processing/sqs-consumer-scaler");
    assert_eq!(s["desiredReplicas"], 50);
    assert_eq!(s["active"], true);
    assert_eq!(s["metrics"][0]["replicas"], 50);
    let claims = j["nodeClaims"].as_array().unwrap();
    assert!(!claims.is_empty());
    let pods: usize = claims
        .iter()
        .map(|c| c["pods"].as_array().unwrap().len())
        .sum();
    assert_eq!(pods, 50);
    for c in claims {
        assert_eq!(c["nodePool"], "node-spot");
        assert_eq!(c["capacityType"], "spot");
        let it = c["instanceType"].as_str().unwrap();
        assert!(["c", "m", "r"].contains(&&it[..1]), "{it}");
        assert!(c["instanceTypes"].as_array().unwrap().len() <= 60);
    }
    assert!(j["unschedulable"].as_array().unwrap().is_empty());
    let total = j["totalPricePerHour"].as_f64().unwrap();
    let bound = j["lowerBoundPricePerHour"].as_f64().unwrap();
    assert!(total >= bound - 1e-9 && bound > 0.0, "{total} vs {bound}");
}

/// With an empty queue the ScaledObject (minReplicaCount 0) is inactive: no pod, no node.
#[test]
fn seed_002_empty_queue_plans_nothing() {
    let (code, j, err) = tandem(&["plan", SEED_002, EC2_NODE_CLASS, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["scaling"][0]["desiredReplicas"], 0);
    assert_eq!(j["scaling"][0]["active"], false);
    assert!(j["nodeClaims"].as_array().unwrap().is_empty());
}

/// Seed 004's nginx (10 × 500m, no toleration, no selector) on the seed-004 NodePool; the same
/// pods cannot use seed 002's spot pool, whose taint they do not tolerate.
#[test]
fn seed_004_nginx_is_placed_and_the_tainted_pool_is_refused_with_its_reason() {
    let (code, j, err) = tandem(&["plan", "examples/seeds/004_27f72e644f865756", "--json"]);
    assert_eq!(code, 0, "{err}");
    let pods: usize = j["nodeClaims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pods"].as_array().unwrap().len())
        .sum();
    assert_eq!(pods, 10);

    let (code, j, _) = tandem(&[
        "plan",
        "examples/seeds/002_85c0937ec41394ee/01-nodepool-node-spot.yaml",
        EC2_NODE_CLASS,
        "examples/seeds/004_27f72e644f865756/03-deployment-nginx.yaml",
        "--json",
    ]);
    assert_eq!(code, 1, "pods that cannot be placed exit 1");
    let reasons = j["unschedulable"].as_array().unwrap();
    assert_eq!(reasons.len(), 10);
    let reason = reasons[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("node-spot")
            && reason.contains("did not tolerate intent=workload-split:NoSchedule"),
        "{reason}"
    );
}

/// A failing trigger with no fallback holds the replicas; invalid input exits 2.
#[test]
fn failing_trigger_holds_replicas_and_invalid_input_exits_2() {
    let (code, j, err) = tandem(&[
        "plan",
        SEED_002,
        EC2_NODE_CLASS,
        "--current-replicas",
        "processing/sqs-consumer=7",
        "--failing",
        "processing/sqs-consumer-scaler/0",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["scaling"][0]["desiredReplicas"], 7);
    let (code, _, _) = tandem(&[
        "plan",
        "examples/broken/semantic/05-deployment-bad-cpu.yaml",
    ]);
    assert_eq!(code, 2);
}

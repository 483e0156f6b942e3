//! Control-plane faults against the real `tandem run` binary (#14, item 2), each test on a
//! control plane of its own (its components are killed) with kube-apiserver's audit log on.
//!
//! 1. One replica (`--disable-leader-election`). kube-apiserver is `kill -9`ed once the
//!    Deployment's 6 pods exist (the replica's provisioning batch for them is open), etcd
//!    (down 2 s) once the first NodeClaim exists, while claims launch and nodes register; then
//!    a scale-up to 12 (a decision made after those faults) meets both again: kube-apiserver
//!    right after its first claim, etcd 500 ms after kube-apiserver is back. Proven: every pod
//!    ends Running; the NodeClaims, the Nodes, the successful `create nodeclaims` of the audit
//!    log and the replica's `created nodeclaim` lines all number exactly what the pods need
//!    (two 400m pods fill a 1-vCPU kwok node: ⌈pods / 2⌉, so no duplicate launch and no lost
//!    decision); the process is still running; its watches failed (logged) and resumed: its
//!    own view, as its `/metrics` shows it, has every pod Running on every node.
//! 2. Three replicas with leader election on a Lease; the leader is `kill -9`ed five times
//!    while a Deployment grows by 3 pods per step, a fresh replica (new identity) replacing
//!    each killed one. Seeded kill moments: one in three within a second of the step (mostly
//!    before the leader planned: its successor must make the decision), the others 0–1.5 s
//!    after the leader's first claim of the step (between claims, during launches, while
//!    nodes turn Ready). Each replica talks to the API server impersonating its own identity
//!    (kubeconfig `as:`, group `system:masters`), so the audit log names the replica behind
//!    every request: that is what makes "exactly one acts at any time" exact rather than a
//!    correlation of timestamps. Proven from the audit log: the Lease was written
//!    successfully by one replica at a time, in consecutive tenures (none resumed after
//!    another began), the killed replicas' in kill order; every other successful write of a
//!    replica (NodeClaims, Nodes, node Leases, pods, Events, status…) was received after its
//!    tenure began and completed before the next one began, and a replica that never led
//!    wrote nothing; the NodeClaim creations are all by replicas and number exactly the claims
//!    in the cluster, which number exactly what the pods need, all Running in the end.
//!    Cross-checked against the Lease holder the test polls every 100 ms (each creation falls
//!    in its creator's observed holding interval, give or take 1 s for the poll's period and
//!    latency) and against the replicas' logs (each claim in exactly one log, each replica's
//!    count equal to the audit log's).
//!
//! Not checked, or not exactly: the audit log's timestamps are the API server's and the
//! Lease poll's the test's (one host clock; the slack is for the poll only). A `kill -9`
//! between a creation's response and its log line would make a log miss a claim that the
//! audit log (written before the response is sent) has: a window of microseconds, reported
//! as such if it ever shows. A leader that is paused rather than killed and resumes after
//! losing the Lease is test 3 (below). In tests 2 and 3 kwok nodes register at once (see
//! `start_replica`), and the pod layer is off (no ScaledObjects here).
//!
//! The tests run one after the other (a lock): two control planes plus replicas at once
//! are too much for two cores, where a starved leader may miss its renew deadline.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Replica, get};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_testkit::{ControlPlane, Options, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);
const LEASE: &str = "tandem-leader-election";
/// A 1-vCPU kwok node (`c-1x-amd64-linux`) has 900m allocatable: two pods of 400m fill it.
const POD_CPU: &str = "400m";
const PODS_PER_NODE: usize = 2;
/// How long etcd stays down when it is restarted: requests fail meanwhile.
const ETCD_DOWN: Duration = Duration::from_secs(2);

/// One test at a time; see the module docs.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn needed_nodes(pods: usize) -> usize {
    pods.div_ceil(PODS_PER_NODE)
}

async fn control_plane() -> ControlPlane {
    ControlPlane::start_with(Options {
        audit_log: true,
        ..Options::default()
    })
    .await
    .expect("control plane")
}

/// A KWOKNodeClass and a NodePool named `ns` allowing only `c-1x-amd64-linux` on-demand, with
/// consolidation off (a node half full must stay: the counts are exact).
async fn nodepool(client: &Client, ns: &str) {
    let class = format!("{ns}-kwok");
    common::kwok_class(client, &class).await;
    let pool: NodePool = serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": ns},
        "spec": {"limits": {"cpu": "100"},
            "disruption": {"consolidateAfter": "Never"},
            "template": {"spec": {
                "requirements": [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-1x-amd64-linux"]}],
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": class}}}},
    }))
    .expect("nodepool");
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &pool)
        .await
        .expect("create nodepool");
}

async fn deployment(client: &Client, ns: &str, replicas: usize) -> Api<Deployment> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "work"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "work"}},
            "template": {"metadata": {"labels": {"app": "work"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": POD_CPU}}}]}}},
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    deployments
}

async fn scale(deployments: &Api<Deployment>, replicas: usize) {
    // Retried: the API server may be restarting.
    wait_for("the scale patch", TIMEOUT, || async {
        deployments
            .patch(
                "work",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
            )
            .await
            .ok()
            .map(|_| ())
    })
    .await
    .expect("scale the deployment");
}

/// (pods of the Deployment, of which Running), or None while the API server does not answer.
async fn pods_running(pods: &Api<Pod>) -> Option<(usize, usize)> {
    let items = pods
        .list(&ListParams::default().labels("app=work"))
        .await
        .ok()?
        .items;
    let running = items
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .count();
    Some((items.len(), running))
}

/// The pool's NodeClaims and kwok Nodes (names).
async fn claims_and_nodes(client: &Client, ns: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let selector = format!("karpenter.sh/nodepool={ns}");
    let claims = Api::<NodeClaim>::all(client.clone())
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("list nodeclaims")
        .items;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("list nodes")
        .items;
    (
        claims.into_iter().filter_map(|c| c.metadata.name).collect(),
        nodes.into_iter().filter_map(|n| n.metadata.name).collect(),
    )
}

/// Waits until all `want` pods of the Deployment are Running.
async fn all_running(pods: &Api<Pod>, want: usize, why: impl Fn() -> String) {
    let done = wait_for(&format!("{want} pods Running"), TIMEOUT, || async {
        (pods_running(pods).await? == (want, want)).then_some(())
    })
    .await;
    if let Err(e) = done {
        panic!(
            "{e}: (pods, Running) {:?}\n{}",
            pods_running(pods).await,
            why()
        );
    }
}

/// Waits until the replica's own view, as its `/metrics` shows it, has the `pods` pods of
/// namespace `ns` Running and `nodes` nodes: its pod and node watches are live and caught up.
async fn view_caught_up(replica: &Replica, ns: &str, pods: usize, nodes: usize) {
    let node_line = format!("karpenter_cluster_state_node_count {nodes}");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Some((_, text)) = get(replica.metrics, "/metrics").await {
            let running = text
                .lines()
                .filter(|l| {
                    l.starts_with("karpenter_pods_state{")
                        && l.contains(&format!("namespace=\"{ns}\""))
                        && l.contains("phase=\"Running\"")
                        && l.ends_with(" 1")
                })
                .count();
            if running == pods && text.lines().any(|l| l == node_line) {
                return;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state: Vec<&str> = last
        .lines()
        .filter(|l| l.starts_with("karpenter_pods_state") || l.starts_with("karpenter_cluster"))
        .collect();
    let log = replica.log();
    panic!(
        "{}'s view never showed {pods} pods Running on {nodes} nodes; last:\n{}\n\
         its claim creations and warnings:\n{}\nits log:\n{log}",
        replica.id,
        state.join("\n"),
        key_lines(&log)
    );
}

/// The lines of a replica's log worth reading first: its claim creations and its warnings,
/// but for the client's "eof in poll" (every connection breaks when kube-apiserver dies).
fn key_lines(log: &str) -> String {
    log.lines()
        .filter(|l| {
            (l.contains("nodeclaim") || l.contains("\"WARN\"") || l.contains("\"ERROR\""))
                && !l.contains("eof in poll")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the replica's process still runs (not exited, not a zombie), from `/proc`.
fn running(replica: &Replica) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", replica.child.id()))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(!matches!(state, 'Z' | 'X'))
        })
        .unwrap_or(false)
}

/// The `created nodeclaim` lines of a replica's log: (time, claim name).
fn created_claims(log: &str) -> Vec<(Timestamp, String)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "created nodeclaim")
        .filter_map(|v| {
            Some((
                v["timestamp"].as_str()?.parse().ok()?,
                v["fields"]["nodeclaim"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// One completed request of the audit log.
#[derive(Debug, Clone)]
struct Request {
    verb: String,
    resource: String,
    subresource: String,
    namespace: String,
    name: String,
    code: u16,
    /// The impersonated user when there is one, else the authenticated user.
    user: String,
    received: Timestamp,
    completed: Timestamp,
}

impl Request {
    fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }

    fn write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }

    fn is_lease(&self, ns: &str) -> bool {
        self.resource == "leases" && self.namespace == ns && self.name == LEASE
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {}/{}{}{} by {} → {}",
            self.received,
            self.completed,
            self.verb,
            self.namespace,
            self.resource,
            if self.subresource.is_empty() { "" } else { "/" },
            self.subresource,
            self.user,
            self.code
        )?;
        if !self.name.is_empty() {
            write!(f, " ({})", self.name)?;
        }
        Ok(())
    }
}

/// Every completed request of the audit log (stage `ResponseComplete`), in log order.
fn audit(cp: &ControlPlane) -> Vec<Request> {
    let path = cp.audit_log_path().expect("audit log on");
    let text = std::fs::read_to_string(path).expect("read the audit log");
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter_map(|e| {
            let user = e["impersonatedUser"]["username"]
                .as_str()
                .or(e["user"]["username"].as_str())
                .unwrap_or_default()
                .to_owned();
            Some(Request {
                verb: s(&e["verb"]),
                resource: s(&e["objectRef"]["resource"]),
                subresource: s(&e["objectRef"]["subresource"]),
                namespace: s(&e["objectRef"]["namespace"]),
                name: s(&e["objectRef"]["name"]),
                code: u16::try_from(e["responseStatus"]["code"].as_u64()?).ok()?,
                user,
                received: e["requestReceivedTimestamp"].as_str()?.parse().ok()?,
                completed: e["stageTimestamp"].as_str()?.parse().ok()?,
            })
        })
        .collect()
}

/// Successful NodeClaim creations of the audit log.
fn claim_creations(requests: &[Request]) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "nodeclaims" && r.subresource.is_empty())
        .filter(|r| r.ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_and_etcd_restarts_mid_launch_lose_nothing_and_launch_nothing_twice() {
    let _serial = SERIAL.lock().await;
    let started = std::time::Instant::now();
    let cp = control_plane().await;
    let client = cp.client().expect("client");
    let ns = cp.namespace("faults").await.expect("namespace");
    nodepool(&client, &ns).await;
    // Launches take a while (1 s to launch, 2 s to register, 1 s to turn Ready) so that the
    // faults land in the middle of them.
    let replica = Replica::start(
        "faults-solo",
        cp.kubeconfig_path(),
        &ns,
        cp.dir(),
        &[
            "--disable-leader-election",
            "--disable-pod-layer",
            "--kwok-launch-delay",
            "1s",
            "--kwok-registration-delay",
            "2s",
            "--kwok-ready-delay",
            "1s",
        ],
    );
    wait_for("readyz 200", TIMEOUT, || async {
        (get(replica.probes, "/readyz").await?.0 == 200).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", replica.log()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // The faults, each described with where the launch stood when it hit.
    let stage = || async {
        let (claims, nodes) = claims_and_nodes(&client, &ns).await;
        let (all, running) = pods_running(&pods).await.unwrap_or_default();
        format!(
            "{} claims, {} nodes, {running}/{all} pods Running",
            claims.len(),
            nodes.len()
        )
    };
    let apiserver = |when: String| {
        let cp = &cp;
        async move {
            let at = std::time::Instant::now();
            cp.restart_apiserver()
                .await
                .expect("restart kube-apiserver");
            format!(
                "kube-apiserver killed {when} (back in {:.1} s)",
                at.elapsed().as_secs_f64()
            )
        }
    };
    let etcd = || async {
        let when = stage().await;
        let at = std::time::Instant::now();
        cp.restart_etcd_after(ETCD_DOWN)
            .await
            .expect("restart etcd");
        format!(
            "etcd killed with {when} (down {:.1} s, back in {:.1} s)",
            ETCD_DOWN.as_secs_f64(),
            at.elapsed().as_secs_f64()
        )
    };
    // Polls (every 20 ms) until the replica logged its `n`th claim creation.
    let claim_created = |n: usize| {
        let replica = &replica;
        async move {
            let deadline = tokio::time::Instant::now() + TIMEOUT;
            while created_claims(&replica.log()).len() < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no claim #{n} created:\n{}",
                    replica.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut faults = Vec::new();

    // Phase 1: 6 pods (3 nodes). kube-apiserver dies as soon as the pods exist, while the
    // replica's provisioning batch for them is open (it closes 1 s after the last pod); etcd
    // once the first claim was created, while the claims launch and their nodes register.
    let deployments = deployment(&client, &ns, 6).await;
    wait_for("6 pods", TIMEOUT, || async {
        (pods_running(&pods).await?.0 == 6).then_some(())
    })
    .await
    .expect("the deployment's pods");
    faults.push(apiserver("once the 6 pods existed".into()).await);
    claim_created(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    faults.push(etcd().await);
    all_running(&pods, 6, || replica.log()).await;

    // Phase 2: a scale decision made after the faults, carried out through two more: the
    // API server right after the first claim of the scale-up, etcd 500 ms after it is back.
    scale(&deployments, 12).await;
    claim_created(needed_nodes(6) + 1).await;
    let when = stage().await;
    faults.push(apiserver(format!("with {when}")).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    faults.push(etcd().await);
    all_running(&pods, 12, || replica.log()).await;
    let nodes = needed_nodes(12);
    view_caught_up(&replica, &ns, 12, nodes).await;

    // Exactly what the pods need, launched once each.
    let (claims, node_names) = claims_and_nodes(&client, &ns).await;
    let log = replica.log();
    let logged = created_claims(&log);
    let requests = audit(&cp);
    let creations = claim_creations(&requests);
    let describe = || {
        format!(
            "claims {claims:?}\nnodes {node_names:?}\ncreations in the audit log:\n{}\n\
             created per the log: {logged:?}\nlog:\n{log}",
            creations
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    assert_eq!(claims.len(), nodes, "claims ≠ needed\n{}", describe());
    assert_eq!(node_names.len(), nodes, "nodes ≠ needed\n{}", describe());
    assert_eq!(
        creations.len(),
        nodes,
        "successful NodeClaim creations in the audit log ≠ needed (a creation whose audit event \
         the killed kube-apiserver never wrote would show here too)\n{}",
        describe()
    );
    assert_eq!(
        logged.iter().map(|c| c.1.clone()).collect::<BTreeSet<_>>(),
        claims,
        "the claims the replica says it created ≠ the claims\n{}",
        describe()
    );
    assert_eq!(logged.len(), nodes, "{}", describe());
    // It survived and its watches broke (the faults reached it) and resumed (its view above).
    assert!(running(&replica), "tandem run exited:\n{log}");
    let broken = log
        .lines()
        .filter(|l| l.contains("watch failed; retrying"))
        .count();
    assert!(broken > 0, "no watch ever failed: the faults missed\n{log}");
    assert_eq!(
        get(replica.probes, "/healthz").await.map(|r| r.0),
        Some(200),
        "{log}"
    );
    eprintln!(
        "control-plane faults: {}; {} claims created = {nodes} needed for 12 pods = {} nodes; \
         {broken} watch errors logged and recovered; {:.0} s",
        faults.join("; "),
        creations.len(),
        node_names.len(),
        started.elapsed().as_secs_f64()
    );
}

/// A copy of the admin kubeconfig that impersonates `id` (in group `system:masters`, so that it
/// may do what the admin may): the audit log then names the replica behind each request.
fn impersonating(cp: &ControlPlane, id: &str) -> PathBuf {
    let text = std::fs::read_to_string(cp.kubeconfig_path()).expect("read the kubeconfig");
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("kubeconfig");
    let user = &mut config["users"][0]["user"];
    user["as"] = id.into();
    user["as-groups"] = serde_yaml_ng::Value::Sequence(vec!["system:masters".into()]);
    let path = cp.dir().join(format!("kubeconfig-{id}"));
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&config).expect("kubeconfig text"),
    )
    .expect("write the kubeconfig");
    path
}

/// Replica `leader-<n>`. Its kwok launches take 500 ms and its nodes turn Ready 500 ms after
/// they register, but register at once: the kwok provider keeps a Node still inside its
/// registration delay in the replica's memory only (its module docs), so a leader killed then
/// would take the instance with it, a loss a real cloud does not have; the claim would wait
/// for garbage collection (2 min) and a replacement, which is not what this test is about.
fn start_replica(cp: &ControlPlane, ns: &str, n: u32) -> Replica {
    let id = format!("leader-{n}");
    let kubeconfig = impersonating(cp, &id);
    Replica::start(
        &id,
        &kubeconfig,
        ns,
        cp.dir(),
        &[
            "--disable-pod-layer",
            "--kwok-launch-delay",
            "500ms",
            "--kwok-ready-delay",
            "500ms",
        ],
    )
}

/// The Lease holder as the test saw it: (first seen at, holder) at each change.
type Timeline = Arc<Mutex<Vec<(Timestamp, Option<String>)>>>;

fn poll_lease(leases: Api<Lease>, timeline: Timeline) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(lease) = leases.get_opt(LEASE).await {
                let holder = lease
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity)
                    .filter(|h| !h.is_empty());
                let now = Timestamp::now();
                let mut t = timeline.lock().expect("timeline");
                if t.last().map(|e| &e.1) != Some(&holder) {
                    t.push((now, holder));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn logs(replicas: &[&Replica]) -> String {
    replicas
        .iter()
        .map(|r| format!("--- {}:\n{}", r.id, r.log()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_repeatedly_leaves_exactly_one_acting() {
    const KILLS: u32 = 5;
    const REPLICAS: u32 = 3;
    /// Pods added per step: 3, so that steps leave a node half full for the next to fill.
    const STEP: usize = 3;
    let _serial = SERIAL.lock().await;
    let started = std::time::Instant::now();
    let cp = control_plane().await;
    let client = cp.client().expect("client");
    let ns = cp.namespace("leaders").await.expect("namespace");
    nodepool(&client, &ns).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let timeline: Timeline = Arc::default();
    let poller = poll_lease(leases, timeline.clone());
    let holder = || {
        timeline
            .lock()
            .expect("timeline")
            .last()
            .and_then(|e| e.1.clone())
    };

    let mut alive: Vec<Replica> = (0..REPLICAS).map(|n| start_replica(&cp, &ns, n)).collect();
    let mut dead: Vec<Replica> = Vec::new();
    let mut next = REPLICAS;
    let deployments = deployment(&client, &ns, 0).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut rng = common::Lcg(0x6c65_6164);
    let mut want = 0;
    let mut killed = Vec::new();
    let mut early = 0;
    for round in 0..=KILLS {
        // The leader: a live replica holding the Lease (a killed one holds it until it expires).
        let ids: Vec<String> = alive.iter().map(|r| r.id.clone()).collect();
        let leader = wait_for("a live leader", TIMEOUT, || async {
            holder().filter(|h| ids.contains(h))
        })
        .await
        .unwrap_or_else(|e| {
            let all: Vec<&Replica> = alive.iter().chain(&dead).collect();
            panic!("{e}\n{}", logs(&all))
        });
        let replica = alive
            .iter()
            .find(|r| r.id == leader)
            .expect("the leader is alive");
        let before = created_claims(&replica.log()).len();
        want += STEP;
        scale(&deployments, want).await;
        if round == KILLS {
            break;
        }
        // One kill in three lands at a random moment of the first second (most often before
        // the leader planned: the decision passes to its successor); the others once the
        // leader created its first claim of the step, at a random moment of the next 1.5 s
        // (between the claims of a batch, during their launches, while nodes turn Ready).
        if rng.next(3) == 0 {
            early += 1;
            tokio::time::sleep(Duration::from_millis(rng.next(1_000))).await;
        } else {
            let deadline = tokio::time::Instant::now() + TIMEOUT;
            while created_claims(&replica.log()).len() == before {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the leader {leader} created no claim for step {round}:\n{}",
                    replica.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.next(1_500))).await;
        }
        let i = alive
            .iter()
            .position(|r| r.id == leader)
            .expect("the leader is alive");
        let replica = alive.remove(i);
        replica.signal("-KILL");
        killed.push(replica.id.clone());
        dead.push(replica);
        alive.push(start_replica(&cp, &ns, next));
        next += 1;
    }
    let all = || -> Vec<&Replica> { alive.iter().chain(&dead).collect() };
    all_running(&pods, want, || logs(&all())).await;
    let leader_id = holder().expect("a leader");
    let leader = alive
        .iter()
        .find(|r| r.id == leader_id)
        .expect("the leader is alive");
    let nodes = needed_nodes(want);
    view_caught_up(leader, &ns, want, nodes).await;
    poller.abort();

    let (claims, node_names) = claims_and_nodes(&client, &ns).await;
    let requests = audit(&cp);
    let ids: BTreeSet<String> = all().iter().map(|r| r.id.clone()).collect();
    let dump = |what: &str| {
        let lines: Vec<String> = requests
            .iter()
            .filter(|r| ids.contains(&r.user) && r.write() && r.ok())
            .map(|r| r.to_string())
            .collect();
        format!(
            "{what}\nclaims {claims:?}\nnodes {node_names:?}\nLease as polled: {:?}\n\
             successful writes of the replicas:\n{}\n{}",
            timeline.lock().expect("timeline"),
            lines.join("\n"),
            logs(&all())
        )
    };

    // Tenures from the audit log: runs of successful Lease writes by one replica. Each replica
    // has one run at most: a tenure once ended never resumes.
    let mut tenures: Vec<(String, Timestamp, Timestamp)> = Vec::new();
    for r in requests
        .iter()
        .filter(|r| r.is_lease(&ns) && r.write() && r.ok())
    {
        assert!(
            ids.contains(&r.user),
            "{}",
            dump(&format!("the Lease written by someone else: {r}"))
        );
        match tenures.last_mut() {
            Some((id, _, last)) if *id == r.user => *last = r.completed,
            _ => {
                assert!(
                    tenures.iter().all(|t| t.0 != r.user),
                    "{}",
                    dump(&format!("{} led again after another: {r}", r.user))
                );
                tenures.push((r.user.clone(), r.completed, r.completed));
            }
        }
    }
    assert_eq!(
        tenures.len(),
        killed.len() + 1,
        "{}",
        dump("one tenure per kill plus the last")
    );
    for (tenure, id) in tenures.iter().zip(&killed) {
        assert_eq!(&tenure.0, id, "{}", dump("the killed replicas led in turn"));
    }

    // Exactly one acts at any time: every other successful write of a replica falls inside its
    // tenure (received after its first Lease write, completed before the next tenure began).
    let mut acts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| ids.contains(&r.user) && r.write() && r.ok() && !r.is_lease(&ns))
    {
        let i = tenures
            .iter()
            .position(|t| t.0 == r.user)
            .unwrap_or_else(|| panic!("{}", dump(&format!("a replica that never led acted: {r}"))));
        assert!(
            r.received >= tenures[i].1,
            "{}",
            dump(&format!("acted before its tenure began: {r}"))
        );
        if let Some(successor) = tenures.get(i + 1) {
            assert!(
                r.completed < successor.1,
                "{}",
                dump(&format!(
                    "acted after {} began its tenure: {r}",
                    successor.0
                ))
            );
        }
        *acts.entry(r.user.as_str()).or_default() += 1;
    }

    // The NodeClaims: created by the leaders only, one launch per need.
    let creations = claim_creations(&requests);
    assert_eq!(claims.len(), nodes, "{}", dump("claims ≠ needed"));
    assert_eq!(node_names.len(), nodes, "{}", dump("nodes ≠ needed"));
    assert_eq!(
        creations.len(),
        nodes,
        "{}",
        dump("NodeClaim creations in the audit log ≠ needed")
    );
    let mut by_replica: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &creations {
        assert!(
            ids.contains(&r.user),
            "{}",
            dump(&format!("a claim created by someone else: {r}"))
        );
        *by_replica.entry(r.user.as_str()).or_default() += 1;
    }

    // Cross-check 1: the polled Lease holder at each creation (1 s of slack each side).
    let slack = SignedDuration::from_secs(1);
    let seen = timeline.lock().expect("timeline").clone();
    for r in &creations {
        let first = seen
            .iter()
            .position(|e| e.1.as_deref() == Some(r.user.as_str()))
            .unwrap_or_else(|| panic!("{}", dump(&format!("{} never seen holding", r.user))));
        let from = seen[first].0;
        let until = seen[first + 1..]
            .iter()
            .find(|e| e.1.as_deref() != Some(r.user.as_str()))
            .map(|e| e.0);
        assert!(
            r.completed >= from - slack && until.is_none_or(|u| r.received <= u + slack),
            "{}",
            dump(&format!(
                "created while the polled holder was another: {r} (held from {from}, until \
                 {until:?})"
            ))
        );
    }

    // Cross-check 2: the replicas' logs name every claim once, each by the replica the audit
    // log says created it.
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    for replica in all() {
        let mine = created_claims(&replica.log());
        assert_eq!(
            mine.len(),
            by_replica.get(replica.id.as_str()).copied().unwrap_or(0),
            "{}",
            dump(&format!(
                "{}'s log and the audit log disagree on how many claims it created (a kill \
                 between a creation and its log line would do this)",
                replica.id
            ))
        );
        for (_, claim) in mine {
            if let Some(other) = named.insert(claim.clone(), replica.id.clone()) {
                panic!(
                    "{}",
                    dump(&format!("{claim} created by {other} and {}", replica.id))
                );
            }
        }
    }
    assert_eq!(
        named.keys().cloned().collect::<BTreeSet<_>>(),
        claims,
        "{}",
        dump("the claims of the logs ≠ the claims")
    );
    assert!(
        alive.iter().all(running),
        "{}",
        dump("a replica that was not killed exited")
    );
    eprintln!(
        "leader kills: {} kill -9 of the leader ({}; {early} early), {} tenures; {want} pods Running; {} claims \
         created = {nodes} needed, by {by_replica:?}; writes besides the Lease per replica \
         {acts:?}, all inside their tenures; {:.0} s",
        killed.len(),
        killed.join(", "),
        tenures.len(),
        creations.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Waits for `check` as [`wait_for`] does; fails with `dump()` (the replicas' logs).
async fn within<T, F, Fut>(what: &str, check: F, dump: impl Fn() -> String) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_for(what, TIMEOUT, check)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", dump()))
}

/// 3. A leader paused (SIGSTOP) mid-launch past the lease duration, then resumed (SIGCONT)
///    while its successor acts: the split-brain case a `kill -9` cannot show, since the paused
///    process resumes with its controllers mid-pass. Its client refuses every write once the
///    renew deadline after its last renewal has passed (the fence), so it writes nothing after
///    the pause, and its elector then sees the Lease held by another and it exits. Proven from
///    the audit log: every successful write of the paused replica completed before its
///    successor's first Lease write; the successor's all came after; the pods all run on
///    exactly the nodes they need, each created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_writes_nothing_once_it_resumes_without_the_lease() {
    let _serial = SERIAL.lock().await;
    let cp = control_plane().await;
    let client = cp.client().expect("client");
    let ns = cp.namespace("paused").await.expect("namespace");
    nodepool(&client, &ns).await;
    let timeline: Timeline = Arc::default();
    let poller = poll_lease(Api::namespaced(client.clone(), &ns), timeline.clone());
    let holder = || {
        timeline
            .lock()
            .expect("timeline")
            .last()
            .and_then(|e| e.1.clone())
    };
    let replicas = [start_replica(&cp, &ns, 0), start_replica(&cp, &ns, 1)];
    let deployments = deployment(&client, &ns, 0).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let ids: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
    let first = within(
        "a leader",
        || async { holder().filter(|h| ids.contains(h)) },
        || logs(&[&replicas[0], &replicas[1]]),
    )
    .await;
    let (paused, successor) = if replicas[0].id == first {
        (&replicas[0], &replicas[1])
    } else {
        (&replicas[1], &replicas[0])
    };
    let all = || logs(&[paused, successor]);

    // Pause the leader right after the first claim of a 4-claim batch: the others are still
    // to be created, the first is launching.
    scale(&deployments, 8).await;
    within(
        "the leader's first claim",
        || async { (!created_claims(&paused.log()).is_empty()).then_some(()) },
        all,
    )
    .await;
    paused.signal("-STOP");
    within(
        "the successor leads",
        || async { holder().filter(|h| *h == successor.id) },
        all,
    )
    .await;
    // The successor acts; the paused one resumes while it does.
    scale(&deployments, 12).await;
    within(
        "the successor's first claim",
        || async { (!created_claims(&successor.log()).is_empty()).then_some(()) },
        all,
    )
    .await;
    paused.signal("-CONT");
    within(
        "the resumed replica exits",
        || async { (!running(paused)).then_some(()) },
        all,
    )
    .await;
    all_running(&pods, 12, all).await;
    view_caught_up(successor, &ns, 12, needed_nodes(12)).await;
    poller.abort();

    let (claims, node_names) = claims_and_nodes(&client, &ns).await;
    let requests = audit(&cp);
    let dump = |what: &str| {
        let lines: Vec<String> = requests
            .iter()
            .filter(|r| ids.contains(&r.user) && r.write() && r.ok())
            .map(|r| r.to_string())
            .collect();
        format!(
            "{what}\nclaims {claims:?}\nnodes {node_names:?}\nsuccessful writes of the \
             replicas:\n{}\n{}",
            lines.join("\n"),
            all()
        )
    };
    let took_over = requests
        .iter()
        .find(|r| r.is_lease(&ns) && r.write() && r.ok() && r.user == successor.id)
        .map(|r| r.completed)
        .unwrap_or_else(|| panic!("{}", dump("the successor never wrote the Lease")));
    let mut after_pause = 0;
    for r in requests
        .iter()
        .filter(|r| ids.contains(&r.user) && r.write() && r.ok())
    {
        if r.user == paused.id {
            assert!(
                r.completed < took_over,
                "{}",
                dump(&format!(
                    "the paused leader wrote after losing the Lease: {r}"
                ))
            );
        } else if !r.is_lease(&ns) {
            assert!(
                r.received >= took_over,
                "{}",
                dump(&format!("the successor acted before it led: {r}"))
            );
            after_pause += 1;
        }
    }
    let creations = claim_creations(&requests);
    let nodes = needed_nodes(12);
    assert_eq!(claims.len(), nodes, "{}", dump("claims ≠ needed"));
    assert_eq!(node_names.len(), nodes, "{}", dump("nodes ≠ needed"));
    assert_eq!(creations.len(), nodes, "{}", dump("creations ≠ needed"));
    let refused = paused
        .log()
        .lines()
        .filter(|l| l.contains("leadership lapsed"))
        .count();
    eprintln!(
        "paused leader: {} claims created before the pause, {} by the successor ({after_pause} \
         writes after taking over); {refused} log lines of writes the fence refused after the \
         resume; {nodes} nodes for 12 pods",
        created_claims(&paused.log()).len(),
        created_claims(&successor.log()).len(),
    );
}

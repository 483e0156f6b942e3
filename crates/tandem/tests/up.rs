//! `tandem up` the way a person uses it: start it, read the kubeconfig it prints, apply
//! `examples/up/`, seed 000's `inflate` and a ScaledObject whose cron window is open now
//! (`desiredReplicas: 3`, `minReplicaCount: 0`) → the whole chain in one process: the pod layer
//! activates 0 → 1, the real HPA reads the external metric through the APIService and scales to
//! 3, the node layer launches kwok nodes, the pods run. SIGTERM → it stops and deletes its files.
//! And `tandem up --down` after a `tandem up` that was SIGKILLed: nothing of it is left.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::json;
use tandem_testkit::manifest::{apply, read_documents};
use tandem_testkit::{wait_for, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_gives_a_cluster_whose_nodepools_get_nodes() {
    let state = tempfile::tempdir().expect("state dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("up")
        .arg("--state-dir")
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tandem up");
    let kubeconfig = kubeconfig_of(&mut child);
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = Client::try_from(config).expect("client");

    for file in [
        "examples/up/nodepool.yaml",
        "examples/seeds/000_1be3bceeb5274a7a/03-deployment-inflate.yaml",
    ] {
        for doc in read_documents(&workspace_root().join(file)).expect("manifest") {
            apply(&client, &doc, "default").await.expect("apply");
        }
    }
    // A cron window from two minutes ago to thirty minutes ahead (UTC).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let at = |secs: u64| format!("{} {} * * *", (secs / 60) % 60, (secs / 3600) % 24);
    let scaled_object = json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "inflate-business-hours", "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"name": "inflate"},
            "minReplicaCount": 0, "maxReplicaCount": 5, "pollingInterval": 1,
            "triggers": [{"type": "cron", "metadata": {
                "timezone": "UTC", "start": at(now - 120), "end": at(now + 1800),
                "desiredReplicas": "3"}}],
        },
    });
    apply(&client, &scaled_object, "default")
        .await
        .expect("apply ScaledObject");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for("3 inflate pods Running", TIMEOUT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=inflate"))
            .await
            .ok()?;
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (running == 3).then_some(())
    })
    .await
    .expect("cron → ScaledObject → HPA → 3 replicas → kwok nodes → Running");
    let hpa = Api::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>::namespaced(
        client.clone(),
        "default",
    )
    .get("keda-hpa-inflate-business-hours")
    .await
    .expect("the pod layer's HPA");
    let current = hpa
        .status
        .and_then(|s| s.current_metrics)
        .unwrap_or_default();
    assert!(
        current.iter().any(|m| m.external.is_some()),
        "the HPA read the external metric: {current:?}"
    );

    let dir = kubeconfig.parent().expect("dir").to_owned();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        !state.path().join("up.json").exists(),
        "the state file left behind"
    );
}

/// Reads `tandem up`'s stdout on a thread (the pipe read blocks) until it prints the
/// kubeconfig line; the thread keeps draining it afterwards.
fn kubeconfig_of(child: &mut std::process::Child) -> PathBuf {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(path) = line.strip_prefix("kubeconfig: ") {
                let _ = tx.send(PathBuf::from(path.trim()));
            }
        }
    });
    rx.recv_timeout(TIMEOUT)
        .expect("tandem up printed its kubeconfig")
}

/// `/proc/<pid>/stat` shows a live process (not a zombie waiting to be reaped).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|s| s != "Z" && s != "X")
        })
        .unwrap_or(false)
}

fn down(state: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["up", "--down", "--state-dir"])
        .arg(state)
        .output()
        .expect("run tandem up --down");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tandem up --down: {:?}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `tandem up` SIGKILLed cannot clean up. Its components still die with it (parent-death
/// signal) and its watchdog would delete the directory; the watchdog is stopped first here, as
/// if it had died too, so what is left is `--down`'s to clean: it kills the watchdog, deletes
/// the directory with the kubeconfig and the state file. A second `--down` finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_cleans_up_after_a_killed_up() {
    let state = tempfile::tempdir().expect("state dir");
    assert!(down(state.path()).starts_with("nothing is running"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["up", "--no-controllers", "--state-dir"])
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tandem up");
    let kubeconfig = kubeconfig_of(&mut child);
    let dir = kubeconfig.parent().expect("dir").to_owned();
    let recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("up.json")).expect("state file"),
    )
    .expect("state json");
    let pids: Vec<(String, u64)> = recorded["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                c["pid"].as_u64().expect("pid"),
            )
        })
        .collect();
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "watchdog"
        ]
    );
    assert_eq!(recorded["up"]["pid"].as_u64(), Some(u64::from(child.id())));
    assert!(pids.iter().all(|(_, pid)| alive(*pid)), "{pids:?}");

    let watchdog = pids.last().expect("watchdog").1.to_string();
    let signal = |sig: &str, pid: &str| {
        assert!(
            Command::new("kill")
                .args(["-s", sig, pid])
                .status()
                .expect("kill")
                .success()
        );
    };
    signal("STOP", &watchdog);
    signal("KILL", &child.id().to_string());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(!exit.success());
    assert!(dir.exists() && kubeconfig.exists(), "nothing cleaned yet");

    let said = down(state.path());
    eprintln!("tandem up --down:\n{said}");
    assert!(said.contains("was not running"), "{said}");
    wait_for(
        "every recorded process gone",
        Duration::from_secs(10),
        || async { pids.iter().all(|(_, pid)| !alive(*pid)).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {pids:?}"));
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(!kubeconfig.exists());
    assert!(!state.path().join("up.json").exists());
    assert!(down(state.path()).starts_with("nothing is running"));
}

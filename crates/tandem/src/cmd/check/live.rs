//! `tandem check --kubeconfig`: the same rules over what a cluster holds, plus the one only a
//! cluster's history can feed (`consolidate-after-vs-event-period`, from Prometheus).
//!
//! The shell reads; `tandem_manifest::check` judges. Objects are listed through the API server
//! (NodePools, ScaledObjects, Deployments, StatefulSets, Services; not Pods or Jobs, which
//! their owners already describe), written out as `kubectl get -o yaml` would without
//! `status` and `managedFields`, and converted exactly as files are. An object that does not
//! convert is reported on standard error and left out; the rest are still checked.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use tandem_manifest::SourceFile;
use tandem_manifest::check::events::{Activity, Samples};

/// The kinds the rules read from a cluster: (group, version, kind, plural).
const KINDS: [(&str, &str, &str, &str); 5] = [
    ("karpenter.sh", "v1", "NodePool", "nodepools"),
    ("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("", "v1", "Service", "services"),
];

/// What the cluster holds, as source files named `cluster:<Kind>/<namespace>/<name>`.
pub async fn objects(client: &kube::Client) -> anyhow::Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    for (group, version, kind, plural) in KINDS {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                eprintln!(
                    "note: the cluster serves no {kind} ({}): not checked",
                    resource.api_version
                );
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot list {plural}")),
        };
        for obj in list.items {
            let name = format!(
                "cluster:{kind}/{}{}",
                obj.metadata
                    .namespace
                    .as_deref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default(),
                obj.metadata.name.as_deref().unwrap_or("?")
            );
            let mut value = serde_json::to_value(&obj).context("object to JSON")?;
            as_written(&mut value, &resource);
            let text = serde_yaml_ng::to_string(&value).context("object to YAML")?;
            files.push(tandem_manifest::source::from_text(&name, &text));
        }
    }
    Ok(files)
}

/// The object as its author wrote it: list items carry no apiVersion and kind, and the
/// server's own fields are not the author's.
fn as_written(value: &mut Value, resource: &ApiResource) {
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), resource.api_version.clone().into());
        map.insert("kind".into(), resource.kind.clone().into());
        map.remove("status");
    }
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for server_side in [
            "managedFields",
            "resourceVersion",
            "uid",
            "generation",
            "creationTimestamp",
        ] {
            meta.remove(server_side);
        }
    }
}

/// Each ScaledObject's activity (`max by (namespace, scaledObject) (keda_scaler_active)`) over
/// the last `history`, from the Prometheus at `base` (its HTTP API).
pub async fn activity(base: &str, history: Duration, now_s: i64) -> anyhow::Result<Activity> {
    let span = i64::try_from(history.as_secs()).unwrap_or(i64::MAX);
    // Prometheus answers at most 11,000 points per series; a 30 s step resolves a KEDA poll.
    let step = (span / 10_000).max(30);
    let url = format!("{}/api/v1/query_range", base.trim_end_matches('/'));
    let client = http_client()?;
    let body: Value = client
        .get(&url)
        .query(&[
            (
                "query",
                "max by (namespace, scaledObject) (keda_scaler_active)".to_owned(),
            ),
            ("start", (now_s - span).to_string()),
            ("end", now_s.to_string()),
            ("step", format!("{step}s")),
        ])
        .send()
        .await
        .with_context(|| format!("cannot query Prometheus at {base}"))?
        .error_for_status()
        .with_context(|| format!("Prometheus at {base} refused the range query"))?
        .json()
        .await
        .with_context(|| format!("Prometheus at {base} answered something that is not JSON"))?;
    parse_matrix(&body).map(|samples| Activity {
        samples,
        range: format!("the last {}", human(history)),
    })
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("no TLS versions available")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")
}

/// A `matrix` result into samples per (namespace, scaledObject).
fn parse_matrix(body: &Value) -> anyhow::Result<Samples> {
    if body.get("status").and_then(Value::as_str) != Some("success") {
        anyhow::bail!(
            "Prometheus answered {}",
            body.get("error").unwrap_or(&Value::Null)
        );
    }
    let mut out = Samples::new();
    let series = body
        .pointer("/data/result")
        .and_then(Value::as_array)
        .context("Prometheus answered no data.result")?;
    for s in series {
        let label = |l: &str| {
            s.pointer(&format!("/metric/{l}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(ns), Some(name)) = (label("namespace"), label("scaledObject")) else {
            continue;
        };
        let samples = s
            .get("values")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| {
                        let t = v.get(0)?.as_f64()?;
                        let x: f64 = v.get(1)?.as_str()?.parse().ok()?;
                        Some(((t * 1000.0) as i64, x > 0.0))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert((ns, name), samples);
    }
    Ok(out)
}

/// `24h`, `90m`, `45s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// `--history`: a whole number of seconds, minutes, hours or days (`24h`, `90m`, `7d`).
pub fn parse_history(text: &str) -> Result<Duration, String> {
    let (n, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 24h, 90m or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{text}` is not a duration like 24h, 90m or 7d")),
    };
    if secs == 0 {
        return Err("--history must be longer than zero".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_answer_becomes_activity_per_scaled_object() {
        let body = serde_json::json!({
            "status": "success",
            "data": {"resultType": "matrix", "result": [
                {"metric": {"namespace": "processing", "scaledObject": "sqs"},
                 "values": [[1700000000, "0"], [1700000030.5, "1"]]},
                {"metric": {"namespace": "x"}, "values": [[1, "1"]]}
            ]}
        });
        let m = parse_matrix(&body).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[&("processing".to_owned(), "sqs".to_owned())],
            vec![(1_700_000_000_000, false), (1_700_000_030_500, true)]
        );
        let err = parse_matrix(&serde_json::json!({"status": "error", "error": "bad query"}));
        assert!(err.unwrap_err().to_string().contains("bad query"));
    }

    #[test]
    fn history_takes_whole_units() {
        assert_eq!(parse_history("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_history("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_history("1.5h").is_err());
        assert!(parse_history("0m").is_err());
        assert!(parse_history("h").is_err());
        assert_eq!(human(Duration::from_secs(5_400)), "90m");
    }

    #[test]
    fn a_listed_object_is_written_as_its_author_wrote_it() {
        let gvk = GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool");
        let r = ApiResource::from_gvk_with_plural(&gvk, "nodepools");
        let mut v = serde_json::json!({
            "metadata": {"name": "spot", "uid": "u", "managedFields": [], "resourceVersion": "1"},
            "spec": {"x": 1},
            "status": {"y": 2}
        });
        as_written(&mut v, &r);
        assert_eq!(
            v,
            serde_json::json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
                "metadata": {"name": "spot"}, "spec": {"x": 1}})
        );
    }
}

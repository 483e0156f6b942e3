//! External metric names: `s<index>-<trigger-derived name>`, as KEDA puts them on the HPA.
//!
//! The names must match upstream exactly, since the HPA, dashboards and `status.health` key on
//! them (keda.md §3.2 and §7; KEDA `pkg/scalers/scaler.go` `GenerateMetricNameWithIndex`,
//! `pkg/util/normalize_string.go`, and each scaler's `GetMetricSpecForScaling`).

use std::collections::BTreeMap;

use thiserror::Error;

/// Why a trigger's metric name cannot be derived.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NamingError {
    /// A metadata key the name is built from is missing or blank.
    #[error("trigger {index} of type {kind} has no {key} to name its metric")]
    MissingMetadata {
        /// Trigger index in `spec.triggers`.
        index: usize,
        /// Trigger type.
        kind: String,
        /// The metadata key.
        key: &'static str,
    },
    /// External scalers name their metric through `GetMetricSpec`; use [`with_index`] on it.
    #[error("trigger {index} of type {kind} gets its metric name from the external scaler")]
    NamedByScaler {
        /// Trigger index.
        index: usize,
        /// Trigger type.
        kind: String,
    },
    /// We have no naming rule for this trigger type yet.
    #[error("no metric naming rule for trigger type {kind}")]
    UnknownType {
        /// Trigger type.
        kind: String,
    },
}

/// What a trigger becomes on the HPA.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricName {
    /// An External metric served by the pod layer, with its full `s<i>-` name.
    External(String),
    /// A Resource metric (`cpu` or `memory`) the HPA reads from the metrics server.
    Resource(String),
}

impl MetricName {
    /// The name as written on the HPA and in `status.health`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::External(s) | Self::Resource(s) => s,
        }
    }
}

/// KEDA's `NormalizeString`: each of `/ . : % ( )` becomes `-`, everything else is kept.
#[must_use]
pub fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '/' | '.' | ':' | '%' | '(' | ')' => '-',
            c => c,
        })
        .collect()
}

/// `s<index>-<name>`: the prefix that keeps names unique within one ScaledObject.
#[must_use]
pub fn with_index(index: usize, name: &str) -> String {
    format!("s{index}-{name}")
}

/// Go's `url.QueryEscape`, which the RabbitMQ scaler applies to the queue name.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The cron scaler's schedule mangling: no spaces, `*`→`x`, `/`→`Sl`, `?`→`Qm`, `,`→`Cm`.
fn cron_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' => {}
            '*' => out.push('x'),
            '/' => out.push_str("Sl"),
            '?' => out.push_str("Qm"),
            ',' => out.push_str("Cm"),
            c => out.push(c),
        }
    }
    out
}

/// The SQS queue name: the third path segment of a queue URL, else the value itself.
fn sqs_queue_name(url: &str) -> &str {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", _, name] if !name.is_empty() => name,
        _ => url,
    }
}

/// The metric name of trigger `index` with `kind` (`spec.triggers[].type`) and its resolved
/// metadata (values trimmed; blank counts as absent, as upstream).
///
/// # Errors
/// [`NamingError`] when a required key is missing, the name comes from an external scaler, or
/// the type has no rule here.
pub fn metric_name(
    index: usize,
    kind: &str,
    metadata: &BTreeMap<String, String>,
) -> Result<MetricName, NamingError> {
    let get = |key: &'static str| -> Result<&str, NamingError> {
        metadata
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| NamingError::MissingMetadata {
                index,
                kind: kind.to_owned(),
                key,
            })
    };
    let opt = |key: &str| {
        metadata
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let external = |raw: String| Ok(MetricName::External(with_index(index, &normalize(&raw))));
    match kind {
        "cpu" | "memory" => Ok(MetricName::Resource(kind.to_owned())),
        // Every Prometheus trigger has the same name; the index disambiguates (QUIRK).
        "prometheus" => external("prometheus".to_owned()),
        "postgresql" => external("postgresql".to_owned()),
        "aws-sqs-queue" => external(format!("aws-sqs-{}", sqs_queue_name(get("queueURL")?))),
        "rabbitmq" => external(format!("rabbitmq-{}", query_escape(get("queueName")?))),
        "redis" | "redis-cluster" | "redis-sentinel" => {
            external(format!("redis-{}", get("listName")?))
        }
        "redis-streams" | "redis-cluster-streams" | "redis-sentinel-streams" => {
            external(format!("redis-streams-{}", get("stream")?))
        }
        "kafka" => match opt("topic") {
            Some(topic) => external(format!("kafka-{topic}")),
            None => external(format!("kafka-{}-topics", get("consumerGroup")?)),
        },
        "cron" => external(format!(
            "cron-{}-{}-{}",
            get("timezone")?,
            cron_part(get("start")?),
            cron_part(get("end")?)
        )),
        "metrics-api" => external(format!("metric-api-{}", get("valueLocation")?)),
        "external" | "external-push" => Err(NamingError::NamedByScaler {
            index,
            kind: kind.to_owned(),
        }),
        _ => Err(NamingError::UnknownType {
            kind: kind.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn name(index: usize, kind: &str, pairs: &[(&str, &str)]) -> String {
        metric_name(index, kind, &md(pairs))
            .unwrap()
            .as_str()
            .to_owned()
    }

    #[test]
    fn names_per_trigger_type() {
        type Case<'a> = (usize, &'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            (0, "prometheus", &[("query", "x")], "s0-prometheus"),
            (3, "postgresql", &[], "s3-postgresql"),
            (
                0,
                "aws-sqs-queue",
                &[(
                    "queueURL",
                    "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
                )],
                "s0-aws-sqs-orders",
            ),
            (
                1,
                "aws-sqs-queue",
                &[("queueURL", "orders.fifo")],
                "s1-aws-sqs-orders-fifo",
            ),
            (
                0,
                "rabbitmq",
                &[("queueName", "orders")],
                "s0-rabbitmq-orders",
            ),
            (
                0,
                "rabbitmq",
                &[("queueName", "a b/c")],
                "s0-rabbitmq-a+b-2Fc",
            ),
            (2, "redis", &[("listName", "jobs")], "s2-redis-jobs"),
            (
                0,
                "redis-streams",
                &[("stream", "ev.s")],
                "s0-redis-streams-ev-s",
            ),
            (
                0,
                "kafka",
                &[("topic", "t1"), ("consumerGroup", "g")],
                "s0-kafka-t1",
            ),
            (
                0,
                "kafka",
                &[("topic", " "), ("consumerGroup", "g")],
                "s0-kafka-g-topics",
            ),
            (
                0,
                "cron",
                &[
                    ("timezone", "Europe/Paris"),
                    ("start", "0 8 * * 1-5"),
                    ("end", "*/30 18 ? * 1,2"),
                ],
                "s0-cron-Europe-Paris-08xx1-5-xSl3018Qmx1Cm2",
            ),
            (
                0,
                "metrics-api",
                &[("valueLocation", "data.count")],
                "s0-metric-api-data-count",
            ),
        ];
        for (index, kind, pairs, want) in cases {
            assert_eq!(name(*index, kind, pairs), *want, "{kind}");
        }
        assert_eq!(
            metric_name(0, "cpu", &md(&[])),
            Ok(MetricName::Resource("cpu".into()))
        );
    }

    #[test]
    fn missing_metadata_and_external_names_are_errors() {
        assert_eq!(
            metric_name(1, "redis", &md(&[("listName", "  ")])),
            Err(NamingError::MissingMetadata {
                index: 1,
                kind: "redis".into(),
                key: "listName"
            })
        );
        assert!(matches!(
            metric_name(0, "external", &md(&[])),
            Err(NamingError::NamedByScaler { .. })
        ));
        assert_eq!(with_index(4, &normalize("my.metric")), "s4-my-metric");
    }
}

//! Trigger metadata, per scaler type, with upstream's parameter names, value formats and the
//! parameters that must come from somewhere (the metadata, the TriggerAuthentication, or the
//! scale target's environment through `<name>FromEnv`).

use super::schema::closest;
use super::{Ctx, join};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Which kind of object the triggers belong to; the rules differ slightly.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    /// A ScaledObject, and whether it has a scalingModifiers formula (which makes per-trigger
    /// targets optional).
    ScaledObject {
        /// `advanced.scalingModifiers.formula` is set.
        has_formula: bool,
    },
    /// A ScaledJob: no cpu/memory, no metricType.
    ScaledJob,
}

/// The trigger types Tandem runs.
pub const SUPPORTED: &[&str] = &[
    "prometheus",
    "aws-sqs-queue",
    "rabbitmq",
    "redis",
    "redis-cluster",
    "redis-sentinel",
    "redis-streams",
    "redis-cluster-streams",
    "redis-sentinel-streams",
    "postgresql",
    "kafka",
    "cron",
    "cpu",
    "memory",
    "metrics-api",
    "external",
    "external-push",
];

/// KEDA scalers Tandem does not implement yet: accepted by the API, but they will not scale.
const KEDA_ONLY: &[&str] = &[
    "activemq",
    "apache-kafka",
    "arangodb",
    "artemis-queue",
    "aws-cloudwatch",
    "aws-dynamodb",
    "aws-dynamodb-streams",
    "aws-kinesis-stream",
    "azure-app-insights",
    "azure-blob",
    "azure-data-explorer",
    "azure-eventhub",
    "azure-log-analytics",
    "azure-monitor",
    "azure-pipelines",
    "azure-queue",
    "azure-servicebus",
    "beanstalkd",
    "cassandra",
    "couchdb",
    "datadog",
    "dynatrace",
    "elasticsearch",
    "etcd",
    "forgejo-runner",
    "gcp-cloudtasks",
    "gcp-pubsub",
    "gcp-stackdriver",
    "gcp-storage",
    "github-runner",
    "graphite",
    "huawei-cloudeye",
    "ibmmq",
    "influxdb",
    "kubernetes-workload",
    "liiklus",
    "loki",
    "memcached",
    "mongodb",
    "mssql",
    "mysql",
    "nats-jetstream",
    "new-relic",
    "nsq",
    "openstack-metric",
    "openstack-swift",
    "predictkube",
    "pulsar",
    "rabbitmq-stream",
    "selenium-grid",
    "solace-event-queue",
    "solr",
    "splunk",
    "splunk-observability",
    "stan",
    "temporal",
];

/// Checks every trigger of a list, and the rules across the list.
pub(crate) fn check_list(ctx: &mut Ctx<'_>, triggers: &[Value], path: &str, owner: Owner) {
    if triggers.is_empty() {
        ctx.error(path, "no triggers defined: add at least one trigger");
        return;
    }
    let mut names = BTreeSet::new();
    for (i, t) in triggers.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(n) = t
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            && !names.insert(n.to_string())
        {
            ctx.error(
                &join(&p, "name"),
                format!(
                    "triggerName {n:?} is defined multiple times; trigger names must be unique"
                ),
            );
        }
        check(ctx, t, &p, owner);
    }
}

/// Checks one trigger.
fn check(ctx: &mut Ctx<'_>, t: &Value, path: &str, owner: Owner) {
    let Some(ty) = t.get("type").and_then(Value::as_str) else {
        return;
    };
    let empty = Map::new();
    let md = t
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let has_auth = t.get("authenticationRef").is_some();
    let has_formula = matches!(owner, Owner::ScaledObject { has_formula: true });
    let m = Meta {
        md,
        path: join(path, "metadata"),
        has_auth,
    };

    if t.get("useCachedMetrics").and_then(Value::as_bool) == Some(true)
        && matches!(ty, "cpu" | "memory" | "cron")
    {
        ctx.error(
            &join(path, "useCachedMetrics"),
            format!("property \"useCachedMetrics\" is not supported for {ty:?} scaler"),
        );
    }
    if matches!(owner, Owner::ScaledJob) && t.get("metricType").is_some() {
        ctx.error(
            &join(path, "metricType"),
            "metricType cannot be set in ScaledJob triggers",
        );
    }
    match ty {
        "prometheus" => {
            m.required(ctx, &["serverAddress", "query"]);
            m.number(ctx, "threshold", !has_formula);
            m.number(ctx, "activationThreshold", false);
            m.boolean(ctx, &["ignoreNullValues", "unsafeSsl"]);
            if let Some(addr) = m.text("serverAddress")
                && !(addr.starts_with("http://") || addr.starts_with("https://")) {
                    ctx.error(&m.at("serverAddress"), format!("{addr:?} is not an http(s) URL (e.g. http://prometheus.monitoring:9090)"));
                }
        }
        "aws-sqs-queue" => {
            m.required_or_env(ctx, "queueURL");
            m.integer(ctx, "queueLength", false);
            m.integer(ctx, "activationQueueLength", false);
            m.required_or_auth(ctx, "awsRegion");
            m.boolean(ctx, &["scaleOnInFlight", "scaleOnDelayed"]);
            m.one_of(ctx, "identityOwner", &["pod", "operator"]);
        }
        "rabbitmq" => {
            m.required(ctx, &["queueName"]);
            m.one_of(ctx, "protocol", &["auto", "http", "amqp"]);
            let modes = ["QueueLength", "MessageRate", "DeliverGetRate", "PublishedToDeliveredRatio", "ExpectedQueueConsumptionTime"];
            m.one_of(ctx, "mode", &modes);
            m.number(ctx, "value", m.text("mode").is_some());
            m.number(ctx, "activationValue", false);
            m.boolean(ctx, &["useRegex", "excludeUnacknowledged", "unsafeSsl"]);
            if md.contains_key("queueLength") && (md.contains_key("mode") || md.contains_key("value")) {
                ctx.error(&m.at("queueLength"), "queueLength is deprecated and cannot be combined with mode/value; use mode: QueueLength and value");
            }
            if m.text("protocol") == Some("amqp") && m.text("mode").is_some_and(|x| x != "QueueLength") {
                ctx.error(&m.at("mode"), "rate modes need the management API: set protocol: http (or auto with an http:// host)");
            }
            m.required_or_auth_or_env(ctx, "host");
        }
        "redis" | "redis-cluster" | "redis-sentinel" | "redis-streams" | "redis-cluster-streams" | "redis-sentinel-streams" => {
            if ty.ends_with("streams") {
                m.required(ctx, &["stream"]);
                for n in ["pendingEntriesCount", "streamLength", "lagCount", "activationLagCount"] {
                    m.integer(ctx, n, false);
                }
            } else {
                m.required(ctx, &["listName"]);
                m.integer(ctx, "listLength", false);
                m.integer(ctx, "activationListLength", false);
            }
            m.integer(ctx, "databaseIndex", false);
            m.boolean(ctx, &["enableTLS", "unsafeSsl"]);
            let addr = ["address", "addresses", "host", "hosts"];
            if !has_auth && !addr.iter().any(|k| md.contains_key(*k) || md.contains_key(&format!("{k}FromEnv"))) {
                ctx.error(&m.path, "one of address, addresses, host or hosts is required (in metadata, from the environment, or from a TriggerAuthentication)");
            }
        }
        "postgresql" => {
            m.required(ctx, &["query"]);
            m.number(ctx, "targetQueryValue", !has_formula);
            m.number(ctx, "activationTargetQueryValue", false);
            let direct = ["host", "port", "userName", "dbName", "sslmode"].iter().all(|k| md.contains_key(*k));
            if !has_auth && !direct && !md.contains_key("connectionFromEnv") {
                ctx.error(&m.path, "no connection: give connectionFromEnv, a TriggerAuthentication with connection, or all of host, port, userName, dbName and sslmode");
            }
        }
        "kafka" => {
            m.required_or_env(ctx, "bootstrapServers");
            m.required_or_env(ctx, "consumerGroup");
            if let Some(n) = m.integer(ctx, "lagThreshold", false)
                && n <= 0 {
                    ctx.error(&m.at("lagThreshold"), "must be above 0");
                }
            if let Some(n) = m.integer(ctx, "activationLagThreshold", false)
                && n < 0 {
                    ctx.error(&m.at("activationLagThreshold"), "must be 0 or more");
                }
            m.one_of(ctx, "offsetResetPolicy", &["latest", "earliest"]);
            m.boolean(ctx, &["allowIdleConsumers", "excludePersistentLag", "scaleToZeroOnInvalidOffset", "limitToPartitionsWithLag", "unsafeSsl"]);
            let on = |k: &str| m.text(k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if on("allowIdleConsumers") && on("limitToPartitionsWithLag") {
                ctx.error(&m.at("limitToPartitionsWithLag"), "cannot be combined with allowIdleConsumers: true (one lifts the cap the other narrows)");
            }
            m.one_of(ctx, "sasl", &["none", "plaintext", "scram_sha256", "scram_sha512", "oauthbearer", "gssapi"]);
            // The scaler refuses these (crates/scalers/src/kafka.rs); say so before it runs.
            if let Some(s @ ("oauthbearer" | "gssapi")) = m.text("sasl") {
                ctx.error(&m.at("sasl"), format!("{s} is not supported by Tandem yet; use none, plaintext, scram_sha256 or scram_sha512"));
            }
            m.one_of(ctx, "tls", &["enable", "disable"]);
        }
        "cron" => {
            m.required(ctx, &["timezone", "start", "end", "desiredReplicas"]);
            if let Some(tz) = m.text("timezone")
                && !crate::cron::is_time_zone(tz) {
                    ctx.error(&m.at("timezone"), format!("{tz:?} is not an IANA time zone (e.g. Europe/Paris, America/New_York, UTC)"));
                }
            for k in ["start", "end"] {
                if let Some(expr) = m.text(k)
                    && let Err(e) = crate::cron::parse(expr) {
                        ctx.error(&m.at(k), format!("{expr:?} is not a cron expression ({e}); write 5 fields: minute hour day month weekday"));
                    }
            }
            if m.text("start").is_some() && m.text("start") == m.text("end") {
                ctx.error(&m.at("end"), "start and end should not be the same");
            }
            if let Some(n) = m.integer(ctx, "desiredReplicas", false)
                && n == 0 {
                    ctx.error(&m.at("desiredReplicas"), "must not be 0 (outside the window the trigger already reports 0)");
                }
        }
        "cpu" | "memory" => {
            if matches!(owner, Owner::ScaledJob) {
                ctx.error(&join(path, "type"), format!("{ty} triggers are not supported in ScaledJobs (a job's pods come and go)"));
            }
            if md.contains_key("type") {
                ctx.error(&m.at("type"), "the metric type moved out of metadata: use the trigger's metricType (Utilization or AverageValue)");
            }
            m.required(ctx, &["value"]);
            match t.get("metricType").and_then(Value::as_str) {
                Some("Utilization") => {
                    if let Some(v) = m.text("value")
                        && v.parse::<u32>().is_err() {
                            ctx.error(&m.at("value"), format!("{v:?} must be a whole percentage for Utilization, e.g. \"60\""));
                        }
                }
                Some("AverageValue") => {}
                Some(other) => ctx.error(&join(path, "metricType"), format!("{other:?}: {ty} triggers take Utilization or AverageValue")),
                None if !md.contains_key("type") => {
                    ctx.error(&join(path, "metricType"), format!("required for {ty} triggers: Utilization or AverageValue"))
                }
                None => {}
            }
        }
        "metrics-api" => {
            m.required(ctx, &["url", "valueLocation"]);
            m.number(ctx, "targetValue", !has_formula);
            m.number(ctx, "activationTargetValue", false);
            m.one_of(ctx, "format", &["json", "xml", "yaml", "prometheus"]);
        }
        "external" | "external-push" => {
            m.required(ctx, &["scalerAddress"]);
        }
        other if KEDA_ONLY.contains(&other) => ctx.warn(
            &join(path, "type"),
            format!("{other:?} is a KEDA scaler that tandem does not implement yet: the object is accepted but this trigger will report an error; supported: {}", SUPPORTED.join(", ")),
        ),
        other => {
            let mut all: Vec<&str> = SUPPORTED.to_vec();
            all.extend_from_slice(KEDA_ONLY);
            let hint = closest(other, &all).map(|k| format!(" (did you mean {k:?}?)")).unwrap_or_default();
            ctx.error(&join(path, "type"), format!("unknown trigger type {other:?}{hint}"));
        }
    }
}

/// One trigger's metadata with its path, for terse checks.
struct Meta<'m> {
    md: &'m Map<String, Value>,
    path: String,
    has_auth: bool,
}

impl<'m> Meta<'m> {
    fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn text(&self, key: &str) -> Option<&'m str> {
        self.md.get(key).and_then(Value::as_str)
    }

    fn present(&self, key: &str) -> bool {
        self.md
            .get(key)
            .is_some_and(|v| !v.as_str().is_some_and(str::is_empty))
    }

    /// Parameters that only the metadata can give.
    fn required(&self, ctx: &mut Ctx<'_>, keys: &[&str]) {
        for k in keys {
            if !self.present(k) {
                ctx.error(&self.at(k), "required metadata is missing");
            }
        }
    }

    /// A parameter that may also come from the scale target's environment (`<key>FromEnv`).
    fn required_or_env(&self, ctx: &mut Ctx<'_>, key: &str) {
        if !self.present(key) && !self.present(&format!("{key}FromEnv")) {
            ctx.error(
                &self.at(key),
                format!("required: set {key} or {key}FromEnv"),
            );
        }
    }

    /// A parameter that may also come from the TriggerAuthentication.
    fn required_or_auth(&self, ctx: &mut Ctx<'_>, key: &str) {
        if !self.present(key) && !self.has_auth {
            ctx.error(
                &self.at(key),
                format!("required: set {key} here or give it through an authenticationRef"),
            );
        }
    }

    fn required_or_auth_or_env(&self, ctx: &mut Ctx<'_>, key: &str) {
        if !self.present(key) && !self.present(&format!("{key}FromEnv")) && !self.has_auth {
            ctx.error(
                &self.at(key),
                format!(
                    "required: set {key}, {key}FromEnv, or give it through an authenticationRef"
                ),
            );
        }
    }

    /// A numeric parameter (KEDA parses it as a float).
    fn number(&self, ctx: &mut Ctx<'_>, key: &str, required: bool) -> Option<f64> {
        match self.md.get(key) {
            None if required => {
                ctx.error(&self.at(key), "required metadata is missing");
                None
            }
            None => None,
            // Metadata is a map of strings: the schema already reported any other JSON type.
            Some(v) if !v.is_string() => None,
            Some(v) => {
                let parsed = v
                    .as_str()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .filter(|f| f.is_finite());
                if parsed.is_none() {
                    ctx.error(&self.at(key), format!("{} is not a number; write it as a quoted number such as \"5\" or \"0.5\"", super::show(v)));
                }
                parsed
            }
        }
    }

    /// A whole-number parameter.
    fn integer(&self, ctx: &mut Ctx<'_>, key: &str, required: bool) -> Option<i64> {
        match self.md.get(key) {
            None if required => {
                ctx.error(&self.at(key), "required metadata is missing");
                None
            }
            None => None,
            Some(v) if !v.is_string() => None,
            Some(v) => {
                let parsed = v.as_str().and_then(|s| s.trim().parse::<i64>().ok());
                if parsed.is_none() {
                    ctx.error(
                        &self.at(key),
                        format!(
                            "{} is not a whole number; write it quoted, e.g. \"5\"",
                            super::show(v)
                        ),
                    );
                }
                parsed
            }
        }
    }

    fn boolean(&self, ctx: &mut Ctx<'_>, keys: &[&str]) {
        for k in keys {
            if let Some(v) = self.md.get(*k).filter(|v| v.is_string())
                && !v
                    .as_str()
                    .is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "true" | "false"))
            {
                ctx.error(
                    &self.at(k),
                    format!("{} must be \"true\" or \"false\"", super::show(v)),
                );
            }
        }
    }

    fn one_of(&self, ctx: &mut Ctx<'_>, key: &str, allowed: &[&str]) {
        if let Some(v) = self.text(key)
            && !allowed.contains(&v)
        {
            let hint = closest(v, allowed)
                .map(|k| format!(" (did you mean {k:?}?)"))
                .unwrap_or_default();
            ctx.error(
                &self.at(key),
                format!("{v:?} is not one of {}{hint}", allowed.join(", ")),
            );
        }
    }
}

//! Karpenter's kinds: the rules upstream enforces with CEL or at run time, and the value formats
//! (quantities, durations, cron) that the schema only types as strings.

use super::{Ctx, get, join, show};
use serde_json::Value;
use std::str::FromStr;
use tandem_model::quantity::Quantity;

/// The NodeClass kinds a NodePool may reference, by API group.
pub(crate) const NODE_CLASSES: &[(&str, &str)] = &[
    ("karpenter.k8s.aws", "EC2NodeClass"),
    ("karpenter.azure.com", "AKSNodeClass"),
    ("karpenter.kwok.sh", "KWOKNodeClass"),
];

/// The `karpenter.k8s.aws/*` label names a NodePool may use (the rest of the domain is
/// restricted); from the upstream AWS CRDs' CEL rule.
const AWS_USER_LABEL_NAMES: &[&str] = &[
    "instance-tenancy",
    "capacity-reservation-type",
    "capacity-reservation-id",
    "capacity-reservation-interruptible",
    "ec2nodeclass",
    "instance-encryption-in-transit-supported",
    "nitro-sandbox",
    "instance-category",
    "instance-hypervisor",
    "instance-family",
    "instance-generation",
    "instance-local-nvme",
    "instance-size",
    "instance-cpu",
    "instance-cpu-manufacturer",
    "instance-cpu-sustained-clock-speed-mhz",
    "instance-memory",
    "instance-ebs-bandwidth",
    "instance-network-bandwidth",
    "instance-gpu-name",
    "instance-gpu-manufacturer",
    "instance-gpu-count",
    "instance-gpu-memory",
    "instance-accelerator-name",
    "instance-accelerator-manufacturer",
    "instance-accelerator-count",
    "instance-capability-flex",
    "placement-group-id",
    "placement-group-partition",
];

/// `karpenter.sh/v1` NodePool.
pub(crate) fn node_pool(ctx: &mut Ctx<'_>, v: &Value) {
    let tpl = "spec.template.spec";
    if let Some(reqs) = get(v, &join(tpl, "requirements")).and_then(Value::as_array) {
        requirements(ctx, reqs, &join(tpl, "requirements"), true);
    }
    if let Some(labels) = get(v, "spec.template.metadata.labels").and_then(Value::as_object) {
        for key in labels.keys() {
            if let Some(msg) = restricted_key(key, true) {
                ctx.error(&format!("spec.template.metadata.labels.{key}"), msg);
            }
        }
    }
    if let Some(r) = get(v, &join(tpl, "nodeClassRef")) {
        node_class_ref(ctx, r, &join(tpl, "nodeClassRef"));
    }
    duration(ctx, v, &join(tpl, "expireAfter"), true);
    duration(ctx, v, &join(tpl, "terminationGracePeriod"), false);
    duration(ctx, v, "spec.disruption.consolidateAfter", true);
    quantities(ctx, v, "spec.limits");
    if let Some(taints) = get(v, &join(tpl, "taints")).and_then(Value::as_array) {
        self::taints(ctx, taints, &join(tpl, "taints"));
    }
    if let Some(taints) = get(v, &join(tpl, "startupTaints")).and_then(Value::as_array) {
        self::taints(ctx, taints, &join(tpl, "startupTaints"));
    }
    if let Some(budgets) = get(v, "spec.disruption.budgets").and_then(Value::as_array) {
        for (i, b) in budgets.iter().enumerate() {
            budget(ctx, b, &format!("spec.disruption.budgets[{i}]"));
        }
    }
    // Tandem's warm capacity: the same reader the simulator and the live state use.
    let annotations: Option<std::collections::BTreeMap<String, String>> =
        get(v, "metadata.annotations")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                    .collect()
            });
    if let Err(e) = crate::convert::nodepool::headroom(annotations.as_ref()) {
        ctx.error(&e.field, e.message);
    }
    let replicas = get(v, "spec.replicas").is_some();
    if replicas && get(v, "spec.weight").is_some() {
        ctx.error(
            "spec.weight",
            "'weight' is not supported on static NodePools (spec.replicas is set)",
        );
    }
    if replicas
        && let Some(limits) = get(v, "spec.limits").and_then(Value::as_object)
        && limits.keys().any(|k| k != "nodes")
    {
        ctx.error(
            "spec.limits",
            "only 'limits.nodes' is supported on static NodePools (spec.replicas is set)",
        );
    }
}

/// `karpenter.sh/v1` NodeClaim.
pub(crate) fn node_claim(ctx: &mut Ctx<'_>, v: &Value) {
    if let Some(reqs) = get(v, "spec.requirements").and_then(Value::as_array) {
        requirements(ctx, reqs, "spec.requirements", false);
    }
    if let Some(r) = get(v, "spec.nodeClassRef") {
        node_class_ref(ctx, r, "spec.nodeClassRef");
    }
    duration(ctx, v, "spec.expireAfter", true);
    duration(ctx, v, "spec.terminationGracePeriod", false);
    quantities(ctx, v, "spec.resources.requests");
}

/// `karpenter.sh/v1alpha5` Provisioner: still read, but only to be migrated.
pub(crate) fn provisioner(ctx: &mut Ctx<'_>, v: &Value) {
    ctx.warn(
        "apiVersion",
        "karpenter.sh/v1alpha5 Provisioner is deprecated and no longer served by Karpenter v1; convert it with `tandem migrate` to a karpenter.sh/v1 NodePool",
    );
    if let Some(reqs) = get(v, "spec.requirements").and_then(Value::as_array) {
        requirements(ctx, reqs, "spec.requirements", false);
    }
    quantities(ctx, v, "spec.limits.resources");
}

/// `karpenter.k8s.aws/v1alpha1` AWSNodeTemplate: still read, but only to be migrated.
pub(crate) fn aws_node_template(ctx: &mut Ctx<'_>, _v: &Value) {
    ctx.warn(
        "apiVersion",
        "karpenter.k8s.aws/v1alpha1 AWSNodeTemplate is deprecated and no longer served by Karpenter v1; convert it with `tandem migrate` to a karpenter.k8s.aws/v1 EC2NodeClass",
    );
}

/// `karpenter.k8s.aws/v1` EC2NodeClass: the CEL rules of the upstream CRD.
pub(crate) fn ec2_node_class(ctx: &mut Ctx<'_>, v: &Value) {
    let role = get(v, "spec.role").is_some();
    let profile = get(v, "spec.instanceProfile").is_some();
    if role == profile {
        ctx.error(
            "spec",
            "must specify exactly one of ['role', 'instanceProfile']",
        );
    }
    let terms = get(v, "spec.amiSelectorTerms")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let aliases = terms.iter().filter(|t| t.get("alias").is_some()).count();
    for (i, term) in terms.iter().enumerate() {
        let path = format!("spec.amiSelectorTerms[{i}]");
        let Some(alias) = term.get("alias").and_then(Value::as_str) else {
            continue;
        };
        if term.as_object().is_some_and(|o| o.len() > 1) {
            ctx.error(&path, "'alias' is mutually exclusive, cannot be set with a combination of other fields in amiSelectorTerms");
        }
        let Some((family, version)) = alias
            .split_once('@')
            .filter(|(f, v)| !f.is_empty() && !v.is_empty())
        else {
            ctx.error(&join(&path, "alias"), format!("{alias:?} is improperly formatted, must match the format 'family@version' (e.g. al2023@latest)"));
            continue;
        };
        const FAMILIES: &[&str] = &[
            "al2",
            "al2023",
            "bottlerocket",
            "windows2019",
            "windows2022",
            "windows2025",
        ];
        if !FAMILIES.contains(&family) {
            ctx.error(
                &join(&path, "alias"),
                format!(
                    "family {family:?} is not supported, must be one of: {}",
                    FAMILIES.join(", ")
                ),
            );
        } else if family.starts_with("windows") && version != "latest" {
            ctx.error(
                &join(&path, "alias"),
                "windows families may only specify version 'latest'",
            );
        }
    }
    if aliases > 0 && terms.len() > 1 {
        ctx.error("spec.amiSelectorTerms", "'alias' is mutually exclusive, cannot be set with a combination of other amiSelectorTerms");
    }
    if aliases == 0 && !terms.is_empty() && get(v, "spec.amiFamily").is_none() {
        ctx.error(
            "spec.amiFamily",
            "must specify amiFamily if amiSelectorTerms does not contain an alias",
        );
    }
    for field in [
        "subnetSelectorTerms",
        "securityGroupSelectorTerms",
        "amiSelectorTerms",
    ] {
        let path = format!("spec.{field}");
        match get(v, &path).and_then(Value::as_array) {
            Some(t) if t.is_empty() => ctx.error(&path, format!("{field} cannot be empty")),
            Some(t) => {
                for (i, term) in t.iter().enumerate() {
                    let keys = term.as_object().map(|o| o.len()).unwrap_or(0);
                    if keys == 0 {
                        ctx.error(
                            &format!("{path}[{i}]"),
                            "expected at least one selector (tags, id or name), got none",
                        );
                    }
                    if let Some(tags) = term.get("tags").and_then(Value::as_object) {
                        for (k, val) in tags {
                            if k.is_empty() || val.as_str().is_some_and(str::is_empty) {
                                ctx.error(
                                    &format!("{path}[{i}].tags"),
                                    "empty tag keys or values aren't supported",
                                );
                            }
                        }
                    }
                }
            }
            None => {}
        }
    }
    if let Some(tags) = get(v, "spec.tags").and_then(Value::as_object) {
        for key in tags.keys() {
            let restricted = [
                "eks:eks-cluster-name",
                "karpenter.sh/nodepool",
                "karpenter.sh/nodeclaim",
                "karpenter.k8s.aws/ec2nodeclass",
            ];
            if key.is_empty() {
                ctx.error("spec.tags", "empty tag keys aren't supported");
            } else if restricted.contains(&key.as_str())
                || key.starts_with("kubernetes.io/cluster/")
            {
                ctx.error(
                    &format!("spec.tags.{key}"),
                    "tag contains a restricted tag that Tandem sets itself",
                );
            }
        }
    }
}

/// Requirement list checks shared by NodePool, NodeClaim and Provisioner.
pub(crate) fn requirements(ctx: &mut Ctx<'_>, reqs: &[Value], path: &str, nodepool_rules: bool) {
    for (i, r) in reqs.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
        let op = r
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let values: Vec<&Value> = r
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        if let Some(msg) = restricted_key(key, nodepool_rules) {
            ctx.error(&join(&p, "key"), msg);
        }
        for (j, val) in values.iter().enumerate() {
            match val.as_str() {
                Some(s) if !is_label_value(s) => ctx.error(
                    &format!("{p}.values[{j}]"),
                    format!("{s:?} is not a valid label value (at most 63 of A-Z a-z 0-9 - _ ., starting and ending alphanumeric)"),
                ),
                Some(_) => {}
                None => ctx.error(&format!("{p}.values[{j}]"), format!("must be a string, got {} (quote it)", show(val))),
            }
        }
        match op {
            "In" if values.is_empty() => {
                ctx.error(&join(&p, "values"), "requirements with operator 'In' must have a value defined")
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => ctx.error(
                &join(&p, "values"),
                format!("operator '{op}' takes no values; remove them, or use 'In' to list allowed values"),
            ),
            "Gt" | "Lt" | "Gte" | "Lte" => {
                let ok = values.len() == 1 && values[0].as_str().is_some_and(|s| s.parse::<u64>().is_ok());
                if !ok {
                    ctx.error(
                        &join(&p, "values"),
                        format!("requirements operator '{op}' must have a single positive integer value (e.g. values: [\"2\"])"),
                    );
                }
            }
            _ => {}
        }
        if let Some(min) = r.get("minValues").and_then(Value::as_u64)
            && op == "In"
            && (values.len() as u64) < min
        {
            ctx.error(
                    &join(&p, "minValues"),
                    format!("requirements with 'minValues' must have at least that many values specified in the 'values' field ({min} > {} values)", values.len()),
                );
        }
    }
}

/// Why a label key may not be used in a NodePool template or requirement, if it may not.
fn restricted_key(key: &str, nodepool_rules: bool) -> Option<String> {
    if key == "kubernetes.io/hostname" {
        return Some("label \"kubernetes.io/hostname\" is restricted".into());
    }
    if nodepool_rules && key == "karpenter.sh/nodepool" {
        return Some("label \"karpenter.sh/nodepool\" is restricted".into());
    }
    let domain = key.split_once('/').map(|(d, _)| d).unwrap_or("");
    let in_domain = |d: &str| domain == d || domain.ends_with(&format!(".{d}"));
    if in_domain("karpenter.sh")
        && !matches!(key, "karpenter.sh/capacity-type" | "karpenter.sh/nodepool")
    {
        return Some("label domain \"karpenter.sh\" is restricted".into());
    }
    if in_domain("karpenter.k8s.aws") {
        let name = key.rsplit('/').next().unwrap_or("");
        let allowed = AWS_USER_LABEL_NAMES.contains(&name);
        if !allowed {
            return Some("label domain \"karpenter.k8s.aws\" is restricted".into());
        }
    }
    None
}

fn node_class_ref(ctx: &mut Ctx<'_>, r: &Value, path: &str) {
    let group = r.get("group").and_then(Value::as_str).unwrap_or_default();
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or_default();
    for (field, val) in [("group", group), ("kind", kind)] {
        if val.is_empty() {
            ctx.error(&join(path, field), format!("{field} may not be empty"));
        }
    }
    if group.is_empty() || kind.is_empty() {
        return;
    }
    if !NODE_CLASSES.contains(&(group, kind)) {
        let expected: Vec<String> = NODE_CLASSES
            .iter()
            .map(|(g, k)| format!("{k} in {g}"))
            .collect();
        let hint = NODE_CLASSES
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, k)| format!("; group {group} has kind {k}"))
            .or_else(|| {
                NODE_CLASSES
                    .iter()
                    .find(|(_, k)| *k == kind)
                    .map(|(g, _)| format!("; kind {kind} is in group {g}"))
            })
            .unwrap_or_default();
        ctx.error(
            path,
            format!(
                "no NodeClass kind {kind} in group {group}{hint} (known: {})",
                expected.join(", ")
            ),
        );
    }
}

/// Checks a duration field written as upstream's pattern allows (`1m`, `168h0m0s`, or `Never`).
fn duration(ctx: &mut Ctx<'_>, v: &Value, path: &str, never_ok: bool) {
    let Some(s) = get(v, path).and_then(Value::as_str) else {
        return;
    };
    if s == "Never" {
        if !never_ok {
            ctx.error(
                path,
                "\"Never\" is not allowed here; give a duration such as 1h or 30m",
            );
        }
        return;
    }
    if !is_hms_duration(s) {
        ctx.error(path, format!("{s:?} is not a duration: write whole hours, minutes and seconds such as 30s, 1m, 1h30m or 168h0m0s{}", if never_ok { ", or Never" } else { "" }));
    }
}

/// Karpenter's duration pattern: one or more `<digits><h|m|s>` groups.
fn is_hms_duration(s: &str) -> bool {
    let mut digits = 0;
    let mut groups = 0;
    for b in s.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'h' | b'm' | b's' if digits > 0 => {
                digits = 0;
                groups += 1;
            }
            _ => return false,
        }
    }
    digits == 0 && groups > 0
}

/// Every value of a quantity map must parse.
fn quantities(ctx: &mut Ctx<'_>, v: &Value, path: &str) {
    let Some(map) = get(v, path).and_then(Value::as_object) else {
        return;
    };
    for (name, q) in map {
        quantity(ctx, q, &join(path, name));
    }
}

/// Reads a quantity written as a string or a number (as the API server accepts it); `None` for
/// any other JSON type, which the schema walk reports.
pub(crate) fn read_quantity(
    q: &Value,
) -> Option<Result<Quantity, tandem_model::quantity::QuantityError>> {
    match q {
        Value::String(s) => Some(Quantity::from_str(s)),
        Value::Number(n) => Some(Quantity::from_str(&n.to_string())),
        _ => None,
    }
}

/// A quantity written as a string or a number.
pub(crate) fn quantity(ctx: &mut Ctx<'_>, q: &Value, path: &str) {
    if let Some(Err(e)) = read_quantity(q) {
        ctx.error(
            path,
            format!("not a quantity: {e}; write e.g. 500m, 2, 1.5Gi or 512Mi"),
        );
    }
}

fn taints(ctx: &mut Ctx<'_>, taints: &[Value], path: &str) {
    for (i, t) in taints.iter().enumerate() {
        if let Some(e) = t.get("effect").and_then(Value::as_str)
            && !matches!(e, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            ctx.error(
                &format!("{path}[{i}].effect"),
                format!(
                    "{e:?} is not a taint effect: use NoSchedule, PreferNoSchedule or NoExecute"
                ),
            );
        }
    }
}

fn budget(ctx: &mut Ctx<'_>, b: &Value, path: &str) {
    if let Some(nodes) = b.get("nodes").and_then(Value::as_str) {
        let ok = match nodes.strip_suffix('%') {
            Some(pct) => pct.parse::<u32>().is_ok_and(|p| p <= 100) && !pct.is_empty(),
            None => nodes.parse::<u64>().is_ok(),
        };
        if !ok {
            ctx.error(&join(path, "nodes"), format!("{nodes:?} is not a node count or percentage: write e.g. \"1\", \"0\" or \"10%\""));
        }
    }
    let schedule = b.get("schedule").and_then(Value::as_str);
    let dur = b.get("duration").and_then(Value::as_str);
    if schedule.is_some() != dur.is_some() {
        ctx.error(path, "'schedule' must be set with 'duration'");
    }
    if let Some(s) = schedule
        && let Err(e) = crate::cron::parse(s)
    {
        ctx.error(&join(path, "schedule"), format!("{s:?} is not a cron schedule ({e}); write 5 fields (minute hour day month weekday, in UTC) or @daily, @hourly …"));
    }
    if let Some(d) = dur {
        let hm = d.strip_suffix("0s").unwrap_or(d);
        if hm.is_empty() || !is_hms_duration(hm) || hm.contains('s') {
            ctx.error(&join(path, "duration"), format!("{d:?} is not a budget duration: hours and minutes only, such as 8h, 30m or 1h30m"));
        }
    }
}

/// RFC 1123-ish label value: at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
pub(crate) fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && s.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric))
}

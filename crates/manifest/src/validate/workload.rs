//! Built-in kinds Tandem reads: workloads (their pod templates decide node shapes) and Secrets
//! (TriggerAuthentications read them).

use super::karpenter::{quantity, read_quantity};
use super::{Ctx, get, join};
use crate::object::ObjectRef;
use serde_json::Value;
use tandem_model::quantity::Quantity;

/// Where a workload kind keeps its pod spec.
pub(crate) fn pod_spec_path(kind: &str) -> &'static str {
    match kind {
        "Pod" => "spec",
        "CronJob" => "spec.jobTemplate.spec.template.spec",
        _ => "spec.template.spec",
    }
}

/// Checks a workload: its shape (typed parse), and the resources of every container.
pub(crate) fn check(ctx: &mut Ctx<'_>, obj: &ObjectRef, v: &Value) {
    if let Err(e) = crate::typed::parse_builtin(&obj.api_version, &obj.kind, v) {
        ctx.error(&e.path, e.message);
        return;
    }
    let spec_path = pod_spec_path(&obj.kind);
    let Some(spec) = get(v, spec_path) else {
        return;
    };
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in containers.iter().enumerate() {
            let p = format!("{spec_path}.{list}[{i}].resources");
            resources(ctx, c.get("resources"), &p);
        }
    }
    if let Some(overhead) = spec.get("overhead").and_then(Value::as_object) {
        for (name, q) in overhead {
            quantity(ctx, q, &format!("{spec_path}.overhead.{name}"));
        }
    }
}

fn resources(ctx: &mut Ctx<'_>, r: Option<&Value>, path: &str) {
    let Some(r) = r else { return };
    for section in ["requests", "limits"] {
        if let Some(map) = r.get(section).and_then(Value::as_object) {
            for (name, q) in map {
                quantity(ctx, q, &format!("{path}.{section}.{name}"));
            }
        }
    }
    let (Some(req), Some(lim)) = (
        r.get("requests").and_then(Value::as_object),
        r.get("limits").and_then(Value::as_object),
    ) else {
        return;
    };
    for (name, rq) in req {
        let (Some(a), Some(b)) = (parse(rq), lim.get(name).and_then(parse)) else {
            continue;
        };
        if a > b {
            ctx.error(&format!("{path}.requests.{name}"), format!("request {a} is above the limit {b}: a request must be less than or equal to its limit"));
        }
    }
}

fn parse(q: &Value) -> Option<Quantity> {
    read_quantity(q)?.ok()
}

/// A Secret's `data` must be base64, or the API server refuses it.
pub(crate) fn secret(ctx: &mut Ctx<'_>, v: &Value) {
    let Some(data) = v.get("data").and_then(Value::as_object) else {
        return;
    };
    for (key, val) in data {
        let ok = val.as_str().is_some_and(is_base64);
        if !ok {
            ctx.error(
                &join("data", key),
                "is not base64: put plain text under stringData, or encode it (base64 -w0)",
            );
        }
    }
}

fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

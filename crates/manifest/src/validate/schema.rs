//! Walks a document along the OpenAPI schema of its CRD, as the API server's strict field
//! validation would: unknown fields, wrong types, enums, bounds and required fields.
//!
//! The schemas come from `tandem_api::crds::all()`, the same ones `tandem crds` installs, so
//! validate and the cluster cannot disagree about what a field is.

use super::{Ctx, join, show};
use serde_json::Value;

/// A served version of a CRD kind, with its schema.
pub(crate) struct KindSchema {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespaced: bool,
    pub schema: Value,
}

/// Every kind Tandem serves, by group, version and kind.
pub(crate) struct Schemas(Vec<KindSchema>);

impl Schemas {
    /// The schemas of every CRD Tandem generates, built once per process: they are immutable
    /// and generating them is the costliest step of a small validation.
    pub(crate) fn get() -> &'static Schemas {
        static SCHEMAS: std::sync::OnceLock<Schemas> = std::sync::OnceLock::new();
        SCHEMAS.get_or_init(Schemas::load)
    }

    /// Loads the schemas of every CRD Tandem generates.
    fn load() -> Schemas {
        let mut out = Vec::new();
        for crd in tandem_api::crds::all() {
            let spec = &crd.spec;
            for v in &spec.versions {
                let schema = v
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .and_then(|s| serde_json::to_value(s).ok())
                    .unwrap_or(Value::Null);
                out.push(KindSchema {
                    group: spec.group.clone(),
                    version: v.name.clone(),
                    kind: spec.names.kind.clone(),
                    namespaced: spec.scope == "Namespaced",
                    schema,
                });
            }
        }
        Schemas(out)
    }

    /// The schema of one served version of a kind.
    pub(crate) fn find(&self, group: &str, version: &str, kind: &str) -> Option<&KindSchema> {
        self.0
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
    }

    /// The apiVersions in which a kind of a Tandem group is served, if the kind is Tandem's.
    pub(crate) fn served_versions(&self, group: &str, kind: &str) -> Option<Vec<String>> {
        let v: Vec<String> = self
            .0
            .iter()
            .filter(|k| k.group == group && k.kind == kind)
            .map(|k| format!("{}/{}", k.group, k.version))
            .collect();
        (!v.is_empty()).then_some(v)
    }
}

/// Checks `value` at `path` against `schema`.
pub(crate) fn walk(ctx: &mut Ctx<'_>, schema: &Value, value: &Value, path: &str) {
    if value.is_null() {
        // The API server drops nulls of optional fields; required ones are reported by the parent.
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            ctx.error(
                path,
                format!("must be an integer or a string, got {}", show(value)),
            );
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    match ty {
        Some("object") => object(ctx, schema, value, path),
        Some("array") => array(ctx, schema, value, path),
        Some("string") => string(ctx, schema, value, path),
        Some("integer") => {
            if value.as_i64().is_none() && value.as_u64().is_none() {
                ctx.error(path, format!("must be an integer, got {}", show(value)));
            } else {
                bounds(ctx, schema, value.as_f64().unwrap_or_default(), path);
            }
        }
        Some("number") => match value.as_f64() {
            Some(n) => bounds(ctx, schema, n, path),
            None => ctx.error(path, format!("must be a number, got {}", show(value))),
        },
        Some("boolean") => {
            if !value.is_boolean() {
                ctx.error(path, format!("must be true or false, got {}", show(value)));
            }
        }
        _ => {
            if schema.get("properties").is_some() {
                object(ctx, schema, value, path);
            }
        }
    }
}

fn object(ctx: &mut Ctx<'_>, schema: &Value, value: &Value, path: &str) {
    let Some(map) = value.as_object() else {
        ctx.error(path, format!("must be an object, got {}", show(value)));
        return;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if map.get(r).is_none_or(Value::is_null) {
                ctx.error(&join(path, r), "required field is missing");
            }
        }
    }
    for (key, child) in map {
        let child_path = join(path, key);
        if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(key)) {
            walk(ctx, sub, child, &child_path);
        } else if let Some(sub) = additional.filter(|a| a.is_object()) {
            walk(ctx, sub, child, &child_path);
        } else if preserve || additional.and_then(Value::as_bool) == Some(true) {
            continue;
        } else {
            let known: Vec<&str> = props
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let hint = closest(key, &known)
                .map(|k| format!(" (did you mean {k:?}?)"))
                .unwrap_or_default();
            ctx.error(&child_path, format!("unknown field {key:?}{hint}"));
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && map.len() as u64 > max
    {
        ctx.error(
            path,
            format!("has {} entries, at most {max} allowed", map.len()),
        );
    }
}

fn array(ctx: &mut Ctx<'_>, schema: &Value, value: &Value, path: &str) {
    let Some(items) = value.as_array() else {
        ctx.error(path, format!("must be a list, got {}", show(value)));
        return;
    };
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        ctx.error(
            path,
            format!("has {} items, at most {max} allowed", items.len()),
        );
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        ctx.error(
            path,
            format!("has {} items, at least {min} required", items.len()),
        );
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            walk(ctx, item_schema, item, &format!("{path}[{i}]"));
        }
    }
}

fn string(ctx: &mut Ctx<'_>, schema: &Value, value: &Value, path: &str) {
    let Some(s) = value.as_str() else {
        ctx.error(
            path,
            format!("must be a string, got {} (quote it)", show(value)),
        );
        return;
    };
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        let allowed: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        if !allowed.is_empty() && !allowed.contains(&s) {
            ctx.error(path, format!("{s:?} is not one of {}", allowed.join(", ")));
        }
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && s.chars().count() as u64 > max
    {
        ctx.error(
            path,
            format!(
                "is {} characters long, at most {max} allowed",
                s.chars().count()
            ),
        );
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (s.chars().count() as u64) < min
    {
        ctx.error(path, format!("must be at least {min} characters long"));
    }
}

fn bounds(ctx: &mut Ctx<'_>, schema: &Value, n: f64, path: &str) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        ctx.error(path, format!("must be at least {min}, got {n}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        ctx.error(path, format!("must be at most {max}, got {n}"));
    }
}

/// The known name closest to a misspelt one (edit distance ≤ 2), for "did you mean" hints.
pub(crate) fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(&word.to_lowercase(), &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

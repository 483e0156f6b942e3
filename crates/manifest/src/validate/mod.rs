//! `tandem validate`: every check a manifest gets before it reaches a cluster.
//!
//! Three passes, each adding findings and never stopping the others:
//! 1. per document: identity (apiVersion, kind, name), then the CRD's OpenAPI schema for the kinds
//!    Tandem serves (module `schema`), then the typed parse, then the semantic rules of each kind that
//!    the API server enforces with CEL or the upstream controllers enforce at run time
//!    (modules `karpenter`, `keda`, `triggers`, `workload`);
//! 2. across documents: references between objects of the same input (module `references`).
//!
//! An invalid object never hides findings in another: each document is judged on its own.

mod karpenter;
mod keda;
mod references;
mod schema;
mod triggers;
mod workload;

use crate::finding::{Finding, Severity};
use crate::object::{OTHER_CORE_KINDS, ObjectRef, WORKLOAD_KINDS};
use crate::source::SourceFile;
use crate::yaml::Document;
use serde_json::Value;

/// The outcome of validating a set of files.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every finding, in input order.
    pub findings: Vec<Finding>,
    /// How many files were read.
    pub files: usize,
    /// How many Kubernetes objects were found.
    pub objects: usize,
    /// Whether some file was not valid YAML at all (exit code 2, as for unreadable input).
    pub unreadable: bool,
}

impl Report {
    /// Counts findings of one severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// One object of the input with where it came from, for the cross-document pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located<'a> {
    pub file: &'a str,
    pub doc: &'a Document,
    pub object: &'a ObjectRef,
}

/// Validates every document of every file.
pub fn validate(files: &[SourceFile]) -> Report {
    let schemas = schema::Schemas::get();
    let mut report = Report {
        files: files.len(),
        ..Report::default()
    };
    let mut objects: Vec<(usize, usize, ObjectRef)> = Vec::new();
    for (fi, file) in files.iter().enumerate() {
        for (di, doc) in file.documents.iter().enumerate() {
            if let Some(obj) = check_document(&file.name, doc, schemas, &mut report.findings) {
                objects.push((fi, di, obj));
            }
        }
        if let Some(err) = &file.syntax_error {
            report.unreadable = true;
            report.findings.push(Finding {
                file: file.name.clone(),
                line: err.line,
                severity: Severity::Error,
                object: None,
                field: None,
                message: format!("not valid YAML: {}", err.message),
            });
        }
    }
    report.objects = objects.len();
    let located: Vec<Located<'_>> = objects
        .iter()
        .map(|(fi, di, object)| Located {
            file: &files[*fi].name,
            doc: &files[*fi].documents[*di],
            object,
        })
        .collect();
    references::check(&located, &mut report.findings);
    report
}

/// Checks one document; returns its identity when it is a Kubernetes object.
fn check_document(
    file: &str,
    doc: &Document,
    schemas: &schema::Schemas,
    out: &mut Vec<Finding>,
) -> Option<ObjectRef> {
    let mut ctx = Ctx {
        file,
        doc,
        object: None,
        out,
    };
    let value = &doc.value;
    if !value.is_object() {
        ctx.error(
            "",
            "a manifest must be a mapping with apiVersion, kind and metadata",
        );
        return None;
    }
    for dup in &doc.duplicate_keys {
        ctx.error(dup, "this key appears twice in the same mapping; the later value wins and the earlier is lost");
    }
    let has_api = value.get("apiVersion").is_some();
    let has_kind = value.get("kind").is_some();
    if !has_api && !has_kind {
        ctx.note(
            "",
            "no apiVersion or kind: not a Kubernetes object (a Helm values file?), skipped",
        );
        return None;
    }
    let Some(obj) = ObjectRef::of(value) else {
        let missing = if has_api { "kind" } else { "apiVersion" };
        ctx.error(
            missing,
            "required: every Kubernetes object has both apiVersion and kind (as strings)",
        );
        return None;
    };
    ctx.object = Some(obj.display());
    let meta = value.get("metadata");
    let generated = meta.and_then(|m| m.get("generateName")).is_some();
    if obj.name.is_empty() && !generated {
        ctx.error("metadata.name", "required: the object has no name");
    } else if !obj.name.is_empty() && !is_dns_subdomain(&obj.name) {
        ctx.error(
            "metadata.name",
            format!("{:?} is not a valid name (lowercase letters, digits, '-' and '.', at most 253, starting and ending alphanumeric)", obj.name),
        );
    }

    let group = obj.group();
    let version = obj.api_version.rsplit('/').next().unwrap_or_default();
    if let Some(schema) = schemas.find(group, version, &obj.kind) {
        if !schema.namespaced && obj.namespace.is_some() {
            ctx.warn(
                "metadata.namespace",
                format!("{} is cluster-scoped; the namespace is ignored", obj.kind),
            );
        }
        let before = ctx.out.len();
        schema::walk(&mut ctx, &schema.schema, value, "");
        match (group, obj.kind.as_str()) {
            ("karpenter.sh", "NodePool") => karpenter::node_pool(&mut ctx, value),
            ("karpenter.sh", "NodeClaim") => karpenter::node_claim(&mut ctx, value),
            ("karpenter.sh", "Provisioner") => karpenter::provisioner(&mut ctx, value),
            ("karpenter.k8s.aws", "AWSNodeTemplate") => {
                karpenter::aws_node_template(&mut ctx, value)
            }
            ("karpenter.k8s.aws", "EC2NodeClass") => karpenter::ec2_node_class(&mut ctx, value),
            ("keda.sh", "ScaledObject") => keda::scaled_object(&mut ctx, value),
            ("keda.sh", "ScaledJob") => keda::scaled_job(&mut ctx, value),
            ("keda.sh", "TriggerAuthentication" | "ClusterTriggerAuthentication") => {
                keda::trigger_authentication(&mut ctx, value)
            }
            _ => {}
        }
        // The typed parse is the last line of defence: it only speaks when the schema and the
        // semantic rules found nothing, so one mistake is reported once.
        if ctx.out[before..]
            .iter()
            .all(|f| f.severity != Severity::Error)
        {
            typed_parse(&mut ctx, &obj);
        }
    } else if let Some(served) = schemas.served_versions(group, &obj.kind) {
        ctx.error(
            "apiVersion",
            format!(
                "{} is not served for {}; use {}",
                obj.api_version,
                obj.kind,
                served.join(" or ")
            ),
        );
    } else if WORKLOAD_KINDS.contains(&(obj.api_version.as_str(), obj.kind.as_str())) {
        workload::check(&mut ctx, &obj, value);
    } else if obj.api_version == "v1" && obj.kind == "Secret" {
        workload::secret(&mut ctx, value);
    } else if !OTHER_CORE_KINDS.contains(&(obj.api_version.as_str(), obj.kind.as_str())) {
        ctx.note(
            "",
            format!(
                "{} {} is not a kind tandem checks; skipped",
                obj.api_version, obj.kind
            ),
        );
    }
    Some(obj)
}

/// Deserializes the object into Tandem's own type, so that what passes validation is exactly
/// what the controllers can read.
fn typed_parse(ctx: &mut Ctx<'_>, obj: &ObjectRef) {
    let err = match crate::typed::parse_object(&obj.api_version, &obj.kind, &ctx.doc.value) {
        Ok(()) => return,
        Err(e) => e,
    };
    ctx.error(&err.path, err.message);
}

/// The checking context of one document: where findings go and how they are located.
pub(crate) struct Ctx<'a> {
    file: &'a str,
    doc: &'a Document,
    object: Option<String>,
    out: &'a mut Vec<Finding>,
}

impl Ctx<'_> {
    fn push(&mut self, severity: Severity, path: &str, message: String) {
        let line = self.doc.lines.line_of(path).unwrap_or(self.doc.line);
        self.out.push(Finding {
            file: self.file.to_string(),
            line,
            severity,
            object: self.object.clone(),
            field: if path.is_empty() {
                None
            } else {
                Some(path.to_string())
            },
            message,
        });
    }

    /// Records an error at a field path.
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, path, message.into());
    }

    /// Records a warning at a field path.
    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Warning, path, message.into());
    }

    /// Records a note at a field path.
    pub(crate) fn note(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Note, path, message.into());
    }
}

/// Follows a dotted path of object keys (no indices).
pub(crate) fn get<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, k| v.get(k))
}

/// Joins a parent path and a child key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// RFC 1123 subdomain, as Kubernetes requires of most object names.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Renders a JSON value briefly for a message (`"abc"`, `12`, `an object`).
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::Object(_) => "an object".into(),
        Value::Array(_) => "a list".into(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;

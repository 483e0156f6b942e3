//! From the manifests users write to the inputs of the pure decision crates.
//!
//! `tandem simulate` (and, later, `tandem plan`) must read a Deployment, a NodePool or a
//! ScaledObject exactly as the controllers will, so the conversion lives here, once, beside the
//! loader and the validator. One file per source kind; each returns the type the decision crate
//! wants (`nodescaler::snapshot::PendingPod`, `nodescaler::snapshot::NodePool`,
//! `podscaler::decision::ScaledObjectConfig`) plus the few fields the decision types do not carry
//! (replica counts, disruption settings, polling interval).
//!
//! ```text
//!   SourceFile ──► Document (JSON + lines) ──► typed parse (k8s-openapi / tandem-api)
//!        │
//!        ├── deployment / statefulset / job / pod ──► pod_spec ──► Workload { PendingPod }
//!        ├── nodepool (+ nodeclass: which catalog) ──────────────► NodePool
//!        └── scaled_object (+ podscaler naming) ─────────────────► ScaledObject
//! ```
//!
//! Conversion assumes `validate` already ran: it still never panics on bad input, and reports
//! what it cannot convert as [`ConvertError`]s that print like validation findings
//! (`path:line: Kind ns/name: field: message`).

pub mod deployment;
pub mod job;
pub mod nodeclass;
pub mod nodepool;
pub mod pod;
pub mod pod_spec;
pub mod scaled_object;
pub mod statefulset;

use std::fmt;

use serde_json::Value;

use crate::object::ObjectRef;
use crate::source::SourceFile;
use crate::yaml::Document;

pub use nodeclass::{CatalogKind, NodeClass};
pub use nodepool::{BudgetNodes, ConsolidationPolicy, Disruption, NodePool};
pub use pod_spec::Workload;
pub use scaled_object::{ScaledObject, Trigger};

/// Something in a manifest that the decision crates cannot be given, located like a finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConvertError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// `Kind namespace/name`.
    pub object: String,
    /// Dotted field path, empty for the whole object.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConvertError {
    /// Same shape as [`crate::Finding`]: `path:line: Kind ns/name: field: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: ", self.file, self.line, self.object)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// A field-level failure inside one kind's converter, before it is located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path from the object root.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// An error at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<crate::typed::TypedError> for FieldError {
    fn from(e: crate::typed::TypedError) -> Self {
        FieldError::new(e.path, e.message)
    }
}

/// Everything the simulator (or a plan) needs from a set of manifests.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    /// Deployments, StatefulSets, Jobs and bare Pods, in input order.
    pub workloads: Vec<Workload>,
    /// NodePools, in input order.
    pub nodepools: Vec<NodePool>,
    /// NodeClasses (any provider), in input order.
    pub node_classes: Vec<NodeClass>,
    /// ScaledObjects, in input order.
    pub scaled_objects: Vec<ScaledObject>,
    /// Objects read but not used by the decisions (`Kind ns/name`), for a note.
    pub ignored: Vec<String>,
}

/// Converts every object of every file; collects every error instead of stopping at the first.
///
/// # Errors
/// One [`ConvertError`] per object that cannot be converted.
pub fn convert(files: &[SourceFile]) -> Result<Converted, Vec<ConvertError>> {
    let mut out = Converted::default();
    let mut errors = Vec::new();
    for file in files {
        for doc in &file.documents {
            let Some(obj) = ObjectRef::of(&doc.value) else {
                continue;
            };
            if let Err(e) = convert_one(&obj, &doc.value, &mut out) {
                errors.push(locate(&file.name, doc, &obj, e));
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn convert_one(obj: &ObjectRef, v: &Value, out: &mut Converted) -> Result<(), FieldError> {
    match (obj.api_version.as_str(), obj.kind.as_str()) {
        ("apps/v1", "Deployment") => out.workloads.push(deployment::convert(v)?),
        ("apps/v1", "StatefulSet") => out.workloads.push(statefulset::convert(v)?),
        ("batch/v1", "Job") => out.workloads.push(job::convert(v)?),
        ("v1", "Pod") => out.workloads.push(pod::convert(v)?),
        ("karpenter.sh/v1", "NodePool") => out.nodepools.push(nodepool::convert(v)?),
        ("keda.sh/v1alpha1", "ScaledObject") => {
            out.scaled_objects.push(scaled_object::convert(v)?);
        }
        (api_version, kind) => match nodeclass::convert(api_version, kind, &obj.name) {
            Some(class) => out.node_classes.push(class),
            None => out.ignored.push(obj.display()),
        },
    }
    Ok(())
}

fn locate(file: &str, doc: &Document, obj: &ObjectRef, e: FieldError) -> ConvertError {
    ConvertError {
        file: file.to_owned(),
        line: doc.lines.line_of(&e.field).unwrap_or(doc.line),
        object: obj.display(),
        field: e.field,
        message: e.message,
    }
}

/// The effective namespace of a typed object's metadata (`default` when unwritten).
pub(crate) fn namespace_of(ns: Option<&String>) -> String {
    ns.cloned().unwrap_or_else(|| "default".to_owned())
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::source::{SourceFile, read_inputs};

    /// Reads one seed folder of `examples/seeds/`.
    pub fn seed(dir: &str) -> Vec<SourceFile> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seeds/");
        read_inputs(&[format!("{root}{dir}")]).unwrap()
    }

    /// The first document of `text`.
    pub fn doc(text: &str) -> serde_json::Value {
        crate::source::from_text("t.yaml", text).documents[0]
            .value
            .clone()
    }
}

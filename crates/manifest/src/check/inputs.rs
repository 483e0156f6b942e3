//! The objects the rules read, each with where it was written: the converters of
//! [`crate::convert`] (so `check` reads a manifest exactly as `plan` and the controllers do),
//! plus the file, line and field lines of every object for the findings.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ObjectLoc;
use crate::convert::{
    ConvertError, FieldError, NodePool, ScaledObject, Workload, deployment, job, nodepool, pod,
    scaled_object, statefulset,
};
use crate::object::ObjectRef;
use crate::source::SourceFile;
use crate::yaml::{Document, LineIndex};

/// A converted object and where it was written.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The converted object.
    pub value: T,
    /// Identity as written (kind, name, namespace).
    pub object: ObjectRef,
    /// The file as the user named it.
    pub file: String,
    /// 1-based line of the document.
    pub line: usize,
    /// Lines of its fields, so a finding can point at `spec.disruption.consolidateAfter`.
    pub lines: LineIndex,
    /// The document as written, for the few fields the converted type drops (a trigger's
    /// `metricType`).
    pub raw: Value,
}

impl<T> Located<T> {
    /// The object as a finding names it, at the line of `field` (or of the nearest written
    /// ancestor; the document's line when `field` is empty).
    pub fn at(&self, field: &str) -> ObjectLoc {
        let line = if field.is_empty() {
            self.line
        } else {
            self.lines.line_of(field).unwrap_or(self.line)
        };
        let namespaced = self.object.kind != "NodePool";
        ObjectLoc {
            kind: self.object.kind.clone(),
            namespace: namespaced.then(|| self.object.effective_namespace().to_owned()),
            name: self.object.name.clone(),
            file: self.file.clone(),
            line,
        }
    }

    /// `Kind ns/name` (`Kind name` for a NodePool), for messages.
    pub fn display(&self) -> String {
        if self.object.kind == "NodePool" {
            format!("NodePool {}", self.object.name)
        } else {
            format!(
                "{} {}/{}",
                self.object.kind,
                self.object.effective_namespace(),
                self.object.name
            )
        }
    }
}

/// A Service: what makes a workload latency-sensitive (something sends it requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// `spec.selector`; empty selects nothing (a Service without selector is managed by hand).
    pub selector: BTreeMap<String, String>,
}

/// Everything the rules read, in input order.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Deployments, StatefulSets, Jobs and Pods.
    pub workloads: Vec<Located<Workload>>,
    /// NodePools, one per name (the last definition).
    pub nodepools: Vec<Located<NodePool>>,
    /// ScaledObjects.
    pub scaled_objects: Vec<Located<ScaledObject>>,
    /// Services.
    pub services: Vec<Located<Service>>,
}

impl Inputs {
    /// Converts every object the rules read; collects every failure.
    ///
    /// # Errors
    /// One [`ConvertError`] per object that cannot be converted.
    pub fn read(files: &[SourceFile]) -> Result<Inputs, Vec<ConvertError>> {
        let mut out = Inputs::default();
        let mut errors = Vec::new();
        for file in files {
            for doc in &file.documents {
                let Some(obj) = ObjectRef::of(&doc.value) else {
                    continue;
                };
                if let Err(e) = out.add(&file.name, doc, &obj) {
                    errors.push(ConvertError {
                        file: file.name.clone(),
                        line: doc.lines.line_of(&e.field).unwrap_or(doc.line),
                        object: obj.display(),
                        field: e.field,
                        message: e.message,
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    fn add(&mut self, file: &str, doc: &Document, obj: &ObjectRef) -> Result<(), FieldError> {
        let v = &doc.value;
        let at = |value| Located {
            value,
            object: obj.clone(),
            file: file.to_owned(),
            line: doc.line,
            lines: doc.lines.clone(),
            raw: v.clone(),
        };
        match (obj.api_version.as_str(), obj.kind.as_str()) {
            ("apps/v1", "Deployment") => self.workloads.push(at(deployment::convert(v)?)),
            ("apps/v1", "StatefulSet") => self.workloads.push(at(statefulset::convert(v)?)),
            ("batch/v1", "Job") => self.workloads.push(at(job::convert(v)?)),
            ("v1", "Pod") => self.workloads.push(at(pod::convert(v)?)),
            ("karpenter.sh/v1", "NodePool") => {
                // Defined twice (seed 003's "v2" file): the later one is what `kubectl apply`
                // leaves, so only it is judged.
                self.nodepools.retain(|p| p.object.name != obj.name);
                self.nodepools.push(Located {
                    value: nodepool::convert(v)?,
                    object: obj.clone(),
                    file: file.to_owned(),
                    line: doc.line,
                    lines: doc.lines.clone(),
                    raw: v.clone(),
                });
            }
            ("keda.sh/v1alpha1", "ScaledObject") => self.scaled_objects.push(Located {
                value: scaled_object::convert(v)?,
                object: obj.clone(),
                file: file.to_owned(),
                line: doc.line,
                lines: doc.lines.clone(),
                raw: v.clone(),
            }),
            ("v1", "Service") => self.services.push(Located {
                value: service(obj, v),
                object: obj.clone(),
                file: file.to_owned(),
                line: doc.line,
                lines: doc.lines.clone(),
                raw: v.clone(),
            }),
            _ => {}
        }
        Ok(())
    }

    /// The workload a ScaledObject scales, when it is in the input.
    pub fn target_of(&self, so: &ScaledObject) -> Option<&Located<Workload>> {
        self.workloads.iter().find(|w| {
            w.value.namespace == so.namespace
                && w.value.name == so.target_name
                && w.value.kind.as_str() == so.target_kind
        })
    }

    /// Pairs of each ScaledObject with its target workload (targets missing from the input are
    /// skipped: nothing can be said about pods whose template is not here).
    pub fn scaled_targets(&self) -> Vec<(&Located<ScaledObject>, &Located<Workload>)> {
        self.scaled_objects
            .iter()
            .filter_map(|so| self.target_of(&so.value).map(|w| (so, w)))
            .collect()
    }
}

fn service(obj: &ObjectRef, v: &Value) -> Service {
    let selector = v
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Service {
        namespace: obj.effective_namespace().to_owned(),
        selector,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{SPOT_POOL, inputs, join};

    #[test]
    fn a_nodepool_defined_twice_is_read_as_its_last_definition() {
        let later = SPOT_POOL.replace("consolidateAfter: 1m", "consolidateAfter: 10m");
        let i = inputs(&join(&[SPOT_POOL, &later]));
        assert_eq!(i.nodepools.len(), 1);
        assert_eq!(
            i.nodepools[0].value.disruption.consolidate_after,
            Some(std::time::Duration::from_secs(600))
        );
    }

    #[test]
    fn a_missing_field_points_at_its_nearest_written_ancestor() {
        let i = inputs(SPOT_POOL);
        let at = i.nodepools[0].at("spec.disruption.consolidateAfter");
        assert_eq!((at.line, at.namespace), (9, None));
        assert_eq!(i.nodepools[0].at("spec.weight").line, 6);
    }
}

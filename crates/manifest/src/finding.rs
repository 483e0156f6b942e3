//! One finding about one field of one object, printed as one line a person can act on.

use std::fmt;

/// How bad a finding is. Only errors make `validate` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The API server would reject it, or Tandem could not act on it.
    Error,
    /// Accepted, but probably not what was meant (or deprecated).
    Warning,
    /// Information: something was skipped and why.
    Note,
}

/// A finding, located at a file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file as the user named it (or `-` for standard input).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// How bad it is.
    pub severity: Severity,
    /// `Kind namespace/name`, `Kind name` for cluster-scoped objects, or none for a document
    /// that is not an object.
    pub object: Option<String>,
    /// Dotted field path (`spec.triggers[0].metadata.queueLength`), or none for the whole object.
    pub field: Option<String>,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for Finding {
    /// `path:line: Kind namespace/name: field.path: what is wrong (and what would be right)`, with
    /// `warning: ` or `note: ` after the location for the milder severities, as compilers do.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        match self.severity {
            Severity::Error => {}
            Severity::Warning => f.write_str("warning: ")?,
            Severity::Note => f.write_str("note: ")?,
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

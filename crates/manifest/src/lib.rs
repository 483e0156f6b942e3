//! Reading the manifests users write, and checking them beyond the schema.
//!
//! Every command that takes files (`validate`, `plan`, `simulate`, `check`, `migrate`) reads them
//! through this crate, so a manifest means the same to all of them and every finding points at a
//! file and line. This crate must never talk to a cluster: it judges the files alone.
//!
//! ```text
//!   files/dirs/stdin ──► source ──► yaml (documents + line index) ──► object (identity)
//!                                                                      │
//!                  findings ◄── validate (schema, typed parse, semantics, references)
//! ```

pub mod check;
pub mod convert;
pub mod cron;
pub mod finding;
pub mod migrate;
pub mod object;
pub mod source;
pub mod typed;
pub mod validate;
pub mod yaml;

pub use finding::{Finding, Severity};
pub use source::{SourceError, SourceFile, read_inputs};
pub use validate::{Report, validate};

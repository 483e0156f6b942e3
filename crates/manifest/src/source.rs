//! Where manifests come from: files, directories (walked in name order) and standard input.

use crate::yaml::{self, Document, YamlError};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One input file, read and split into documents.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as shown to the user (`-` for standard input).
    pub name: String,
    /// Its documents, in order.
    pub documents: Vec<Document>,
    /// A YAML syntax error after the documents above, if any.
    pub syntax_error: Option<YamlError>,
}

/// Why an input could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path does not exist or cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path named by the user.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("cannot read {path}: not UTF-8 text")]
    NotText {
        /// The path named by the user.
        path: String,
    },
}

/// Reads every input the user named. Directories contribute their `*.yaml`, `*.yml` and
/// `*.json` files, recursively, sorted by path so output is stable. `-` is standard input.
pub fn read_inputs(inputs: &[String]) -> Result<Vec<SourceFile>, SourceError> {
    let mut out = Vec::new();
    for input in inputs {
        if input == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| SourceError::Read {
                    path: "-".into(),
                    source,
                })?;
            out.push(from_text("-", &text));
            continue;
        }
        let path = Path::new(input);
        let meta = std::fs::metadata(path).map_err(|source| SourceError::Read {
            path: input.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files).map_err(|source| SourceError::Read {
                path: input.clone(),
                source,
            })?;
            files.sort();
            for file in files {
                out.push(read_file(&file)?);
            }
        } else {
            out.push(read_file(path)?);
        }
    }
    Ok(out)
}

/// Splits already-read text into documents (for tests and embedded scenarios).
pub fn from_text(name: &str, text: &str) -> SourceFile {
    let (documents, syntax_error) = yaml::parse(text);
    SourceFile {
        name: name.to_string(),
        documents,
        syntax_error,
    }
}

fn read_file(path: &Path) -> Result<SourceFile, SourceError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
        path: name.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| SourceError::NotText { path: name.clone() })?;
    Ok(from_text(&name, &text))
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, files)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

//! Multi-document YAML to JSON values, remembering the source line of every field.
//!
//! Users' files are YAML; the API server and our types speak JSON. kubectl converts with YAML 1.1
//! scalar rules (`yes`/`on` are booleans, `0755` is octal), so we do too: a manifest means the same
//! thing to `tandem validate` as to `kubectl apply`. Every node's path (`spec.triggers[0].type`) is
//! mapped to the line where it starts, so a finding can point at the line a person must edit.

use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One YAML document of a file, as JSON, with the lines its fields start on.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based line where the document's content starts.
    pub line: usize,
    /// The document converted to JSON the way kubectl converts it.
    pub value: Value,
    /// Line of each field path, for pointing findings at the right line.
    pub lines: LineIndex,
    /// Keys that appeared twice in one mapping (the later value wins, as in kubectl's converter,
    /// but a person almost never means it).
    pub duplicate_keys: Vec<String>,
}

/// Field path → 1-based source line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineIndex(BTreeMap<String, usize>);

impl LineIndex {
    /// The line of `path`, or of its nearest recorded ancestor (a missing field is reported on the
    /// line of the object that lacks it).
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.0.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// Why a YAML text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct YamlError {
    /// 1-based line of the problem.
    pub line: usize,
    /// The parser's description of the problem.
    pub message: String,
}

/// Parses every document of `text`. Documents that are empty (only comments) are dropped.
///
/// On a syntax error, returns the error together with the documents completed before it, so one
/// bad document does not hide findings in the good ones before it.
pub fn parse(text: &str) -> (Vec<Document>, Option<YamlError>) {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let err = parser.load(&mut builder, true).err().map(|e| YamlError {
        line: e.marker().line(),
        message: e.info().to_string(),
    });
    (builder.done, err)
}

/// A container under construction.
#[derive(Debug)]
enum Frame {
    Seq {
        path: String,
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        path: String,
        map: Map<String, Value>,
        key: Option<String>,
        anchor: usize,
    },
}

#[derive(Debug, Default)]
struct Builder {
    done: Vec<Document>,
    stack: Vec<Frame>,
    anchors: BTreeMap<usize, Value>,
    lines: BTreeMap<String, usize>,
    duplicates: Vec<String>,
    doc_line: usize,
    root: Option<Value>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    /// The path the next value will have, or `None` when the next scalar is a mapping key.
    fn next_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Seq { path, items, .. }) => Some(format!("{path}[{}]", items.len())),
            Some(Frame::Map {
                path, key: Some(k), ..
            }) => Some(join(path, k)),
            Some(Frame::Map { key: None, .. }) => None,
        }
    }

    /// Attaches a finished value to its parent (or makes it the document root).
    fn push_value(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { path, map, key, .. }) => {
                if let Some(k) = key.take()
                    && map.insert(k.clone(), value).is_some()
                {
                    self.duplicates.push(join(path, &k));
                }
            }
        }
    }

    fn on_scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<Tag>,
        mark: Marker,
    ) {
        match self.next_path() {
            None => {
                // A mapping key: keys are strings in JSON whatever they look like in YAML.
                let key = match scalar_value(&text, style, tag.as_ref()) {
                    Value::String(s) => s,
                    Value::Null => "null".to_string(),
                    other => other.to_string(),
                };
                if let Some(Frame::Map {
                    path, key: slot, ..
                }) = self.stack.last_mut()
                {
                    self.lines.insert(join(path, &key), mark.line());
                    *slot = Some(key);
                }
            }
            Some(path) => {
                self.lines.entry(path).or_insert(mark.line());
                let v = scalar_value(&text, style, tag.as_ref());
                self.push_value(v, anchor);
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::DocumentStart => {
                self.doc_line = mark.line();
                self.root = None;
                self.lines.clear();
                self.duplicates.clear();
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                if let Some(value) = self.root.take()
                    && !value.is_null()
                {
                    let line = self.lines.values().copied().min().unwrap_or(self.doc_line);
                    self.done.push(Document {
                        line,
                        value,
                        lines: LineIndex(std::mem::take(&mut self.lines)),
                        duplicate_keys: std::mem::take(&mut self.duplicates),
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.on_scalar(text, style, anchor, tag, mark)
            }
            Event::Alias(id) => {
                let v = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                match self.next_path() {
                    None => {
                        let key = match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        if let Some(Frame::Map { key: slot, .. }) = self.stack.last_mut() {
                            *slot = Some(key);
                        }
                    }
                    Some(path) => {
                        self.lines.entry(path).or_insert(mark.line());
                        self.push_value(v, 0);
                    }
                }
            }
            Event::SequenceStart(anchor, _) => {
                let path = self.next_path().unwrap_or_default();
                self.lines.entry(path.clone()).or_insert(mark.line());
                self.stack.push(Frame::Seq {
                    path,
                    items: Vec::new(),
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                let path = self.next_path().unwrap_or_default();
                self.lines.entry(path.clone()).or_insert(mark.line());
                self.stack.push(Frame::Map {
                    path,
                    map: Map::new(),
                    key: None,
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { items, anchor, .. }) => {
                    self.push_value(Value::Array(items), anchor)
                }
                Some(Frame::Map { map, anchor, .. }) => self.push_value(Value::Object(map), anchor),
                None => {}
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
    }
}

/// Resolves a scalar as kubectl's YAML 1.1 converter does.
fn scalar_value(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag
        && (tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!")
    {
        match tag.suffix.as_str() {
            "str" => return Value::String(text.to_string()),
            "null" => return Value::Null,
            "bool" => return resolve_plain(text),
            "int" | "float" => return resolve_plain(text),
            _ => {}
        }
    }
    if style != TScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    resolve_plain(text)
}

fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        _ => {}
    }
    if let Some(n) = resolve_int(text) {
        return Value::Number(n.into());
    }
    if let Some(f) = resolve_float(text)
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn resolve_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let body = body.replace('_', "");
    if body.is_empty() {
        return None;
    }
    let magnitude = if let Some(hex) = body.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(bin) = body.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else if body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse::<i64>().ok()?
    } else {
        return None;
    };
    Some(if neg { -magnitude } else { magnitude })
}

fn resolve_float(text: &str) -> Option<f64> {
    // YAML 1.1 floats need a dot or an exponent; "1e3" and "1.5" are floats, "1k" is a string.
    let b = text.as_bytes();
    let first = *b.first()?;
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return None;
    }
    if !text
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+' | b'_'))
    {
        return None;
    }
    if !text.contains(['.', 'e', 'E']) {
        return None;
    }
    text.replace('_', "")
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Document {
        let (docs, err) = parse(text);
        assert_eq!(err, None);
        assert_eq!(docs.len(), 1);
        docs.into_iter().next().unwrap()
    }

    #[test]
    fn scalars_resolve_as_kubectl_does() {
        let d = one(
            "a: 1\nb: \"1\"\nc: 1k\nd: yes\ne: 0755\nf: 1.5\ng: ~\nh: 500m\ni: 1e3\nj: '0.5'\n",
        );
        assert_eq!(
            d.value,
            json!({"a": 1, "b": "1", "c": "1k", "d": true, "e": 493, "f": 1.5, "g": null,
                   "h": "500m", "i": 1000.0, "j": "0.5"})
        );
    }

    #[test]
    fn every_field_has_its_line() {
        let text = "# comment\napiVersion: v1\nkind: X\nspec:\n  items:\n  - name: a\n    value: 1\n  - name: b\n";
        let d = one(text);
        assert_eq!(d.line, 2);
        assert_eq!(d.lines.line_of("kind"), Some(3));
        assert_eq!(d.lines.line_of("spec.items[0].value"), Some(7));
        assert_eq!(d.lines.line_of("spec.items[1].name"), Some(8));
        // A field that does not exist points at its nearest ancestor.
        assert_eq!(d.lines.line_of("spec.items[1].missing"), Some(8));
    }

    #[test]
    fn documents_are_split_and_empty_ones_dropped() {
        let (docs, err) = parse("---\na: 1\n---\n# only a comment\n---\nb: 2\n");
        assert_eq!(err, None);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value, json!({"b": 2}));
        assert_eq!(docs[1].line, 6);
    }

    #[test]
    fn anchors_and_duplicate_keys() {
        let d = one("base: &b {x: 1}\ncopy: *b\ncopy: 2\n");
        assert_eq!(d.value, json!({"base": {"x": 1}, "copy": 2}));
        assert_eq!(d.duplicate_keys, vec!["copy".to_string()]);
    }

    #[test]
    fn syntax_error_keeps_earlier_documents() {
        let (docs, err) = parse("a: 1\n---\nb: [1, 2\n");
        assert_eq!(docs.len(), 1);
        assert!(err.is_some());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn random_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn truncated_seed_never_panics(cut in 0usize..2000) {
            let text = include_str!("../../../examples/seeds/002_85c0937ec41394ee/01-nodepool-node-spot.yaml");
            let cut = text.char_indices().map(|(i, _)| i).take_while(|i| *i <= cut).last().unwrap_or(0);
            let _ = parse(&text[..cut]);
        }
    }
}

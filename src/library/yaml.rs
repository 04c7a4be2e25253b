//! A location-carrying YAML tree.
//!
//! serde stops at the first error, but authors want every problem in a file at once. So the
//! YAML is first read into this generic tree, where every node keeps its line and column,
//! and `schema` then walks it and reports all problems. This is the only module that calls
//! the YAML parser, so swapping parsers touches one file.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, DuplicateKeyPolicy, Options, Spanned};

/// Line and column (1-based) of a YAML node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// A YAML value. Mappings keep their entries in order, duplicates included, so that the
/// schema checker can report a duplicate key at its second occurrence.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What kind of value this is, for error messages ("expected a string, found a list").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document into a located tree.
///
/// Budgets bound what a hostile file can cost (alias expansion, nesting, size).
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut options = Options::default();
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    let mut budget = Budget::default();
    budget.max_depth = budget.max_depth.min(64);
    options.budget = Some(budget);
    if text.trim().is_empty() {
        return Ok(Node {
            value: Value::Null,
            pos: Pos { line: 1, column: 1 },
        });
    }
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line() as u32,
                column: l.column() as u32,
            })
            .unwrap_or_default();
        SyntaxError {
            pos,
            message: plain_message(&e.to_string()),
        }
    })
}

/// The parser's message without its own location prefix or source snippet: our error
/// type prints `file:line:col` itself.
fn plain_message(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "line 3 column 5: msg" or "msg at line 3, column 5"
    let mut msg = first.to_string();
    if let Some(rest) = msg.strip_prefix("line ") {
        if let Some(idx) = rest.find(": ") {
            msg = rest[idx + 2..].to_string();
        }
    }
    if let Some(idx) = msg.find(" at line ") {
        msg.truncate(idx);
    }
    msg
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            value: spanned.value,
            pos: Pos {
                line: spanned.referenced.line() as u32,
                column: spanned.referenced.column() as u32,
            },
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(node) = seq.next_element::<Node>()? {
            items.push(node);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: u32, column: u32) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn nodes_carry_their_positions() {
        let n = parse("id: x\ntriggers:\n  any: [\"a\", b]\n").unwrap();
        let Value::Map(entries) = &n.value else {
            panic!("not a map: {n:?}")
        };
        assert_eq!(entries[0].0.pos, p(1, 1));
        assert_eq!(entries[0].1.pos, p(1, 5));
        assert_eq!(entries[1].0.pos, p(2, 1));
        let Value::Map(inner) = &entries[1].1.value else {
            panic!()
        };
        assert_eq!(entries[1].1.pos.line, 3);
        let Value::Seq(items) = &inner[0].1.value else {
            panic!()
        };
        assert_eq!(items[1].pos, p(3, 14));
        assert_eq!(items[1].value, Value::Str("b".into()));
    }

    #[test]
    fn duplicate_keys_are_kept_for_the_checker() {
        let n = parse("a: 1\nb: 2\na: 3\n").unwrap();
        let Value::Map(entries) = &n.value else {
            panic!()
        };
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].0.pos, p(3, 1));
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
        assert!(!e.message.is_empty());
    }

    #[test]
    fn scalars_and_empty_documents() {
        assert_eq!(parse("").unwrap().value, Value::Null);
        assert_eq!(parse("5").unwrap().value, Value::Int(5));
        assert_eq!(parse("true").unwrap().value, Value::Bool(true));
        assert_eq!(parse("'5'").unwrap().value, Value::Str("5".into()));
    }
}

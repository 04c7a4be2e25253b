//! A location-carrying YAML tree.
//!
//! serde stops at the first error, but authors want every problem in a file at once. So the
//! YAML is first read into this generic tree, where every node keeps its line and column,
//! and `schema` then walks it and reports all problems. This is the only module that calls
//! the YAML parser, so swapping parsers touches one file.
//!
//! The tree is built straight from the parser's events (a large library's reload is
//! dominated by this step). Plain scalars resolve by the YAML 1.2 core schema: only
//! `true`/`false` are booleans, so a phrase such as `no`, `yes` or `on` stays text.
//! Anchors, aliases and `<<` merge keys work; what a hostile file can cost is bounded
//! (nesting depth, nodes copied by aliases).

use std::borrow::Cow;

use granit_parser::{Event, Marker, Parser, ScalarStyle, ScanError, StructureStyle, Tag};

/// Deeper nesting is refused: no card needs it, and it bounds recursion downstream.
pub const MAX_DEPTH: usize = 64;

/// Nodes that aliases may copy, beyond this many per input byte, are refused (a "billion
/// laughs" file is a few lines long).
const ALIAS_NODES_PER_BYTE: usize = 4;
const ALIAS_NODES_MIN: usize = 4096;

pub use crate::location::Pos;

/// One YAML node and where it starts. Strings borrow from the file's text where they can
/// (most do: a large library's load allocates far less).
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    pub value: Value<'a>,
    pub pos: Pos,
}

/// A YAML value. Mappings keep their entries in order, duplicates included, so that the
/// schema checker can report a duplicate key at its second occurrence.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Seq(Vec<Node<'a>>),
    Map(Vec<(Node<'a>, Node<'a>)>),
}

impl Value<'_> {
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

impl SyntaxError {
    fn at(pos: Pos, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos,
            message: message.into(),
        }
    }
}

/// Parses one YAML document into a located tree. An empty file is `Null` at 1:1; a second
/// document in the same file is an error.
pub fn parse(text: &str) -> Result<Node<'_>, SyntaxError> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: Vec::new(),
        alias_budget: text
            .len()
            .saturating_mul(ALIAS_NODES_PER_BYTE)
            .max(ALIAS_NODES_MIN),
        root: None,
    };
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| builder.explain(scan_error(e), text))?;
        let pos = pos_at(&span.start);
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError::at(
                        pos,
                        "a file holds one YAML document; this is a second (remove the `---` or split the file)",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                // Only a plain, untagged `<<` is the merge key; `"<<"` is an ordinary key.
                let merge_key = style == ScalarStyle::Plain && tag.is_none() && text == "<<";
                let value = resolve(text, style, tag.as_deref(), pos)?;
                builder.push(Node { value, pos }, anchor, merge_key)?;
            }
            Event::SequenceStart(style, anchor, _) => {
                builder.open(pos, anchor, Open::Seq, style == StructureStyle::Flow)?
            }
            Event::MappingStart(style, anchor, _) => {
                builder.open(pos, anchor, Open::Map, style == StructureStyle::Flow)?
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close()?,
            Event::Alias(id) => builder.alias(id, pos)?,
            _ => {}
        }
    }
    Ok(builder.root.unwrap_or(Node {
        value: Value::Null,
        pos: Pos::START,
    }))
}

/// The parser counts columns from 0.
fn pos_at(marker: &Marker) -> Pos {
    Pos {
        line: u32::try_from(marker.line()).unwrap_or(u32::MAX),
        column: u32::try_from(marker.col() + 1).unwrap_or(u32::MAX),
    }
}

/// The word of `text` (up to a space or flow indicator) starting at `pos`, if any.
fn token_at(text: &str, pos: Pos) -> Option<&str> {
    let line = text.split('\n').nth((pos.line as usize).checked_sub(1)?)?;
    let start = line
        .char_indices()
        .nth((pos.column as usize).checked_sub(1)?)
        .map(|(i, _)| i)?;
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|t| !t.is_empty())
}

fn scan_error(e: ScanError) -> SyntaxError {
    SyntaxError::at(pos_at(e.marker()), e.info())
}

enum Open {
    Seq,
    Map,
}

/// A collection being read.
struct Frame<'a> {
    pos: Pos,
    /// Written `[…]` or `{…}` rather than as an indented block.
    flow: bool,
    anchor: usize,
    kind: FrameKind<'a>,
}

enum FrameKind<'a> {
    Seq(Vec<Node<'a>>),
    Map {
        entries: Vec<(Node<'a>, Node<'a>)>,
        /// A key waiting for its value; `true` when it is the merge key `<<`.
        key: Option<(Node<'a>, bool)>,
        /// Values of `<<` keys, merged in when the mapping ends.
        merges: Vec<Node<'a>>,
    },
}

struct Builder<'a> {
    stack: Vec<Frame<'a>>,
    /// Anchored nodes by anchor id (ids count from 1 in document order); `None` while the
    /// anchored collection is still open, so an alias to it is recursive.
    anchors: Vec<Option<Node<'a>>>,
    alias_budget: usize,
    root: Option<Node<'a>>,
}

impl<'a> Builder<'a> {
    fn open(&mut self, pos: Pos, anchor: usize, kind: Open, flow: bool) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError::at(
                pos,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        if anchor != 0 {
            self.set_anchor(anchor, None);
        }
        let kind = match kind {
            Open::Seq => FrameKind::Seq(Vec::new()),
            Open::Map => FrameKind::Map {
                entries: Vec::new(),
                key: None,
                merges: Vec::new(),
            },
        };
        self.stack.push(Frame {
            pos,
            anchor,
            flow,
            kind,
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), SyntaxError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let value = match frame.kind {
            FrameKind::Seq(items) => Value::Seq(items),
            FrameKind::Map {
                mut entries,
                merges,
                ..
            } => {
                merge(&mut entries, merges)?;
                Value::Map(entries)
            }
        };
        self.push(
            Node {
                value,
                pos: frame.pos,
            },
            frame.anchor,
            false,
        )
    }

    /// The parser's message, plus what authors most often got wrong when it is raised: a
    /// `[` or `{` never closed (the parser notices lines later), or a tab used to indent.
    fn explain(&self, mut e: SyntaxError, text: &str) -> SyntaxError {
        if e.message.contains("unknown anchor") {
            if let Some(name) = token_at(text, e.pos).and_then(|t| t.strip_prefix('*')) {
                e.message.push_str(&format!(
                    " (`*{name}`: an alias must come after its `&{name}` anchor, in the same file)"
                ));
            }
        } else if let Some(open) = self.stack.iter().rev().find(|f| f.flow) {
            let bracket = match open.kind {
                FrameKind::Seq(_) => '[',
                FrameKind::Map { .. } => '{',
            };
            e.message.push_str(&format!(
                " (inside the `{bracket}` at line {}, column {}: is it closed?)",
                open.pos.line, open.pos.column
            ));
        } else if e.message.contains("tab") {
            e.message
                .push_str(" (indent with spaces: YAML does not allow tabs for indentation)");
        }
        e
    }

    fn alias(&mut self, id: usize, pos: Pos) -> Result<(), SyntaxError> {
        let Some(Some(target)) = self.anchors.get(id) else {
            return Err(SyntaxError::at(
                pos,
                "alias refers to a node that contains it (recursive alias)",
            ));
        };
        let cost = size(target);
        if cost > self.alias_budget {
            return Err(SyntaxError::at(
                pos,
                "aliases expand to too many nodes (is this file an alias bomb?)",
            ));
        }
        self.alias_budget -= cost;
        // The copy is where the alias is; its children keep the anchor's positions, which
        // is where their text is.
        let node = Node {
            value: target.value.clone(),
            pos,
        };
        self.push(node, 0, false)
    }

    fn set_anchor(&mut self, id: usize, node: Option<Node<'a>>) {
        if self.anchors.len() <= id {
            self.anchors.resize(id + 1, None);
        }
        self.anchors[id] = node;
    }

    /// A finished node goes to its parent (or becomes the root).
    fn push(&mut self, node: Node<'a>, anchor: usize, merge_key: bool) -> Result<(), SyntaxError> {
        if anchor != 0 {
            let cost = size(&node);
            if cost > self.alias_budget {
                return Err(SyntaxError::at(
                    node.pos,
                    "anchors copy too many nodes (is this file an alias bomb?)",
                ));
            }
            self.alias_budget -= cost;
            self.set_anchor(anchor, Some(node.clone()));
        }
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut frame.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map {
                entries,
                key,
                merges,
            } => match key.take() {
                None => *key = Some((node, merge_key)),
                Some((_, true)) => merges.push(node),
                Some((k, false)) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// Applies `<<` merge keys (yaml.org/type/merge): each merged mapping's entries are added
/// unless the key is already present, so explicit keys win, and of a list of mappings the
/// earlier wins. Merged entries keep their own positions (where their text is).
fn merge<'a>(
    entries: &mut Vec<(Node<'a>, Node<'a>)>,
    merges: Vec<Node<'a>>,
) -> Result<(), SyntaxError> {
    for source in merges {
        let pos = source.pos;
        let maps = match source.value {
            Value::Map(m) => vec![m],
            Value::Seq(items) => {
                let mut maps = Vec::with_capacity(items.len());
                for item in items {
                    match item.value {
                        Value::Map(m) => maps.push(m),
                        other => return Err(merge_error(item.pos, &other)),
                    }
                }
                maps
            }
            other => return Err(merge_error(pos, &other)),
        };
        for map in maps {
            for (k, v) in map {
                if !entries.iter().any(|(e, _)| e.value == k.value) {
                    entries.push((k, v));
                }
            }
        }
    }
    Ok(())
}

fn merge_error(pos: Pos, found: &Value<'_>) -> SyntaxError {
    SyntaxError::at(
        pos,
        format!(
            "merge key `<<` takes a mapping or a list of mappings, found {}",
            found.kind()
        ),
    )
}

/// Nodes in a tree (what copying it costs).
fn size(node: &Node<'_>) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| size(k) + size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// A scalar's value: an explicit core tag (`!!str`, `!!int`, …) decides; quoted and block
/// scalars are strings; plain scalars follow the YAML 1.2 core schema. Tags outside the
/// core schema are ignored.
fn resolve<'a>(
    text: Cow<'a, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
    pos: Pos,
) -> Result<Value<'a>, SyntaxError> {
    let wrong =
        |what: &str| SyntaxError::at(pos, format!("`{}` is not {what}", truncate(&text, 40)));
    match tag.and_then(Tag::core_suffix) {
        Some("str") => return Ok(Value::Str(text)),
        Some("null") if text.is_empty() || null(&text) => return Ok(Value::Null),
        Some("null") => return Err(wrong("null (tagged `!!null`)")),
        Some("bool") => {
            return bool_(&text)
                .map(Value::Bool)
                .ok_or_else(|| wrong("true or false (tagged `!!bool`)"));
        }
        Some("int") => return int(&text).ok_or_else(|| wrong("an integer (tagged `!!int`)")),
        Some("float") => {
            return match int(&text) {
                Some(Value::Int(i)) => Ok(Value::Float(i as f64)),
                Some(v) => Ok(v),
                None => float(&text)
                    .map(Value::Float)
                    .ok_or_else(|| wrong("a number (tagged `!!float`)")),
            };
        }
        _ => {}
    }
    // The non-specific tag `!` marks a scalar as a string.
    let non_specific = tag.is_some_and(|t| t.parts() == ("", "!"));
    if style != ScalarStyle::Plain || non_specific {
        return Ok(Value::Str(text));
    }
    if text.is_empty() || null(&text) {
        return Ok(Value::Null);
    }
    if let Some(b) = bool_(&text) {
        return Ok(Value::Bool(b));
    }
    // Only text that starts like a number can be one; most scalars are words.
    let first = text.as_bytes()[0];
    if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
        if let Some(v) = int(&text) {
            return Ok(v);
        }
        if let Some(f) = float(&text) {
            return Ok(Value::Float(f));
        }
    }
    Ok(Value::Str(text))
}

fn truncate(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

fn null(s: &str) -> bool {
    matches!(s, "~" | "null" | "Null" | "NULL")
}

fn bool_(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Core-schema integers: `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`. One too large for
/// 64 bits is a float, as in the core schema.
fn int(s: &str) -> Option<Value<'static>> {
    if let Some(oct) = s.strip_prefix("0o") {
        return radix(oct, 8);
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return radix(hex, 16);
    }
    let signed = s.strip_prefix('+').unwrap_or(s);
    let digits = signed.strip_prefix('-').unwrap_or(signed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match signed.parse::<i64>() {
        Ok(i) => Value::Int(i),
        Err(_) => Value::Float(signed.parse::<f64>().ok()?),
    })
}

fn radix(digits: &str, radix: u32) -> Option<Value<'static>> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some(match i64::from_str_radix(digits, radix) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::Float(
            digits
                .chars()
                .filter_map(|c| c.to_digit(radix))
                .fold(0.0, |acc, d| acc * f64::from(radix) + f64::from(d)),
        ),
    })
}

/// Core-schema floats: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, `.inf`, `.nan`.
fn float(s: &str) -> Option<f64> {
    let (sign, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(sign * f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == s.len() => return Some(f64::NAN),
        _ => {}
    }
    let b = unsigned.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int_digits = digits(0);
    let mut i = int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        frac_digits = digits(i + 1);
        i += 1 + frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp_digits = digits(i);
        if exp_digits == 0 {
            return None;
        }
        i += exp_digits;
    }
    if i != b.len() {
        return None;
    }
    // The grammar above is a subset of what `f64::from_str` takes.
    unsigned.parse::<f64>().ok().map(|f| sign * f)
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
    fn common_mistakes_get_a_hint() {
        let e = err("id: a\ntriggers:\n  any: [a, b\nbody: x\n");
        assert!(
            e.message
                .contains("inside the `[` at line 3, column 8: is it closed?"),
            "{e:?}"
        );
        let e = err("a: {b: 1\nc: 2\n");
        assert!(
            e.message.contains("inside the `{` at line 1, column 4"),
            "{e:?}"
        );
        let e = err("id: a\ntitle: x\n\tcategory: objection\n");
        assert!(e.message.contains("indent with spaces"), "{e:?}");
        let e = err("a: &base {x: 1}\nb: *bsae\n");
        assert!(
            e.message
                .contains("`*bsae`: an alias must come after its `&bsae` anchor"),
            "{e:?}"
        );
        // No hint where none applies.
        assert!(!err("a: 'open\n").message.contains('('));
    }

    #[test]
    fn lines_break_at_lf_crlf_and_a_lone_cr() {
        // As in YAML; the line numbers then agree with editors that honour old line endings.
        for text in ["a: 1\n]", "a: 1\r\n]", "a: 1\r]"] {
            assert_eq!(err(text).pos.line, 2, "{text:?}");
        }
        assert_eq!(err("\r]").pos, p(2, 1));
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

    fn scalar(text: &str) -> Value<'_> {
        parse(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
            .value
    }

    fn str_(s: &str) -> Value<'_> {
        Value::Str(s.into())
    }

    fn err(text: &str) -> SyntaxError {
        parse(text).expect_err(text)
    }

    #[test]
    fn scalars_and_empty_documents() {
        assert_eq!(parse("").unwrap().value, Value::Null);
        assert_eq!(parse("# only a comment\n").unwrap().value, Value::Null);
        assert_eq!(parse("").unwrap().pos, p(1, 1));
        assert_eq!(scalar("5"), Value::Int(5));
        assert_eq!(scalar("true"), Value::Bool(true));
        assert_eq!(scalar("'5'"), str_("5"));
        assert_eq!(scalar("|\n  two\n  lines\n"), str_("two\nlines\n"));
    }

    #[test]
    fn only_true_and_false_are_booleans() {
        // YAML 1.2: a phrase like `no` or `on` is text, not a boolean (the "Norway problem").
        for word in ["yes", "no", "on", "off", "y", "n", "Yes", "NO"] {
            assert_eq!(scalar(word), str_(word), "{word}");
        }
        for (word, b) in [
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("false", false),
        ] {
            assert_eq!(scalar(word), Value::Bool(b), "{word}");
        }
        assert_eq!(scalar("'true'"), str_("true"));
    }

    #[test]
    fn nulls() {
        for word in ["~", "null", "Null", "NULL"] {
            assert_eq!(scalar(word), Value::Null, "{word}");
        }
        assert_eq!(scalar("'null'"), str_("null"));
        assert_eq!(scalar("nulls"), str_("nulls"));
        let Value::Map(entries) = scalar("a:\nb: 1\n") else {
            panic!()
        };
        assert_eq!(entries[0].1.value, Value::Null);
    }

    #[test]
    fn numbers_follow_the_core_schema() {
        assert_eq!(scalar("010"), Value::Int(10));
        assert_eq!(scalar("-7"), Value::Int(-7));
        assert_eq!(scalar("+7"), Value::Int(7));
        assert_eq!(scalar("0x1F"), Value::Int(31));
        assert_eq!(scalar("0o17"), Value::Int(15));
        assert_eq!(scalar("99999999999999999999"), Value::Float(1e20));
        assert_eq!(scalar("1.5"), Value::Float(1.5));
        assert_eq!(scalar(".5"), Value::Float(0.5));
        assert_eq!(scalar("-2."), Value::Float(-2.0));
        assert_eq!(scalar("1e3"), Value::Float(1000.0));
        assert_eq!(scalar("-.inf"), Value::Float(f64::NEG_INFINITY));
        assert!(matches!(scalar(".nan"), Value::Float(f) if f.is_nan()));
        // Not numbers: kept as the text the author wrote.
        for text in [
            "1_000", "1.2.3", ".", "-x", "e5", "1e", "0x", "0b101", "12abc", "+.nan", "3 days",
        ] {
            assert_eq!(scalar(text), str_(text), "{text}");
        }
    }

    #[test]
    fn core_tags_decide_the_type() {
        assert_eq!(scalar("!!str 5"), str_("5"));
        assert_eq!(scalar("!!str true"), str_("true"));
        assert_eq!(scalar("!!str"), str_(""));
        assert_eq!(scalar("!!int '5'"), Value::Int(5));
        assert_eq!(scalar("!!float 1"), Value::Float(1.0));
        assert_eq!(scalar("!!bool 'false'"), Value::Bool(false));
        assert_eq!(scalar("!!null ''"), Value::Null);
        assert_eq!(scalar("! 5"), str_("5"));
        // A tag outside the core schema is ignored.
        assert_eq!(scalar("!price 5"), Value::Int(5));
        let e = err("a: 1\nb: !!int five\n");
        assert_eq!(e.pos, p(2, 10));
        assert!(e.message.contains("`five` is not an integer"), "{e:?}");
        assert!(err("!!bool yes").message.contains("not true or false"));
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let n = parse("a: &x [p, q]\nb: *x\n").unwrap();
        let Value::Map(entries) = &n.value else {
            panic!()
        };
        assert_eq!(entries[1].1.value, entries[0].1.value);
        // The copy is located at the alias; its items where their text is.
        assert_eq!(entries[1].1.pos, p(2, 4));
        let e = err("a: 1\nb: *nowhere\n");
        assert_eq!(e.pos.line, 2);
        assert!(e.message.contains("anchor"), "{e:?}");
    }

    #[test]
    fn merge_keys_fill_in_what_the_mapping_does_not_set() {
        let yaml = "\
base: &base {title: Shared, priority: 10}
other: &other {priority: 20, body: Other}
card:
  <<: [*base, *other]
  priority: 90
  \"<<\": literal
";
        let Value::Map(top) = scalar(yaml) else {
            panic!()
        };
        let Value::Map(card) = &top[2].1.value else {
            panic!()
        };
        let got: Vec<(String, Value<'_>)> = card
            .iter()
            .map(|(k, v)| match &k.value {
                Value::Str(k) => (k.to_string(), v.value.clone()),
                other => panic!("key {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("priority".into(), Value::Int(90)),
                ("<<".into(), str_("literal")),
                ("title".into(), str_("Shared")),
                ("body".into(), str_("Other")),
            ]
        );
        // Merged entries point at their own text.
        assert_eq!(card[2].1.pos, p(1, 21));
        let e = err("a:\n  <<: 5\n");
        assert_eq!(e.pos, p(2, 7));
        assert!(
            e.message.contains("merge key `<<` takes a mapping"),
            "{e:?}"
        );
    }

    #[test]
    fn a_second_document_is_an_error() {
        let e = err("id: a\n---\nid: b\n");
        assert_eq!(e.pos.line, 2);
        assert!(e.message.contains("one YAML document"), "{e:?}");
        // An explicit start and end of the one document are fine.
        assert_eq!(scalar("---\nx\n...\n"), str_("x"));
    }

    #[test]
    fn hostile_files_are_bounded() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = err(&deep);
        assert!(e.message.contains("nesting deeper than 64"), "{e:?}");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());

        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .windows(2)
            .map(|w| (w[0], w[1]))
        {
            bomb.push_str(&format!(
                "{name}: &{name} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
        }
        let e = err(&bomb);
        assert!(e.message.contains("too many nodes"), "{e:?}");
    }
}

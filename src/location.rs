//! Where something is in a text: [`Pos`] (line and column) and [`Location`] (a file and a
//! position). Every error that points into a card file, a config file or a recorded call
//! uses these, so each is written `file:line:column` the same way.

#![warn(missing_docs)]

use std::fmt;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl Default for Pos {
    fn default() -> Self {
        Pos::START
    }
}

impl Pos {
    /// The start of a text.
    pub const START: Pos = Pos { line: 1, column: 1 };

    /// The position of byte `offset` in `text` (lines end at `\n`); an offset past the
    /// end is the end.
    pub fn of_offset(text: &str, offset: usize) -> Pos {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let saturate = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Pos {
            line: saturate(before.matches('\n').count() + 1),
            column: saturate(before[line_start..].chars().count() + 1),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A file and a 1-based line and column in it, shown as `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Location {
    /// The file, as the user named it (relative to the directory loaded).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl Location {
    /// `pos` in `file`.
    pub fn new(file: impl Into<String>, pos: Pos) -> Location {
        Location {
            file: file.into(),
            line: pos.line,
            column: pos.column,
        }
    }

    /// The line and column.
    pub fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let text = "a: 1\nbé: x\n";
        assert_eq!(Pos::of_offset(text, 0), Pos::START);
        assert_eq!(Pos::of_offset(text, 5), Pos { line: 2, column: 1 });
        // `é` is two bytes but one column: the `:` after it is column 3.
        assert_eq!(Pos::of_offset(text, 8), Pos { line: 2, column: 3 });
        // Inside a character: the character's start.
        assert_eq!(Pos::of_offset(text, 7), Pos { line: 2, column: 2 });
        assert_eq!(Pos::of_offset(text, 999), Pos { line: 3, column: 1 });
    }

    #[test]
    fn locations_print_file_line_column() {
        let at = Location::new("cards/price.yaml", Pos { line: 3, column: 7 });
        assert_eq!(at.to_string(), "cards/price.yaml:3:7");
        assert_eq!(at.pos().to_string(), "3:7");
        assert_eq!(
            serde_json::to_value(&at).unwrap(),
            serde_json::json!({"file": "cards/price.yaml", "line": 3, "column": 7})
        );
    }
}

//! `Located<T>`: a parsed value with the line and column it came from, so that
//! validation errors can point at the exact node of a manifest.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A 1-based line and column in a manifest file. `0:0` means "unknown".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    /// The line and column (1-based, in characters) of byte `offset` of
    /// `text`; an offset past the end, or inside a character, is taken back
    /// to where one starts.
    pub fn at_offset(text: &str, offset: usize) -> Pos {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

impl Pos {
    /// The byte offset of this position in `text` (the start of the text for
    /// a position of no line), if the text has it.
    fn offset_in(self, text: &str) -> Option<usize> {
        let Some(line) = self.line.checked_sub(1) else {
            return Some(0);
        };
        let start = text
            .split_inclusive('\n')
            .take(usize::try_from(line).ok()?)
            .map(str::len)
            .sum::<usize>();
        let rest = text.get(start..)?;
        let skip = usize::try_from(self.column.saturating_sub(1)).ok()?;
        rest.char_indices().nth(skip).map(|(i, _)| start + i)
    }

    /// Where `word` first stands alone in `text` at or after `from`: between
    /// spaces, quotes, commas or brackets, or a line's ends (so `app.jar` is
    /// not found inside `-Dapp.jar=x`). For pointing a diagnostic at one word
    /// of a value the parser placed as a whole.
    pub fn of_word(text: &str, from: Pos, word: &str) -> Option<Pos> {
        if word.is_empty() {
            return None;
        }
        let start = from.offset_in(text)?;
        let apart = |c: Option<char>| {
            c.is_none_or(|c| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '[' | ']'))
        };
        text[start..]
            .match_indices(word)
            .map(|(i, _)| start + i)
            .find(|&i| {
                apart(text[..i].chars().next_back()) && apart(text[i + word.len()..].chars().next())
            })
            .map(|i| Pos::at_offset(text, i))
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl From<serde_saphyr::Location> for Pos {
    fn from(loc: serde_saphyr::Location) -> Self {
        Pos {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
        }
    }
}

/// A value together with where it was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Located<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Located<T> {
    pub fn new(value: T, pos: Pos) -> Self {
        Located { value, pos }
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Located {
            value: spanned.value,
            pos: spanned.referenced.into(),
        })
    }
}

impl<T: fmt::Display> fmt::Display for Located<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_to_positions() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Pos::at_offset(text, 0), Pos { line: 1, column: 1 });
        assert_eq!(Pos::at_offset(text, 6), Pos { line: 2, column: 1 });
        assert_eq!(Pos::at_offset(text, 10), Pos { line: 2, column: 4 });
        assert_eq!(Pos::at_offset(text, 999), Pos { line: 3, column: 1 });
        // Inside `é`: where it starts.
        assert_eq!(Pos::at_offset(text, 8), Pos { line: 2, column: 2 });
    }

    #[test]
    fn a_word_is_found_alone_at_or_after_a_position() {
        let text = "é: java -Dapp.jar=x -jar app.jar\nlist: [a, app.jar]\n";
        let at = |line, column| Pos { line, column };
        // Not inside the option; columns in characters.
        assert_eq!(Pos::of_word(text, at(1, 4), "app.jar"), Some(at(1, 26)));
        // From a later place: the next line's, after a bracket or comma.
        assert_eq!(Pos::of_word(text, at(1, 27), "app.jar"), Some(at(2, 11)));
        assert_eq!(Pos::of_word(text, at(0, 0), "a"), Some(at(2, 8)));
        assert_eq!(Pos::of_word(text, at(1, 1), "ap"), None);
        assert_eq!(Pos::of_word(text, at(9, 1), "app.jar"), None);
        assert_eq!(Pos::of_word(text, at(1, 1), ""), None);
    }
}

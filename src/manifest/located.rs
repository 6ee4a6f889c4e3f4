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
}

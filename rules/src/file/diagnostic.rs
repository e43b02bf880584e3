//! Errors in rule files, with the position a person can jump to.

use std::fmt;
use std::ops::Range;

/// One problem in one rule file: `file:line:column: message`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// A rule file's name and text, for turning byte offsets into lines and columns.
#[derive(Clone, Debug)]
pub struct Source<'s> {
    pub name: &'s str,
    pub text: &'s str,
}

/// Where something stands in a rule file, kept on compiled specs so that errors found when
/// the rules meet the station registry still point at the right place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic { file: self.file.clone(), line: self.line, column: self.column, message: message.into() }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl Source<'_> {
    pub fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let offset = (0..=offset).rev().find(|&o| self.text.is_char_boundary(o)).unwrap_or(0);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        Position { file: self.name.to_owned(), line, column }
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.position(span.start).error(message)
    }

    /// Offset of the first character inside a string value whose span (with quotes) is given.
    pub fn string_content_start(&self, span: &Range<usize>) -> usize {
        let raw = &self.text[span.start.min(self.text.len())..];
        if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            span.start + 3
        } else {
            span.start + 1
        }
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, c)| d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let s = Source { name: "f.toml", text: "a = 1\ntitle = \"水位\" x" };
        let p = s.position(s.text.find('x').unwrap());
        assert_eq!((p.line, p.column), (2, 14));
    }

    #[test]
    fn suggestions_for_typos_only() {
        assert_eq!(did_you_mean("sevrity", ["severity", "above"]), Some("severity"));
        assert_eq!(did_you_mean("zzz", ["severity", "above"]), None);
    }
}

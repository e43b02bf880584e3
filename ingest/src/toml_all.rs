//! Typed TOML files whose every problem is reported at once, each at `line:column`.
//!
//! serde stops at the first unknown field or wrong type, hiding the others: a user fixes
//! one, runs again, and meets the next. Here each such problem is recorded with its
//! position, its line is set aside (blanked, so positions stay true) and the file is read
//! again, until it reads or a problem leaves nothing sensible to go on with (broken syntax,
//! a missing field).

use serde::de::DeserializeOwned;

/// At most this many problems are collected from one file.
const MAX_PROBLEMS: usize = 50;

/// Reads `text` as `T`; on failure, every problem found as `file:line:column: message`.
pub fn parse<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, Vec<String>> {
    let mut text = text.to_owned();
    // (line, column, message), sorted by position at the end.
    let mut problems: Vec<(usize, usize, String)> = Vec::new();
    let sorted = |mut problems: Vec<(usize, usize, String)>| {
        problems.sort_by_key(|p| (p.0, p.1));
        Err(problems.into_iter().map(|(_, _, p)| p).collect())
    };
    while problems.len() < MAX_PROBLEMS {
        let error = match toml::from_str::<T>(&text) {
            Ok(value) if problems.is_empty() => return Ok(value),
            Ok(_) => return sorted(problems),
            Err(e) => e,
        };
        let message = error.message().trim().to_owned();
        let Some(span) = error.span() else {
            problems.push((0, 0, format!("{file}: {message}")));
            return sorted(problems);
        };
        // Inside a tagged table (`[[source]]` with a `kind`), serde buffers the table and
        // the error points at its header: find the line it is about within the table.
        let at = within_table(&text, span.start, &message).unwrap_or(span.start);
        let (line, column) = line_column(&text, at);
        problems.push((line, column, format!("{file}:{line}:{column}: {message}")));
        // A field the type does not know, or a value of the wrong type, is one line: set it
        // aside and read on. Anything else (syntax, a missing field) stops here.
        let one_line = message.starts_with("unknown field")
            || message.starts_with("invalid type")
            || message.starts_with("invalid value")
            || message.starts_with("unknown variant");
        let start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        // A table's unknown `kind` hides the rest of its table's problems: setting its line
        // aside would only add a "missing field `kind`".
        let tag = message.starts_with("unknown variant") && text[start..end].trim_start().starts_with("kind");
        if !one_line || tag || text[start..end].trim().is_empty() || text[start..end].trim_start().starts_with('[') {
            return sorted(problems);
        }
        text.replace_range(start..end, &" ".repeat(end - start));
    }
    sorted(problems)
}

/// For an error reported at a table's header: the offset of the line in that table that
/// holds the unknown field (`unknown field `x``) or the unknown variant's value.
fn within_table(text: &str, header: usize, message: &str) -> Option<usize> {
    let rest = &text[header.min(text.len())..];
    if !rest.starts_with('[') {
        return None;
    }
    let quoted = message.split('`').nth(1)?;
    let mut offset = header + rest.find('\n')? + 1;
    for line in text[offset..].split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            return None;
        }
        let indent = line.len() - trimmed.len();
        let key = trimmed.split('=').next().unwrap_or("").trim().trim_matches('"');
        let found = if message.starts_with("unknown field") {
            key == quoted
        } else if message.starts_with("unknown variant") {
            trimmed.contains('=') && trimmed.split('=').nth(1).is_some_and(|v| v.trim().trim_matches('"') == quoted)
        } else {
            false
        };
        if found {
            return Some(offset + indent);
        }
        offset += line.len();
    }
    None
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Components {
        source: Vec<Component>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Component {
        Kafka(Kafka),
        File { path: String },
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Kafka {
        brokers: String,
        #[serde(default)]
        group_id: String,
    }

    #[test]
    fn problems_inside_tagged_tables_are_placed_on_their_own_lines() {
        let text = "[[source]]\nkind = \"kafka\"\nbrokers = \"b:1\"\ngrup_id = \"x\"\n\n[[source]]\nkind = \"fil\"\npath = \"p\"\n";
        let problems = parse::<Components>(text, "t.toml").unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("t.toml:4:1: unknown field `grup_id`"), "{problems:?}");
        assert!(problems[1].starts_with("t.toml:7:8: unknown variant `fil`"), "{problems:?}");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        name: String,
        #[serde(default)]
        section: Section,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Section {
        #[serde(default)]
        workers: usize,
        #[serde(default)]
        listen: String,
    }

    #[test]
    fn every_unknown_field_and_wrong_type_is_reported_with_its_position() {
        let text = "name = \"x\"\ncolour = 3\n[section]\nworkrs = 2\nlisten = 8080\n";
        let problems = parse::<File>(text, "t.toml").unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with("t.toml:2:1: unknown field `colour`"), "{problems:#?}");
        assert!(problems[1].starts_with("t.toml:4:1: unknown field `workrs`"), "{problems:#?}");
        assert!(problems[2].starts_with("t.toml:5:10: invalid type: integer `8080`"), "{problems:#?}");
        assert!(parse::<File>("name = \"x\"\n", "t.toml").is_ok());
    }

    #[test]
    fn broken_syntax_stops_at_the_first_problem() {
        let problems = parse::<File>("name = \"x\ncolour = 3\n", "t.toml").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].starts_with("t.toml:1:"), "{problems:#?}");
    }
}

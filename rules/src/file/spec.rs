//! From TOML text to [`RuleSpec`]s, reporting every problem found on the way.

use std::collections::BTreeMap;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostic::{did_you_mean, Diagnostic, Position, Source};
use crate::duration::parse_duration;
use crate::expr::Expr;
use crate::Severity;
use tidewatch_ingest::{Domain, Quantity};

pub use crate::eval::{KindSpec, KINDS};
/// Kinds the language reserves; naming one gives a clear "not yet supported" error.
pub const PLANNED_KINDS: &[&str] = &["group", "composite"];

/// Fields every rule may have, whatever its kind.
const COMMON_FIELDS: &[&str] =
    &["id", "title", "description", "select", "kind", "for", "clear_for", "clear_margin", "levels", "labels"];
const SELECT_FIELDS: &[&str] = &["domain", "quantity", "region", "basin", "stations"];
const LEVEL_FIELDS: &[&str] = &["severity", "above", "below"];
/// Placeholders a title may use.
pub const TITLE_FIELDS: &[&str] = &[
    "station.name",
    "station.id",
    "station.region",
    "station.basin",
    "quantity",
    "unit",
    "value",
    "threshold",
    "severity",
    "rule",
];

/// Which readings a rule looks at. Empty lists mean "any".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    pub quantities: Vec<Quantity>,
    pub domains: Vec<Domain>,
    /// Division-code prefixes: `"3301"` selects every station in Hangzhou.
    pub regions: Vec<String>,
    pub basins: Vec<String>,
    /// Station ids, with the position each was written at.
    pub stations: Vec<(String, Position)>,
}

/// Which way a ladder points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A level holds while the value is strictly above its threshold.
    Above,
    /// A level holds while the value is strictly below its threshold.
    Below,
}

impl Direction {
    pub fn sign(self) -> f64 {
        match self {
            Direction::Above => 1.0,
            Direction::Below => -1.0,
        }
    }
}

/// One rung of a rule's colour ladder.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelSpec {
    pub severity: Severity,
    pub threshold: Expr,
    /// Where the threshold is written, for errors found against the registry.
    pub at: Position,
}

/// A rule as written, checked as far as the file alone allows.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub select: Selector,
    /// What is computed per sensor, with the kind's own parameters.
    pub kind: KindSpec,
    /// A level must hold this long (event time) before the alert fires or escalates.
    pub for_ms: i64,
    /// A level's clear condition must hold this long before it de-escalates or resolves.
    pub clear_for_ms: i64,
    /// Hysteresis: an active level clears only past `threshold ∓ clear_margin`.
    pub clear_margin: f64,
    pub direction: Direction,
    pub levels: Vec<LevelSpec>,
    pub labels: BTreeMap<String, String>,
    /// Where `[[rule]]` (the id) is written.
    pub at: Position,
}

/// A rule table's fields as a kind reads them: typed getters that report each problem at
/// its line and column, so every kind's parameters are checked the way the common ones are.
pub struct Fields<'w, 's> {
    walker: &'w mut Walker<'s>,
    entries: Vec<(String, Range<usize>, Field)>,
    kind: &'static str,
    kind_span: Range<usize>,
}

/// A field's value, detached from the TOML document.
enum Field {
    Text(String),
    Number(f64),
    Bool(bool),
    Other(&'static str),
}

impl Field {
    /// What the value is, for "must be …, not …" errors.
    fn describe(&self) -> &'static str {
        match self {
            Field::Text(_) => "a string",
            Field::Number(_) => "a number",
            Field::Bool(_) => "a boolean",
            Field::Other(what) => what,
        }
    }
}

impl<'w, 's> Fields<'w, 's> {
    fn new(walker: &'w mut Walker<'s>, table: &DeTable<'_>, kind: &str, kind_span: Range<usize>) -> Self {
        let own = KindSpec::fields(kind).unwrap_or(&[]);
        let kind = KINDS.iter().copied().find(|k| *k == kind).unwrap_or("rule");
        let entries = table
            .iter()
            .filter(|(k, _)| own.contains(&k.get_ref().as_ref()))
            .map(|(k, v)| {
                let field = match v.get_ref() {
                    DeValue::String(s) => Field::Text(s.to_string()),
                    DeValue::Boolean(b) => Field::Bool(*b),
                    other => match number_of(other) {
                        Some(n) => Field::Number(n),
                        None => Field::Other(type_name(other)),
                    },
                };
                (k.get_ref().to_string(), v.span(), field)
            })
            .collect();
        Fields { walker, entries, kind, kind_span }
    }

    fn find(&self, name: &str) -> Option<(Range<usize>, &Field)> {
        self.entries.iter().find(|(k, _, _)| k == name).map(|(_, span, f)| (span.clone(), f))
    }

    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// Reports a problem at the field `name` (or at `kind` if it is absent).
    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        let span = self.find(name).map_or(self.kind_span.clone(), |(s, _)| s);
        self.walker.error(span, message);
    }

    /// Reports that a required field is missing, with an example.
    pub fn missing<T>(&mut self, name: &str, example: &str) -> Option<T> {
        let message = format!("a {} rule needs `{name}` (e.g. {name} = {example})", self.kind);
        self.walker.error(self.kind_span.clone(), message);
        None
    }

    pub fn text(&mut self, name: &str) -> Option<String> {
        match self.find(name)? {
            (_, Field::Text(t)) => Some(t.clone()),
            (span, other) => {
                let what = other.describe();
                self.walker.error(span, format!("`{name}` must be a string, not {what}"));
                None
            }
        }
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.find(name)? {
            (_, Field::Bool(b)) => Some(*b),
            (span, _) => {
                self.walker.error(span, format!("`{name}` must be true or false"));
                None
            }
        }
    }

    /// A required duration.
    pub fn required_duration(&mut self, name: &str, example: &str) -> Option<i64> {
        if self.has(name) {
            self.duration(name)
        } else {
            self.missing(name, example)
        }
    }

    /// A duration such as `"1h"` or `"90m"`, greater than zero.
    pub fn duration(&mut self, name: &str) -> Option<i64> {
        let text = self.text(name)?;
        let span = self.find(name).map(|(s, _)| s)?;
        match parse_duration(&text) {
            Ok(ms) if ms > 0 => Some(ms),
            Ok(_) => {
                self.walker.error(span, format!("`{name}` must be longer than zero"));
                None
            }
            Err(message) => {
                self.walker.error(span, format!("`{name}`: {message}"));
                None
            }
        }
    }

    /// A finite number.
    pub fn number(&mut self, name: &str) -> Option<f64> {
        match self.find(name)? {
            (_, Field::Number(n)) if n.is_finite() => Some(*n),
            (span, Field::Number(n)) => {
                let n = *n;
                self.walker.error(span, format!("`{name}` must be a finite number, not {n}"));
                None
            }
            (span, other) => {
                let what = other.describe();
                self.walker.error(span, format!("`{name}` must be a number, not {what}"));
                None
            }
        }
    }

    /// A number strictly greater than zero.
    pub fn positive(&mut self, name: &str) -> Option<f64> {
        let n = self.number(name)?;
        if n > 0.0 {
            Some(n)
        } else {
            self.error(name, format!("`{name}` must be greater than zero, not {n}"));
            None
        }
    }

    /// A whole number in `range`.
    pub fn count(&mut self, name: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
        let n = self.number(name)?;
        if n.fract() == 0.0 && range.contains(&(n as u32)) && n >= 0.0 {
            Some(n as u32)
        } else {
            self.error(
                name,
                format!("`{name}` must be a whole number from {} to {}, not {n}", range.start(), range.end()),
            );
            None
        }
    }

    /// One of `options`.
    pub fn choice(&mut self, name: &str, options: &[&'static str]) -> Option<&'static str> {
        let text = self.text(name)?;
        if let Some(&o) = options.iter().find(|&&o| o == text) {
            return Some(o);
        }
        let hint =
            did_you_mean(&text, options.iter().copied()).map(|s| format!("did you mean {s:?}? ")).unwrap_or_default();
        self.error(name, format!("unknown `{name}` {text:?}: {hint}expected one of: {}", options.join(", ")));
        None
    }
}

struct Walker<'s> {
    src: Source<'s>,
    diags: Vec<Diagnostic>,
}

type Entry<'a, 'i> = (&'a Spanned<std::borrow::Cow<'i, str>>, &'a Spanned<DeValue<'i>>);

impl<'s> Walker<'s> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diags.push(self.src.error(span, message));
    }

    /// Reports keys of `table` not in `allowed`, with a suggestion for likely typos.
    fn unknown_fields(&mut self, table: &DeTable<'_>, what: &str, allowed: &[&str]) {
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if !allowed.contains(&name) {
                let hint = match did_you_mean(name, allowed.iter().copied()) {
                    Some(s) => format!(" (did you mean `{s}`?)"),
                    None => format!(" (expected one of: {})", allowed.join(", ")),
                };
                self.error(key.span(), format!("unknown field `{name}` in {what}{hint}"));
            }
        }
    }

    fn string<'a>(&mut self, value: &'a Spanned<DeValue<'_>>, what: &str) -> Option<&'a str> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                self.error(value.span(), format!("{what} must be a string, not {}", type_name(other)));
                None
            }
        }
    }

    fn number(&mut self, value: &Spanned<DeValue<'_>>, what: &str) -> Option<f64> {
        match number_of(value.get_ref()) {
            Some(n) if n.is_finite() => Some(n),
            Some(n) => {
                self.error(value.span(), format!("{what} must be a finite number, not {n}"));
                None
            }
            None => {
                self.error(value.span(), format!("{what} must be a number, not {}", type_name(value.get_ref())));
                None
            }
        }
    }

    /// A string or an array of strings.
    fn strings<'a, 'i>(&mut self, value: &'a Spanned<DeValue<'i>>, what: &str) -> Vec<(&'a str, Range<usize>)> {
        match value.get_ref() {
            DeValue::String(s) => vec![(s.as_ref(), value.span())],
            DeValue::Array(items) => {
                items.iter().filter_map(|item| Some((self.string(item, what)?, item.span()))).collect()
            }
            other => {
                self.error(
                    value.span(),
                    format!("{what} must be a string or an array of strings, not {}", type_name(other)),
                );
                Vec::new()
            }
        }
    }

    fn duration(&mut self, value: Option<&Spanned<DeValue<'_>>>, what: &str) -> i64 {
        let Some(value) = value else { return 0 };
        let Some(text) = self.string(value, what) else {
            return 0;
        };
        match parse_duration(text) {
            Ok(ms) => ms,
            Err(message) => {
                self.error(value.span(), format!("{what}: {message}"));
                0
            }
        }
    }

    fn rule(&mut self, table: &Spanned<DeValue<'_>>, index: usize) -> Option<RuleSpec> {
        let DeValue::Table(t) = table.get_ref() else {
            self.error(table.span(), format!("rule {} must be a table", index + 1));
            return None;
        };
        let get = |k: &str| -> Option<Entry<'_, '_>> { t.iter().find(|(key, _)| key.get_ref() == k) };
        let errors_before = self.diags.len();

        let id = match get("id") {
            Some((_, v)) => self.string(v, "`id`").map(|id| (id.to_owned(), v.span())),
            None => {
                self.error(table.span(), format!("rule {} has no `id`", index + 1));
                None
            }
        };
        if let Some((id, span)) = &id {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                self.error(span.clone(), format!("rule id {id:?} may use only letters, digits, '.', '_' and '-'"));
            }
        }
        let at = self.src.position(id.as_ref().map_or(table.span().start, |(_, s)| s.start));

        let kind_name = match get("kind") {
            Some((_, v)) => self.string(v, "`kind`").map(|k| (k, v.span())),
            None => {
                self.error(at_span(&id, table), "rule has no `kind` (e.g. kind = \"threshold\")");
                None
            }
        };
        let kind_fields = match kind_name {
            Some((k, _)) => KindSpec::fields(k),
            None => None,
        };
        let kind = match kind_name.clone() {
            Some((k, span)) if kind_fields.is_some() => {
                let mut fields = Fields::new(self, t, k, span);
                KindSpec::parse(k, &mut fields)
            }
            Some((k, span)) if PLANNED_KINDS.contains(&k) => {
                self.error(span, format!("rule kind {k:?} is not supported yet (supported: {})", KINDS.join(", ")));
                None
            }
            Some((k, span)) => {
                let hint = did_you_mean(k, KINDS.iter().chain(PLANNED_KINDS).copied())
                    .map(|s| format!("did you mean {s:?}? "))
                    .unwrap_or_default();
                self.error(span, format!("unknown rule kind {k:?}: {hint}supported kinds: {}", KINDS.join(", ")));
                None
            }
            None => None,
        };
        let allowed: Vec<&str> = COMMON_FIELDS.iter().chain(kind_fields.unwrap_or(&[])).copied().collect();
        let what = match &kind_name {
            Some((k, _)) if kind_fields.is_some() => format!("a {k} rule"),
            _ => "a rule".to_owned(),
        };
        self.unknown_fields(t, &what, &allowed);

        let title = get("title").and_then(|(_, v)| {
            let title = self.string(v, "`title`")?;
            self.check_title(title, v.span());
            Some(title.to_owned())
        });
        let description = get("description").and_then(|(_, v)| self.string(v, "`description`").map(str::to_owned));
        let select = match get("select") {
            Some((_, v)) => self.select(v),
            None => {
                self.error(at_span(&id, table), "rule has no `select` (e.g. select = { quantity = \"water_level\" })");
                Selector::default()
            }
        };
        let for_ms = self.duration(get("for").map(|(_, v)| v), "`for`");
        let clear_for_ms = self.duration(get("clear_for").map(|(_, v)| v), "`clear_for`");
        let clear_margin = match get("clear_margin") {
            Some((_, v)) => match self.number(v, "`clear_margin`") {
                Some(m) if m < 0.0 => {
                    self.error(v.span(), format!("`clear_margin` must not be negative, not {m}"));
                    0.0
                }
                Some(m) => m,
                None => 0.0,
            },
            None => 0.0,
        };
        let (direction, levels) = match get("levels") {
            Some((_, v)) => self.levels(v),
            None => {
                self.error(
                    at_span(&id, table),
                    "rule has no `levels` (e.g. levels = [{ severity = \"yellow\", above = 10 }])",
                );
                (Direction::Above, Vec::new())
            }
        };
        let labels = match get("labels") {
            Some((_, v)) => self.labels(v),
            None => BTreeMap::new(),
        };

        if self.diags.len() > errors_before {
            return None;
        }
        Some(RuleSpec {
            id: id?.0,
            title,
            description,
            select,
            kind: kind?,
            for_ms,
            clear_for_ms,
            clear_margin,
            direction,
            levels,
            labels,
            at,
        })
    }

    fn check_title(&mut self, title: &str, span: Range<usize>) {
        let content = self.src.string_content_start(&span);
        let mut rest = title;
        let mut offset = 0;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                self.error(content + offset + open..content, "`{` in title is never closed");
                return;
            };
            let name = &rest[open + 1..open + close];
            if !TITLE_FIELDS.contains(&name) {
                let hint = did_you_mean(name, TITLE_FIELDS.iter().copied())
                    .map(|s| format!("did you mean {{{s}}}? "))
                    .unwrap_or_default();
                self.error(
                    content + offset + open..content,
                    format!("unknown placeholder {{{name}}} in title: {hint}known: {}", TITLE_FIELDS.join(", ")),
                );
            }
            offset += open + close + 1;
            rest = &rest[open + close + 1..];
        }
    }

    fn select(&mut self, value: &Spanned<DeValue<'_>>) -> Selector {
        let DeValue::Table(t) = value.get_ref() else {
            self.error(value.span(), "`select` must be a table, e.g. { quantity = \"water_level\" }");
            return Selector::default();
        };
        self.unknown_fields(t, "`select`", SELECT_FIELDS);
        let mut select = Selector::default();
        for (key, v) in t.iter() {
            match key.get_ref().as_ref() {
                "quantity" => {
                    for (name, span) in self.strings(v, "`select.quantity`") {
                        match name.parse::<Quantity>() {
                            Ok(q) => select.quantities.push(q),
                            Err(_) => {
                                let hint = did_you_mean(name, Quantity::ALL.iter().map(|q| q.name()))
                                    .map(|s| format!(" (did you mean {s:?}?)"))
                                    .unwrap_or_default();
                                self.error(span, format!("unknown quantity {name:?}{hint}"));
                            }
                        }
                    }
                }
                "domain" => {
                    for (name, span) in self.strings(v, "`select.domain`") {
                        match Domain::ALL.iter().find(|d| d.name() == name) {
                            Some(&d) => select.domains.push(d),
                            None => self.error(
                                span,
                                format!("unknown domain {name:?} (expected water, environment, traffic or emergency)"),
                            ),
                        }
                    }
                }
                "region" => {
                    for (code, span) in self.strings(v, "`select.region`") {
                        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
                            self.error(
                                span,
                                format!("region {code:?} must be a division-code prefix of digits, e.g. \"3301\""),
                            );
                        } else {
                            select.regions.push(code.to_owned());
                        }
                    }
                }
                "basin" => {
                    select.basins = self.strings(v, "`select.basin`").into_iter().map(|(b, _)| b.to_owned()).collect()
                }
                "stations" => {
                    for (id, span) in self.strings(v, "`select.stations`") {
                        select.stations.push((id.to_owned(), self.src.position(span.start)));
                    }
                }
                _ => {}
            }
        }
        if select.quantities.is_empty() && !t.iter().any(|(k, _)| k.get_ref() == "quantity") {
            self.error(value.span(), "`select` must name a `quantity`");
        }
        select
    }

    fn levels(&mut self, value: &Spanned<DeValue<'_>>) -> (Direction, Vec<LevelSpec>) {
        let DeValue::Array(items) = value.get_ref() else {
            self.error(value.span(), "`levels` must be an array of { severity, above | below } tables");
            return (Direction::Above, Vec::new());
        };
        if items.is_empty() {
            self.error(value.span(), "`levels` must have at least one level");
        }
        let mut direction: Option<(Direction, Range<usize>)> = None;
        let mut levels: Vec<(LevelSpec, Range<usize>)> = Vec::new();
        for item in items.iter() {
            let DeValue::Table(t) = item.get_ref() else {
                self.error(item.span(), "a level must be a table like { severity = \"yellow\", above = 10 }");
                continue;
            };
            self.unknown_fields(t, "a level", LEVEL_FIELDS);
            let get = |k: &str| t.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v);
            let severity = match get("severity") {
                Some(v) => self.string(v, "`severity`").and_then(|s| match s.parse::<Severity>() {
                    Ok(sev) => Some((sev, v.span())),
                    Err(()) => {
                        self.error(v.span(), format!("unknown severity {s:?} (expected blue, yellow, orange or red)"));
                        None
                    }
                }),
                None => {
                    self.error(item.span(), "level has no `severity`");
                    None
                }
            };
            let bound = match (get("above"), get("below")) {
                (Some(v), None) => Some((Direction::Above, v)),
                (None, Some(v)) => Some((Direction::Below, v)),
                (Some(_), Some(v)) => {
                    self.error(v.span(), "a level has either `above` or `below`, not both");
                    None
                }
                (None, None) => {
                    self.error(item.span(), "level has neither `above` nor `below`");
                    None
                }
            };
            let Some((dir, v)) = bound else { continue };
            match &direction {
                Some((d, _)) if *d != dir => {
                    self.error(v.span(), "all levels of a rule must use the same direction (`above` or `below`)");
                }
                Some(_) => {}
                None => direction = Some((dir, v.span())),
            }
            let threshold = match v.get_ref() {
                DeValue::String(text) => match Expr::parse(text) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        let at = self.src.string_content_start(&v.span()) + e.offset;
                        self.error(at..at, format!("in threshold {text:?}: {}", e.message));
                        None
                    }
                },
                other => match number_of(other) {
                    Some(n) if n.is_finite() => Some(Expr::Number(n)),
                    _ => {
                        self.error(
                            v.span(),
                            format!("threshold must be a number or an expression string, not {}", type_name(other)),
                        );
                        None
                    }
                },
            };
            if let (Some((severity, sev_span)), Some(threshold)) = (severity, threshold) {
                let at = self.src.position(v.span().start);
                levels.push((LevelSpec { severity, threshold, at }, sev_span));
            }
        }
        let direction = direction.map_or(Direction::Above, |(d, _)| d);
        for pair in levels.windows(2) {
            let ((a, _), (b, span)) = (&pair[0], &pair[1]);
            if b.severity <= a.severity {
                self.error(
                    span.clone(),
                    format!(
                        "ladder out of order: {} after {} (list levels from least to most severe: blue, yellow, orange, red; each once)",
                        b.severity, a.severity
                    ),
                );
            } else if let (Some(x), Some(y)) = (a.threshold.constant(), b.threshold.constant()) {
                if (y - x) * direction.sign() <= 0.0 {
                    let word = if direction == Direction::Above { "above" } else { "below" };
                    self.diags.push(b.at.error(format!(
                        "ladder out of order: {} {word} {y} does not go beyond {} {word} {x}",
                        b.severity, a.severity
                    )));
                }
            }
        }
        (direction, levels.into_iter().map(|(l, _)| l).collect())
    }

    fn labels(&mut self, value: &Spanned<DeValue<'_>>) -> BTreeMap<String, String> {
        let DeValue::Table(t) = value.get_ref() else {
            self.error(value.span(), "`labels` must be a table of strings");
            return BTreeMap::new();
        };
        t.iter().filter_map(|(k, v)| Some((k.get_ref().to_string(), self.string(v, "a label")?.to_owned()))).collect()
    }
}

fn at_span(id: &Option<(String, Range<usize>)>, table: &Spanned<DeValue<'_>>) -> Range<usize> {
    id.as_ref().map_or(table.span(), |(_, s)| s.clone())
}

fn number_of(value: &DeValue<'_>) -> Option<f64> {
    match value {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok().map(|n| n as f64),
        DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
        _ => None,
    }
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Parses one rule file. Returns the rules that are valid on their own and every problem
/// found; a caller that wants all-or-nothing treats any diagnostic as failure.
pub fn parse_file(name: &str, text: &str) -> (Vec<RuleSpec>, Vec<Diagnostic>) {
    let src = Source { name, text };
    let mut walker = Walker { src: src.clone(), diags: Vec::new() };
    let (doc, errors) = DeTable::parse_recoverable(text);
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        walker.error(span, format!("TOML syntax: {}", e.message()));
    }
    let mut rules = Vec::new();
    if errors.is_empty() {
        walker.unknown_fields(doc.get_ref(), "a rule file (it holds [[rule]] tables)", &["rule"]);
        if let Some((_, value)) = doc.get_ref().iter().find(|(k, _)| k.get_ref() == "rule") {
            match value.get_ref() {
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        rules.extend(walker.rule(item, i));
                    }
                }
                _ => walker.error(value.span(), "`rule` must be an array of tables: write each rule as [[rule]]"),
            }
        }
    }
    walker.diags.sort();
    (rules, walker.diags)
}

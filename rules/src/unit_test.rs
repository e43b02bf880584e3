//! Unit tests for rule files, as `promtool test rules` has for Prometheus.
//!
//! A test file names the rule files and the station registry it tests, and lists tests:
//! input series per sensor in a compact notation, and the transitions expected, each at its
//! time. The series are evaluated exactly as a replay would be (event-time order, the
//! watermark right behind each reading), so a passing test says what the live system does.
//!
//! ```toml
//! rule_files = ["flood.toml"]          # relative to this file
//! stations = "../stations.toml"
//!
//! [[test]]
//! name = "Lanxi rises through yellow and falls back"
//! start = "2025-06-20T08:00:00+08:00"
//! interval = "5m"
//! series = { "QT-LX/water_level" = "27.5 28.1x3 28.9+0.5x3 30.4 29-1x2 27" }
//! expect = [
//!   "10m water.level.warning QT-LX/water_level fire yellow",
//!   "35m water.level.warning QT-LX/water_level resolve yellow",
//! ]
//! ```
//!
//! Series notation: numbers separated by spaces; `a+bxn` (or `a-bxn`) is `a, a+b, …, a+nb`
//! (n + 1 values); `axn` is `a` n + 1 times; `_` is one interval with no reading and `_xn`
//! n of them. Expectations are `OFFSET RULE STATION/QUANTITY TRANSITION SEVERITY`, where
//! the offset is the transition's event time from `start`. `until` (default: the last
//! reading) is how far past the last reading time runs, for `for` timers and silences.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tidewatch_ingest::time::{from_text, TimeFormat};
use tidewatch_ingest::{Quality, Quantity, Reading, Registry, SensorKey};

use crate::compile::{compile, read_sources};
use crate::duration::{format_duration, parse_duration};
use crate::eval::Evaluator;
use crate::event::AlertEvent;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// Rule files or directories, relative to the test file.
    rule_files: Vec<PathBuf>,
    /// The station registry, relative to the test file.
    stations: PathBuf,
    #[serde(rename = "test")]
    tests: Vec<TestSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSpec {
    name: String,
    /// RFC 3339 time of the first value of every series.
    start: String,
    /// Time between values.
    interval: String,
    /// `STATION/QUANTITY` → series notation.
    series: BTreeMap<String, String>,
    /// How long after `start` evaluation runs (default: to the last reading).
    until: Option<String>,
    #[serde(default)]
    expect: Vec<String>,
}

/// What running one test file found.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: Vec<String>,
    /// (test name, what went wrong: a diff of transitions or a problem with the test).
    pub failed: Vec<(String, String)>,
}

/// A problem that stops a test file from running at all.
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    #[error("{path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: station registry {stations}: {message}")]
    Registry { path: String, stations: String, message: String },
    #[error("{path}: rule files rejected:\n  {}", .diagnostics.join("\n  "))]
    Rules { path: String, diagnostics: Vec<String> },
}

/// Runs every test in a test file.
pub fn run_file(path: &Path) -> Result<Report, TestFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TestFileError::Read { path: shown.clone(), source })?;
    let file: TestFile =
        toml::from_str(&text).map_err(|e| TestFileError::Syntax { path: shown.clone(), message: e.to_string() })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let stations = dir.join(&file.stations);
    let registry = Registry::load(&stations).map_err(|e| TestFileError::Registry {
        path: shown.clone(),
        stations: stations.display().to_string(),
        message: e.to_string(),
    })?;
    let paths: Vec<PathBuf> = file.rule_files.iter().map(|p| dir.join(p)).collect();
    let sources = read_sources(&paths)
        .map_err(|d| TestFileError::Rules { path: shown.clone(), diagnostics: vec![d.to_string()] })?;
    let rules = compile(&sources, &registry).map_err(|diags| TestFileError::Rules {
        path: shown.clone(),
        diagnostics: diags.iter().map(ToString::to_string).collect(),
    })?;
    let rules = Arc::new(rules);
    let mut report = Report::default();
    for test in &file.tests {
        match run_test(test, &rules, &registry) {
            Ok(()) => report.passed.push(test.name.clone()),
            Err(why) => report.failed.push((test.name.clone(), why)),
        }
    }
    Ok(report)
}

fn run_test(test: &TestSpec, rules: &Arc<crate::RuleSet>, registry: &Registry) -> Result<(), String> {
    let start = from_text(&test.start, TimeFormat::Rfc3339, chrono_tz::UTC)
        .map_err(|e| format!("start {:?}: {e}", test.start))?;
    let interval = parse_duration(&test.interval).map_err(|e| format!("interval: {e}"))?;
    let mut readings = Vec::new();
    for (sensor, notation) in &test.series {
        let key = sensor_key(sensor, registry)?;
        let values = parse_series(notation).map_err(|e| format!("series {sensor:?}: {e}"))?;
        for (i, value) in values.into_iter().enumerate() {
            if let Some(value) = value {
                readings.push(Reading {
                    sensor: key,
                    quality: Quality::Good,
                    time: start + i as i64 * interval,
                    value,
                });
            }
        }
    }
    readings.sort_by_key(|r| r.time);
    let last = readings.last().map_or(start, |r| r.time);
    let until = match &test.until {
        Some(u) => start + parse_duration(u).map_err(|e| format!("until: {e}"))?,
        None => last,
    };

    let mut events: Vec<AlertEvent> = Vec::new();
    let mut evaluator = Evaluator::new(rules.clone());
    let mut late = 0;
    evaluator.replay(&readings, &mut |e| events.push(e), &mut |_, _| late += 1);
    if late > 0 {
        return Err(format!("{late} readings came out late in a sorted replay (a bug in Tidewatch)"));
    }
    evaluator.advance(until.max(last) + 1, &mut |e| events.push(e));

    let got: Vec<String> = events
        .iter()
        .map(|e| {
            let station = &registry.station(e.key.station).id;
            format!(
                "{} {} {station}/{} {} {}",
                format_duration(e.event_time - start),
                e.rule,
                e.key.quantity.name(),
                e.transition.name(),
                e.severity
            )
        })
        .collect();
    let mut expected = Vec::with_capacity(test.expect.len());
    for line in &test.expect {
        expected.push(normalise_expectation(line, registry)?);
    }
    if got == expected {
        return Ok(());
    }
    let mut diff = String::from("transitions differ (- expected, + got):\n");
    for line in &expected {
        let mark = if got.contains(line) { ' ' } else { '-' };
        diff += &format!("  {mark} {line}\n");
    }
    for line in got.iter().filter(|l| !expected.contains(l)) {
        diff += &format!("  + {line}\n");
    }
    if expected.iter().all(|l| got.contains(l)) && got.iter().all(|l| expected.contains(l)) {
        diff += "  (the same transitions in another order)\n";
    }
    Err(diff)
}

/// `STATION/QUANTITY` to a sensor key.
fn sensor_key(text: &str, registry: &Registry) -> Result<SensorKey, String> {
    let (station, quantity) = text.split_once('/').ok_or_else(|| format!("{text:?}: expected STATION/QUANTITY"))?;
    let station = registry.key_of(station).ok_or_else(|| format!("unknown station {station:?}"))?;
    let quantity: Quantity = quantity.parse().map_err(|_| format!("unknown quantity {quantity:?}"))?;
    Ok(SensorKey::new(station, quantity))
}

/// An expectation in the form `got` prints: durations and names in their canonical spelling.
fn normalise_expectation(line: &str, registry: &Registry) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [offset, rule, sensor, transition, severity] = words[..] else {
        return Err(format!("expectation {line:?}: expected OFFSET RULE STATION/QUANTITY TRANSITION SEVERITY"));
    };
    let offset = parse_duration(offset).map_err(|e| format!("expectation {line:?}: {e}"))?;
    sensor_key(sensor, registry).map_err(|e| format!("expectation {line:?}: {e}"))?;
    if !["fire", "escalate", "de_escalate", "resolve"].contains(&transition) {
        return Err(format!("expectation {line:?}: transition is fire, escalate, de_escalate or resolve"));
    }
    let severity: crate::Severity =
        severity.parse().map_err(|_| format!("expectation {line:?}: severity is blue, yellow, orange or red"))?;
    Ok(format!("{} {rule} {sensor} {transition} {severity}", format_duration(offset)))
}

/// Expands series notation into one optional value per interval.
pub fn parse_series(notation: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for term in notation.split_whitespace() {
        let (head, times) = match term.rsplit_once('x') {
            Some((head, n)) => {
                let n: usize =
                    n.parse().map_err(|_| format!("{term:?}: the count after `x` must be a whole number"))?;
                (head, Some(n))
            }
            None => (term, None),
        };
        if head == "_" {
            out.extend(std::iter::repeat_n(None, times.unwrap_or(1)));
            continue;
        }
        // `a+b` / `a-b`: a start and a step; a leading sign belongs to the start.
        let split = head.char_indices().skip(1).find(|&(i, c)| (c == '+' || c == '-') && !head[..i].ends_with('e'));
        let (start, step) = match split {
            Some((i, _)) => (&head[..i], Some(&head[i..])),
            None => (head, None),
        };
        let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
        let start = number(start).ok_or_else(|| format!("{term:?}: {start:?} is not a number"))?;
        let step = match step {
            Some(s) => number(s.trim_start_matches('+')).ok_or_else(|| format!("{term:?}: {s:?} is not a step"))?,
            None => 0.0,
        };
        match times {
            Some(n) => out.extend((0..=n).map(|k| Some(start + step * k as f64))),
            None if step != 0.0 => return Err(format!("{term:?}: a step needs a count, e.g. {head}x4")),
            None => out.push(Some(start)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_series;
    use proptest::prelude::*;

    #[test]
    fn series_notation_expands_like_promtools() {
        let s = parse_series("1 2+0.5x2 _ 7x2 _x2 -1-1x1").unwrap();
        assert_eq!(
            s,
            [
                Some(1.0),
                Some(2.0),
                Some(2.5),
                Some(3.0),
                None,
                Some(7.0),
                Some(7.0),
                Some(7.0),
                None,
                None,
                Some(-1.0),
                Some(-2.0)
            ]
        );
    }

    #[test]
    fn bad_terms_say_which() {
        assert_eq!(parse_series("1 abc").unwrap_err(), "\"abc\": \"abc\" is not a number");
        assert!(parse_series("1+2").unwrap_err().contains("needs a count"));
        assert!(parse_series("1x-2").unwrap_err().contains("whole number"));
    }

    proptest! {
        #[test]
        fn any_text_expands_or_is_refused_without_panicking(text in ".{0,40}") {
            let _ = parse_series(&text);
        }

        #[test]
        fn a_ramp_has_n_plus_one_values(start in -100i32..100, step in -10i32..10, n in 0usize..50) {
            let s = parse_series(&format!("{start}{step:+}x{n}")).unwrap();
            prop_assert_eq!(s.len(), n + 1);
            prop_assert_eq!(s[n], Some(start as f64 + step as f64 * n as f64));
        }
    }
}

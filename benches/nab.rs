//! The `anomaly` rule kind scored on the Numenta Anomaly Benchmark's data with NAB's
//! standard-profile scoring (`tidewatch_rules::nab`).
//!
//! `cargo bench --bench nab` — reads `../shared/data/nab/` (13 of NAB's 58 files: the
//! `realKnownCause` and `artificialWithAnomaly` sets), runs each method of the `anomaly` kind
//! over every file through the evaluator, takes each `fire` transition as a detection, and
//! prints the normalised score per method and threshold. As in NAB, the threshold is chosen
//! on the corpus; every threshold tried is printed. Figures are recorded in BENCHMARKS.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDateTime;
use tidewatch_ingest::{Quality, Quantity, Reading, Registry, SensorKey};
use tidewatch_rules::eval::Evaluator;
use tidewatch_rules::nab::{normalised, score_file, Profile};
use tidewatch_rules::{compile, RuleSource, Transition};

fn parse_time(text: &str) -> i64 {
    let text = text.trim();
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S"))
        .unwrap_or_else(|e| panic!("time {text:?}: {e}"))
        .and_utc()
        .timestamp_millis()
}

struct Series {
    times: Vec<i64>,
    values: Vec<f64>,
    windows: Vec<(usize, usize)>,
}

fn load(root: &Path) -> Vec<Series> {
    let labels: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("combined_windows.json")).unwrap()).unwrap();
    labels
        .into_iter()
        .map(|(name, windows)| {
            let text = std::fs::read_to_string(root.join("data").join(&name)).unwrap();
            let (mut times, mut values) = (Vec::new(), Vec::new());
            for line in text.lines().skip(1) {
                let (t, v) = line.split_once(',').unwrap();
                times.push(parse_time(t));
                values.push(v.trim().parse::<f64>().unwrap());
            }
            let windows = windows
                .iter()
                .map(|(a, b)| {
                    let (a, b) = (parse_time(a), parse_time(b));
                    let start = times.partition_point(|&t| t < a);
                    let end = times.partition_point(|&t| t <= b) - 1;
                    (start, end)
                })
                .collect();
            Series { times, values, windows }
        })
        .collect()
}

/// Rows at which the rule fired.
fn detections(rule_body: &str, series: &Series, registry: &Registry) -> Vec<usize> {
    let text = format!("[[rule]]\nid = \"nab\"\nselect = {{ quantity = \"conductivity\" }}\n{rule_body}\n");
    let rules = Arc::new(compile(&[RuleSource { name: "nab.toml".into(), text }], registry).unwrap());
    let mut evaluator = Evaluator::new(rules);
    let key = SensorKey::new(registry.key_of("NAB").unwrap(), Quantity::Conductivity);
    let mut fired = Vec::new();
    for (&time, &value) in series.times.iter().zip(&series.values) {
        let reading = Reading { sensor: key, quality: Quality::Good, time, value };
        evaluator.on_reading(&reading, &mut |e| {
            if e.transition == Transition::Fire {
                fired.push(e.event_time);
            }
        });
    }
    fired.iter().filter_map(|t| series.times.binary_search(t).ok()).collect()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nab");
    if !root.exists() {
        eprintln!("no NAB data at {}: nothing to score", root.display());
        return;
    }
    let corpus = load(&root);
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let rows: usize = corpus.iter().map(|s| s.times.len()).sum();
    println!("NAB standard profile: {} files, {rows} rows, {windows} anomaly windows", corpus.len());
    let registry = Registry::from_toml_str(
        "[[station]]\nid = \"NAB\"\nname = \"NAB\"\ndomain = \"environment\"\nlocation = [0.0, 0.0]\nregion = \"330100\"\n",
    )
    .unwrap();
    let methods = [
        ("zscore, 48 readings", "method = \"zscore\"\nsamples = 48"),
        ("zscore, 288 readings", "method = \"zscore\"\nsamples = 288"),
        ("mad, 48 readings", "method = \"mad\"\nsamples = 48"),
        ("mad, 288 readings", "method = \"mad\"\nsamples = 288"),
        ("ewma, half-life 48", "method = \"ewma\"\nhalf_life = 48"),
        ("ewma, half-life 288", "method = \"ewma\"\nhalf_life = 288"),
        (
            "ewma hour-of-day, half-life 7",
            "method = \"ewma\"\nhalf_life = 7\nseasonal = \"hour_of_day\"\nwarm_up = 200",
        ),
    ];
    let thresholds = [3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0];
    let mut best: Option<(f64, String)> = None;
    for (name, body) in methods {
        let mut line = format!("{name:<32}");
        for threshold in thresholds {
            // Each alert resolves only after an hour of normal scores: one detection per episode.
            let rule = format!("kind = \"anomaly\"\n{body}\nclear_for = \"1h\"\nlevels = [{{ severity = \"yellow\", above = {threshold} }}]");
            let raw: f64 = corpus
                .iter()
                .map(|s| score_file(s.times.len(), &s.windows, &detections(&rule, s, &registry), Profile::STANDARD))
                .sum();
            let score = normalised(raw, windows, Profile::STANDARD);
            line += &format!("  {threshold:>4}σ: {score:>6.1}");
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, format!("{name}, above {threshold}σ")));
            }
        }
        println!("{line}");
    }
    if let Some((score, what)) = best {
        println!("best: {score:.1} ({what})");
    }
}

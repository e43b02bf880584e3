//! A recorded backlog published in one burst through a real Mosquitto: no in-order reading
//! is late, every run gives the same transitions, and they are exactly those of a replay of
//! the same readings in event-time order.
//!
//! Data: 240 days of hourly Beijing air quality (tests/data/README.md) split into eight
//! stations' 30-day backlogs, about 29,000 readings with real gaps (`NA`), published hour
//! by hour across stations as a broker would hand a backlog over after an outage.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::{Mosquitto, Tidewatch};
use tidewatch_ingest::{Quality, Quantity, Reading, Registry, SensorKey};
use tidewatch_rules::eval::Evaluator;
use tidewatch_rules::{compile, RuleSource};

const HOUR: i64 = 3_600_000;
const STATIONS: usize = 8;
const DAYS: i64 = 30;

const RULES: &str = r#"
[[rule]]
id = "pm25"
select = { quantity = "pm25" }
kind = "threshold"
for = "2h"
clear_for = "1h"
clear_margin = 5
levels = [
  { severity = "blue", above = 75 },
  { severity = "yellow", above = 115 },
  { severity = "orange", above = 150 },
  { severity = "red", above = 250 },
]

[[rule]]
id = "pm10.24h"
select = { quantity = "pm10" }
kind = "window"
window = "24h"
aggregate = "mean"
levels = [{ severity = "yellow", above = 150 }, { severity = "orange", above = 250 }]

[[rule]]
id = "no2.rise"
select = { quantity = "no2" }
kind = "rate"
window = "3h"
levels = [{ severity = "yellow", above = 15 }]

[[rule]]
id = "o3.anomaly"
select = { quantity = "o3" }
kind = "anomaly"
method = "mad"
samples = 48
levels = [{ severity = "yellow", above = 6 }]

[[rule]]
id = "silent"
select = { quantity = ["pm25", "pm10", "so2", "no2", "o3"] }
kind = "missing"
expected = "1h"
per = "station"
levels = [{ severity = "yellow", above = 3 }]
"#;

fn stations() -> String {
    (0..STATIONS)
        .map(|i| format!("[[station]]\nid = \"BJ{i}\"\nname = \"Dongsi {i}\"\ndomain = \"environment\"\nlocation = [116.42, 39.93]\nregion = \"110101\"\n"))
        .collect()
}

/// (station, quantity, hour since start, value): station i takes days 30·i … 30·i + 29.
fn backlog() -> Vec<(usize, Quantity, i64, f64)> {
    let text = include_str!("data/dongsi_2014_240d.csv");
    let quantities = [Quantity::Pm25, Quantity::Pm10, Quantity::So2, Quantity::No2, Quantity::O3];
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let mut out = Vec::new();
    for hour in 0..DAYS * 24 {
        for station in 0..STATIONS {
            let row = &rows[(station as i64 * DAYS * 24 + hour) as usize];
            for (q, cell) in quantities.iter().zip(&row[1..]) {
                if let Ok(value) = cell.parse::<f64>() {
                    out.push((station, *q, hour, value));
                }
            }
        }
    }
    out
}

type Transition = (String, String, String, String, i64);

/// The reference: the same readings through the evaluator in event-time order.
fn replayed(t0: i64) -> Vec<Transition> {
    let registry = Registry::from_toml_str(&stations()).unwrap();
    let rules =
        Arc::new(compile(&[RuleSource { name: "backlog.toml".into(), text: RULES.into() }], &registry).unwrap());
    let readings: Vec<Reading> = backlog()
        .into_iter()
        .map(|(station, quantity, hour, value)| {
            let key = registry.key_of(&format!("BJ{station}")).unwrap();
            Reading { sensor: SensorKey::new(key, quantity), quality: Quality::Good, time: t0 + hour * HOUR, value }
        })
        .collect();
    let mut evaluator = Evaluator::new(rules);
    let mut events = Vec::new();
    evaluator.replay(&readings, &mut |e| events.push(e), &mut |r, _| panic!("late in a sorted replay: {r:?}"));
    // The end of the input: timers up to the last reading fire.
    evaluator.advance(t0 + (DAYS * 24 - 1) * HOUR + 1, &mut |e| events.push(e));
    let mut out: Vec<Transition> = events
        .iter()
        .map(|e| {
            let station = registry.station(e.key.station).id.clone();
            (e.rule.to_string(), station, e.transition.name().to_owned(), e.severity.to_string(), e.event_time - t0)
        })
        .collect();
    out.sort();
    out
}

fn live(tidewatch: &Tidewatch, t0: i64) -> Vec<Transition> {
    let mut out: Vec<Transition> = tidewatch
        .json_lines("alerts.jsonl")
        .iter()
        .map(|a| {
            let t = chrono::DateTime::parse_from_rfc3339(a["event_time"].as_str().unwrap()).unwrap().timestamp_millis();
            let s = |k: &str| a[k].as_str().unwrap().to_owned();
            (s("rule"), s("station"), s("transition"), s("severity"), t - t0)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_30_day_hourly_backlog_in_one_burst_is_never_late_and_always_gives_the_replayed_transitions() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // The backlog ends an hour ago.
    let t0 = (now - (DAYS * 24 + 1) * HOUR) / HOUR * HOUR;
    let lines: Vec<String> = backlog()
        .into_iter()
        .map(|(s, q, h, v)| {
            json!({"station": format!("BJ{s}"), "quantity": q.name(), "value": v, "time": t0 + h * HOUR}).to_string()
        })
        .collect();
    let expected = replayed(t0);
    let by_rule = expected.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, t| {
        *m.entry(t.0.as_str()).or_default() += 1;
        m
    });
    for rule in ["pm25", "pm10.24h", "no2.rise", "o3.anomaly", "silent"] {
        assert!(by_rule.get(rule).copied().unwrap_or(0) > 0, "the data must exercise {rule}: {by_rule:?}");
    }

    for (run, workers) in [1, 2, 1, 2, 2].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("broker")).unwrap();
        std::fs::create_dir_all(dir.path().join("app")).unwrap();
        let broker = Mosquitto::start(&dir.path().join("broker"));
        let engine = format!("workers = {workers}\nallowed_lateness = \"1h\"\nidle_source_timeout = \"1h\"");
        let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, &stations(), RULES, &engine);
        // In one burst: mosquitto_pub sends as fast as the broker takes it.
        broker.publish_lines("sensors/air", &lines);
        tidewatch.wait_until("the whole backlog", Duration::from_secs(120), |h| h["readings"] == lines.len() as u64);
        // Stopping ends the input: timers up to the last reading fire, as at the replay's end.
        tidewatch.stop();
        let dead = std::fs::read_to_string(dir.path().join("app/dead_letters.jsonl")).unwrap_or_default();
        assert_eq!(
            dead.matches("\"kind\":\"late\"").count(),
            0,
            "run {run} ({workers} workers): late readings:\n{dead}"
        );
        let got = live(&tidewatch, t0);
        assert_eq!(got.len(), expected.len(), "run {run} ({workers} workers)");
        assert_eq!(got, expected, "run {run} ({workers} workers)");
    }
}

/// Runs `tidewatch replay` on a recording and returns its transitions.
fn replay_file(dir: &std::path::Path, file: &str, extra_args: &[&str], t0: i64) -> Vec<Transition> {
    std::fs::write(dir.join("stations.toml"), stations()).unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/backlog.toml"), RULES).unwrap();
    std::fs::write(
        dir.join("tidewatch.toml"),
        "stations = \"stations.toml\"\nrules = [\"rules\"]\n[engine]\nallowed_lateness = \"1h\"\nidle_source_timeout = \"1h\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidewatch"))
        .arg("replay")
        .arg(dir.join(file))
        .arg("--config")
        .arg(dir.join("tidewatch.toml"))
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--quiet")
        .args(extra_args)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let dead = std::fs::read_to_string(dir.join("out/dead_letters.jsonl")).unwrap_or_default();
    assert_eq!(dead.lines().count(), 0, "{dead}");
    let mut got: Vec<Transition> = std::fs::read_to_string(dir.join("out/alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).unwrap();
            let t = chrono::DateTime::parse_from_rfc3339(a["event_time"].as_str().unwrap()).unwrap().timestamp_millis();
            let s = |k: &str| a[k].as_str().unwrap().to_owned();
            (s("rule"), s("station"), s("transition"), s("severity"), t - t0)
        })
        .collect();
    got.sort();
    got
}

#[test]
fn a_recorded_file_replayed_gives_the_transitions_of_the_live_feed() {
    // Replays read old data: any start works, the wall clock does not matter.
    let t0 = 1_400_000_400_000 / HOUR * HOUR;
    let expected = replayed(t0);
    let readings = backlog();

    // JSON lines, as the `jsonl` sink writes them.
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = readings
        .iter()
        .map(|(s, q, h, v)| {
            json!({"station": format!("BJ{s}"), "quantity": q.name(), "value": v, "time": t0 + h * HOUR}).to_string()
        })
        .collect();
    std::fs::write(dir.path().join("backlog.jsonl"), lines.join("\n") + "\n").unwrap();
    assert_eq!(replay_file(dir.path(), "backlog.jsonl", &[], t0), expected);

    // CSV with its own column names and local times, through a mapping.
    let dir = tempfile::tempdir().unwrap();
    let zone = chrono_tz::Asia::Shanghai;
    let mut csv = String::from("STCD,TM,ITEM,VAL\n");
    for (s, q, h, v) in &readings {
        let local = chrono::DateTime::from_timestamp_millis(t0 + h * HOUR).unwrap().with_timezone(&zone);
        csv.push_str(&format!("BJ{s},{},{},{v}\n", local.format("%Y-%m-%d %H:%M:%S"), q.name()));
    }
    std::fs::write(dir.path().join("backlog.csv"), csv).unwrap();
    std::fs::write(
        dir.path().join("columns.toml"),
        "station = \"STCD\"\ntime = \"TM\"\nquantity = \"ITEM\"\nvalue = \"VAL\"\ntime_format = \"local\"\ntime_zone = \"Asia/Shanghai\"\n",
    )
    .unwrap();
    let mapping = dir.path().join("columns.toml");
    assert_eq!(replay_file(dir.path(), "backlog.csv", &["--mapping", mapping.to_str().unwrap()], t0), expected);
}

//! The InfluxDB sink (influxdb2) against a real VictoriaMetrics, which takes InfluxDB v2
//! writes: readings and alert transitions as line protocol, read back through its export
//! API; and while the database is away, a bounded buffer whose overflow is counted.

mod support;

use std::time::{Duration, Instant};

use support::{free_port, Tidewatch, Victoria, LX_STATION, LX_YELLOW_RULE};

const T0: i64 = 1_718_841_600_000; // 2024-06-20T00:00:00Z

/// `n` readings a minute apart, crossing the warning level (28 m) once and back.
fn recording(dir: &std::path::Path, n: i64) -> std::path::PathBuf {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let value = if (10..20).contains(&i) { 28.5 + i as f64 / 100.0 } else { 27.0 + i as f64 / 1000.0 };
            format!(r#"{{"station":"LX","quantity":"water_level","value":{value},"time":{}}}"#, T0 + i * 60_000)
        })
        .collect();
    let path = dir.join("recording.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn config(port: u16, max_points: usize) -> String {
    format!(
        r#"stations = "stations.toml"
rules = ["rules"]
[[source]]
kind = "file"
path = "recording.jsonl"
format = "jsonl"
[[sink]]
kind = "influxdb"
name = "history"
url = "http://127.0.0.1:{port}"
bucket = "tidewatch"
token = "unused-by-victoria"
batch_points = 10
flush_interval = "100ms"
max_points = {max_points}
[http]
listen = "127.0.0.1:{{http}}"
[alerting]
store = "sqlite://alerts.db"
[output]
alerts_file = "alerts.jsonl"
console = false
"#
    )
}

fn sink(t: &Tidewatch, outcome: &str) -> u64 {
    t.health()["sinks"]["history"][outcome].as_u64().unwrap_or(0)
}

fn wait(t: &Tidewatch, what: &str, ready: impl Fn(&Tidewatch) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(t) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; health {}; log:\n{}", t.health(), t.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn readings_and_transitions_are_written_as_documented_and_read_back() {
    let victoria = Victoria::start_on(free_port());
    let dir = tempfile::tempdir().unwrap();
    recording(dir.path(), 30);
    let mut t =
        Tidewatch::start_config(dir.path(), LX_STATION, LX_YELLOW_RULE, &config(victoria.port, 10_000), |_| true);
    // 30 readings and 2 transitions (fire, resolve).
    wait(&t, "32 points written", |t| sink(t, "delivered") == 32);
    t.stop();

    let readings = victoria.export(r#"{__name__="reading_value"}"#);
    assert_eq!(readings.len(), 30, "{readings:?}");
    let (labels, value, time) = &readings[12];
    assert_eq!((labels["station"].as_str(), labels["quantity"].as_str()), (Some("LX"), Some("water_level")));
    assert_eq!((labels["region"].as_str(), labels["domain"].as_str()), (Some("330781"), Some("water")));
    assert_eq!((*value, *time), (28.62, T0 + 12 * 60_000));

    let alerts = victoria.export(r#"{__name__="alert_value"}"#);
    let transitions: Vec<(&str, &str, i64)> = alerts
        .iter()
        .map(|(l, _, t)| (l["transition"].as_str().unwrap(), l["severity"].as_str().unwrap(), *t))
        .collect();
    assert_eq!(transitions, [("fire", "yellow", T0 + 10 * 60_000), ("resolve", "yellow", T0 + 20 * 60_000)]);
    assert_eq!(alerts[0].0["rule"], "level");
    let thresholds = victoria.export(r#"{__name__="alert_threshold"}"#);
    assert!(thresholds.iter().all(|(_, v, _)| *v == 28.0), "{thresholds:?}");
}

#[test]
fn while_the_database_is_away_points_wait_within_their_bound_and_the_rest_are_counted() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    recording(dir.path(), 30);
    // Nothing listens on the port yet; 20 points may wait.
    let mut t = Tidewatch::start_config(dir.path(), LX_STATION, LX_YELLOW_RULE, &config(port, 20), |_| true);
    wait(&t, "the overflow counted", |t| sink(t, "dropped") == 12);
    assert_eq!(sink(&t, "delivered"), 0);

    let victoria = Victoria::start_on(port);
    wait(&t, "the waiting points written", |t| sink(t, "delivered") == 20);
    let metrics = t.get("/metrics").text().unwrap();
    t.stop();
    assert!(metrics.contains(r#"tidewatch_sink_records_total{sink="history",outcome="dropped"} 12"#), "{metrics}");
    // The first 20 readings waited and were written, in order; the 10 later readings and
    // the 2 transitions found the buffer full.
    let readings = victoria.export(r#"{__name__="reading_value"}"#);
    let times: Vec<i64> = readings.iter().map(|r| r.2).collect();
    assert_eq!(times, (0..20).map(|i| T0 + i * 60_000).collect::<Vec<_>>());
}

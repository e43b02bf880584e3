//! A restart neither loses nor invents a transition: Tidewatch killed mid-stream (SIGKILL,
//! or SIGTERM) and started again on the same state directory, alert store and MQTT session
//! stores exactly the transitions of an uninterrupted run, for a threshold rule with
//! hysteresis and for one with `for` and `clear_for` timers pending at the crash.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Mosquitto, Tidewatch};
use tidewatch_ingest::{Quality, Quantity, Reading, Registry, SensorKey};
use tidewatch_rules::eval::Evaluator;
use tidewatch_rules::{compile, RuleSource};

const MIN: i64 = 60_000;
const STATIONS: usize = 40;
const MINUTES: i64 = 240;

const RULES: &str = r#"
[[rule]]
id = "level"
select = { quantity = "water_level" }
kind = "threshold"
clear_margin = 0.3
levels = [
  { severity = "yellow", above = "station.warning_level" },
  { severity = "orange", above = "station.guarantee_level" },
]

[[rule]]
id = "level.held"
select = { quantity = "water_level" }
kind = "threshold"
for = "10m"
clear_for = "5m"
levels = [
  { severity = "yellow", above = "station.warning_level + 0.5" },
  { severity = "red",    above = "station.guarantee_level + 0.5" },
]
"#;

fn stations() -> String {
    (0..STATIONS)
        .map(|s| {
            format!(
                "[[station]]\nid = \"G{s:02}\"\nname = \"G{s:02}\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"330100\"\nattributes = {{ warning_level = 10.0, guarantee_level = 12.0 }}\n"
            )
        })
        .collect()
}

/// Every station each minute, in time order: slow waves with noise that cross every level
/// many times, then two sweeps at zero that close everything.
fn series(t0: i64) -> Vec<(usize, i64, f64)> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 1000) as f64 / 1000.0 - 0.5
    };
    let mut out = Vec::new();
    for minute in 0..MINUTES {
        for s in 0..STATIONS {
            let phase = minute as f64 / (9.0 + s as f64 % 7.0) + s as f64;
            let level = 11.0 + 2.2 * phase.sin() + 0.8 * noise();
            out.push((s, t0 + minute * MIN, (level * 100.0).round() / 100.0));
        }
    }
    for sweep in [MINUTES + 1, MINUTES + 40] {
        for s in 0..STATIONS {
            out.push((s, t0 + sweep * MIN, 0.0));
        }
    }
    out
}

fn lines(series: &[(usize, i64, f64)]) -> Vec<String> {
    series
        .iter()
        .map(|&(s, t, v)| {
            json!({"station": format!("G{s:02}"), "quantity": "water_level", "value": v, "unit": "m", "time": t})
                .to_string()
        })
        .collect()
}

type Transition = (String, String, String, String, i64);

/// The reference: the rules replayed over the readings in event-time order, in this process.
fn uninterrupted(series: &[(usize, i64, f64)]) -> Vec<Transition> {
    let registry = Registry::from_toml_str(&stations()).unwrap();
    let rules = compile(&[RuleSource { name: "test.toml".into(), text: RULES.into() }], &registry).unwrap();
    let readings: Vec<Reading> = series
        .iter()
        .map(|&(s, time, value)| Reading {
            sensor: SensorKey::new(registry.key_of(&format!("G{s:02}")).unwrap(), Quantity::WaterLevel),
            quality: Quality::Good,
            time,
            value,
        })
        .collect();
    let mut evaluator = Evaluator::new(Arc::new(rules));
    let mut events = Vec::new();
    evaluator.replay(&readings, &mut |e| events.push(e), &mut |r, _| panic!("late: {r:?}"));
    let mut out: Vec<Transition> = events
        .into_iter()
        .map(|e| {
            (
                e.rule.to_string(),
                registry.station(e.key.station).id.clone(),
                e.transition.name().to_owned(),
                e.severity.name().to_owned(),
                e.event_time,
            )
        })
        .collect();
    out.sort();
    out
}

/// Every transition the rules made, as the alert store holds them (over HTTP).
fn stored(tidewatch: &Tidewatch) -> Vec<Transition> {
    let alerts: Vec<serde_json::Value> =
        tidewatch.get("/api/alerts?state=all&limit=10000").json().expect("alerts as JSON");
    let mut out = Vec::new();
    for alert in alerts {
        for entry in alert["history"].as_array().unwrap() {
            let (Some(time), None) = (entry["event_time"].as_str(), entry["actor"].as_str()) else { continue };
            let happening = entry["happening"].as_str().unwrap();
            if !["fire", "escalate", "de_escalate", "resolve"].contains(&happening) {
                continue;
            }
            out.push((
                alert["rule"].as_str().unwrap().to_owned(),
                alert["station"].as_str().unwrap().to_owned(),
                happening.to_owned(),
                entry["severity"].as_str().unwrap().to_owned(),
                chrono::DateTime::parse_from_rfc3339(time).unwrap().timestamp_millis(),
            ));
        }
    }
    out.sort();
    out
}

/// What differs, for a readable failure.
fn diff(expected: &[Transition], got: &[Transition]) -> String {
    let mut count: BTreeMap<&Transition, i64> = BTreeMap::new();
    for t in expected {
        *count.entry(t).or_default() += 1;
    }
    for t in got {
        *count.entry(t).or_default() -= 1;
    }
    let missing: Vec<_> = count.iter().filter(|(_, &n)| n > 0).map(|(t, _)| *t).collect();
    let extra: Vec<_> = count.iter().filter(|(_, &n)| n < 0).map(|(t, _)| *t).collect();
    format!(
        "{} expected, {} stored; missing {}: {:?}; extra (duplicated or wrong) {}: {:?}",
        expected.len(),
        got.len(),
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(10).collect::<Vec<_>>()
    )
}

#[derive(Clone, Copy)]
enum Stop {
    Kill,
    Term,
}

fn crash_mid_stream(stop: Stop) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Arc::new(Mosquitto::start(&dir.path().join("broker")));
    // The engine table, then the state section (the support config puts this under [engine]).
    let engine = "workers = 2\nallowed_lateness = \"2m\"\nidle_source_timeout = \"1h\"\n\
                  [state]\ndir = \"state\"\ncheckpoint_interval = \"300ms\"";
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, &stations(), RULES, engine);

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let t0 = (now - 6 * 3_600_000) / MIN * MIN;
    let series = series(t0);
    let expected = uninterrupted(&series);
    assert!(expected.len() > 300, "the series should cross levels often: {}", expected.len());
    let lines = lines(&series);

    // The publisher goes on through the crash: the broker queues for the persistent session.
    let published = Arc::new(AtomicBool::new(false));
    let publisher = std::thread::spawn({
        let (broker, lines, published) = (broker.clone(), lines.clone(), published.clone());
        move || {
            for chunk in lines.chunks(400) {
                broker.publish_lines("sensors/water", chunk);
                std::thread::sleep(Duration::from_millis(40));
            }
            published.store(true, Ordering::SeqCst);
        }
    });
    // Mid-stream: once about a third has been taken in, with checkpoints behind it.
    tidewatch.wait_until("a third of the stream", Duration::from_secs(60), |h| {
        h["readings"].as_u64().unwrap_or(0) >= lines.len() as u64 / 3
    });
    match stop {
        Stop::Kill => tidewatch.kill9(),
        Stop::Term => tidewatch.stop(),
    }
    std::thread::sleep(Duration::from_millis(500));
    tidewatch.respawn();
    publisher.join().unwrap();
    assert!(published.load(Ordering::SeqCst));

    let deadline = Instant::now() + Duration::from_secs(90);
    let mut got = stored(&tidewatch);
    while got.len() < expected.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        got = stored(&tidewatch);
    }
    // Anything extra would come late: give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    got = stored(&tidewatch);
    let log = tidewatch.log();
    assert!(got == expected, "{}\nlog:\n{}", diff(&expected, &got), &log[log.len().saturating_sub(6000)..]);
    assert!(log.contains("reading log replayed"), "{log}");
    let health = tidewatch.health();
    assert_eq!(health["dead_letters"], 0, "{health}");
    tidewatch.stop();
}

#[test]
fn sigkill_mid_stream_then_restart_stores_exactly_the_uninterrupted_transitions() {
    crash_mid_stream(Stop::Kill);
}

#[test]
fn sigterm_mid_stream_then_restart_stores_exactly_the_uninterrupted_transitions() {
    crash_mid_stream(Stop::Term);
}

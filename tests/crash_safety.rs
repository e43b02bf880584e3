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

/// The engine table, then the state section (and any more tables): the support config puts
/// this text under `[engine]`.
fn engine(more: &str) -> String {
    format!(
        "workers = 2\nallowed_lateness = \"2m\"\nidle_source_timeout = \"1h\"\n\
         [state]\ndir = \"state\"\ncheckpoint_interval = \"300ms\"\n{more}"
    )
}

fn crash_mid_stream(stop: Stop, more_config: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Arc::new(Mosquitto::start(&dir.path().join("broker")));
    let engine = engine(more_config);
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, &stations(), RULES, &engine);

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
    crash_mid_stream(Stop::Kill, "");
}

#[test]
fn sigterm_mid_stream_then_restart_stores_exactly_the_uninterrupted_transitions() {
    crash_mid_stream(Stop::Term, "");
}

#[test]
fn sigkill_mid_stream_with_the_postgres_store_and_full_sync_stores_exactly_the_uninterrupted_transitions() {
    let Ok(url) = std::env::var("TIDEWATCH_TEST_POSTGRES") else {
        eprintln!("TIDEWATCH_TEST_POSTGRES is not set: scripts/test.sh starts a PostgreSQL and sets it; not run");
        return;
    };
    // A database of its own, so runs never see each other's alerts.
    let name = format!("tidewatch_crash_{}_{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    });
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
    crash_mid_stream(Stop::Kill, &format!("sync = \"full\"\n[alerting]\nstore = \"{base}/{name}\"\n"));
}

/// A rule whose meaning changed between runs: its state is discarded, and its open alerts,
/// which nothing could resolve any more, are resolved saying why.
#[test]
fn a_rule_changed_between_runs_starts_afresh_and_its_open_alerts_say_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let mut tidewatch = Tidewatch::start(&app, broker.port, &stations(), RULES, &engine(""));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let t0 = (now - 3_600_000) / MIN * MIN;
    // G00 and G01 above warning (yellow under `level`), and G00 long enough for `level.held`.
    let readings: Vec<(usize, i64, f64)> =
        (0..20).flat_map(|m| [(0, t0 + m * MIN, 11.0), (1, t0 + m * MIN, 10.2)]).collect();
    broker.publish_lines("sensors/water", &lines(&readings));
    tidewatch.wait_until("the readings", Duration::from_secs(30), |h| h["readings"] == 40);
    let open = |t: &Tidewatch| -> Vec<serde_json::Value> { t.get("/api/alerts").json().unwrap() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while open(&tidewatch).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(open(&tidewatch).len(), 3, "{:#}", serde_json::Value::Array(open(&tidewatch)));
    tidewatch.stop();

    // `level` moves its yellow threshold: a different rule as far as its state goes. The
    // title of `level.held` changes too, which does not change what its state means.
    let changed = RULES
        .replace(
            "{ severity = \"yellow\", above = \"station.warning_level\" }",
            "{ severity = \"yellow\", above = 10.5 }",
        )
        .replace("id = \"level.held\"", "id = \"level.held\"\ntitle = \"held {value}\"");
    std::fs::write(app.join("rules/test.toml"), changed).unwrap();
    tidewatch.respawn();
    let log = tidewatch.log();
    assert!(log.contains("rule changed between runs"), "{log}");
    let alerts: Vec<serde_json::Value> = tidewatch.get("/api/alerts?state=all").json().unwrap();
    for alert in &alerts {
        let last = alert["history"].as_array().unwrap().last().unwrap().clone();
        if alert["rule"] == "level" {
            assert_eq!(alert["state"], "resolved", "{alert:#}");
            assert_eq!(last["actor"], "tidewatch", "{alert:#}");
            assert!(last["note"].as_str().unwrap().contains("rule level changed"), "{alert:#}");
        } else {
            assert_eq!(alert["state"], "firing", "the unchanged rule keeps its alert: {alert:#}");
        }
    }
    // `level` starts afresh: G00 at 11.0 is above the new 10.5 and fires again; G01 at 10.2
    // is not. `level.held` kept its state: G00's next reading changes nothing.
    broker.publish_lines("sensors/water", &lines(&[(0, t0 + 20 * MIN, 11.0), (1, t0 + 20 * MIN, 10.2)]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let open_level = |t: &Tidewatch| open(t).iter().filter(|a| a["rule"] == "level").count();
    while open_level(&tidewatch) < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let now_open = open(&tidewatch);
    let summary: Vec<(String, String)> = now_open
        .iter()
        .map(|a| (a["rule"].as_str().unwrap().to_owned(), a["station"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        summary.iter().filter(|(r, _)| r == "level").collect::<Vec<_>>(),
        vec![&("level".to_owned(), "G00".to_owned())]
    );
    let held: Vec<_> = now_open.iter().filter(|a| a["rule"] == "level.held").collect();
    assert_eq!(held.len(), 1, "{summary:?}");
    assert_eq!(held[0]["history"].as_array().unwrap().len(), 1, "level.held kept its state: {:#}", held[0]);
    tidewatch.stop();
}

//! From `mosquitto_pub` through a real Mosquitto to alerts on disk and over HTTP.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{Mosquitto, Tidewatch};

const MIN: i64 = 60_000;

const STATIONS: &str = r#"
[[station]]
id = "LX"
name = "兰溪"
domain = "water"
location = [119.46, 29.21]
region = "330781"
attributes = { warning_level = 10.0, guarantee_level = 12.0 }

[[station]]
id = "TL"
name = "桐庐"
domain = "water"
location = [119.68, 29.79]
region = "330122"
attributes = { warning_level = 10.0, guarantee_level = 12.0 }
"#;

const RULES: &str = r#"
[[rule]]
id = "level"
title = "{station.name} {value} m"
select = { quantity = "water_level" }
kind = "threshold"
for = "5m"
clear_margin = 0.1
levels = [
  { severity = "yellow", above = "station.warning_level" },
  { severity = "orange", above = "station.guarantee_level" },
  { severity = "red",    above = "station.guarantee_level + 0.5" },
]
"#;

/// Late enough that nothing is "from the future", early enough to be well in the past.
fn t0() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    (now - 3 * 3_600_000) / MIN * MIN
}

/// LX rises through every colour and back down; TL crosses yellow late and stays there.
fn series(t0: i64) -> Vec<String> {
    let lx = [
        9.0, 10.5, 10.6, 10.8, 11.0, 11.2, 12.3, 12.4, 12.6, 12.8, 13.0, 13.1, 13.0, 12.9, 12.2, 11.5, 11.0, 10.5, 9.8,
        9.5, 9.4,
    ];
    let mut lines = Vec::new();
    for (i, &level) in lx.iter().enumerate() {
        let t = t0 + i as i64 * 2 * MIN;
        lines.push(
            json!({"station": "LX", "quantity": "water_level", "value": level, "unit": "m", "time": t}).to_string(),
        );
        let tl = if i >= 12 { 10.4 } else { 9.0 };
        // TL reports in centimetres: unit conversion on the way.
        lines.push(
            json!({"station": "TL", "quantity": "water_level", "value": tl * 100.0, "unit": "cm", "time": t})
                .to_string(),
        );
    }
    // Push the watermark past the end so the last transitions are complete.
    lines.push(json!({"station": "TL", "quantity": "water_level", "value": 10.4, "time": t0 + 60 * MIN}).to_string());
    lines
}

/// (station, transition, severity, minute) in event-time order, worked out from `series`
/// by hand: 2-minute readings, 5-minute `for`, 0.1 m hysteresis.
fn expected() -> Vec<(String, String, String, i64)> {
    [
        // LX above 10 from minute 2, held 5 minutes → yellow at 7.
        ("LX", "fire", "yellow", 7),
        // above 12 from minute 12 → orange at 17.
        ("LX", "escalate", "orange", 17),
        // above 12.5 from minute 16 → red at 21.
        ("LX", "escalate", "red", 21),
        // minute 28: 12.2 ≤ 12.5 - 0.1, above 12 - 0.1 → orange at once (no clear_for).
        ("LX", "de_escalate", "orange", 28),
        // TL above 10 from minute 24 → yellow at 29.
        ("TL", "fire", "yellow", 29),
        // minute 30: 11.5 ≤ 11.9 → yellow.
        ("LX", "de_escalate", "yellow", 30),
        // minute 36: 9.8 ≤ 10 - 0.1 → resolved.
        ("LX", "resolve", "yellow", 36),
    ]
    .into_iter()
    .map(|(s, t, v, m)| (s.to_owned(), t.to_owned(), v.to_owned(), m))
    .collect()
}

fn transitions(tidewatch: &Tidewatch, t0: i64) -> Vec<(String, String, String, i64)> {
    let mut got: Vec<(i64, String, String, String)> = tidewatch
        .json_lines("alerts.jsonl")
        .iter()
        .map(|a| {
            let t = chrono::DateTime::parse_from_rfc3339(a["event_time"].as_str().unwrap()).unwrap().timestamp_millis();
            (
                (t - t0) / MIN,
                a["station"].as_str().unwrap().to_owned(),
                a["transition"].as_str().unwrap().to_owned(),
                a["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    got.into_iter().map(|(m, s, t, v)| (s, t, v, m)).collect()
}

fn engine() -> &'static str {
    "workers = 2\nallowed_lateness = \"1m\"\nidle_source_timeout = \"1h\""
}

#[test]
fn readings_from_mosquitto_pub_give_exactly_the_expected_alerts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, STATIONS, RULES, engine());

    let t0 = t0();
    let lines = series(t0);
    broker.publish_lines("sensors/water", &lines);
    // Bad input of every kind: none may crash the pipeline or vanish.
    let bad = [
        "this is not json".to_owned(),
        json!({"station": "NOPE", "quantity": "water_level", "value": 1.0, "time": t0}).to_string(),
        json!({"station": "LX", "quantity": "water_level", "value": "NaN", "time": t0}).to_string(),
        json!({"station": "LX", "quantity": "water_level", "value": 1e9, "time": t0}).to_string(),
        json!({"station": "LX", "quantity": "water_level", "value": 1.0, "time": t0 + 48 * 3_600_000}).to_string(),
        json!({"station": "LX", "quantity": "water_level", "value": 1.0, "unit": "furlong", "time": t0}).to_string(),
        // Older than the watermark by far more than the allowed lateness.
        json!({"station": "LX", "quantity": "water_level", "value": 11.0, "time": t0 + 10 * MIN}).to_string(),
    ];
    broker.publish_lines("sensors/water", &bad);
    broker.publish_lines("unrouted/topic", &["{}".to_owned()]);
    let _ = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1", "-t", "sensors/x", "-m", "{}"])
        .status();

    let total_good = lines.len() as u64;
    // The late reading is received and accepted by ingest; only the engine finds it late.
    let received = total_good + 1;
    tidewatch.wait_until("all readings and dead letters", Duration::from_secs(30), |h| {
        h["readings"] == received && h["dead_letters"].as_u64().unwrap_or(0) >= 8
    });
    tidewatch.wait_until("the last transition", Duration::from_secs(10), |_| {
        transitions(&tidewatch, t0).len() >= expected().len()
    });

    assert_eq!(transitions(&tidewatch, t0), expected());

    // The open alert is served over HTTP with its title and history.
    let open: Value = tidewatch.get("/api/alerts").json().unwrap();
    let open = open.as_array().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["station"], "TL");
    assert_eq!(open[0]["severity"], "yellow");
    assert_eq!(open[0]["title"], "桐庐 10.40 m");
    assert_eq!(open[0]["history"].as_array().unwrap().len(), 1);
    let filtered: Value = tidewatch.get("/api/alerts?severity=orange").json().unwrap();
    assert_eq!(filtered, json!([]));
    assert_eq!(tidewatch.get("/api/alerts?severity=purple").status(), 400);

    // Every bad input is a dead letter with a reason, in the file and in /metrics.
    let dead = tidewatch.json_lines("dead_letters.jsonl");
    let mut reasons: Vec<&str> = dead.iter().map(|d| d["reason"]["kind"].as_str().unwrap()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "from_the_future",
            "late",
            "not_finite",
            "out_of_range",
            "undecodable",
            "undecodable",
            "unknown_station",
            "unknown_unit"
        ]
    );
    let late = dead.iter().find(|d| d["reason"]["kind"] == "late").unwrap();
    assert!(
        late["message"].as_str().unwrap().contains("older than what this sensor's rules already decided"),
        "{late}"
    );
    let unrouted_or_undecodable = dead.iter().filter(|d| d["reason"]["kind"] == "undecodable").count();
    assert_eq!(unrouted_or_undecodable, 2, "garbage text and an empty object on sensors/x");

    let metrics = tidewatch.get("/metrics").text().unwrap();
    assert!(metrics.contains(&format!("tidewatch_readings_total{{source=\"mqtt/json\"}} {received}")), "{metrics}");
    assert!(metrics.contains("tidewatch_dead_letters_total{reason=\"late\"} 1"), "{metrics}");
    assert!(metrics.contains("tidewatch_dead_letters_total{reason=\"unknown_station\"} 1"), "{metrics}");
    assert!(
        metrics.contains("tidewatch_alert_transitions_total{severity=\"red\",transition=\"escalate\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tidewatch_alerts_open{severity=\"yellow\"} 1"), "{metrics}");
    assert!(metrics.contains("tidewatch_watermark_lag_seconds"), "{metrics}");

    tidewatch.stop();
}

#[test]
fn a_broker_restart_mid_stream_loses_no_qos1_reading() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"));
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, STATIONS, RULES, engine());

    let t0 = t0();
    let lines = series(t0);
    let (first, second) = lines.split_at(lines.len() / 2);
    broker.publish_lines("sensors/water", first);
    tidewatch.wait_until("the first half", Duration::from_secs(30), |h| h["readings"] == first.len() as u64);

    broker.stop();
    tidewatch.wait_until("the disconnect to be noticed", Duration::from_secs(30), |h| h["mqtt_connected"] == false);
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    // Published at once, most likely while tidewatch is still backing off: the broker must
    // queue them for its persistent session, restored from the persistence file.
    broker.publish_lines("sensors/water", second);

    tidewatch.wait_until("every reading", Duration::from_secs(60), |h| {
        h["readings"] == lines.len() as u64 && h["mqtt_connected"] == true
    });
    tidewatch.wait_until("the last transition", Duration::from_secs(10), |_| {
        transitions(&tidewatch, t0).len() >= expected().len()
    });
    assert_eq!(transitions(&tidewatch, t0), expected());
    assert_eq!(tidewatch.health()["dead_letters"], 0);
    // The broker restored our persistent session from disk (what queued the second half).
    let log = tidewatch.log();
    assert_eq!(log.matches("MQTT connected").count(), 2, "{log}");
    assert!(log.contains("session_present=true"), "{log}");
    tidewatch.stop();
}

#[test]
fn a_large_backlog_queued_while_away_is_drained_completely() {
    // Regression: with a backlog much larger than the envelope and ack channels, the MQTT
    // event loop once waited on a busy consumer while that consumer's acks waited on the
    // event loop, and ingestion stopped for good.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, STATIONS, RULES, engine());
    tidewatch.stop(); // the broker now queues for the persistent session

    let t0 = t0();
    let backlog = 60_000u64;
    let lines: Vec<String> = (0..backlog)
        .map(|i| json!({"station": if i % 2 == 0 { "LX" } else { "TL" }, "quantity": "water_level", "value": 5.0, "time": t0 + i as i64}).to_string())
        .collect();
    broker.publish_lines("sensors/water", &lines);

    let tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, STATIONS, RULES, engine());
    tidewatch.wait_until("the whole backlog", Duration::from_secs(60), |h| h["readings"] == backlog);
}

#[test]
fn a_route_declared_out_of_order_gives_the_expected_alerts_from_shuffled_readings() {
    // A logger that re-sends its buffer: each gauge's readings arrive reversed in runs of
    // four (eight minutes), well inside the allowed lateness. On a `reorder = true` route
    // they are held until the watermark and give exactly the in-order transitions.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let routes = "[[mqtt.route]]\nname = \"buffered\"\nfilter = \"sensors/#\"\nformat = \"json\"\nreorder = true\n";
    let engine = "workers = 2\nallowed_lateness = \"10m\"\nidle_source_timeout = \"1h\"";
    let mut tidewatch =
        Tidewatch::start_with_routes(&dir.path().join("app"), broker.port, STATIONS, RULES, engine, routes);
    let t0 = t0();
    let mut lines = series(t0);
    let last = lines.pop().unwrap(); // the watermark pusher stays last
    for run in lines.chunks_mut(8) {
        run.reverse();
    }
    lines.push(last);
    broker.publish_lines("sensors/water", &lines);
    tidewatch.wait_until("all readings", Duration::from_secs(30), |h| h["readings"] == lines.len() as u64);
    tidewatch.wait_until("the last transition", Duration::from_secs(10), |_| {
        transitions(&tidewatch, t0).len() >= expected().len()
    });
    assert_eq!(transitions(&tidewatch, t0), expected());
    let dead = tidewatch.json_lines("dead_letters.jsonl");
    assert!(dead.is_empty(), "{dead:?}");
    tidewatch.stop();
}

/// A recorded feed has ended: declared complete, the timers of a silent gauge are decided at
/// once up to the newest reading, not after the idle timeout and the lateness (an hour here).
#[test]
fn a_feed_declared_complete_is_decided_up_to_its_newest_reading_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let rules = r#"
[[rule]]
id = "level"
select = { quantity = "water_level" }
kind = "threshold"
clear_for = "30m"
levels = [{ severity = "yellow", above = "station.warning_level" }]
"#;
    let engine = "workers = 2\nallowed_lateness = \"1h\"\nidle_source_timeout = \"1h\"";
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, STATIONS, rules, engine);
    let t0 = t0();
    // LX fires at minute 0, falls back at minute 10 and goes silent: its resolve is due at
    // minute 40. TL reports on to minute 60.
    let mut lines = vec![
        json!({"station": "LX", "quantity": "water_level", "value": 10.5, "time": t0}).to_string(),
        json!({"station": "LX", "quantity": "water_level", "value": 9.0, "time": t0 + 10 * MIN}).to_string(),
    ];
    for m in 0..=60 {
        lines.push(json!({"station": "TL", "quantity": "water_level", "value": 9.0, "time": t0 + m * MIN}).to_string());
    }
    broker.publish_lines("sensors/water", &lines);
    tidewatch.wait_until("every reading", Duration::from_secs(30), |h| h["readings"] == lines.len() as u64);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(tidewatch.health()["open_alerts"], 1, "the resolve waits for the watermark (an hour behind)");

    let answer: Value = tidewatch.post("/api/input/complete", &json!(null)).json().unwrap();
    let watermark =
        chrono::DateTime::parse_from_rfc3339(answer["watermark"].as_str().unwrap()).unwrap().timestamp_millis();
    assert_eq!(watermark, t0 + 60 * MIN + 1);
    tidewatch.wait_until("the resolve", Duration::from_secs(5), |h| h["open_alerts"] == 0);
    let resolved = transitions(&tidewatch, t0);
    assert_eq!(resolved.last().unwrap(), &("LX".to_owned(), "resolve".to_owned(), "yellow".to_owned(), 40));
    tidewatch.stop();
}

/// One 1 MB JSON array of numbers is half a million refused records: every one is counted,
/// but the dead-letter file takes a sample per second, not 2 GB.
#[test]
fn a_flood_of_refused_records_is_counted_and_sampled_not_written_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, STATIONS, RULES, engine());
    let numbers = vec!["1"; 500_000].join(",");
    let flood = dir.path().join("flood.json");
    std::fs::write(&flood, format!("[{numbers}]")).unwrap();
    let input_bytes = std::fs::metadata(&flood).unwrap().len();
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1", "-t", "sensors/flood", "-f"])
        .arg(&flood)
        .status()
        .unwrap();
    assert!(status.success());
    tidewatch.wait_until("every record counted", Duration::from_secs(60), |h| h["dead_letters"] == 500_000);
    tidewatch.stop();
    let written = std::fs::metadata(tidewatch.dir.join("dead_letters.jsonl")).unwrap().len();
    assert!(written <= input_bytes, "{written} bytes of dead letters for {input_bytes} bytes of input");
    let lines = tidewatch.json_lines("dead_letters.jsonl");
    assert!(!lines.is_empty() && lines.len() <= 1000, "{} letters written", lines.len());
    assert_eq!(lines[0]["reason"]["kind"], "undecodable", "{}", lines[0]);
}

/// One gauge's clock runs 9 minutes fast (within `max_future`) while the other reports in
/// real time: event time stays with the wall clock, so the other's pending `for` does not
/// fire early and its readings are evaluated, not late.
#[test]
fn a_device_nine_minutes_ahead_does_not_make_the_others_late() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let rules = r#"
[[rule]]
id = "level"
select = { quantity = "water_level" }
kind = "threshold"
for = "2m"
levels = [{ severity = "yellow", above = "station.warning_level" }]
"#;
    let engine = "workers = 2\nallowed_lateness = \"30s\"\nidle_source_timeout = \"1h\"";
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, STATIONS, rules, engine);
    let now = || chrono::Utc::now().timestamp_millis();
    let reading = |station: &str, value: f64, time: i64| {
        json!({"station": station, "quantity": "water_level", "value": value, "time": time}).to_string()
    };
    // LX above its level in real time (its `for` pending), TL stamped 9 minutes ahead.
    broker.publish_lines("sensors/water", &[reading("LX", 10.5, now() - 1000)]);
    broker.publish_lines("sensors/water", &[reading("TL", 9.0, now() + 9 * MIN)]);
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        broker.publish_lines("sensors/water", &[reading("LX", 10.5, now())]);
    }
    tidewatch.wait_until("every reading", Duration::from_secs(20), |h| h["readings"] == 8);
    std::thread::sleep(Duration::from_secs(1));
    let health = tidewatch.health();
    assert_eq!(health["dead_letters"], 0, "nothing late: {health}");
    assert_eq!(health["open_alerts"], 0, "LX has been above for seconds, not 2 minutes: {health}");
    let watermark = chrono::DateTime::parse_from_rfc3339(health["watermark"].as_str().unwrap()).unwrap();
    assert!(watermark.timestamp_millis() <= now(), "event time is not ahead of the clock: {health}");
    tidewatch.stop();
}

/// A message over the size limit on a routed topic is one dead letter, `too_large`, and is
/// acknowledged: no reconnect loop, and the readings after it are taken.
#[test]
fn an_oversize_message_is_one_dead_letter_not_a_reconnect_loop() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, STATIONS, RULES, engine());
    let big = dir.path().join("big.json");
    std::fs::write(&big, format!("[{}]", vec!["1"; 1_100_000].join(","))).unwrap();
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1", "-t", "sensors/big", "-f"])
        .arg(&big)
        .status()
        .unwrap();
    assert!(status.success());
    let t = t0();
    broker.publish_lines(
        "sensors/water",
        &[json!({"station": "LX", "quantity": "water_level", "value": 9.0, "time": t}).to_string()],
    );
    tidewatch.wait_until("the reading after it", Duration::from_secs(30), |h| h["readings"] == 1);
    std::thread::sleep(Duration::from_secs(2));
    let health = tidewatch.health();
    assert_eq!(health["dead_letters"], 1, "{health}");
    let letters = tidewatch.json_lines("dead_letters.jsonl");
    assert_eq!(letters[0]["reason"]["kind"], "too_large", "{}", letters[0]);
    assert_eq!(letters[0]["reason"]["bytes"], std::fs::metadata(&big).unwrap().len());
    tidewatch.stop();
    // Acknowledged: a restart on the same session is not handed it again.
    tidewatch.respawn();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(tidewatch.health()["dead_letters"], 0, "not delivered again");
    assert_eq!(tidewatch.log().matches("MQTT connected").count(), 2, "{}", tidewatch.log());
    tidewatch.stop();
}

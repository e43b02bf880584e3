//! Kafka in and out, against a real Apache Kafka broker (KRaft, started by
//! `scripts/kafka.sh`): a consumer-group source whose offsets are committed only after the
//! readings are handed on, the alert topic as a notifier channel, readings and dead letters
//! as sinks, and `kill -9` mid-stream without a reading skipped.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{Kafka, Tidewatch, LX_STATION, LX_YELLOW_RULE};

/// Many gauges, so that readings spread over the partitions.
fn stations(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[station]]\nid = \"G{i:03}\"\nname = \"gauge {i}\"\ndomain = \"water\"\nlocation = [119.4, 29.2]\nregion = \"330781\"\nattributes = {{ warning_level = 28.0 }}\n"
            )
        })
        .collect()
}

fn reading(station: &str, minute: i64, value: f64) -> (String, String) {
    let time = 1_718_841_600 + minute * 60;
    (station.to_owned(), format!(r#"{{"station":"{station}","quantity":"water_level","value":{value},"time":{time}}}"#))
}

fn config(kafka: &Kafka, extra: &str) -> String {
    format!(
        r#"stations = "stations.toml"
rules = ["rules"]
[engine]
workers = 2
allowed_lateness = "1h"
[[source]]
kind = "kafka"
name = "gauges"
brokers = "{bootstrap}"
group_id = "tidewatch-test"
session_timeout = "6s"
commit_interval = "200ms"
[[source.route]]
name = "json"
topic = "readings"
format = "json"
[http]
listen = "127.0.0.1:{{http}}"
[output]
alerts_file = "alerts.jsonl"
dead_letter_file = "dead_letters.jsonl"
console = false
{extra}"#,
        bootstrap = kafka.bootstrap
    )
}

fn assigned(h: &serde_json::Value) -> bool {
    h["sources"]["gauges"]["up"] == true
}

#[test]
fn kafka_readings_raise_alerts_told_on_a_kafka_topic_and_copied_to_sinks() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    // The topic exists before the group joins (producing creates it).
    let mut records = vec![reading("LX", 0, 27.0), reading("LX", 5, 28.4), reading("LX", 10, 27.5)];
    records.push(("LX".into(), "{not json".into()));
    kafka.produce("readings", &records);
    std::fs::write(
        dir.path().join("duty.toml"),
        format!(
            "time_zone = \"Asia/Shanghai\"\nbroadcast = [\"alert-topic\"]\n[channel.alert-topic]\nkind = \"kafka\"\nbrokers = \"{}\"\ntopic = \"alerts.{{region}}\"\n",
            kafka.bootstrap
        ),
    )
    .unwrap();
    let extra = format!(
        r#"[alerting]
store = "sqlite://alerts.db"
duty = "duty.toml"
group_wait = "0s"
[[sink]]
kind = "kafka"
name = "readings-out"
brokers = "{b}"
topic = "readings.accepted"
send = "readings"
[[sink]]
kind = "kafka"
name = "dead-out"
brokers = "{b}"
topic = "dead-letters"
send = "dead_letters"
[[sink]]
kind = "jsonl"
name = "archive"
path = "archive/readings.jsonl"
send = "readings"
"#,
        b = kafka.bootstrap
    );
    let mut t = Tidewatch::start_config(dir.path(), LX_STATION, LX_YELLOW_RULE, &config(&kafka, &extra), assigned);
    t.wait_until("3 readings", Duration::from_secs(30), |h| h["readings"] == 3 && h["dead_letters"] == 1);

    // Fire and resolve, each one JSON notice keyed by its alert id, on the region's topic.
    let notices = kafka.consume("alerts.330781", 2, Duration::from_secs(30));
    assert_eq!(notices.len(), 2, "{notices:?}\n{}", t.log());
    let transitions: Vec<&str> = notices.iter().map(|(_, n)| n["transition"].as_str().unwrap()).collect();
    assert_eq!(transitions, ["fire", "resolve"]);
    let alert_id = notices[0].1["alert_id"].as_i64().unwrap();
    assert!(notices.iter().all(|(key, _)| key.as_deref() == Some(alert_id.to_string().as_str())), "{notices:?}");
    assert_eq!(notices[0].1["station"], "LX");

    // The readings sink: the accepted readings, keyed by station, in the replayable shape.
    let copied = kafka.consume("readings.accepted", 3, Duration::from_secs(20));
    assert_eq!(copied.len(), 3, "{copied:?}");
    assert!(copied.iter().all(|(key, r)| key.as_deref() == Some("LX") && r["quantity"] == "water_level"));
    assert_eq!(copied[1].1["value"], 28.4);
    assert_eq!(copied[1].1["time"], "2024-06-20T00:05:00.000Z");
    let dead = kafka.consume("dead-letters", 1, Duration::from_secs(20));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1["reason"]["kind"], "undecodable", "{dead:?}");

    t.stop();
    let archived = std::fs::read_to_string(dir.path().join("archive/readings.jsonl")).unwrap();
    assert_eq!(archived.lines().count(), 3, "{archived}");
    let health_sinks = t.log();
    assert!(!health_sinks.contains("panicked"), "{health_sinks}");
}

#[test]
fn kill_9_mid_stream_skips_no_reading_and_the_group_resumes_from_its_commit() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let gauges: usize = 40;
    let minutes = 500;
    let mut records = Vec::new();
    for minute in 0..minutes {
        for g in 0..gauges {
            // Crosses the warning level now and then, so that there are alerts too.
            let value = 27.0 + ((minute as usize + g) % 50) as f64 / 40.0;
            records.push(reading(&format!("G{g:03}"), minute, value));
        }
    }
    kafka.produce("readings", &records);
    let total = records.len();
    let extra = r#"[alerting]
store = "sqlite://alerts.db"
[state]
dir = "state"
checkpoint_interval = "500ms"
[[sink]]
kind = "jsonl"
name = "archive"
path = "archive/readings.jsonl"
send = "readings"
"#;
    let mut t =
        Tidewatch::start_config(dir.path(), &stations(gauges), LX_YELLOW_RULE, &config(&kafka, extra), assigned);
    // Kill it part way through.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = t.health()["readings"].as_u64().unwrap_or(0);
        if seen > total as u64 / 4 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {}", t.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    t.kill9();
    let archive = dir.path().join("archive/readings.jsonl");
    let before = std::fs::read_to_string(&archive).unwrap_or_default().lines().count();
    assert!(before < total, "killed too late to tell: {before} of {total}");

    t.respawn();
    let readings = |t: &Tidewatch| t.health()["readings"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = BTreeSet::new();
    while Instant::now() < deadline {
        // Every complete line is JSON: the line the kill tore was cut off at the restart.
        seen = archived(dir.path());
        if seen.len() == total {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = readings(&t);
    let metrics = t.get("/metrics").text().unwrap();
    t.stop();
    assert_eq!(seen.len(), total, "readings skipped: {} of {total} seen; log:\n{}", seen.len(), t.log());
    // What the broker delivered again after the kill is recognised (the reading log's tail)
    // or re-evaluated harmlessly; either way nothing is lost.
    assert!(after > 0, "{metrics}");
    let log = t.log();
    assert!(log.contains("reading log replayed"), "{log}");
}

/// The station and time of every reading a `jsonl` readings sink wrote.
fn archived(dir: &std::path::Path) -> BTreeSet<(String, String)> {
    support::json_lines(&dir.join("archive/readings.jsonl"))
        .into_iter()
        .map(|r| (r["station"].as_str().unwrap().to_owned(), r["time"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn two_members_share_the_partitions_and_one_takes_over_when_the_other_dies() {
    let kafka = Kafka::start();
    let gauges: usize = 40;
    let minutes = 300;
    let batch = |from: i64, to: i64| -> Vec<(String, String)> {
        (from..to).flat_map(|m| (0..gauges).map(move |g| reading(&format!("G{g:03}"), m, 27.0))).collect()
    };
    // The topic and its four partitions exist before anyone joins.
    kafka.produce("readings", &batch(0, 10));
    let extra = r#"[alerting]
store = "sqlite://alerts.db"
[[sink]]
kind = "jsonl"
name = "archive"
path = "archive/readings.jsonl"
send = "readings"
"#;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = config(&kafka, extra);
    let mut a = Tidewatch::start_config(dir_a.path(), &stations(gauges), LX_YELLOW_RULE, &config, assigned);
    let b = Tidewatch::start_config(dir_b.path(), &stations(gauges), LX_YELLOW_RULE, &config, assigned);
    let partitions = |t: &Tidewatch| t.health()["sources"]["gauges"]["partitions"].as_u64().unwrap_or(0);
    b.wait_until("a share of the partitions", Duration::from_secs(30), |h| h["sources"]["gauges"]["partitions"] == 2);
    assert_eq!(partitions(&a), 2, "{}", a.log());

    // A stream while both run, then A dies mid-stream and the stream goes on.
    for step in 0..10 {
        kafka.produce("readings", &batch(10 + step * 20, 30 + step * 20));
        std::thread::sleep(Duration::from_millis(100));
    }
    let a_saw = archived(dir_a.path()).len();
    let b_saw = archived(dir_b.path()).len();
    assert!(a_saw > 0 && b_saw > 0, "both members read: {a_saw} and {b_saw}");
    a.kill9();
    kafka.produce("readings", &batch(210, minutes));
    b.wait_until("all four partitions", Duration::from_secs(30), |h| h["sources"]["gauges"]["partitions"] == 4);

    let total = gauges * minutes as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut union = BTreeSet::new();
    while Instant::now() < deadline {
        union = archived(dir_a.path());
        union.extend(archived(dir_b.path()));
        if union.len() == total {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(union.len(), total, "readings skipped across the rebalance; B's log:\n{}", b.log());
}

//! HJ 212 packets from real data loggers, published on MQTT, to readings and alerts.
//! Packets: `ingest/tests/data/hj212_public_packets.tsv` (see its source note there).

mod support;

use std::time::Duration;
use support::{Mosquitto, Tidewatch};

const PACKETS: &str = include_str!("../ingest/tests/data/hj212_public_packets.tsv");

fn packet(i: usize) -> String {
    PACKETS.lines().nth(i).unwrap().split('\t').nth(1).unwrap().to_owned()
}

const STATIONS: &str = r#"
[[station]]
id = "JLYP01_AIR01_0001"
name = "Air station"
domain = "environment"
location = [125.3, 43.9]
region = "220100"

[[station]]
id = "ZLDSZ20210127"
name = "Water station"
domain = "environment"
location = [120.1, 30.2]
region = "330100"
"#;

const RULES: &str = r#"
[[rule]]
id = "air.pm25"
select = { quantity = "pm25" }
kind = "threshold"
levels = [{ severity = "yellow", above = 10 }, { severity = "orange", above = 50 }]
"#;

#[test]
fn hj212_packets_on_mqtt_become_readings_dead_letters_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let routes = "[[mqtt.route]]\nname = \"hj212\"\nfilter = \"hj212/#\"\nformat = \"hj212\"\n";
    // No lateness, and a source silent for a second lets event time move on, so the last
    // packet's readings are evaluated without waiting for newer ones.
    let engine = "workers = 2\nallowed_lateness = \"0s\"\nidle_source_timeout = \"1s\"";
    let tidewatch = Tidewatch::start_with_routes(&dir.path().join("app"), broker.port, STATIONS, RULES, engine, routes);

    // Oldest first: the 2021 water packet, a command, a packet with a bad CRC, then 2022 air data.
    broker.publish_lines("hj212/loggers", &[packet(10), packet(0), packet(3), packet(1)]);

    // 11 water readings (3 of them raw quantities: codes outside the table) + 11 air
    // readings; the packet with a bad CRC is a dead letter.
    tidewatch.wait_until("readings and dead letters", Duration::from_secs(30), |h| {
        h["readings"] == 22 && h["dead_letters"] == 1
    });
    tidewatch
        .wait_until("the PM2.5 alert", Duration::from_secs(20), |_| !tidewatch.json_lines("alerts.jsonl").is_empty());
    let alerts = tidewatch.json_lines("alerts.jsonl");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["station"], "JLYP01_AIR01_0001");
    assert_eq!(alerts[0]["transition"], "fire");
    assert_eq!(alerts[0]["severity"], "yellow");
    assert_eq!(alerts[0]["value"], 14.0);
    assert_eq!(alerts[0]["event_time"], "2022-05-13T08:26:00.000Z");

    let dead = tidewatch.json_lines("dead_letters.jsonl");
    let messages: Vec<&str> = dead.iter().map(|d| d["message"].as_str().unwrap()).collect();
    assert!(
        messages.iter().any(|m| m.contains("CRC mismatch") && m.contains("data segment gives 2D00")),
        "{messages:?}"
    );
    assert_eq!(messages.len(), 1, "{messages:?}");
    let metrics =
        reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", tidewatch.http)).unwrap().text().unwrap();
    assert!(metrics.contains("tidewatch_readings_total{source=\"mqtt/hj212\"} 22"), "{metrics}");
}

//! `tidewatch demo`: the README's first command, end to end with the embedded broker.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_fires_alerts_serves_them_and_stops_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let http = support::free_port();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
        .args(["demo", "--duration", "20s", "--speed", "40ms", "--http", &format!("127.0.0.1:{http}"), "--out"])
        .arg(dir.path())
        .env("TIDEWATCH_ADMIN_PASSWORD", support::ADMIN_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // While it runs, the API serves open alerts.
    let mut seen_open = false;
    while started.elapsed() < Duration::from_secs(18) && !seen_open {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(resp) = reqwest::blocking::get(format!("http://127.0.0.1:{http}/api/alerts")) {
            let alerts: serde_json::Value = resp.json().unwrap();
            seen_open = alerts.as_array().is_some_and(|a| !a.is_empty());
        }
    }
    // Its rules are built in: there are no files to reload (409, as the OpenAPI description says).
    let reload = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{http}/api/rules/reload"))
        .basic_auth("admin", Some(support::ADMIN_PASSWORD))
        .send()
        .unwrap();
    assert_eq!(reload.status(), 409);
    let reason: serde_json::Value = reload.json().unwrap();
    assert!(reason["reason"].as_str().unwrap().contains("built into the binary"), "{reason}");
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    assert!(seen_open, "no open alert was served during the demo");
    assert!(started.elapsed() < Duration::from_secs(40), "the demo did not stop by itself");

    // Alerts were printed and written: water-level alerts reach red somewhere.
    assert!(stdout.contains("[water.level.warning]"), "{stdout}");
    let alerts: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(alerts.iter().any(|a| a["rule"] == "water.level.warning" && a["severity"] == "red"), "{alerts:?}");
    assert!(alerts.iter().any(|a| a["rule"] == "rain.1h.heavy"), "{alerts:?}");
    // The HJ 212 loggers' episode: PM2.5 above 75 for an hour, dissolved oxygen below 5.
    let fired: Vec<String> =
        alerts.iter().map(|a| format!("{} {} {}", a["rule"], a["station"], a["severity"])).collect();
    assert!(alerts.iter().any(|a| a["rule"] == "air.pm25.high" && a["station"] == "AQ-HZ-XX"), "{fired:?}");
    assert!(alerts.iter().any(|a| a["rule"] == "water.do.low" && a["severity"] == "yellow"), "{fired:?}");
    // The simulator's injected faults became dead letters with reasons.
    let dead = std::fs::read_to_string(dir.path().join("dead_letters.jsonl")).unwrap();
    for reason in ["unknown_station", "undecodable", "out_of_range"] {
        assert!(dead.contains(&format!("\"kind\":\"{reason}\"")), "no {reason} dead letter in {dead}");
    }
    assert!(!dead.contains("\"kind\":\"late\""), "the simulator's in-order feed produced late readings: {dead}");
}

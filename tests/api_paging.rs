//! `GET /api/alerts` pages instead of truncating: a total count, and a next link while there
//! are more.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use support::{Mosquitto, Tidewatch};

const RULES: &str = r#"
[[rule]]
id = "level"
select = { quantity = "water_level" }
kind = "threshold"
levels = [{ severity = "yellow", above = "station.warning_level" }, { severity = "red", above = 20 }]
"#;

#[test]
fn alerts_are_listed_a_page_at_a_time_with_a_total_and_a_next_link() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let stations: String = (0..25)
        .map(|s| {
            format!("[[station]]\nid = \"P{s:02}\"\nname = \"P{s:02}\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"330100\"\nattributes = {{ warning_level = 15.0 }}\n")
        })
        .collect();
    let engine = "workers = 1\nallowed_lateness = \"1m\"\nidle_source_timeout = \"1h\"";
    let mut tidewatch = Tidewatch::start(&dir.path().join("app"), broker.port, &stations, RULES, engine);
    let t = chrono::Utc::now().timestamp_millis() - 3_600_000;
    // 25 alerts: five red, twenty yellow.
    let lines: Vec<String> = (0..25)
        .map(|s| {
            let value = if s % 5 == 0 { 25.0 } else { 16.0 };
            json!({"station": format!("P{s:02}"), "quantity": "water_level", "value": value, "time": t + s * 1000})
                .to_string()
        })
        .collect();
    broker.publish_lines("sensors/water", &lines);
    tidewatch.wait_until("25 open alerts", Duration::from_secs(30), |h| h["open_alerts"] == 25);

    let client = reqwest::blocking::Client::new();
    let mut url = format!("http://127.0.0.1:{}/api/alerts?limit=10", tidewatch.http);
    let mut pages = Vec::new();
    loop {
        let response = client.get(&url).send().unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(headers["x-total-count"], "25");
        let page: Vec<serde_json::Value> = response.json().unwrap();
        pages.push(page);
        match headers.get("link") {
            Some(link) => {
                let link = link.to_str().unwrap();
                let path = link.strip_prefix('<').and_then(|l| l.split_once(">; rel=\"next\"")).unwrap().0;
                assert!(path.contains(&format!("after={}", headers["x-next-cursor"].to_str().unwrap())), "{link}");
                url = format!("http://127.0.0.1:{}{path}", tidewatch.http);
            }
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    let all: Vec<&serde_json::Value> = pages.iter().flatten().collect();
    let ids: BTreeSet<i64> = all.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 25, "every alert once");
    // Most severe first across pages.
    assert!(all[..5].iter().all(|a| a["severity"] == "red"), "{all:#?}");
    assert!(all[5..].iter().all(|a| a["severity"] == "yellow"));
    // Filters carry over to the next page.
    let yellow =
        client.get(format!("http://127.0.0.1:{}/api/alerts?severity=red&limit=2", tidewatch.http)).send().unwrap();
    assert_eq!(yellow.headers()["x-total-count"], "5");
    assert!(yellow.headers()["link"].to_str().unwrap().contains("severity=red"));
    // A broken cursor is a JSON error.
    let bad = client.get(format!("http://127.0.0.1:{}/api/alerts?after=nonsense", tidewatch.http)).send().unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<serde_json::Value>().unwrap()["error"], "bad cursor");
    tidewatch.stop();
}

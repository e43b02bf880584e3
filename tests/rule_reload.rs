//! Rule files edited while Tidewatch runs, against the real binary and Mosquitto: a broken
//! file is rejected with its positions and the rules in force stay; a changed rule takes over
//! the alert its predecessor had open and clears it by its own levels, also across a restart
//! from the checkpoint; a removed rule's alert resolves; an analyst reloads on request and
//! SIGHUP reloads too.

mod support;

use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{json, Value};
use support::{Mosquitto, Tidewatch, LX_STATION, LX_YELLOW_RULE};

const WAIT: Duration = Duration::from_secs(20);

fn publish(broker: &Mosquitto, value: f64, minutes_ago: i64) {
    let t = chrono::Utc::now().timestamp_millis() - minutes_ago * 60_000;
    let reading = json!({"station": "LX", "quantity": "water_level", "value": value, "time": t});
    broker.publish_lines("sensors/water", &[reading.to_string()]);
}

fn rules_in_force(t: &Tidewatch) -> Value {
    t.get("/api/rules").json().unwrap()
}

/// Waits until the last reload matches `ready`; returns it.
fn wait_reload(t: &Tidewatch, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let last = rules_in_force(t)["last_reload"].clone();
        if ready(&last) {
            return last;
        }
        assert!(std::time::Instant::now() < deadline, "last reload: {last:#}\nlog:\n{}", t.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alert(t: &Tidewatch, rule: &str) -> Value {
    let all: Vec<Value> = t.get("/api/alerts?state=all").json().unwrap();
    all.into_iter().find(|a| a["rule"] == rule).unwrap_or(Value::Null)
}

#[test]
fn edited_rule_files_are_checked_then_taken_without_losing_alerts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let routes = "[[mqtt.route]]\nname = \"json\"\nfilter = \"sensors/#\"\nformat = \"json\"\n\
                  [state]\ndir = \"state\"\ncheckpoint_interval = \"300ms\"\n";
    let engine = "workers = 2\nallowed_lateness = \"1m\"\nidle_source_timeout = \"1h\"";
    let mut t = Tidewatch::start_with_routes(&app, broker.port, LX_STATION, LX_YELLOW_RULE, engine, routes);
    t.add_user("li", "analyst", "analyst-pw");
    t.add_user("wang", "viewer", "viewer-pw");
    let in_force = rules_in_force(&t);
    assert_eq!(in_force["rules"][0]["id"], "level", "{in_force:#}");
    assert!(in_force["last_reload"].is_null());

    // Yellow above the warning level (28 m).
    publish(&broker, 29.0, 30);
    t.wait_until("the yellow alert", WAIT, |h| h["open_alerts"] == 1);
    let rule_file = app.join("rules/test.toml");

    // A broken file: rejected with where and why, the rules in force stay.
    std::fs::write(&rule_file, LX_YELLOW_RULE.replace("kind = \"threshold\"", "kind = \"treshold\"")).unwrap();
    let last = wait_reload(&t, |r| r["outcome"] == "rejected");
    assert_eq!(last["trigger"], "file change");
    let error = last["errors"][0].as_str().unwrap();
    assert!(error.contains("rules/test.toml:5:") && error.contains("treshold"), "{last:#}");
    // Said once, not at every look at the files.
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(t.log().matches("rule files rejected; the rules in force stay").count(), 1, "{}", t.log());
    assert_eq!(rules_in_force(&t)["rules"][0]["id"], "level");

    // The level changes to 30 m: the rule starts afresh, holding the yellow alert, and the
    // next reading (29 m, below the new level) resolves it.
    let fingerprint = rules_in_force(&t)["rules"][0]["fingerprint"].clone();
    let changed = LX_YELLOW_RULE.replace("above = \"station.warning_level\"", "above = 30");
    std::fs::write(&rule_file, &changed).unwrap();
    let last = wait_reload(&t, |r| r["outcome"] == "applied");
    assert_eq!(last["changed"], json!(["level"]), "{last:#}");
    assert_eq!(last["engine"]["restarted"], 1, "{last:#}");
    assert_ne!(rules_in_force(&t)["rules"][0]["fingerprint"], fingerprint);
    assert_eq!(alert(&t, "level")["state"], "firing", "the alert is not dropped by the reload");

    // Across a restart from the checkpoint taken after the reload: the new rule still holds
    // the alert (its state was recorded under the new rule's fingerprint, not discarded).
    std::thread::sleep(Duration::from_millis(1200));
    t.stop();
    t.respawn();
    assert!(t.log().contains("reading log replayed") || t.log().contains("checkpoint"), "{}", t.log());
    publish(&broker, 29.0, 29);
    t.wait_until("the alert resolved by the new rule", WAIT, |h| h["open_alerts"] == 0);
    let resolved = alert(&t, "level");
    assert_eq!(resolved["state"], "resolved", "{resolved:#}");
    let last_change = resolved["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last_change["happening"], "resolve", "{resolved:#}");

    // An analyst replaces the rule by another one and asks for the reload at once.
    let client = Client::new();
    let url = format!("http://127.0.0.1:{}/api/rules/reload", t.http);
    let red = LX_YELLOW_RULE.replace("id = \"level\"", "id = \"level.red\"").replace("yellow", "red");
    std::fs::write(&rule_file, &red).unwrap();
    let viewer = client.post(&url).basic_auth("wang", Some("viewer-pw")).send().unwrap();
    assert_eq!(viewer.status(), 403);
    let answer = client.post(&url).basic_auth("li", Some("analyst-pw")).send().unwrap();
    assert_eq!(answer.status(), 200);
    let report: Value = answer.json().unwrap();
    // (The file watcher may have taken it first: then the request finds it unchanged.)
    if report["outcome"] == "applied" {
        assert_eq!(report["trigger"], "request by li");
        assert_eq!((report["added"].clone(), report["removed"].clone()), (json!(["level.red"]), json!(["level"])));
    } else {
        assert_eq!(report["outcome"], "unchanged", "{report:#}");
        let in_force = rules_in_force(&t);
        assert_eq!(in_force["rules"][0]["id"], "level.red", "{in_force:#}");
    }
    publish(&broker, 29.0, 28);
    t.wait_until("the new rule's red alert", WAIT, |h| h["open_alerts"] == 1);
    assert_eq!(alert(&t, "level.red")["severity"], "red");

    // A broken file asked for: 422 with the position, and the rules in force stay.
    std::fs::write(&rule_file, "[[rule]]\nid = \"x\"\nkind = \"threshold\"\n").unwrap();
    let answer = client.post(&url).basic_auth("li", Some("analyst-pw")).send().unwrap();
    assert_eq!(answer.status(), 422);
    let error: Value = answer.json().unwrap();
    assert!(error["reason"].as_str().unwrap().contains("rules/test.toml:2:6: rule has no `levels`"), "{error:#}");
    assert_eq!(rules_in_force(&t)["rules"][0]["id"], "level.red");

    // SIGHUP reads the files too (the red rule back as it was: nothing to change).
    std::fs::write(&rule_file, &red).unwrap();
    wait_reload(&t, |r| r["outcome"] == "unchanged" || r["outcome"] == "applied");
    t.signal("HUP");
    let last = wait_reload(&t, |r| r["trigger"] == "SIGHUP");
    assert_eq!(last["outcome"], "unchanged", "{last:#}");

    // Removing the rule resolves its alert.
    std::fs::write(&rule_file, changed.replace("id = \"level\"", "id = \"other\"")).unwrap();
    let last = wait_reload(&t, |r| r["outcome"] == "applied" && r["removed"] == json!(["level.red"]));
    assert_eq!(last["engine"]["resolved"], 1, "{last:#}");
    t.wait_until("the removed rule's alert resolved", WAIT, |h| h["open_alerts"] == 0);
    let gone = alert(&t, "level.red");
    assert_eq!(gone["state"], "resolved", "{gone:#}");
    let metrics = t.get("/metrics").text().unwrap();
    assert!(metrics.contains("tidewatch_rule_reloads_total{outcome=\"rejected\"}"), "{metrics}");
    assert!(metrics.contains("tidewatch_rule_reloads_total{outcome=\"applied\"}"), "{metrics}");
    t.stop();
}

//! The alert workflow end to end: readings through a real Mosquitto into alerts that reach
//! real servers (an HTTP server recording every request, an SMTP server, the MQTT broker),
//! are acknowledged, escalated and silenced over the HTTP API, and survive `kill -9`.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::TimeZone;
use serde_json::{json, Value};
use support::{free_port, Mosquitto, Recorder, Tidewatch};

const MIN: i64 = 60_000;

const STATIONS: &str = r#"
[[station]]
id = "QT-LX"
name = "兰溪"
domain = "water"
location = [119.46, 29.21]
region = "330781"
attributes = { warning_level = 28.0 }
"#;

const RULES: &str = r#"
[[rule]]
id = "water.level"
title = "{station.name} 水位超警"
select = { quantity = "water_level" }
kind = "threshold"
levels = [
  { severity = "yellow", above = "station.warning_level" },
  { severity = "red", above = 30.0 },
]
"#;

fn engine() -> &'static str {
    "workers = 1\nallowed_lateness = \"1m\"\nidle_source_timeout = \"1h\""
}

fn t0() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    (now - 2 * 3_600_000) / MIN * MIN
}

/// Readings of 兰溪 one minute apart from `start`, and two more so the watermark passes them.
fn levels(start: i64, values: &[f64]) -> Vec<String> {
    let last = *values.last().unwrap();
    values
        .iter()
        .chain([last, last].iter())
        .enumerate()
        .map(|(i, v)| {
            json!({"station": "QT-LX", "quantity": "water_level", "value": v, "unit": "m", "time": start + i as i64 * MIN})
                .to_string()
        })
        .collect()
}

fn beijing(ms: i64) -> String {
    chrono_tz::Asia::Shanghai.timestamp_millis_opt(ms).unwrap().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// An SMTP server (Python's aiosmtpd) that stores what it receives in a Maildir.
struct SmtpSink {
    port: u16,
    maildir: std::path::PathBuf,
    child: std::process::Child,
}

impl SmtpSink {
    fn start(dir: &std::path::Path) -> SmtpSink {
        let port = free_port();
        let maildir = dir.join("maildir");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd: run scripts/test.sh, which installs it");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "aiosmtpd did not start (pip install aiosmtpd)");
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink { port, maildir, child }
    }

    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else { return Vec::new() };
        entries.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn duty(recorder: &Recorder, smtp: u16, broker: u16) -> String {
    format!(
        r#"
broadcast = ["alert-topic"]

[escalation]
ack_within = {{ yellow = "3s", red = "3s", orange = "3s", blue = "3s" }}

[channel.hook]
kind = "webhook"
url = "{hook}"
[channel.robot]
kind = "dingtalk"
url = "{robot}"
secret = "this is secret"
[channel.wecom]
kind = "wecom"
url = "{wecom}"
[channel.sms]
kind = "sms"
url = "{sms}"
headers = {{ x-api-key = "k1" }}
notify_on = ["fire", "escalate", "reminder"]
[channel.mail]
kind = "email"
smtp = "127.0.0.1:{smtp}"
tls = "none"
from = "Tidewatch <alerts@tidewatch.test>"
notify_on = ["fire"]
[channel.alert-topic]
kind = "mqtt"
broker = "127.0.0.1:{broker}"
topic = "alerts/{{region}}/{{severity}}"

[[member]]
id = "zhang"
name = "张伟"
phone = "13800000001"
email = "zhang@duty.test"
channels = ["sms", "mail"]
[[member]]
id = "chief"
name = "王科长"
phone = "13800000009"
channels = ["sms"]

[[team]]
id = "lanxi"
name = "兰溪市防汛值班"
regions = ["330781"]
domains = ["water"]
channels = ["hook", "robot", "wecom"]
escalate_to = ["chief"]
  [[team.shift]]
  start = "00:00"
  end = "00:00"
  members = ["zhang"]
"#,
        hook = recorder.url("/hook"),
        robot = recorder.url("/robot/send?access_token=T0KEN"),
        wecom = recorder.url("/cgi-bin/webhook/send?key=K3Y"),
        sms = recorder.url("/sms"),
    )
}

fn start(dir: &std::path::Path, broker: &Mosquitto, duty: &str, extra: &str) -> Tidewatch {
    std::fs::write(dir.join("duty.toml"), duty).unwrap();
    let routes = format!(
        "[[mqtt.route]]\nname = \"json\"\nfilter = \"sensors/#\"\nformat = \"json\"\n\
         [alerting]\nstore = \"sqlite://alerts.db\"\nduty = \"duty.toml\"\ngroup_wait = \"1s\"\nmax_retry = \"2s\"\n{extra}"
    );
    Tidewatch::start_with_routes(dir, broker.port, STATIONS, RULES, engine(), &routes)
}

/// A roster whose one team (the default) is told through one webhook at `url`.
fn hook_roster(url: &str) -> String {
    format!(
        "[channel.hook]\nkind = \"webhook\"\nurl = \"{url}\"\n\
         [[member]]\nid = \"zhang\"\nname = \"张伟\"\n\
         [[team]]\nid = \"lanxi\"\nname = \"兰溪\"\ndefault = true\nchannels = [\"hook\"]\n"
    )
}

/// Subscribes with the independent `mosquitto_sub` client.
fn subscribe(port: u16, topic: &str, count: usize) -> std::process::Child {
    Command::new("mosquitto_sub")
        .args(["-p", &port.to_string(), "-t", topic, "-q", "1", "-C", &count.to_string(), "-W", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn metric(tidewatch: &Tidewatch, line_start: &str) -> f64 {
    let text = tidewatch.get("/metrics").text().unwrap();
    text.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

#[test]
fn notifications_reach_every_channel_escalate_until_acknowledged_and_respect_silences() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let recorder = Recorder::start();
    let smtp = SmtpSink::start(dir.path());
    let app = dir.path().join("app");
    let tidewatch =
        start(&app, &broker, &duty(&recorder, smtp.port, broker.port), "console_url = \"http://console.test\"\n");
    let topic = subscribe(broker.port, "alerts/#", 1);
    std::thread::sleep(Duration::from_millis(300));

    let t0 = t0();
    broker.publish_lines("sensors/water", &levels(t0, &[28.5, 28.6]));

    // The fire goes to the team's group channels, the broadcast topic, and the officer on
    // duty by SMS and e-mail — each exactly as the far end expects it.
    let headline = "【黄色预警】兰溪（QT-LX）水位 28.50 m，高于阈值 28.00 m";
    let text = format!(
        "{headline}\n规则：water.level（兰溪 水位超警）\n时间：{}（北京时间）\n区域：330781\n详情：http://console.test/alerts/1",
        beijing(t0)
    );
    let hook = recorder.wait_for("/hook", 1, Duration::from_secs(30));
    let body = &hook[0].body;
    assert_eq!(body["source"], "tidewatch");
    assert_eq!(body["title"], headline);
    // Every message ends with its notification's stable id (the outbox row): one per channel.
    let notification_ids: Vec<i64> = tidewatch.get("/api/alerts/1").json::<Value>().unwrap()["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    let ends_with_ref = |text: &str, separator: &str| -> String {
        let (body, reference) =
            text.rsplit_once(&format!("{separator}编号：N")).unwrap_or_else(|| panic!("no ref: {text}"));
        let (id, rest) = reference.split_once('\n').unwrap_or((reference, ""));
        assert!(notification_ids.contains(&id.parse().unwrap()), "{id} is not one of {notification_ids:?}");
        format!("{body}{}{rest}", if rest.is_empty() { "" } else { "\n" })
    };
    assert_eq!(ends_with_ref(body["text"].as_str().unwrap(), "\n"), text);
    assert_eq!(body["notification_ids"][0], body["notices"][0]["notification_id"]);
    assert_eq!(
        body["recipients"],
        json!([{"id": "zhang", "name": "张伟", "phone": "13800000001", "email": "zhang@duty.test"}])
    );
    let notice = &body["notices"][0];
    assert_eq!(
        (&notice["alert_id"], &notice["transition"], &notice["severity"], &notice["station"], &notice["value"]),
        (&json!(1), &json!("fire"), &json!("yellow"), &json!("QT-LX"), &json!(28.5))
    );

    let robot = recorder.wait_for("/robot/send", 1, Duration::from_secs(5));
    let query: std::collections::HashMap<String, String> =
        reqwest::Url::parse(&format!("http://x{}", robot[0].uri)).unwrap().query_pairs().into_owned().collect();
    assert_eq!(query["access_token"], "T0KEN");
    let timestamp: i64 = query["timestamp"].parse().unwrap();
    // query_pairs decodes; the signature is checked against the published vector in a unit test.
    let expected_sign = tidewatch_alerting::notify::dingtalk_sign("this is secret", timestamp);
    assert_eq!(
        query["sign"],
        percent_encoding::percent_decode_str(&expected_sign).decode_utf8().unwrap(),
        "signed as DingTalk checks it"
    );
    let markdown_body = format!(
        "### {headline}\n\n- 规则：water.level（兰溪 水位超警）\n- 时间：{}（北京时间）\n- 区域：330781\n\n[详情](http://console.test/alerts/1)",
        beijing(t0)
    );
    let mut robot_body = robot[0].body.clone();
    let robot_text = ends_with_ref(robot_body["markdown"]["text"].as_str().unwrap(), "\n\n");
    robot_body["markdown"]["text"] = json!(robot_text);
    assert_eq!(
        robot_body,
        json!({
            "msgtype": "markdown",
            "markdown": {"title": headline, "text": format!("{markdown_body}\n\n@13800000001")},
            "at": {"atMobiles": ["13800000001"], "isAtAll": false},
        })
    );
    let wecom = recorder.wait_for("/cgi-bin/webhook/send?key=K3Y", 1, Duration::from_secs(5));
    let wecom_text = ends_with_ref(wecom[0].body["markdown"]["content"].as_str().unwrap(), "\n\n");
    assert_eq!(wecom_text, format!("{markdown_body}\n\n> 值班 / on duty: 张伟 13800000001"));
    let sms = recorder.wait_for("/sms", 1, Duration::from_secs(5));
    assert_eq!(sms[0].body["phones"], json!(["13800000001"]));
    assert_eq!(ends_with_ref(sms[0].body["text"].as_str().unwrap(), "\n"), text);

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while smtp.messages().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no e-mail arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mail = &smtp.messages()[0];
    assert!(mail.contains("To: =?utf-8?b?") || mail.contains("To: 张伟"), "{mail}");
    assert!(mail.contains("<zhang@duty.test>"), "{mail}");
    assert!(mail.contains("From: Tidewatch <alerts@tidewatch.test>"), "{mail}");
    assert!(mail.contains("Subject: =?utf-8?"), "a Chinese subject is encoded: {mail}");

    let published = topic.wait_with_output().unwrap();
    let message: Value = serde_json::from_slice(&published.stdout).unwrap();
    assert_eq!(
        (&message["alert_id"], &message["region"], &message["severity"]),
        (&json!(1), &json!("330781"), &json!("yellow"))
    );

    // Nobody acknowledges within 3 s: the alert climbs to the section chief, by SMS too.
    let sms = recorder.wait_for("/sms", 2, Duration::from_secs(15));
    assert_eq!(sms[1].body["phones"], json!(["13800000001", "13800000009"]));
    assert!(
        sms[1].body["text"].as_str().unwrap().starts_with("【未确认·第 1 级通知】兰溪（QT-LX）水位黄色预警 28.50 m"),
        "{}",
        sms[1].body
    );

    // Acknowledging stops the escalation; errors are JSON with a reason.
    let ack = tidewatch.post("/api/alerts/1/ack", &json!({"by": "张伟", "note": "已到现场"}));
    assert_eq!(ack.status(), 200);
    let acked: Value = ack.json().unwrap();
    assert_eq!((&acked["state"], &acked["acknowledged"]["by"]), (&json!("acknowledged"), &json!("张伟 (via admin)")));
    let again = tidewatch.post("/api/alerts/1/ack", &json!({"by": "李娜"}));
    assert_eq!(again.status(), 409);
    assert_eq!(again.json::<Value>().unwrap()["reason"], "alert 1 is already acknowledged by 张伟 (via admin)");
    let missing = tidewatch.post("/api/alerts/99/ack", &json!({"by": "李娜"}));
    assert_eq!(missing.status(), 404);
    let bad = tidewatch.post("/api/alerts/1/ack", &json!({"who": "李娜"}));
    assert_eq!(bad.status(), 422);
    assert!(bad.json::<Value>().unwrap()["reason"].as_str().unwrap().contains("unknown field `who`"));
    let sms_after_ack = recorder.to("/sms").len();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(recorder.to("/sms").len(), sms_after_ack, "no reminders once acknowledged");

    // A silence holds back the red escalation's notifications; the alert still changes.
    let silence = tidewatch.post(
        "/api/silences",
        &json!({"station": "QT-LX", "ends_at": chrono::Utc::now() + chrono::Duration::hours(1), "created_by": "李娜", "comment": "gauge maintenance"}),
    );
    assert_eq!(silence.status(), 201);
    let silence: Value = silence.json().unwrap();
    let hooks_before = recorder.to("/hook").len();
    broker.publish_lines("sensors/water", &levels(t0 + 5 * MIN, &[30.4, 30.5]));
    tidewatch.wait_until("the red escalation", Duration::from_secs(20), |_| {
        tidewatch.json_lines("alerts.jsonl").iter().any(|n| n["severity"] == "red")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(recorder.to("/hook").len(), hooks_before, "silenced");
    assert_eq!(metric(&tidewatch, "tidewatch_notifications_suppressed_total"), 1.0);

    // The detail has the evidence, the whole history and every notification attempt.
    let detail: Value = tidewatch.get("/api/alerts/1").json().unwrap();
    assert_eq!(detail["severity"], "red");
    assert_eq!(detail["state"], "acknowledged");
    assert!(detail["evidence"]["summary"].as_str().unwrap().starts_with("water_level 30.40 m above 30.00 m since"));
    let history: Vec<&str> =
        detail["history"].as_array().unwrap().iter().map(|h| h["happening"].as_str().unwrap()).collect();
    assert_eq!(history, ["fire", "reminder", "acknowledge", "escalate", "suppressed"]);
    let notifications = detail["notifications"].as_array().unwrap();
    assert!(notifications.iter().all(|n| n["attempt_log"][0]["outcome"] == "delivered"), "{notifications:#?}");
    assert!(notifications.iter().any(|n| n["channel"] == "mail" && n["status"] == "sent"));
    // The link in the messages leads to the same alert.
    assert_eq!(tidewatch.get("/alerts/1").json::<Value>().unwrap()["id"], 1);

    assert_eq!(tidewatch.delete(&format!("/api/silences/{}", silence["id"])).status(), 204);
    assert_eq!(tidewatch.delete(&format!("/api/silences/{}", silence["id"])).status(), 404);
    let resolved = tidewatch.post("/api/alerts/1/resolve", &json!({"by": "张伟", "note": "水位回落"}));
    assert_eq!(resolved.json::<Value>().unwrap()["state"], "resolved");
    assert_eq!(tidewatch.get("/api/alerts").json::<Value>().unwrap(), json!([]));
    let all: Value = tidewatch.get("/api/alerts?state=resolved").json().unwrap();
    assert_eq!(all[0]["id"], 1);
    assert_eq!(tidewatch.get("/api/alerts?state=sleeping").status(), 400);

    // The OpenAPI description covers every endpoint and every schema it refers to.
    let spec: Value = tidewatch.get("/api/openapi.json").json().unwrap();
    let paths: Vec<&String> = spec["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/api/alerts",
            "/api/alerts/{id}",
            "/api/alerts/{id}/ack",
            "/api/alerts/{id}/resolve",
            "/api/events",
            "/api/input/complete",
            "/api/rules",
            "/api/rules/reload",
            "/api/session",
            "/api/silences",
            "/api/silences/{id}",
            "/api/stations",
            "/api/tokens/{id}",
            "/api/users",
            "/api/users/{name}",
            "/api/users/{name}/tokens"
        ]
    );
    let text = spec.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(spec["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
    }
}

#[test]
fn a_killed_process_neither_loses_nor_repeats_a_notification() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let recorder = Recorder::start();
    let duty = hook_roster(&recorder.url("/hook"));
    let app = dir.path().join("app");
    // The receiver is down: the notification waits in the outbox, retried.
    recorder.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut tidewatch = start(&app, &broker, &duty, "");
    let t0 = t0();
    broker.publish_lines("sensors/water", &levels(t0, &[28.5, 28.6]));
    tidewatch.wait_until("a failed delivery", Duration::from_secs(30), |_| {
        metric(&tidewatch, "tidewatch_notification_messages_total{channel=\"hook\",outcome=\"failed\"}") >= 1.0
    });
    let open_before: Value = tidewatch.get("/api/alerts").json().unwrap();
    assert_eq!(open_before.as_array().unwrap().len(), 1);

    tidewatch.kill9();
    recorder.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    tidewatch.respawn();

    // Still open after the crash, and the notification that was due arrives — once.
    let open_after: Value = tidewatch.get("/api/alerts").json().unwrap();
    assert_eq!(open_after.as_array().unwrap()[0]["id"], open_before[0]["id"]);
    assert_eq!(open_after[0]["state"], "firing");
    let delivered = recorder.wait_for("/hook", 1, Duration::from_secs(30));
    assert_eq!(delivered[0].body["notices"][0]["transition"], "fire");
    let ids = delivered[0].body["notification_ids"].clone();
    assert_eq!(delivered[0].body["notices"][0]["notification_id"], ids[0], "each notice carries its outbox id");
    let detail: Value = tidewatch.get(&format!("/api/alerts/{}", open_after[0]["id"])).json().unwrap();
    let log = &detail["notifications"][0]["attempt_log"];
    assert!(log.as_array().unwrap().len() >= 2, "{log}");
    assert_eq!(log[0]["outcome"], "failed");
    assert!(log[0]["detail"].as_str().unwrap().contains("HTTP 500"), "{log}");

    // The same readings again (the engine starts afresh): one open alert, nothing new to say.
    broker.publish_lines("sensors/water", &levels(t0 + 10 * MIN, &[28.5, 28.6]));
    tidewatch.wait_until("the replayed readings", Duration::from_secs(20), |h| h["readings"] == 4);

    // Kill again after delivery: what was delivered is not sent again.
    std::thread::sleep(Duration::from_secs(2));
    tidewatch.kill9();
    tidewatch.respawn();
    std::thread::sleep(Duration::from_secs(4));
    let all = recorder.to("/hook");
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].body["notification_ids"], ids);
    let open: Value = tidewatch.get("/api/alerts").json().unwrap();
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert!(tidewatch.log().contains("open alerts restored from the store"));
    tidewatch.stop();
}

/// A notification that failed a few times waits longer and longer between retries; a
/// restart must not keep it waiting for the retry time computed before: once the receiver
/// is back, it goes out at once.
#[test]
fn a_notification_that_failed_before_a_restart_goes_out_at_once_when_the_receiver_is_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    let recorder = Recorder::start();
    let duty = hook_roster(&recorder.url("/hook"));
    recorder.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let app = dir.path().join("app");
    std::fs::write(app.join("duty.toml"), &duty).unwrap();
    // The default longest wait between retries (5 minutes), unlike the other tests.
    let routes = "[[mqtt.route]]\nname = \"json\"\nfilter = \"sensors/#\"\nformat = \"json\"\n\
                  [alerting]\nstore = \"sqlite://alerts.db\"\nduty = \"duty.toml\"\ngroup_wait = \"1s\"\nmax_retry = \"5m\"\n";
    let mut tidewatch = Tidewatch::start_with_routes(&app, broker.port, STATIONS, RULES, engine(), routes);
    broker.publish_lines("sensors/water", &levels(t0(), &[28.5, 28.6]));
    // Three failures: at once, after 5 s and after 10 s more; the next is 20 s away.
    tidewatch.wait_until("three failed deliveries", Duration::from_secs(60), |_| {
        metric(&tidewatch, "tidewatch_notification_messages_total{channel=\"hook\",outcome=\"failed\"}") >= 3.0
    });
    tidewatch.kill9();
    recorder.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let restarted = std::time::Instant::now();
    tidewatch.respawn();
    let delivered = recorder.wait_for("/hook", 1, Duration::from_secs(30));
    let waited = restarted.elapsed();
    assert!(waited < Duration::from_secs(10), "delivered {waited:?} after the restart, not at once");
    assert_eq!(delivered[0].body["notices"][0]["transition"], "fire");
    assert!(tidewatch.log().contains("retrying notifications that failed before the restart now"));
    tidewatch.stop();
}

/// SIGTERM ends the process within `shutdown_timeout` even when a far end never answers
/// and a `for` timer is pending after a quiet spell; what was not sent stays in the outbox.
#[test]
fn a_stop_finishes_in_bounded_time_whatever_hangs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    // A webhook that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let duty = hook_roster(&format!("http://127.0.0.1:{port}/hook"));
    let app = dir.path().join("app");
    std::fs::write(app.join("duty.toml"), &duty).unwrap();
    let routes = "[[mqtt.route]]\nname = \"json\"\nfilter = \"sensors/#\"\nformat = \"json\"\n\
                  [alerting]\nstore = \"sqlite://alerts.db\"\nduty = \"duty.toml\"\ngroup_wait = \"0s\"\n";
    let engine = "workers = 2\nallowed_lateness = \"1m\"\nidle_source_timeout = \"1s\"\nshutdown_timeout = \"3s\"";
    let mut tidewatch = Tidewatch::start_with_routes(&app, broker.port, STATIONS, RULES, engine, routes);
    // Fires (the send hangs), then a reading above the level again: its `for` is pending.
    broker.publish_lines("sensors/water", &levels(t0(), &[28.5, 28.6]));
    tidewatch.wait_until("the alert", Duration::from_secs(30), |h| h["open_alerts"] == 1);
    std::thread::sleep(Duration::from_secs(2)); // a quiet spell: the sources go idle
    let started = std::time::Instant::now();
    let status = tidewatch.terminate();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "stopping took {took:?}");
    assert_eq!(status.code(), Some(3), "{}", tidewatch.log());
    assert!(tidewatch.log().contains("shutdown did not finish in time"), "{}", tidewatch.log());
}

//! Secrets never leave: a run with real-looking credentials (a DingTalk robot token and
//! signing secret, a WeCom key, a database password) whose deliveries fail, and every output
//! it has — its log, the API's answers, the metrics, the alerts file — is searched for them.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::{Mosquitto, Tidewatch, LX_STATION as STATIONS, LX_YELLOW_RULE as RULES};

const TOKEN: &str = "a1b2c3d4e5f6SECRETROBOTTOKEN0987";
const SIGNING: &str = "SECsigningSECRET1234567890";
const WECOM_KEY: &str = "wecomKEY-5f1e-SECRET";
const DB_PASSWORD: &str = "Pg-SECRET-password-42";
const DEVICE_PASSWORD: &str = "hj212-SECRET-pw";

fn assert_clean(what: &str, text: &str) {
    for secret in [TOKEN, SIGNING, WECOM_KEY, DB_PASSWORD, DEVICE_PASSWORD] {
        assert!(!text.contains(secret), "{what} leaks {secret}:\n{text}");
    }
}

#[test]
fn no_output_of_a_run_holds_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"));
    // Robots on a port where nothing listens: every delivery fails, quoting its URL.
    let closed = support::free_port();
    let duty = format!(
        "[channel.robot]\nkind = \"dingtalk\"\nurl = \"http://127.0.0.1:{closed}/robot/send?access_token={TOKEN}\"\nsecret = \"{SIGNING}\"\n\
         [channel.wecom]\nkind = \"wecom\"\nurl = \"http://127.0.0.1:{closed}/cgi-bin/webhook/send?key={WECOM_KEY}\"\n\
         [[member]]\nid = \"zhang\"\nname = \"张伟\"\nphone = \"13800000001\"\n\
         [[team]]\nid = \"lanxi\"\nname = \"兰溪\"\ndefault = true\nchannels = [\"robot\", \"wecom\"]\n"
    );
    std::fs::write(app.join("duty.toml"), duty).unwrap();
    let routes = "[[mqtt.route]]\nname = \"json\"\nfilter = \"sensors/#\"\nformat = \"json\"\n\
                  [alerting]\nstore = \"sqlite://alerts.db\"\nduty = \"duty.toml\"\ngroup_wait = \"0s\"\nmax_retry = \"1s\"\n";
    let engine = "workers = 1\nallowed_lateness = \"1m\"\nidle_source_timeout = \"1h\"";
    // The station's device password, too (HJ 212 `PW`).
    let stations = format!("{STATIONS}password = \"{DEVICE_PASSWORD}\"\n");
    let mut tidewatch = Tidewatch::start_with_routes(&app, broker.port, &stations, RULES, engine, routes);
    let t = chrono::Utc::now().timestamp_millis() - 60_000;
    broker.publish_lines(
        "sensors/water",
        &[json!({"station": "LX", "quantity": "water_level", "value": 29.0, "time": t}).to_string()],
    );
    let failed = |t: &Tidewatch| {
        let metrics = t.get("/metrics").text().unwrap();
        metrics.contains("tidewatch_notification_messages_total{channel=\"robot\",outcome=\"failed\"} 2")
            && metrics.contains("tidewatch_notification_messages_total{channel=\"wecom\",outcome=\"failed\"} 2")
    };
    tidewatch.wait_until("failed deliveries on both robots", Duration::from_secs(30), |_| failed(&tidewatch));
    let alerts: Vec<Value> = tidewatch.get("/api/alerts?state=all").json().unwrap();
    let detail = tidewatch.get(&format!("/api/alerts/{}", alerts[0]["id"])).text().unwrap();
    // The attempts were recorded, with what went wrong, and without the credentials.
    assert!(detail.contains("error sending request"), "{detail}");
    assert!(detail.contains("access_token=***"), "{detail}");
    assert_clean("GET /api/alerts/{id}", &detail);
    assert_clean("GET /api/alerts", &serde_json::to_string(&alerts).unwrap());
    assert_clean("/metrics", &tidewatch.get("/metrics").text().unwrap());
    assert_clean("/healthz", &tidewatch.get("/healthz").text().unwrap());
    assert_clean("/api/openapi.json", &tidewatch.get("/api/openapi.json").text().unwrap());
    let stations = tidewatch.get("/api/stations").text().unwrap();
    assert!(stations.contains("\"warning_level\":28.0"), "{stations}");
    assert_clean("GET /api/stations", &stations);
    tidewatch.stop();
    assert_clean("the log", &tidewatch.log());
    assert_clean("alerts.jsonl", &std::fs::read_to_string(app.join("alerts.jsonl")).unwrap_or_default());

    // A database password in the store URL, in either form, on a server that is not there.
    for store in [
        format!("postgres://tidewatch:{DB_PASSWORD}@127.0.0.1:{closed}/tidewatch"),
        format!("postgres://tidewatch@127.0.0.1:{closed}/tidewatch?password={DB_PASSWORD}"),
    ] {
        let config = app.join("pg.toml");
        std::fs::write(
            &config,
            format!(
                "stations = \"stations.toml\"\nrules = [\"rules\"]\n[mqtt]\nbroker = \"127.0.0.1:{}\"\n\
                 [[mqtt.route]]\nname = \"json\"\nfilter = \"sensors/#\"\nformat = \"json\"\n\
                 [http]\nlisten = \"127.0.0.1:0\"\n[alerting]\nstore = \"{store}\"\n",
                broker.port
            ),
        )
        .unwrap();
        let out =
            Command::new(env!("CARGO_BIN_EXE_tidewatch")).args(["run", "--config"]).arg(&config).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("alerting.store postgres://tidewatch"), "{text}");
        assert_clean("a start-up error", &text);
    }
}

//! The embedded broker is not open: users from a credentials file made on first start
//! (readable by its owner only), and Tidewatch's own client id reserved for Tidewatch. An
//! alert-topic channel pointed at it logs in as Tidewatch without a password in the duty file.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{free_port, FirstMessage, Tidewatch, LX_STATION, LX_YELLOW_RULE};

fn publish(port: u16, login: Option<(&str, &str)>, client_id: &str, payload: &str) -> (bool, String) {
    let mut command = Command::new("mosquitto_pub");
    command.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-i",
        client_id,
        "-t",
        "sensors/x",
        "-m",
        payload,
    ]);
    if let Some((user, password)) = login {
        command.args(["-u", user, "-P", password]);
    }
    let out = command.output().expect("mosquitto_pub");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn only_known_users_get_in_and_nobody_takes_tidewatchs_client_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        r#"stations = "stations.toml"
rules = ["rules"]
[mqtt]
embedded_listen = "127.0.0.1:{port}"
embedded_credentials = "secret/mqtt-credentials.toml"
client_id = "tidewatch-e2e"
[[mqtt.route]]
name = "json"
filter = "sensors/#"
format = "json"
[http]
listen = "127.0.0.1:{{http}}"
[alerting]
store = "sqlite://alerts.db"
duty = "duty.toml"
group_wait = "0s"
[output]
console = false
"#
    );
    std::fs::write(
        dir.path().join("duty.toml"),
        format!(
            r#"broadcast = ["alert-topic"]
[channel.alert-topic]
kind = "mqtt"
broker = "127.0.0.1:{port}"
topic = "alerts/{{station}}"
"#
        ),
    )
    .unwrap();
    let t = Tidewatch::start_config(dir.path(), LX_STATION, LX_YELLOW_RULE, &config, |h| h["mqtt_connected"] == true);

    let path = dir.path().join("secret/mqtt-credentials.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "credentials readable by their owner only");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let users: toml::Table = toml::from_str::<toml::Table>(&text).unwrap()["users"].as_table().unwrap().clone();
    let device = users["device"].as_str().unwrap();
    assert!(device.len() >= 16, "a generated password");
    let reading = r#"{"station":"LX","quantity":"water_level","value":28.5}"#;

    let (ok, why) = publish(port, None, "anonymous", reading);
    assert!(!ok, "an anonymous client got in: {why}");
    let (ok, why) = publish(port, Some(("device", "wrong")), "guesser", reading);
    assert!(!ok, "a wrong password got in: {why}");
    let (ok, why) = publish(port, Some(("device", device)), "tidewatch-e2e", reading);
    assert!(!ok, "a device took Tidewatch's client id: {why}");

    let notices = FirstMessage::subscribe(port, "alerts/#", &["-u", "device", "-P", device]);
    let (ok, why) = publish(port, Some(("device", device)), "gauge-1", reading);
    assert!(ok, "{why}");
    t.wait_until("the device's reading", Duration::from_secs(10), |h| h["readings"] == 1);
    let notice = notices.json();
    assert_eq!(notice["transition"], "fire", "{notice}");
    let health = t.health();
    assert_eq!(health["sources"]["mqtt"]["connections"], 1, "Tidewatch was never kicked off: {health}");
    assert_eq!(health["mqtt_connected"], true);
}

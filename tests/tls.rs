//! TLS on both edges: MQTT (readings in, alert notices out) to a real Mosquitto that demands
//! client certificates and passwords, and the HTTP API over HTTPS; the CA, server and client
//! certificates are made by the test (openssl).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{free_port, FirstMessage, Tidewatch, LX_STATION, LX_YELLOW_RULE};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// ca.pem, server.pem/.key (for 127.0.0.1), client.pem/.key.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Tidewatch test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    for (name, extra) in [("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), format!("{extra}\n")).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(port: u16, tls: &str) -> String {
    format!(
        r#"stations = "stations.toml"
rules = ["rules"]
[mqtt]
broker = "127.0.0.1:{port}"
client_id = "tidewatch-tls"
username = "tidewatch"
password = "tw-Secret-1"
max_backoff_s = 1
tls = {tls}
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
    )
}

/// An MQTT alert topic over TLS with a client certificate and a login; paths relative to
/// the duty file.
const DUTY: &str = r#"
broadcast = ["alert-topic"]

[channel.alert-topic]
kind = "mqtt"
broker = "127.0.0.1:{port}"
topic = "alerts/{station}"
ca = "tls/ca.pem"
cert = "tls/client.pem"
key = "tls/client.key"
username = "tidewatch"
password = "tw-Secret-1"
"#;

fn write_duty(dir: &Path, certs: &Path, port: u16) {
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    for file in ["ca.pem", "client.pem", "client.key"] {
        std::fs::copy(certs.join(file), dir.join("tls").join(file)).unwrap();
    }
    std::fs::write(dir.join("duty.toml"), DUTY.replace("{port}", &port.to_string())).unwrap();
}

#[test]
fn readings_arrive_and_alerts_leave_over_tls_with_a_client_certificate_and_not_without_one() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let c = certs.path().display();
    let port = free_port();
    let passwords = certs.path().join("passwords");
    std::fs::write(&passwords, "").unwrap();
    for (user, password) in [("tidewatch", "tw-Secret-1"), ("device", "dev-Secret-2")] {
        let out = Command::new("mosquitto_passwd").arg("-b").arg(&passwords).args([user, password]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(
        certs.path().join("mosquitto.conf"),
        format!("user root\nlistener {port} 127.0.0.1\ncafile {c}/ca.pem\ncertfile {c}/server.pem\nkeyfile {c}/server.key\nrequire_certificate true\nallow_anonymous false\npassword_file {}\n", passwords.display()),
    )
    .unwrap();
    let mosquitto = std::env::var("PATH").map(|p| format!("{p}:/usr/sbin")).unwrap_or_default();
    let _broker = Broker(
        Command::new("mosquitto")
            .arg("-c")
            .arg(certs.path().join("mosquitto.conf"))
            .env("PATH", mosquitto)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto"),
    );
    std::thread::sleep(Duration::from_millis(500));

    let (ca, cert, key) = (format!("{c}/ca.pem"), format!("{c}/client.pem"), format!("{c}/client.key"));
    let client_tls = ["--cafile", &ca, "--cert", &cert, "--key", &key, "-u", "device", "-P", "dev-Secret-2"];

    // With the client certificate: connected, a reading published over TLS arrives, and its
    // alert leaves on the alert topic over TLS with the channel's own certificate and login.
    let dir = tempfile::tempdir().unwrap();
    write_duty(dir.path(), certs.path(), port);
    let tls = format!(r#"{{ ca = "{c}/ca.pem", cert = "{c}/client.pem", key = "{c}/client.key" }}"#);
    let t = Tidewatch::start_config(dir.path(), LX_STATION, LX_YELLOW_RULE, &config(port, &tls), |h| {
        h["mqtt_connected"] == true
    });
    let notices = FirstMessage::subscribe(port, "alerts/#", &client_tls);
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", "sensors/lx"])
        .args(client_tls)
        .args(["-m", r#"{"station":"LX","quantity":"water_level","value":28.5}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    t.wait_until("the reading and its alert", Duration::from_secs(10), |h| h["readings"] == 1 && h["open_alerts"] == 1);
    let notice = notices.json();
    assert_eq!(notice["transition"], "fire", "{notice}");
    assert_eq!(notice["station"], "LX", "{notice}");
    assert!(!t.log().contains("tw-Secret-1"), "the password is in the log");

    // Without one the broker refuses, and the log says so at once (not only at debug).
    let dir = tempfile::tempdir().unwrap();
    write_duty(dir.path(), certs.path(), port);
    let tls = format!(r#"{{ ca = "{c}/ca.pem" }}"#);
    let refused = Tidewatch::start_config(dir.path(), LX_STATION, LX_YELLOW_RULE, &config(port, &tls), |_| true);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(refused.health()["mqtt_connected"], false);
    assert!(refused.log().contains("cannot connect to the MQTT broker"), "{}", refused.log());
}

#[test]
fn the_api_is_served_over_tls_when_given_a_certificate() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let c = certs.path().display();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stations.toml"), LX_STATION).unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/test.toml"), LX_YELLOW_RULE).unwrap();
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let http = free_port();
    std::fs::write(
        dir.path().join("tidewatch.toml"),
        format!(
            r#"stations = "stations.toml"
rules = ["rules"]
[[source]]
kind = "file"
path = "empty.jsonl"
format = "jsonl"
[http]
listen = "127.0.0.1:{http}"
tls = {{ cert = "{c}/server.pem", key = "{c}/server.key" }}
[alerting]
store = "sqlite://alerts.db"
"#
        ),
    )
    .unwrap();
    let _app = Broker(
        Command::new(env!("CARGO_BIN_EXE_tidewatch"))
            .args(["run", "--config"])
            .arg(dir.path().join("tidewatch.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.path().join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::blocking::Client::builder().add_root_certificate(ca).build().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let health = loop {
        match client.get(format!("https://127.0.0.1:{http}/healthz")).send() {
            Ok(r) => break r.json::<serde_json::Value>().unwrap(),
            Err(e) => assert!(std::time::Instant::now() < deadline, "no HTTPS answer: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(health["status"], "ok");
    // Plain HTTP on the same port gets no API.
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{http}/healthz"));
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

//! TLS on both edges: MQTT to a real Mosquitto that demands client certificates, and the HTTP
//! API over HTTPS; the CA, server and client certificates are made by the test (openssl).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{free_port, Tidewatch, LX_STATION, LX_YELLOW_RULE};

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
[output]
console = false
"#
    )
}

#[test]
fn readings_arrive_over_tls_with_a_client_certificate_and_not_without_one() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let c = certs.path().display();
    let port = free_port();
    std::fs::write(
        certs.path().join("mosquitto.conf"),
        format!("user root\nlistener {port} 127.0.0.1\ncafile {c}/ca.pem\ncertfile {c}/server.pem\nkeyfile {c}/server.key\nrequire_certificate true\nallow_anonymous true\n"),
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

    // With the client certificate: connected, and a reading published over TLS arrives.
    let dir = tempfile::tempdir().unwrap();
    let tls = format!(r#"{{ ca = "{c}/ca.pem", cert = "{c}/client.pem", key = "{c}/client.key" }}"#);
    let t = Tidewatch::start_config(dir.path(), LX_STATION, LX_YELLOW_RULE, &config(port, &tls), |h| {
        h["mqtt_connected"] == true
    });
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", "sensors/lx"])
        .args([
            "--cafile",
            &format!("{c}/ca.pem"),
            "--cert",
            &format!("{c}/client.pem"),
            "--key",
            &format!("{c}/client.key"),
        ])
        .args(["-m", r#"{"station":"LX","quantity":"water_level","value":28.5}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    t.wait_until("the reading and its alert", Duration::from_secs(10), |h| h["readings"] == 1 && h["open_alerts"] == 1);

    // Without one the broker refuses, and the log says so at once (not only at debug).
    let dir = tempfile::tempdir().unwrap();
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

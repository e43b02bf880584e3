//! The MQTT alert topic against a real Mosquitto: one connection kept across sends, a
//! broker restart fails the send in flight and the next send reconnects.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tidewatch_alerting::message::{compose, Language};
use tidewatch_alerting::notify::{ChannelConfig, Notifier, Outgoing};
use tidewatch_alerting::{Happening, Notice, Severity, Subject};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Broker {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    fn start() -> Broker {
        let mut b = Broker { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None };
        b.restart();
        b
    }

    fn restart(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(&conf, format!("user root\nlistener {} 127.0.0.1\nallow_anonymous true\n", self.port)).unwrap();
        let mosquitto =
            if std::path::Path::new("/usr/sbin/mosquitto").exists() { "/usr/sbin/mosquitto" } else { "mosquitto" };
        self.child = Some(
            Command::new(mosquitto)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto is not installed: run scripts/test.sh"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A `mosquitto_sub` collecting `count` messages from `topic`.
    fn subscribe(&self, topic: &str, count: usize) -> Child {
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", topic, "-C", &count.to_string(), "-q", "1"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300)); // subscribed before anything is sent
        child
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn notice(station: &str) -> Notice {
    Notice {
        alert_id: 7,
        rule: "level".into(),
        transition: Happening::Fire,
        severity: Severity::Yellow,
        previous: None,
        event_time: "2026-11-29T08:00:00.000Z".into(),
        subject: Subject {
            station: station.into(),
            station_name: station.into(),
            region: "330781".into(),
            domain: "water".into(),
            quantity: "water_level".into(),
            unit: "m".into(),
        },
        value: 28.4,
        threshold: 28.0,
        direction: "above".into(),
        since: String::new(),
        title: String::new(),
        actor: None,
        note: None,
        escalation_level: 0,
        event_ms: 1_795_939_200_000,
        back_within: None,
        notification_id: None,
    }
}

async fn send(notifier: &Notifier, notices: &[Notice]) -> Result<String, String> {
    let message = compose(Language::En, notices, None);
    let out = Outgoing { ids: &[1], notices, recipients: &[], message: &message };
    notifier.send(&out).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_reach_the_topic_over_one_connection_and_a_restart_is_survived() {
    let mut broker = Broker::start();
    let config: ChannelConfig = toml::from_str(&format!(
        "kind = \"mqtt\"\nbroker = \"127.0.0.1:{}\"\ntopic = \"alerts/{{station}}\"\nqos = 1\ntimeout_s = 3\n",
        broker.port
    ))
    .unwrap();
    let notifier = Notifier::new("topic", &config).unwrap();

    let sub = broker.subscribe("alerts/#", 3);
    assert_eq!(send(&notifier, &[notice("A"), notice("B")]).await.unwrap(), "2 published");
    assert_eq!(send(&notifier, &[notice("C")]).await.unwrap(), "1 published");
    let out = tokio::task::spawn_blocking(|| sub.wait_with_output().unwrap()).await.unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let stations: Vec<&str> = lines.iter().map(|l| l["station"].as_str().unwrap()).collect();
    assert_eq!(stations, ["A", "B", "C"]);
    assert_eq!(lines[0]["transition"], "fire");

    // The broker goes away: the send fails (and will be retried by the dispatcher).
    broker.stop();
    let failed = send(&notifier, &[notice("D")]).await.unwrap_err();
    assert!(failed.contains("MQTT 127.0.0.1"), "{failed}");
    // Back again: the next send opens a new connection.
    broker.restart();
    let sub = broker.subscribe("alerts/#", 1);
    assert_eq!(send(&notifier, &[notice("E")]).await.unwrap(), "1 published");
    let out = tokio::task::spawn_blocking(|| sub.wait_with_output().unwrap()).await.unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("\"station\":\"E\""));
}

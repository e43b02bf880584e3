//! Real servers and the real binary for end-to-end tests.
//!
//! Each test starts its own Mosquitto on a free port with its own persistence directory, and
//! runs the `tidewatch` binary against it as a separate process. Readings are published with
//! the independent `mosquitto_pub` client. `scripts/test.sh` installs Mosquitto if missing.

#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago and that no other test in this process
/// has been given (tests run in parallel and would otherwise race for the same one).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn wait_for_port(port: u16, up: bool, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() == up {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {port} did not become {} within {within:?}", if up { "open" } else { "closed" });
}

fn require(program: &str) {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().map(|o| o.status.success());
    assert!(found.unwrap_or(false), "{program} is not installed: run scripts/test.sh, which installs the test servers");
}

/// A `mosquitto_sub` waiting (at most 15 s) for the first message on `topic` of the broker
/// on `port`; `login` are its extra arguments (`-u`, `-P`, TLS files). Subscribed when this
/// returns.
pub struct FirstMessage(Child);

impl FirstMessage {
    pub fn subscribe(port: u16, topic: &str, login: &[&str]) -> FirstMessage {
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic, "-C", "1", "-W", "15"])
            .args(login)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub");
        std::thread::sleep(Duration::from_millis(500)); // subscribed before anything is sent
        FirstMessage(child)
    }

    /// The message, as JSON.
    pub fn json(self) -> serde_json::Value {
        let out = self.0.wait_with_output().unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no message on the topic ({e}): {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// A Mosquitto broker with persistence, on a free port.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Mosquitto {
        require("mosquitto");
        let mut m = Mosquitto { port: free_port(), dir: dir.to_owned(), child: None };
        m.restart();
        m
    }

    /// Starts (again) on the same port with the same persistence directory.
    pub fn restart(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                // `user root`: started as root, Mosquitto otherwise drops to user `mosquitto`,
                // cannot write this directory, and silently keeps no sessions across restarts.
                // (Ignored when not started as root.)
                "user root\nlistener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nmax_queued_messages 0\nmax_inflight_messages 1000\nlog_dest file {}/mosquitto.log\n",
                self.port,
                self.dir.display(),
                self.dir.display()
            ),
        )
        .unwrap();
        let child =
            Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        self.child = Some(child);
        wait_for_port(self.port, true, Duration::from_secs(10));
    }

    /// Stops the broker the way an operator would (SIGTERM: it saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            child.wait().unwrap();
            wait_for_port(self.port, false, Duration::from_secs(10));
        }
    }

    /// Publishes each line as one QoS 1 message with the real `mosquitto_pub`.
    pub fn publish_lines(&self, topic: &str, lines: &[String]) {
        require("mosquitto_pub");
        let mut child = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1", "-t", topic, "-l"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut stdin = child.stdin.take().unwrap();
            for line in lines {
                writeln!(stdin, "{line}").unwrap();
            }
        }
        assert!(child.wait().unwrap().success(), "mosquitto_pub failed");
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
}

/// One gauge, 兰溪 (LX), warning level 28 m.
pub const LX_STATION: &str = r#"
[[station]]
id = "LX"
name = "兰溪"
domain = "water"
location = [119.46, 29.21]
region = "330781"
attributes = { warning_level = 28.0 }
"#;

/// Yellow above the station's warning level, on arrival.
pub const LX_YELLOW_RULE: &str = r#"
[[rule]]
id = "level"
select = { quantity = "water_level" }
kind = "threshold"
levels = [{ severity = "yellow", above = "station.warning_level" }]
"#;

/// The password of the admin every test instance starts with.
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// The `tidewatch` binary running `run --config` in a directory of its own.
pub struct Tidewatch {
    pub http: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    /// When a (re)started process counts as ready.
    ready: fn(&serde_json::Value) -> bool,
}

impl Tidewatch {
    /// Writes stations, rules and a config naming the broker, then starts the binary and
    /// waits until it is connected.
    pub fn start(dir: &Path, broker_port: u16, stations: &str, rules: &str, engine: &str) -> Tidewatch {
        let json_route = "[[mqtt.route]]\nname = \"json\"\nfilter = \"sensors/#\"\nformat = \"json\"\n";
        Self::start_with_routes(dir, broker_port, stations, rules, engine, json_route)
    }

    /// As [`Tidewatch::start`], with the given `[[mqtt.route]]` tables.
    pub fn start_with_routes(
        dir: &Path,
        broker_port: u16,
        stations: &str,
        rules: &str,
        engine: &str,
        routes: &str,
    ) -> Tidewatch {
        std::fs::write(dir.join("stations.toml"), stations).unwrap();
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        std::fs::write(dir.join("rules/test.toml"), rules).unwrap();
        let http = free_port();
        std::fs::write(
            dir.join("tidewatch.toml"),
            format!(
                r#"stations = "stations.toml"
rules = ["rules"]
[engine]
{engine}
[mqtt]
broker = "127.0.0.1:{broker_port}"
client_id = "tidewatch-e2e"
max_backoff_s = 2
{routes}
[http]
listen = "127.0.0.1:{http}"
[output]
alerts_file = "alerts.jsonl"
dead_letter_file = "dead_letters.jsonl"
console = true
"#
            ),
        )
        .unwrap();
        let mut t = Tidewatch { http, dir: dir.to_owned(), child: None, ready: |h| h["mqtt_connected"] == true };
        t.respawn();
        t
    }

    /// Starts the binary on a whole configuration (`{http}` in it is replaced by the API's
    /// port), in `dir` with the given stations and rules; ready when `ready` holds.
    pub fn start_config(
        dir: &Path,
        stations: &str,
        rules: &str,
        config: &str,
        ready: fn(&serde_json::Value) -> bool,
    ) -> Tidewatch {
        std::fs::write(dir.join("stations.toml"), stations).unwrap();
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        std::fs::write(dir.join("rules/test.toml"), rules).unwrap();
        let http = free_port();
        std::fs::write(dir.join("tidewatch.toml"), config.replace("{http}", &http.to_string())).unwrap();
        let mut t = Tidewatch { http, dir: dir.to_owned(), child: None, ready };
        t.respawn();
        t
    }

    /// Starts the binary (again) on the same directory and configuration; the log is
    /// appended to.
    pub fn respawn(&mut self) {
        assert!(self.child.is_none(), "still running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("tidewatch.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
            .args(["run", "--config"])
            .arg(self.dir.join("tidewatch.toml"))
            // The first start makes the admin the tests act as.
            .env("TIDEWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ready = self.ready;
        self.wait_until("ready", Duration::from_secs(30), ready);
    }

    /// Sends the running process a signal (`HUP`, `TERM`, …).
    pub fn signal(&self, name: &str) {
        signal(self.child.as_ref().expect("running").id(), name);
    }

    /// Kills the process with SIGKILL: no draining, no flushing.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "KILL");
            let _ = child.wait();
        }
    }

    /// POSTs JSON to the API, as the admin.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::blocking::Response {
        reqwest::blocking::Client::new()
            .post(format!("http://127.0.0.1:{}{path}", self.http))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(body)
            .send()
            .unwrap()
    }

    /// DELETEs, as the admin.
    pub fn delete(&self, path: &str) -> reqwest::blocking::Response {
        reqwest::blocking::Client::new()
            .delete(format!("http://127.0.0.1:{}{path}", self.http))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .unwrap()
    }

    /// Adds a user with `tidewatch users add` (password from the environment).
    pub fn add_user(&self, name: &str, role: &str, password: &str) {
        let out = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
            .args(["users", "--config"])
            .arg(self.dir.join("tidewatch.toml"))
            .args(["add", name, "--role", role])
            .env("TIDEWATCH_PASSWORD", password)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Makes a bearer token for a user with `tidewatch users token`.
    pub fn token(&self, name: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
            .args(["users", "--config"])
            .arg(self.dir.join("tidewatch.toml"))
            .args(["token", name, "--label", "test"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        reqwest::blocking::get(format!("http://127.0.0.1:{}{path}", self.http)).unwrap()
    }

    pub fn health(&self) -> serde_json::Value {
        self.get("/healthz").json().unwrap()
    }

    /// Polls `/healthz` until `ready` holds.
    pub fn wait_until(&self, what: &str, within: Duration, ready: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(resp) = reqwest::blocking::get(format!("http://127.0.0.1:{}/healthz", self.http)) {
                if let Ok(h) = resp.json::<serde_json::Value>() {
                    if ready(&h) {
                        return;
                    }
                    if Instant::now() > deadline {
                        panic!("timed out waiting for {what}; health: {h}; log:\n{}", self.log());
                    }
                }
            }
            assert!(Instant::now() <= deadline, "timed out waiting for {what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tidewatch.log")).unwrap_or_default()
    }

    /// Lines of a JSON-lines output file.
    pub fn json_lines(&self, file: &str) -> Vec<serde_json::Value> {
        json_lines(&self.dir.join(file))
    }

    /// Sends SIGTERM and returns the exit status, whatever it is.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        child.wait().unwrap()
    }

    /// Stops with SIGTERM (graceful: drains and flushes) and checks the exit status.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let status = child.wait().unwrap();
            assert!(status.success(), "tidewatch exited with {status}; log:\n{}", self.log());
        }
    }
}

impl Drop for Tidewatch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP request as a [`Recorder`] saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Path and query.
    pub uri: String,
    pub body: serde_json::Value,
}

/// A real HTTP server that records every request and answers as robots do
/// (`{"errcode":0,"errmsg":"ok"}`), or with 500 while `failing` is set.
pub struct Recorder {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
    pub failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Recorder {
    pub fn start() -> Recorder {
        use axum::extract::State;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        type Shared = (Arc<Mutex<Vec<Recorded>>>, Arc<AtomicBool>);
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let failing = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let shared: Shared = (requests.clone(), failing.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().fallback(
                    |State((requests, failing)): State<Shared>, uri: axum::http::Uri, body: axum::body::Bytes| async move {
                        if failing.load(Ordering::SeqCst) {
                            return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down for the test".to_owned());
                        }
                        let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                        requests.lock().unwrap().push(Recorded { uri: uri.to_string(), body });
                        (axum::http::StatusCode::OK, r#"{"errcode":0,"errmsg":"ok"}"#.to_owned())
                    },
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app.with_state(shared)).await.unwrap();
            });
        });
        Recorder { port, requests, failing }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests whose path starts with `prefix`, in arrival order.
    pub fn to(&self, prefix: &str) -> Vec<Recorded> {
        self.requests.lock().unwrap().iter().filter(|r| r.uri.starts_with(prefix)).cloned().collect()
    }

    /// Waits until `count` requests to `prefix` have arrived.
    pub fn wait_for(&self, prefix: &str, count: usize, within: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.to(prefix);
            if got.len() >= count {
                return got;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {count} requests to {prefix}; got {got:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A real Apache Kafka broker (KRaft, one node) started by `scripts/kafka.sh` on free ports,
/// stopped when dropped or, failing that, when the test process ends.
pub struct Kafka {
    pub bootstrap: String,
    pid: u32,
    _dir: tempfile::TempDir,
}

impl Kafka {
    pub fn start() -> Kafka {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
        let out = Command::new("bash")
            .arg(&script)
            .env("KAFKA_DATA_DIR", dir.path())
            .env("KAFKA_NUM_PARTITIONS", "4")
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("scripts/kafka.sh");
        assert!(out.status.success(), "scripts/kafka.sh failed (is Java 17 and Maven or the jar cache there?)");
        let text = String::from_utf8(out.stdout).unwrap();
        let value =
            |key: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_owned).expect(key);
        let pid: u32 = value("KAFKA_PID").parse().unwrap();
        // A reaper: the broker goes when this test process goes, even on a panic or abort.
        let me = std::process::id();
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("while kill -0 {me} 2>/dev/null; do sleep 1; done; kill {pid} 2>/dev/null; sleep 20; kill -9 {pid} 2>/dev/null"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        Kafka { bootstrap: value("KAFKA_BOOTSTRAP"), pid, _dir: dir }
    }

    fn producer(&self) -> rdkafka::producer::BaseProducer {
        rdkafka::ClientConfig::new().set("bootstrap.servers", &self.bootstrap).set("linger.ms", "5").create().unwrap()
    }

    /// Produces (key, payload) records and waits until the broker has them all.
    pub fn produce(&self, topic: &str, records: &[(String, String)]) {
        use rdkafka::producer::{BaseRecord, Producer};
        let producer = self.producer();
        for (key, payload) in records {
            let mut record = BaseRecord::to(topic).key(key.as_str()).payload(payload.as_str());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }

    /// Reads a topic from the start until `count` records arrived or `within` passed.
    pub fn consume(&self, topic: &str, count: usize, within: Duration) -> Vec<(Option<String>, serde_json::Value)> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::Message;
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("test-reader-{}", free_port()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < count && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
                let value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(serde_json::Value::Null);
                out.push((key, value));
            }
        }
        out
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        signal(self.pid, "TERM");
    }
}

/// A real VictoriaMetrics (Debian's `victoria-metrics`), which takes InfluxDB v2 writes.
pub struct Victoria {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Victoria {
    /// Starts it on `port` and waits until it answers.
    pub fn start_on(port: u16) -> Victoria {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.path().display()))
            // The tests' readings are from 2024.
            .arg("-retentionPeriod=100y")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics (apt-get install victoria-metrics)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::blocking::get(format!("http://127.0.0.1:{port}/health")).is_err() {
            assert!(Instant::now() < deadline, "VictoriaMetrics did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Victoria { port, child, _dir: dir }
    }

    /// Every stored sample of the series matching `selector`, as (labels, value, ms).
    pub fn export(&self, selector: &str) -> Vec<(serde_json::Value, f64, i64)> {
        let base = format!("http://127.0.0.1:{}", self.port);
        let _ = reqwest::blocking::get(format!("{base}/internal/force_flush"));
        let text = reqwest::blocking::Client::new()
            .get(format!("{base}/api/v1/export"))
            .query(&[("match[]", selector), ("start", "0")])
            .send()
            .unwrap()
            .text()
            .unwrap();
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let series: serde_json::Value = serde_json::from_str(line).unwrap();
            let values = series["values"].as_array().unwrap();
            let times = series["timestamps"].as_array().unwrap();
            for (v, t) in values.iter().zip(times) {
                out.push((series["metric"].clone(), v.as_f64().unwrap(), t.as_i64().unwrap()));
            }
        }
        out.sort_by_key(|s| s.2);
        out
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The complete lines of a JSON-lines file that may be being written (a line is complete with
/// its `\n`), each of which must be JSON; an absent file has none.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display())))
        .collect()
}

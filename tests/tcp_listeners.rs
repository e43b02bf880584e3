//! HJ 212 data loggers and SL 651 stations connecting over TCP to the real binary.
//! Packets and frames: `ingest/tests/data/` (sources noted there).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tidewatch_ingest::{hj212, sl651};

const PACKETS: &str = include_str!("../ingest/tests/data/hj212_public_packets.tsv");
const FRAMES: &str = include_str!("../ingest/tests/data/sl651_frames.txt");

fn packet(i: usize) -> String {
    format!("{}\r\n", PACKETS.lines().nth(i).unwrap().split('\t').nth(1).unwrap())
}

fn frame(function: &str) -> Vec<u8> {
    let hex = FRAMES.lines().find(|l| l.starts_with(function)).unwrap().split(' ').nth(1).unwrap();
    (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect()
}

struct Running {
    child: std::process::Child,
    http: u16,
    dir: tempfile::TempDir,
}

impl Running {
    fn wait_until(&self, what: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(h) =
                reqwest::blocking::get(format!("http://127.0.0.1:{}/healthz", self.http)).and_then(|r| r.json())
            {
                if ready(&h) {
                    return h;
                }
                assert!(Instant::now() < deadline, "timed out waiting for {what}: {h}");
            }
            // A process that never answers (it exited at start) fails the test, not hangs it.
            assert!(Instant::now() < deadline, "timed out waiting for {what}: no answer from the API");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alerts(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("alerts.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(hj_port: u16, sl_port: u16) -> Running {
    start_with(hj_port, sl_port, "")
}

/// As `start`, with `logger` added to the logger station's table (e.g. a password).
fn start_with(hj_port: u16, sl_port: u16, logger: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let http = support::free_port();
    let stations = r#"
[[station]]
id = "JLYP01_AIR01_0001"
name = "Air"
domain = "environment"
location = [125.3, 43.9]
region = "220100"

[[station]]
id = "0011223344"
name = "River"
domain = "water"
location = [120.1, 30.2]
region = "330100"
attributes = { warning_level = 10.0 }
"#;
    let stations = stations.replace("region = \"220100\"", &format!("region = \"220100\"\n{logger}"));
    std::fs::write(dir.path().join("stations.toml"), stations).unwrap();
    std::fs::write(
        dir.path().join("rules.toml"),
        r#"
[[rule]]
id = "pm25"
select = { quantity = "pm25" }
kind = "threshold"
levels = [{ severity = "yellow", above = 10 }]

[[rule]]
id = "level"
select = { quantity = "water_level" }
kind = "threshold"
levels = [{ severity = "yellow", above = "station.warning_level" }]
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tidewatch.toml"),
        format!(
            r#"stations = "stations.toml"
rules = ["rules.toml"]
[engine]
allowed_lateness = "0s"
idle_source_timeout = "1s"
[mqtt]
route = []
[[listener]]
name = "loggers"
protocol = "hj212"
listen = "127.0.0.1:{hj_port}"
idle_timeout_s = 2
max_connections_per_address = 2
[[listener]]
name = "stations"
protocol = "sl651"
listen = "127.0.0.1:{sl_port}"
[http]
listen = "127.0.0.1:{http}"
[output]
alerts_file = "alerts.jsonl"
dead_letter_file = "dead_letters.jsonl"
"#
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
        .args(["run", "--config"])
        .arg(dir.path().join("tidewatch.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running { child, http, dir };
    running.wait_until("the HTTP API", |_| true);
    running
}

#[test]
fn loggers_and_stations_over_tcp() {
    let (hj_port, sl_port) = (support::free_port(), support::free_port());
    let running = start(hj_port, sl_port);

    // The station's report (2017) goes first: its readings are years older than the
    // logger's (2022), and would be late behind them.
    // SL 651: the hourly report in two writes; the station gets a confirmation.
    let mut station = TcpStream::connect(("127.0.0.1", sl_port)).unwrap();
    let report = frame("34");
    station.write_all(&report[..20]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    station.write_all(&report[20..]).unwrap();
    station.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut confirmation = vec![0u8; 64];
    let n = station.read(&mut confirmation).unwrap();
    let confirmation = &confirmation[..n];
    assert_eq!(&confirmation[..2], [0x7E, 0x7E]);
    assert_eq!(&confirmation[2..7], [0x00, 0x11, 0x22, 0x33, 0x44], "station address first on the way down");
    assert_eq!((confirmation[7], confirmation[10]), (0x05, 0x34), "centre address, function");
    assert_eq!(confirmation[11] >> 4, 8, "downlink");
    assert_eq!(&confirmation[14..16], [0x00, 0x33], "the report's serial number");
    assert_eq!(confirmation[n - 3], 0x04, "EOT");
    let crc = tidewatch_ingest::hj212::crc16_modbus(&confirmation[..n - 2]);
    assert_eq!(crc.to_be_bytes(), confirmation[n - 2..]);
    drop(station);

    // HJ 212: garbage, then the standard's example (Flag=5: wants an answer) split into
    // 3-byte writes, then air data (Flag=4: no answer) in the same stream.
    let mut logger = TcpStream::connect(("127.0.0.1", hj_port)).unwrap();
    let mut stream = b"hello".to_vec();
    stream.extend_from_slice(packet(0).as_bytes());
    stream.extend_from_slice(packet(1).as_bytes());
    for piece in stream.chunks(3) {
        logger.write_all(piece).unwrap();
        logger.flush().unwrap();
    }
    logger.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = vec![0u8; 256];
    let n = logger.read(&mut answer).unwrap();
    let answer = hj212::Packet::parse(&answer[..n]).unwrap();
    assert_eq!((answer.cn, answer.qn, answer.st), ("9014", Some("20160801085857223"), Some("91")));
    assert_eq!(answer.mn, "010000A8900016F000169DC0");

    // 11 air readings + 18 from the hourly report; "hello" kept as a dead letter.
    let health = running.wait_until("readings", |h| h["readings"] == 29 && h["dead_letters"] == 1);
    assert_eq!(health["listeners"]["loggers"]["frames"], 2);
    assert_eq!(health["listeners"]["loggers"]["garbage_bytes"], 5);
    assert_eq!(health["listeners"]["stations"]["frames"], 1);

    // The logger stays silent: after the 2 s idle timeout the platform hangs up.
    let mut rest = Vec::new();
    let closed = logger.read_to_end(&mut rest);
    assert!(closed.is_ok() && rest.is_empty(), "{closed:?}");
    running.wait_until("the idle close", |h| h["listeners"]["loggers"]["idle_closed"] == 1);

    // Both devices' readings reach the rules.
    let deadline = Instant::now() + Duration::from_secs(20);
    while running.alerts().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut fired: Vec<(String, String)> = running
        .alerts()
        .iter()
        .map(|a| (a["rule"].as_str().unwrap().to_owned(), a["station"].as_str().unwrap().to_owned()))
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        [("level".to_owned(), "0011223344".to_owned()), ("pm25".to_owned(), "JLYP01_AIR01_0001".to_owned())]
    );
    let dead = std::fs::read_to_string(running.dir.path().join("dead_letters.jsonl")).unwrap();
    assert!(dead.contains("loggers: 5 bytes between frames that start no frame"), "{dead}");
}

#[test]
fn a_connection_closed_mid_frame_is_kept_as_a_dead_letter() {
    let (hj_port, sl_port) = (support::free_port(), support::free_port());
    let running = start(hj_port, sl_port);
    let report = frame("32");
    let mut station = TcpStream::connect(("127.0.0.1", sl_port)).unwrap();
    station.write_all(&report[..30]).unwrap();
    drop(station);
    running.wait_until("the dead letter", |h| h["dead_letters"] == 1);
    let dead = std::fs::read_to_string(running.dir.path().join("dead_letters.jsonl")).unwrap();
    assert!(dead.contains("connection closed with 30 bytes of an incomplete frame"), "{dead}");
    let _ = sl651::Frame::parse(&report).unwrap();
}

/// A deployed logger's 1,623-byte data segment (the standard allows 1,024), checked with
/// CRC-16/MODBUS: framed, decoded, answered, and counted as non-conforming in `/metrics`.
#[test]
fn a_packet_longer_than_the_standard_is_accepted_and_counted() {
    let (hj_port, sl_port) = (support::free_port(), support::free_port());
    let running = start(hj_port, sl_port);
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let head = format!(
        "QN={}000;ST=22;CN=2011;PW=123456;MN=JLYP01_AIR01_0001;Flag=5;CP=&&DataTime={};",
        now.format("%Y%m%d%H%M%S"),
        now.format("%Y%m%d%H%M%S")
    );
    let tail = "a34004-Rtd=35.0,a34004-Flag=N&&";
    let mut items: Vec<String> = Vec::new();
    while head.len() + tail.len() + 15 * (items.len() + 1) <= 1623 {
        items.push(format!("x{:05}-Rtd=1.0;", items.len()));
    }
    let gap = 1623 - head.len() - tail.len() - 15 * items.len();
    items[0] = format!("x00000-Rtd={}1.0;", "0".repeat(gap));
    let data = format!("{head}{}{tail}", items.concat());
    assert_eq!(data.len(), 1623);
    let text = hj212::encode_with(&data, hj212::CrcKind::ModbusLowFirst);

    let mut logger = TcpStream::connect(("127.0.0.1", hj_port)).unwrap();
    logger.write_all(text.as_bytes()).unwrap();
    logger.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = vec![0u8; 256];
    let n = logger.read(&mut answer).unwrap();
    assert_eq!(hj212::Packet::parse(&answer[..n]).unwrap().cn, "9014");
    // PM2.5 and every raw code, none refused.
    let expected = items.len() as u64 + 1;
    let health = running.wait_until("the readings", |h| h["readings"] == expected);
    assert_eq!(health["dead_letters"], 0, "{health}");
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", running.http)).unwrap().text().unwrap();
    assert!(metrics.contains("tidewatch_nonconforming_total{kind=\"hj212_oversize\"} 1"), "{metrics}");
    assert!(metrics.contains("tidewatch_nonconforming_total{kind=\"hj212_modbus_crc\"} 1"), "{metrics}");
}

/// A logger splits a long message over three packets (PNUM/PNO), sent out of order on one
/// connection: the readings are those of the whole message, and nothing is refused.
#[test]
fn split_hj212_packets_are_put_back_together() {
    let (hj_port, sl_port) = (support::free_port(), support::free_port());
    let running = start(hj_port, sl_port);
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let stamp = now.format("%Y%m%d%H%M%S");
    let header =
        |pno: u32| format!("QN={stamp}000;ST=22;CN=2011;PW=123456;MN=JLYP01_AIR01_0001;Flag=6;PNUM=3;PNO={pno};CP=&&");
    let cps = [
        format!("DataTime={stamp};a34004-Rtd=35.0,a34004-Flag=N"),
        format!("DataTime={stamp};a34002-Rtd=80.0,a34002-Flag=N"),
        format!("DataTime={stamp};a21005-Rtd=0.9,a21005-Flag=N"),
    ];
    let parts: Vec<String> =
        (1..=3).map(|i| hj212::encode(&format!("{}{}&&", header(i), cps[i as usize - 1]))).collect();
    let mut logger = TcpStream::connect(("127.0.0.1", hj_port)).unwrap();
    for i in [2, 0, 1] {
        logger.write_all(parts[i].as_bytes()).unwrap();
    }
    let health = running.wait_until("the three readings", |h| h["readings"] == 3);
    assert_eq!(health["dead_letters"], 0, "{health}");
    // PM2.5 35 > 10: the rule fires on the rebuilt message's reading.
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.alerts().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(running.alerts()[0]["rule"], "pm25");
}

/// A logger must give its station's password (and may be bound to an address): a wrong one
/// gets no answer and its packet is a dead letter with reason `auth`.
#[test]
fn a_logger_with_a_wrong_password_or_address_is_refused_and_not_answered() {
    let (hj_port, sl_port) = (support::free_port(), support::free_port());
    let running = start_with(hj_port, sl_port, "password = \"123456\"\nallow_from = [\"127.0.0.1\"]");
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let packet = |pw: &str| {
        hj212::encode(&format!(
            "QN={}000;ST=22;CN=2011;PW={pw};MN=JLYP01_AIR01_0001;Flag=5;CP=&&DataTime={};a34004-Rtd=35.0,a34004-Flag=N&&",
            now.format("%Y%m%d%H%M%S"),
            now.format("%Y%m%d%H%M%S")
        ))
    };
    let mut logger = TcpStream::connect(("127.0.0.1", hj_port)).unwrap();
    logger.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    logger.write_all(packet("654321").as_bytes()).unwrap();
    let mut answer = vec![0u8; 256];
    assert!(logger.read(&mut answer).is_err(), "no answer for a wrong password");
    let health = running.wait_until("the refusal", |h| h["dead_letters"] == 1);
    assert_eq!(health["readings"], 0);
    let dead = std::fs::read_to_string(running.dir.path().join("dead_letters.jsonl")).unwrap();
    assert!(dead.contains("\"kind\":\"auth\"") && dead.contains("wrong or missing password"), "{dead}");
    // The right password: answered and read.
    logger.write_all(packet("123456").as_bytes()).unwrap();
    let n = logger.read(&mut answer).unwrap();
    assert_eq!(hj212::Packet::parse(&answer[..n]).unwrap().cn, "9014");
    running.wait_until("the reading", |h| h["readings"] == 1);
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", running.http)).unwrap().text().unwrap();
    assert!(metrics.contains("tidewatch_dead_letters_total{reason=\"auth\"} 1"), "{metrics}");
}

/// A device cannot hold a connection by trickling bytes that never make a frame (only a
/// whole frame moves the idle deadline), and one address cannot take every connection.
#[test]
fn a_trickle_cannot_hold_a_connection_and_one_address_cannot_take_them_all() {
    let (hj_port, sl_port) = (support::free_port(), support::free_port());
    let running = start(hj_port, sl_port);
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let packet = hj212::encode(&format!(
        "QN={}000;ST=22;CN=2011;PW=123456;MN=JLYP01_AIR01_0001;Flag=5;CP=&&DataTime={};a34004-Rtd=35.0,a34004-Flag=N&&",
        now.format("%Y%m%d%H%M%S"),
        now.format("%Y%m%d%H%M%S")
    ));
    let closed = |stream: &mut TcpStream, within: Duration| {
        stream.set_read_timeout(Some(within)).unwrap();
        let mut byte = [0u8; 1];
        matches!(stream.read(&mut byte), Ok(0))
            || matches!(stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    };

    // Two connections from this address are its limit (max_connections_per_address = 2).
    let mut trickle = TcpStream::connect(("127.0.0.1", hj_port)).unwrap();
    let mut second = TcpStream::connect(("127.0.0.1", hj_port)).unwrap();
    running.wait_until("two open", |h| h["listeners"]["loggers"]["open"] == 2);
    let mut third = TcpStream::connect(("127.0.0.1", hj_port)).unwrap();
    assert!(closed(&mut third, Duration::from_secs(2)), "the third is closed at once");
    running.wait_until("the refusal counted", |h| h["listeners"]["loggers"]["refused"] == 1);

    // A whole packet every second keeps the second one open past the idle timeout (2 s),
    // while the first trickles a packet byte by byte and is closed at its timeout anyway.
    let started = Instant::now();
    let mut sent = 0;
    let mut answer = [0u8; 256];
    second.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while started.elapsed() < Duration::from_secs(4) {
        if trickle.write_all(&packet.as_bytes()[sent..sent + 1]).is_err() {
            break;
        }
        sent += 1;
        if sent % 3 == 0 {
            second.write_all(packet.as_bytes()).unwrap();
            let n = second.read(&mut answer).unwrap();
            assert!(n > 0, "answered while it sends whole packets");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(sent < packet.len(), "the trickle never finished its packet");
    assert!(closed(&mut trickle, Duration::from_secs(1)), "the trickle was closed");
    let health = running.wait_until("the idle close", |h| h["listeners"]["loggers"]["idle_closed"] == 1);
    assert_eq!(health["listeners"]["loggers"]["open"], 1, "{health}");
    // Its place is free again.
    let mut again = TcpStream::connect(("127.0.0.1", hj_port)).unwrap();
    again.write_all(packet.as_bytes()).unwrap();
    again.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(again.read(&mut answer).unwrap() > 0);
}

//! The HTTP server's bounds against a real client misbehaving on purpose: headers that never
//! finish, connections that say nothing, one address opening many, a body declared huge,
//! a body dribbled slowly. Each is cut off in bounded time and counted; the API stays up.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Tidewatch, LX_STATION, LX_YELLOW_RULE};

fn start(dir: &std::path::Path) -> Tidewatch {
    std::fs::write(dir.join("empty.jsonl"), "").unwrap();
    let config = r#"stations = "stations.toml"
rules = ["rules"]
[[source]]
kind = "file"
path = "empty.jsonl"
format = "jsonl"
[http]
listen = "127.0.0.1:{http}"
max_connections_per_address = 4
header_timeout = "3s"
idle_timeout = "1s"
request_timeout = "2s"
[alerting]
store = "sqlite://alerts.db"
[output]
console = false
"#;
    Tidewatch::start_config(dir, LX_STATION, LX_YELLOW_RULE, config, |_| true)
}

/// Reads until the server closes the connection (or `within` passes); returns what came
/// and how long it took.
fn until_closed(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < within {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), started.elapsed())
}

#[test]
fn slow_idle_crowding_and_oversize_clients_are_cut_off_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path());
    let connect = || TcpStream::connect(("127.0.0.1", t.http)).unwrap();

    // Headers trickled a byte at a time never finish within the header timeout (3 s).
    let mut slow = connect();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(6) {
        if slow.write_all(b"X").is_err() {
            cut = true;
            break;
        }
        // Closed: the read ends before its 300 ms are up.
        let (_, took) = until_closed(&mut slow, Duration::from_millis(300));
        if took < Duration::from_millis(250) {
            cut = true;
            break;
        }
    }
    assert!(cut, "slow headers were not cut off in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    drop(slow);

    // A connection that says nothing is closed after the idle timeout (1 s).
    let mut idle = connect();
    let (_, took) = until_closed(&mut idle, Duration::from_secs(6));
    assert!(took < Duration::from_secs(5), "idle connection closed after {took:?}");

    // Four from one address at once is the limit: the fifth is closed at once.
    let crowd: Vec<TcpStream> = (0..4).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut fifth = connect();
    let (_, took) = until_closed(&mut fifth, Duration::from_secs(3));
    assert!(took < Duration::from_secs(1), "the fifth was not refused at once ({took:?})");
    drop(crowd);
    std::thread::sleep(Duration::from_millis(300));

    // A body declared far over the limit is refused before it arrives.
    let mut huge = connect();
    huge.write_all(b"POST /api/silences HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46dGVzdC1hZG1pbi1wYXNzd29yZA==\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{\"").unwrap();
    let (answer, took) = until_closed(&mut huge, Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A small body dribbled slower than the request timeout (2 s) gets 408.
    let mut dribble = connect();
    dribble
        .write_all(b"POST /api/silences HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46dGVzdC1hZG1pbi1wYXNzd29yZA==\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    while started.elapsed() < Duration::from_secs(6) && answer.is_empty() {
        let _ = dribble.write_all(b" ");
        let (got, _) = until_closed(&mut dribble, Duration::from_millis(400));
        answer = got;
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?} after {:?}", started.elapsed());

    // The API is still there, and /metrics says what the limits closed.
    let metrics = t.get("/metrics").text().unwrap();
    let count = |outcome: &str| -> u64 {
        let key = format!("tidewatch_http_connections_closed_total{{outcome=\"{outcome}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    assert!(count("refused") >= 1, "{metrics}");
    assert!(count("idle_closed") >= 1, "{metrics}");
}

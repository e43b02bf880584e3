//! Sinks as components: the `[[sink]]` list, each entry one `kind` with its typed settings,
//! each taking some of what flows through (`send`): readings, alert transitions, dead letters.
//!
//! Schemas (stable; dashboards and replays depend on them):
//! - **InfluxDB** (line protocol, ms precision): measurement `reading`, tags `station`,
//!   `quantity`, `region`, `domain`, field `value` (canonical unit), time = event time;
//!   measurement `alert`, tags `rule`, `station`, `quantity`, `severity`, `transition`,
//!   `region`, `domain`, fields `value`, `threshold`, `alert_id`, time = event time.
//! - **Kafka / JSON lines**: a reading is `{"station", "quantity", "value", "unit", "time"}`
//!   (RFC 3339), which the `file` source and `tidewatch replay` read back as they are; an
//!   alert transition is its notice, as the alert topics carry it; a dead letter as in the
//!   dead-letter file. Kafka keys: the station id, the alert id, the source.
//!
//! No sink holds anything up: each has a bound (queue, buffer, file size), and what it
//! refuses is counted in `tidewatch_sink_records_total{outcome="dropped"}`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use influxdb2::models::DataPoint;
use serde::Deserialize;
use tidewatch_alerting::Notice;
use tidewatch_connectors::influx::{InfluxSink, InfluxSinkConfig};
use tidewatch_connectors::kafka::{KafkaSink, KafkaSinkConfig};
use tidewatch_connectors::sink::SinkCounts;
use tidewatch_ingest::time::to_rfc3339;
use tidewatch_ingest::{DeadLetter, Reading, Registry};
use tidewatch_rules::duration::parse_duration;

/// One sink. `kind` picks the variant; every other field is the kind's own.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkConfig {
    /// InfluxDB v2 (or anything that takes its writes, such as VictoriaMetrics).
    Influxdb(InfluxdbSink),
    /// A Kafka topic.
    Kafka(KafkaSinkEntry),
    /// A JSON-lines file.
    Jsonl(JsonlSink),
}

/// What a sink takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkData {
    Readings,
    Alerts,
    DeadLetters,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxdbSink {
    pub name: String,
    pub url: String,
    #[serde(default = "default_org")]
    pub org: String,
    pub bucket: String,
    /// API token; `token_env` names an environment variable holding it instead.
    #[serde(default)]
    pub token: String,
    pub token_env: Option<String>,
    #[serde(default = "readings_and_alerts")]
    pub send: Vec<SinkData>,
    /// Points per write request.
    #[serde(default = "default_batch")]
    pub batch_points: usize,
    /// A batch not full is written after this long.
    #[serde(default = "default_flush")]
    pub flush_interval: String,
    /// Points held at most while the database is slow or away; more are dropped (counted).
    #[serde(default = "default_max_points")]
    pub max_points: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkEntry {
    pub name: String,
    pub brokers: String,
    pub topic: String,
    pub send: SinkData,
    /// Records waiting for the broker at most; more are dropped (counted).
    #[serde(default = "default_max_points")]
    pub queue_messages: usize,
    /// librdkafka settings passed through (TLS, SASL: `security.protocol`, `sasl.*`, `ssl.*`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlSink {
    pub name: String,
    pub path: PathBuf,
    pub send: SinkData,
    /// The file stops growing at this size (MiB); later records are dropped (counted).
    #[serde(default = "default_max_mb")]
    pub max_mb: u64,
}

fn default_org() -> String {
    "tidewatch".into()
}
fn readings_and_alerts() -> Vec<SinkData> {
    vec![SinkData::Readings, SinkData::Alerts]
}
fn default_batch() -> usize {
    5000
}
fn default_flush() -> String {
    "1s".into()
}
fn default_max_points() -> usize {
    200_000
}
fn default_max_mb() -> u64 {
    1024
}

impl SinkConfig {
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Influxdb(c) => &c.name,
            SinkConfig::Kafka(c) => &c.name,
            SinkConfig::Jsonl(c) => &c.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Influxdb(_) => "influxdb",
            SinkConfig::Kafka(_) => "kafka",
            SinkConfig::Jsonl(_) => "jsonl",
        }
    }

    fn sends(&self) -> Vec<SinkData> {
        match self {
            SinkConfig::Influxdb(c) => c.send.clone(),
            SinkConfig::Kafka(c) => vec![c.send],
            SinkConfig::Jsonl(c) => vec![c.send],
        }
    }

    /// What serde cannot check, with the sink's name in each problem.
    pub fn check(&self, problems: &mut Vec<String>) {
        let at = format!("sink {:?} ({})", self.name(), self.kind());
        match self {
            SinkConfig::Influxdb(c) => {
                if reqwest_url_ok(&c.url).is_err() {
                    problems.push(format!("{at}: url {:?} is not an http(s) URL", c.url));
                }
                if let Err(e) = parse_duration(&c.flush_interval) {
                    problems.push(format!("{at}: flush_interval: {e}"));
                }
                if c.send.contains(&SinkData::DeadLetters) {
                    problems.push(format!("{at}: sends readings and alerts only"));
                }
                if c.batch_points == 0 || c.max_points < c.batch_points {
                    problems.push(format!("{at}: need 0 < batch_points <= max_points"));
                }
            }
            SinkConfig::Kafka(c) => {
                if c.brokers.split(',').any(|b| crate::config::parse_host_port(b.trim()).is_none()) {
                    problems.push(format!("{at}: brokers {:?} must be host:port[,host:port…]", c.brokers));
                }
            }
            SinkConfig::Jsonl(_) => {}
        }
    }
}

fn reqwest_url_ok(url: &str) -> Result<(), ()> {
    match url.split_once("://") {
        Some(("http" | "https", rest)) if !rest.is_empty() => Ok(()),
        _ => Err(()),
    }
}

enum Out {
    Influx(InfluxSink),
    Kafka(KafkaSink),
    Jsonl(Mutex<JsonlFile>),
}

struct JsonlFile {
    writer: std::io::BufWriter<std::fs::File>,
    written: u64,
    limit: u64,
}

struct Sink {
    name: String,
    kind: &'static str,
    sends: Vec<SinkData>,
    out: Out,
    counts: Arc<SinkCounts>,
}

/// The running sinks.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<Sink>,
    readings: bool,
    alerts: bool,
    dead_letters: bool,
    registry: Option<Arc<Registry>>,
}

impl Sinks {
    /// Starts every sink (an error names the sink).
    pub fn start(configs: &[SinkConfig], registry: Arc<Registry>) -> anyhow::Result<Sinks> {
        let mut sinks = Vec::new();
        for config in configs {
            let at = || format!("sink {:?} ({})", config.name(), config.kind());
            let (out, counts) = match config {
                SinkConfig::Influxdb(c) => {
                    let token = match &c.token_env {
                        Some(var) => std::env::var(var).map_err(|_| anyhow::anyhow!("{}: ${var} is not set", at()))?,
                        None => c.token.clone(),
                    };
                    let sink = InfluxSink::start(InfluxSinkConfig {
                        name: c.name.clone(),
                        url: c.url.clone(),
                        org: c.org.clone(),
                        bucket: c.bucket.clone(),
                        token,
                        batch_points: c.batch_points,
                        flush_interval: Duration::from_millis(
                            parse_duration(&c.flush_interval).unwrap_or(1000).max(10) as u64,
                        ),
                        max_points: c.max_points,
                        max_backoff: Duration::from_secs(30),
                        timeout: Duration::from_secs(10),
                    })
                    .map_err(anyhow::Error::msg)?;
                    let counts = sink.counts.clone();
                    (Out::Influx(sink), counts)
                }
                SinkConfig::Kafka(c) => {
                    let sink = KafkaSink::new(&KafkaSinkConfig {
                        name: c.name.clone(),
                        brokers: c.brokers.clone(),
                        topic: c.topic.clone(),
                        queue_messages: c.queue_messages,
                        linger_ms: 5,
                        options: c.options.clone(),
                    })
                    .map_err(anyhow::Error::msg)?;
                    let counts = sink.counts.clone();
                    (Out::Kafka(sink), counts)
                }
                SinkConfig::Jsonl(c) => {
                    let (file, written) =
                        crate::json_lines::open_for_append(&c.path).map_err(|e| anyhow::anyhow!("{}: {e:#}", at()))?;
                    let limit = c.max_mb.max(1) * 1024 * 1024;
                    let writer = std::io::BufWriter::with_capacity(256 * 1024, file);
                    (Out::Jsonl(Mutex::new(JsonlFile { writer, written, limit })), Arc::new(SinkCounts::default()))
                }
            };
            tracing::info!(sink = config.name(), kind = config.kind(), sends = ?config.sends(), "sink started");
            sinks.push(Sink {
                name: config.name().to_owned(),
                kind: config.kind(),
                sends: config.sends(),
                out,
                counts,
            });
        }
        let wants = |d| sinks.iter().any(|s: &Sink| s.sends.contains(&d));
        Ok(Sinks {
            readings: wants(SinkData::Readings),
            alerts: wants(SinkData::Alerts),
            dead_letters: wants(SinkData::DeadLetters),
            sinks,
            registry: Some(registry),
        })
    }

    pub fn wants_readings(&self) -> bool {
        self.readings
    }

    /// A batch of accepted readings.
    pub fn readings(&self, readings: &[Reading]) {
        if !self.readings || readings.is_empty() {
            return;
        }
        let Some(registry) = &self.registry else { return };
        for sink in self.sinks.iter().filter(|s| s.sends.contains(&SinkData::Readings)) {
            match &sink.out {
                Out::Influx(influx) => influx.push(readings.iter().filter_map(|r| {
                    let station = registry.station(r.sensor.station);
                    DataPoint::builder("reading")
                        .tag("station", station.id.as_str())
                        .tag("quantity", r.sensor.quantity.name())
                        .tag("region", station.region.as_str())
                        .tag("domain", station.domain.name())
                        .field("value", r.value)
                        .timestamp(r.time)
                        .build()
                        .ok()
                })),
                Out::Kafka(kafka) => {
                    let mut line = Vec::with_capacity(160);
                    for r in readings {
                        line.clear();
                        let station = &registry.station(r.sensor.station).id;
                        write_reading(&mut line, station, r);
                        kafka.send(station.as_bytes(), &line);
                    }
                }
                Out::Jsonl(file) => {
                    let mut line = Vec::with_capacity(160);
                    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                    for r in readings {
                        line.clear();
                        write_reading(&mut line, &registry.station(r.sensor.station).id, r);
                        line.push(b'\n');
                        file.append(&line, &sink.counts);
                    }
                }
            }
        }
    }

    /// An alert transition.
    pub fn alert(&self, notice: &Notice) {
        if !self.alerts {
            return;
        }
        for sink in self.sinks.iter().filter(|s| s.sends.contains(&SinkData::Alerts)) {
            match &sink.out {
                Out::Influx(influx) => {
                    let point = DataPoint::builder("alert")
                        .tag("rule", notice.rule.as_str())
                        .tag("station", notice.subject.station.as_str())
                        .tag("quantity", notice.subject.quantity.as_str())
                        .tag("severity", notice.severity.name())
                        .tag("transition", notice.transition.name())
                        .tag("region", notice.subject.region.as_str())
                        .tag("domain", notice.subject.domain.as_str())
                        .field("value", notice.value)
                        .field("threshold", notice.threshold)
                        .field("alert_id", notice.alert_id)
                        .timestamp(notice.event_ms)
                        .build();
                    if let Ok(point) = point {
                        influx.push([point]);
                    }
                }
                Out::Kafka(kafka) => {
                    let payload = serde_json::to_vec(notice).unwrap_or_default();
                    kafka.send(notice.alert_id.to_string().as_bytes(), &payload);
                }
                Out::Jsonl(file) => {
                    let mut line = serde_json::to_vec(notice).unwrap_or_default();
                    line.push(b'\n');
                    file.lock().unwrap_or_else(|e| e.into_inner()).append(&line, &sink.counts);
                }
            }
        }
    }

    /// A dead letter.
    pub fn dead_letter(&self, letter: &DeadLetter) {
        if !self.dead_letters {
            return;
        }
        // InfluxDB takes no dead letters (`check` refuses that configuration).
        let mut line = serde_json::to_vec(letter).unwrap_or_default();
        line.push(b'\n');
        for sink in self.sinks.iter().filter(|s| s.sends.contains(&SinkData::DeadLetters)) {
            match &sink.out {
                Out::Influx(_) => {}
                Out::Kafka(kafka) => kafka.send(letter.source.as_bytes(), &line[..line.len() - 1]),
                Out::Jsonl(file) => file.lock().unwrap_or_else(|e| e.into_inner()).append(&line, &sink.counts),
            }
        }
    }

    /// Each sink's name, kind and counts (for `/metrics` and `/healthz`).
    pub fn counts(&self) -> Vec<(String, &'static str, Arc<SinkCounts>)> {
        self.sinks.iter().map(|s| (s.name.clone(), s.kind, s.counts.clone())).collect()
    }

    /// Writes out what is buffered, for at most `timeout` per sink (at shutdown, after the
    /// last alert and dead letter).
    pub async fn close(&self, timeout: Duration) {
        for sink in &self.sinks {
            match &sink.out {
                Out::Influx(influx) => influx.close(timeout).await,
                Out::Kafka(kafka) => tokio::task::block_in_place(|| kafka.flush(timeout)),
                Out::Jsonl(file) => {
                    if let Err(e) = file.lock().unwrap_or_else(|e| e.into_inner()).writer.flush() {
                        tracing::error!(sink = %sink.name, error = %e, "cannot flush a sink's file");
                    }
                }
            }
        }
    }

    /// Flushes file sinks (after each batch), so that what is written can be read.
    pub fn flush(&self) {
        for sink in &self.sinks {
            if let Out::Jsonl(file) = &sink.out {
                let _ = file.lock().unwrap_or_else(|e| e.into_inner()).writer.flush();
            }
        }
    }
}

impl JsonlFile {
    fn append(&mut self, line: &[u8], counts: &SinkCounts) {
        if self.written + line.len() as u64 > self.limit {
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.writer.write_all(line) {
            Ok(()) => {
                self.written += line.len() as u64;
                counts.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `{"station":…,"quantity":…,"value":…,"unit":…,"time":…}`: what the JSON decoder reads by
/// default.
fn write_reading(out: &mut Vec<u8>, station: &str, r: &Reading) {
    let quantity = r.sensor.quantity;
    let _ = write!(out, "{{\"station\":");
    let _ = serde_json::to_writer(&mut *out, station);
    let _ = write!(
        out,
        ",\"quantity\":\"{}\",\"value\":{},\"unit\":\"{}\",\"time\":\"{}\"}}",
        quantity.name(),
        r.value,
        quantity.canonical_unit(),
        to_rfc3339(r.time)
    );
}

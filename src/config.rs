//! The deployment's configuration file (`config/tidewatch.toml`).
//!
//! Every struct is the documentation of what a user may write: unknown fields are errors,
//! and [`Config::check`] reports every problem at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tidewatch_ingest::json::JsonMapping;
use tidewatch_rules::duration::parse_duration;

pub use crate::sinks::SinkConfig;
pub use crate::sources::SourceConfig;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The rules engine.
    #[serde(default)]
    pub engine: EngineSection,
    /// Station registry file (relative paths are relative to this config file).
    pub stations: PathBuf,
    /// Rule files or directories of `*.toml` rule files.
    pub rules: Vec<PathBuf>,
    /// Where readings come from: MQTT, Kafka, HJ 212 / SL 651 listeners, recorded files.
    #[serde(default)]
    pub source: Vec<SourceConfig>,
    /// Where readings, alert transitions and dead letters are copied to: InfluxDB, Kafka,
    /// JSON-lines files.
    #[serde(default)]
    pub sink: Vec<SinkConfig>,
    /// The MQTT source, as written before `[[source]]` existed (still read; the same as a
    /// `[[source]]` with `kind = "mqtt"`). Without it and without `[[source]]`, the default
    /// MQTT source on the embedded broker.
    pub mqtt: Option<MqttSection>,
    /// TCP listeners, as written before `[[source]]` existed (still read; the same as
    /// `kind = "hj212_tcp"` / `"sl651_tcp"` sources).
    #[serde(default)]
    pub listener: Vec<Listener>,
    /// The HTTP API (alerts, health, metrics).
    #[serde(default)]
    pub http: HttpSection,
    /// Where alerts and dead letters are written.
    #[serde(default)]
    pub output: OutputSection,
    /// The alert workflow: store, duty roster, notifications.
    #[serde(default)]
    pub alerting: AlertingSection,
    /// Crash safety: rule-state checkpoints and the reading log.
    #[serde(default)]
    pub state: StateSection,
}

/// Where rule state and the reading log live, and how hard they hold on to it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    /// Directory for `state.db` (rule-state checkpoints) and `log/` (the reading log).
    /// Leave out to keep rule state in memory only: a restart then starts every rule afresh
    /// and loses readings acknowledged but not yet evaluated.
    pub dir: Option<PathBuf>,
    /// How often rule state is checkpointed (wall clock); a restart replays at most this
    /// much of the reading log.
    pub checkpoint_interval: String,
    /// `normal`: nothing acknowledged is lost when the process dies; `full`: nor when the
    /// machine loses power (an fsync per batch of the reading log, SQLite `synchronous =
    /// FULL` for the alert store and the checkpoints).
    pub sync: SyncMode,
}

impl Default for StateSection {
    fn default() -> Self {
        StateSection { dir: None, checkpoint_interval: "5s".into(), sync: SyncMode::Normal }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    #[default]
    Normal,
    Full,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingSection {
    /// The alert store: `sqlite://PATH` (relative to this file) or `postgres://user:password@host/db`.
    pub store: String,
    /// The duty roster: teams, shifts, channels, maintenance windows, inhibitions. Without
    /// one, alerts are stored and shown but nobody is notified.
    pub duty: Option<PathBuf>,
    /// Language of notifications: `zh` or `en`.
    pub language: tidewatch_alerting::Language,
    /// Base URL of the console, for links in notifications (e.g. `http://tidewatch.example.cn`).
    pub console_url: Option<String>,
    /// Changes of one rule in one region within this time go out as one message.
    pub group_wait: String,
    /// Longest wait between retries of a failed notification.
    pub max_retry: String,
    /// Longest silence the API accepts.
    pub max_silence: String,
}

impl Default for AlertingSection {
    fn default() -> Self {
        AlertingSection {
            store: "sqlite://var/tidewatch.db".into(),
            duty: None,
            language: Default::default(),
            console_url: None,
            group_wait: "10s".into(),
            max_retry: "5m".into(),
            max_silence: "7d".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Timely worker threads evaluating rules.
    pub workers: usize,
    /// How late (in event time, behind the newest reading) a reading may arrive and still
    /// be evaluated; later ones are dead letters with reason `late`.
    pub allowed_lateness: String,
    /// A source silent this long (wall clock) stops holding the watermark back.
    pub idle_source_timeout: String,
    /// Readings stamped further ahead of the clock than this are dead letters.
    pub max_future: String,
    /// A stop (SIGTERM, Ctrl-C) ends the process within this long, finished or not.
    pub shutdown_timeout: String,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            workers: 2,
            allowed_lateness: "2m".into(),
            idle_source_timeout: "30s".into(),
            max_future: "10m".into(),
            shutdown_timeout: "20s".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSection {
    /// The source's name (metrics, dead letters, health).
    pub name: String,
    /// External broker as `host:port`. Leave out to start the embedded broker.
    pub broker: Option<String>,
    /// Address of the embedded broker, when `broker` is not set.
    pub embedded_listen: SocketAddr,
    /// The embedded broker's users (`[users] name = "password"`), generated on first start
    /// (readable by this user only): `tidewatch` for Tidewatch itself, `device` for publishers.
    pub embedded_credentials: PathBuf,
    /// Let clients without credentials into the embedded broker (never with Tidewatch's
    /// client id).
    pub embedded_anonymous: bool,
    /// Stable client id for the persistent session.
    pub client_id: String,
    pub keep_alive_s: u64,
    /// Longest wait between reconnection attempts.
    pub max_backoff_s: u64,
    /// Messages larger than this (KiB) are one dead letter, `too_large`, and acknowledged.
    /// The broker's own limit should be at most 64 MiB (`message_size_limit` in Mosquitto).
    pub max_message_kb: usize,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to an external broker: `tls = { ca = "ca.pem" }`, with `cert` and `key` for a
    /// client certificate (PEM files, relative to this file).
    pub tls: Option<TlsFiles>,
    /// Topic filters and how to decode what arrives on them; the first match wins.
    pub route: Vec<Route>,
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            name: "mqtt".into(),
            broker: None,
            embedded_listen: "127.0.0.1:1883".parse().expect("valid address"),
            embedded_credentials: "var/mqtt-credentials.toml".into(),
            embedded_anonymous: false,
            client_id: "tidewatch".into(),
            keep_alive_s: 30,
            max_backoff_s: 10,
            max_message_kb: 1024,
            username: None,
            password: None,
            tls: None,
            route: vec![Route {
                name: "json".into(),
                filter: "tidewatch/json/#".into(),
                format: Format::Json,
                json: JsonMapping::default(),
                senml: Default::default(),
                time_zone: default_zone(),
                reorder: false,
            }],
        }
    }
}

/// PEM files for a TLS connection: the CA to trust, and optionally our own certificate.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    fn resolve(&mut self, fix: &impl Fn(&mut PathBuf)) {
        fix(&mut self.ca);
        self.cert.iter_mut().for_each(fix);
        self.key.iter_mut().for_each(fix);
    }

    /// The files' bytes, or which one could not be read.
    pub fn load(&self) -> anyhow::Result<tidewatch_connectors::mqtt::MqttTls> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()));
        let client = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            (None, None) => None,
            _ => anyhow::bail!("tls: cert and key go together"),
        };
        Ok(tidewatch_connectors::mqtt::MqttTls { ca: read(&self.ca)?, client })
    }
}

/// Payloads on `filter` are decoded as `format`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Name used in metrics and dead letters.
    pub name: String,
    /// MQTT topic filter (`+` and `#` wildcards), or a Kafka topic's name.
    #[serde(alias = "topic")]
    pub filter: String,
    pub format: Format,
    /// Field mapping for `format = "json"`.
    #[serde(default)]
    pub json: JsonMapping,
    /// Name and unit mapping for `format = "senml"`.
    #[serde(default)]
    pub senml: tidewatch_ingest::senml::SenmlMapping,
    /// Zone of device-local times for `format = "hj212"` and `"sl651"` (IANA name).
    #[serde(default = "default_zone")]
    pub time_zone: chrono_tz::Tz,
    /// Devices on this route may deliver a sensor's readings out of order (a logger that
    /// re-sends its buffer, a gateway that merges queues): hold them until the watermark and
    /// evaluate them in event-time order. Exact within `engine.allowed_lateness`, but their
    /// alerts wait for it. Default: readings are decided on arrival.
    #[serde(default)]
    pub reorder: bool,
}

fn default_zone() -> chrono_tz::Tz {
    chrono_tz::Asia::Shanghai
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Plain JSON with a field mapping.
    Json,
    /// HJ 212-2017 packets (one per message, or several separated by line breaks); times
    /// in `time_zone`, the MN is the station id.
    Hj212,
    /// SL 651-2014 HEX-mode frames, binary or as hex text; times in `time_zone`, the
    /// 10-digit station address is the station id.
    Sl651,
    /// SenML (RFC 8428) JSON packs; names and units map to stations and quantities as
    /// the route's `senml` table says.
    Senml,
}

/// A TCP port devices connect to and stream frames on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Name used in metrics and dead letters (and as the watermark source).
    pub name: String,
    /// For `[[listener]]`; a `[[source]]` says it with its `kind`.
    pub protocol: Option<StreamProtocolName>,
    /// Address to listen on, e.g. `0.0.0.0:9212`.
    pub listen: SocketAddr,
    /// Zone of the devices' clocks.
    #[serde(default = "default_zone")]
    pub time_zone: chrono_tz::Tz,
    /// A connection that completes no frame for this long is closed (seconds), however
    /// many bytes it trickles.
    #[serde(default = "default_idle")]
    pub idle_timeout_s: u64,
    /// Connections open at once; more are closed as soon as they are accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one address (a gateway may carry many devices).
    #[serde(default = "default_max_per_address")]
    pub max_connections_per_address: usize,
    /// As a route's `reorder`: devices here may deliver a sensor's readings out of order.
    #[serde(default)]
    pub reorder: bool,
    /// The password devices on this listener must give (HJ 212 `PW`; SL 651 as 4 hex
    /// digits) when their station has none of its own in the registry.
    #[serde(default)]
    pub password: Option<String>,
}

fn default_idle() -> u64 {
    300
}

fn default_max_connections() -> usize {
    1024
}

fn default_max_per_address() -> usize {
    64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamProtocolName {
    /// HJ 212 data loggers (answered with CN=9014 when they ask).
    Hj212,
    /// SL 651 HEX-mode stations (reports are confirmed).
    Sl651,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Whether reading alerts and silences needs no login (changes always need one).
    pub open_reads: bool,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_connections_per_address: usize,
    /// A request's headers must arrive within this.
    pub header_timeout: String,
    /// A connection that moves no byte for this long is closed.
    pub idle_timeout: String,
    /// A request (its body included) is answered within this, or with 408.
    pub request_timeout: String,
    /// Serve HTTPS: `tls = { cert = "server.pem", key = "server.key" }` (PEM, relative to
    /// this file).
    pub tls: Option<HttpTls>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            open_reads: true,
            max_connections: 512,
            max_connections_per_address: 64,
            header_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            request_timeout: "30s".into(),
            tls: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Alert transitions, one JSON object per line (appended).
    pub alerts_file: Option<PathBuf>,
    /// Rejected input with its reason, one JSON object per line (appended).
    pub dead_letter_file: Option<PathBuf>,
    /// The dead-letter file rotates at this size (MiB) ...
    pub dead_letter_max_mb: u64,
    /// ... keeping this many files, the current one included.
    pub dead_letter_files: u32,
    /// Letters written per second per source and reason; the rest are counted only.
    pub dead_letter_rate: u32,
    /// Print transitions on the terminal.
    pub console: bool,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            alerts_file: Some("var/alerts.jsonl".into()),
            dead_letter_file: Some("var/dead_letters.jsonl".into()),
            dead_letter_max_mb: 64,
            dead_letter_files: 4,
            dead_letter_rate: 100,
            console: true,
        }
    }
}

/// Durations in milliseconds, checked.
#[derive(Clone, Copy, Debug)]
pub struct EngineTiming {
    pub lateness_ms: i64,
    pub idle_ms: i64,
    pub max_future_ms: i64,
    pub group_wait_ms: i64,
    pub max_retry_ms: i64,
    pub checkpoint_ms: i64,
    pub shutdown_ms: i64,
    pub max_silence_ms: i64,
    pub http_header_ms: i64,
    pub http_idle_ms: i64,
    pub http_request_ms: i64,
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut config: Config =
            tidewatch_ingest::toml_all::parse(&text, &path.display().to_string()).map_err(|p| {
                anyhow::anyhow!(
                    "invalid configuration ({} problem{}):\n  {}",
                    p.len(),
                    if p.len() == 1 { "" } else { "s" },
                    p.join("\n  ")
                )
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Every source: the `[[source]]` list, then the older `[mqtt]` and `[[listener]]`
    /// sections as the sources they are.
    pub fn sources(&self) -> Vec<SourceConfig> {
        let mut sources = self.source.clone();
        match &self.mqtt {
            Some(mqtt) if !mqtt.route.is_empty() => sources.push(SourceConfig::Mqtt(mqtt.clone())),
            Some(_) => {}
            None if self.source.is_empty() => sources.push(SourceConfig::Mqtt(MqttSection::default())),
            None => {}
        }
        for l in &self.listener {
            let listener = Listener { protocol: None, ..l.clone() };
            sources.push(match l.protocol {
                Some(StreamProtocolName::Sl651) => SourceConfig::Sl651Tcp(listener),
                _ => SourceConfig::Hj212Tcp(listener),
            });
        }
        sources
    }

    /// Makes relative paths relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.stations);
        self.rules.iter_mut().for_each(fix);
        if let Some(p) = self.output.alerts_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.output.dead_letter_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.alerting.duty.as_mut() {
            fix(p);
        }
        if let Some(p) = self.state.dir.as_mut() {
            fix(p);
        }
        for source in &mut self.source {
            match source {
                SourceConfig::File(f) => fix(&mut f.path),
                SourceConfig::Mqtt(m) => {
                    fix(&mut m.embedded_credentials);
                    if let Some(tls) = m.tls.as_mut() {
                        tls.resolve(&fix);
                    }
                }
                _ => {}
            }
        }
        if let Some(tls) = self.http.tls.as_mut() {
            fix(&mut tls.cert);
            fix(&mut tls.key);
        }
        if let Some(m) = self.mqtt.as_mut() {
            fix(&mut m.embedded_credentials);
            if let Some(tls) = m.tls.as_mut() {
                tls.resolve(&fix);
            }
        }
        for sink in &mut self.sink {
            if let SinkConfig::Jsonl(j) = sink {
                fix(&mut j.path);
            }
        }
        if let Some(path) = self.alerting.store.strip_prefix("sqlite://") {
            if !path.starts_with(":memory:") && Path::new(path).is_relative() {
                self.alerting.store = format!("sqlite://{}", base.join(path).display());
            }
        }
    }

    /// Checks what serde cannot; every problem at once.
    pub fn check(&self) -> Result<EngineTiming, Vec<String>> {
        let mut problems = Vec::new();
        let mut duration = |name: &str, text: &str| match parse_duration(text) {
            Ok(ms) => ms,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                0
            }
        };
        let timing = EngineTiming {
            lateness_ms: duration("engine.allowed_lateness", &self.engine.allowed_lateness),
            idle_ms: duration("engine.idle_source_timeout", &self.engine.idle_source_timeout),
            max_future_ms: duration("engine.max_future", &self.engine.max_future),
            group_wait_ms: duration("alerting.group_wait", &self.alerting.group_wait),
            max_retry_ms: duration("alerting.max_retry", &self.alerting.max_retry),
            checkpoint_ms: duration("state.checkpoint_interval", &self.state.checkpoint_interval),
            shutdown_ms: duration("engine.shutdown_timeout", &self.engine.shutdown_timeout),
            max_silence_ms: duration("alerting.max_silence", &self.alerting.max_silence),
            http_header_ms: duration("http.header_timeout", &self.http.header_timeout),
            http_idle_ms: duration("http.idle_timeout", &self.http.idle_timeout),
            http_request_ms: duration("http.request_timeout", &self.http.request_timeout),
        };
        if timing.checkpoint_ms < 100 && self.state.dir.is_some() {
            problems.push(format!(
                "state.checkpoint_interval must be at least 100ms, not {:?}",
                self.state.checkpoint_interval
            ));
        }
        let store = &self.alerting.store;
        if !(store.starts_with("sqlite:") || store.starts_with("postgres://") || store.starts_with("postgresql://")) {
            problems.push(format!("alerting.store {store:?} must start with sqlite:// or postgres://"));
        }
        if self.engine.workers == 0 || self.engine.workers > 256 {
            problems.push(format!("engine.workers must be 1 to 256, not {}", self.engine.workers));
        }
        if self.rules.is_empty() {
            problems.push("rules: name at least one rule file or directory".into());
        }
        if !self.source.is_empty() && self.mqtt.is_some() {
            problems.push(
                "[mqtt] and [[source]] together: write the MQTT source as a [[source]] with kind = \"mqtt\"".into(),
            );
        }
        for l in &self.listener {
            if l.protocol.is_none() {
                problems.push(format!("listener {:?}: needs protocol = \"hj212\" or \"sl651\"", l.name));
            }
        }
        let sources = self.sources();
        if sources.is_empty() {
            problems.push("source: a [[source]] is needed, or no reading can arrive".into());
        }
        for (i, source) in sources.iter().enumerate() {
            if sources[..i].iter().any(|o| o.name() == source.name()) {
                problems.push(format!("source {:?}: source names must be unique", source.name()));
            }
            source.check(&mut problems);
        }
        for (i, sink) in self.sink.iter().enumerate() {
            if self.sink[..i].iter().any(|o| o.name() == sink.name()) {
                problems.push(format!("sink {:?}: sink names must be unique", sink.name()));
            }
            sink.check(&mut problems);
        }
        if problems.is_empty() {
            Ok(timing)
        } else {
            Err(problems)
        }
    }
}

/// `host:port` → (host, port).
pub fn parse_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.strip_prefix("mqtt://").or_else(|| s.strip_prefix("tcp://")).unwrap_or(s);
    let (host, port) = s.rsplit_once(':')?;
    Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tidewatch.toml");
        let config = Config::load(&path).unwrap();
        config.check().unwrap();
        assert!(config.stations.exists());
        let duty = config.alerting.duty.as_deref().expect("the example names its duty roster");
        tidewatch_alerting::Duty::load(duty).unwrap();
    }

    #[test]
    fn a_typo_is_an_error_and_all_problems_come_at_once() {
        let err = toml::from_str::<Config>("stations = 's'\nrules = []\n[engine]\nworkrs = 2\n").unwrap_err();
        assert!(err.to_string().contains("workrs"), "{err}");
        let config: Config = toml::from_str(
            "stations = 's'\nrules = []\n[engine]\nworkers = 0\nallowed_lateness = '2 min'\n[mqtt]\nbroker = 'nohost'\n",
        )
        .unwrap();
        let problems = config.check().unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }
}

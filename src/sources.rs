//! Sources as components: the `[[source]]` list, each entry one `kind` with its typed
//! settings, started into one envelope channel.
//!
//! The connectors move bytes (`tidewatch_connectors::{mqtt, kafka, tcp, file}`); here each
//! kind's entry says how to reach it and how its payloads decode (its routes, or its one
//! format). Adding a kind: its connector module, a variant of [`SourceConfig`], an arm in
//! [`start`] and in [`SourceConfig::decoding`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use tidewatch_connectors::file::{FileSourceConfig, FileStatus};
use tidewatch_connectors::kafka::KafkaSourceConfig;
use tidewatch_connectors::mqtt::{embedded, MqttSource, MqttSourceConfig};
use tidewatch_connectors::tcp::{StreamProtocol, TcpListenerConfig};
use tidewatch_connectors::{Envelope, Running};
use tidewatch_ingest::hj212::Hj212Decoder;
use tidewatch_ingest::json::JsonMapping;
use tidewatch_ingest::sl651::Sl651Decoder;
use tidewatch_ingest::Decoder;
use tidewatch_rules::duration::parse_duration;
use tokio::sync::mpsc;

use crate::config::{parse_host_port, Listener, MqttSection, Route};
use crate::protocols::{Hj212Stream, Sl651Stream};

/// One source. `kind` picks the variant; every other field is the kind's own.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// An MQTT broker (external, or the embedded one): topic filters routed to formats.
    Mqtt(MqttSection),
    /// Kafka topics, read as a consumer group: topics routed to formats.
    Kafka(KafkaSource),
    /// A TCP port HJ 212 data loggers connect to.
    Hj212Tcp(Listener),
    /// A TCP port SL 651 stations connect to.
    Sl651Tcp(Listener),
    /// A recorded file, replayed.
    File(FileSource),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSource {
    pub name: String,
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The consumer group: members share the topics' partitions; offsets are the group's.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// A member silent this long loses its partitions to the others.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: String,
    /// How often handed-on offsets are committed.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: String,
    /// Messages larger than this (KiB) are one dead letter, `too_large`.
    #[serde(default = "default_max_message_kb")]
    pub max_message_kb: usize,
    /// Further librdkafka settings, as they are (e.g. `"security.protocol" = "ssl"`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Topics (`topic = "…"`, exact names) and how to decode what arrives on them.
    pub route: Vec<Route>,
}

fn default_group() -> String {
    "tidewatch".into()
}
fn default_session_timeout() -> String {
    "10s".into()
}
fn default_commit_interval() -> String {
    "1s".into()
}
fn default_max_message_kb() -> usize {
    1024
}

/// A recorded file: JSON lines (one reading, or an array of them, per line) or CSV with
/// a header.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    #[serde(default = "default_file_name")]
    pub name: String,
    pub path: PathBuf,
    pub format: FileFormat,
    /// Which field (JSON) or column (CSV) holds what; the JSON route's defaults.
    #[serde(default)]
    pub mapping: JsonMapping,
    /// Event time per wall-clock time (`60`: an hour a minute); leave out for full speed.
    pub speed: Option<f64>,
    /// As a route's `reorder`.
    #[serde(default)]
    pub reorder: bool,
}

fn default_file_name() -> String {
    "file".into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Jsonl,
    Csv,
}

/// How a source's payloads decode.
pub enum Decoding {
    /// By topic, first matching route wins (MQTT filters match wildcards; Kafka names exactly).
    Routes { routes: Vec<Route>, wildcards: bool },
    /// One format for everything.
    Fixed { decoder: Decoder, reorder: bool, lines: bool },
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Mqtt(c) => &c.name,
            SourceConfig::Kafka(c) => &c.name,
            SourceConfig::Hj212Tcp(c) | SourceConfig::Sl651Tcp(c) => &c.name,
            SourceConfig::File(c) => &c.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Mqtt(_) => "mqtt",
            SourceConfig::Kafka(_) => "kafka",
            SourceConfig::Hj212Tcp(_) => "hj212_tcp",
            SourceConfig::Sl651Tcp(_) => "sl651_tcp",
            SourceConfig::File(_) => "file",
        }
    }

    /// Whether it ends by itself (a file).
    pub fn finite(&self) -> bool {
        matches!(self, SourceConfig::File(_))
    }

    pub fn decoding(&self) -> anyhow::Result<Decoding> {
        Ok(match self {
            SourceConfig::Mqtt(c) => Decoding::Routes { routes: c.route.clone(), wildcards: true },
            SourceConfig::Kafka(c) => Decoding::Routes { routes: c.route.clone(), wildcards: false },
            SourceConfig::Hj212Tcp(l) => Decoding::Fixed {
                decoder: Decoder::Hj212(Hj212Decoder { zone: l.time_zone }),
                reorder: l.reorder,
                lines: false,
            },
            SourceConfig::Sl651Tcp(l) => Decoding::Fixed {
                decoder: Decoder::Sl651(Sl651Decoder { zone: l.time_zone }),
                reorder: l.reorder,
                lines: false,
            },
            SourceConfig::File(f) => {
                let decoder = f.mapping.clone().into_decoder().with_context(|| format!("source {:?}", f.name))?;
                match f.format {
                    FileFormat::Jsonl => {
                        Decoding::Fixed { decoder: Decoder::Json(decoder), reorder: f.reorder, lines: true }
                    }
                    FileFormat::Csv => {
                        Decoding::Fixed { decoder: Decoder::Csv(decoder), reorder: f.reorder, lines: false }
                    }
                }
            }
        })
    }

    /// What serde cannot check, with the source's name in each problem.
    pub fn check(&self, problems: &mut Vec<String>) {
        let at = format!("source {:?} ({})", self.name(), self.kind());
        let routes = match self {
            SourceConfig::Mqtt(c) => {
                if let Some(broker) = &c.broker {
                    if broker.starts_with("mqtts://") || broker.starts_with("ssl://") {
                        problems.push(format!("{at}: broker {broker:?}: write host:port and a tls table for TLS"));
                    } else if parse_host_port(broker).is_none() {
                        problems.push(format!("{at}: broker {broker:?} must be host:port"));
                    }
                }
                if let Some(tls) = &c.tls {
                    if c.broker.is_none() {
                        problems.push(format!("{at}: tls is for an external broker (set broker)"));
                    }
                    if tls.cert.is_some() != tls.key.is_some() {
                        problems.push(format!("{at}: tls: cert and key go together"));
                    }
                }
                &c.route[..]
            }
            SourceConfig::Kafka(c) => {
                for broker in c.brokers.split(',') {
                    if parse_host_port(broker.trim()).is_none() {
                        problems.push(format!("{at}: brokers {:?} must be host:port[,host:port…]", c.brokers));
                    }
                }
                for (field, text) in [("session_timeout", &c.session_timeout), ("commit_interval", &c.commit_interval)]
                {
                    if let Err(e) = parse_duration(text) {
                        problems.push(format!("{at}: {field}: {e}"));
                    }
                }
                if c.route.is_empty() {
                    problems.push(format!("{at}: name at least one topic with a [[source.route]]"));
                }
                &c.route[..]
            }
            SourceConfig::Hj212Tcp(l) | SourceConfig::Sl651Tcp(l) => {
                if l.protocol.is_some() {
                    problems.push(format!("{at}: `protocol` belongs to [[listener]]; a source says it with its kind"));
                }
                &[]
            }
            SourceConfig::File(f) => {
                if let Err(e) = f.mapping.clone().into_decoder() {
                    problems.push(format!("{at}: mapping: {e}"));
                }
                if f.speed.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
                    problems.push(format!("{at}: speed must be a positive number"));
                }
                &[]
            }
        };
        for route in routes {
            if let Err(e) = route.json.clone().into_decoder() {
                problems.push(format!("{at}: route {:?}: {e}", route.name));
            }
            if route.filter.is_empty() || route.filter.contains("#/") {
                problems.push(format!("{at}: route {:?}: {:?} is not a valid topic", route.name, route.filter));
            }
        }
    }
}

/// An MQTT broker's host and port, and the publishers' login (username, password) on the
/// embedded one.
pub type Broker = (String, u16, Option<(String, String)>);

/// A started source, with what the rest of the process needs of it.
pub struct Started {
    pub running: Running,
    /// Where its MQTT broker is, and (embedded) the publishers' login (for the demo's simulator).
    pub broker: Option<Broker>,
    /// The embedded broker's address and Tidewatch's own password on it, when this source
    /// started one: MQTT alert-topic channels pointed at it log in with them.
    pub embedded: Option<(std::net::SocketAddr, String)>,
    pub file: Option<Arc<FileStatus>>,
}

/// Starts one source, sending into `tx`.
pub async fn start(config: &SourceConfig, tx: mpsc::Sender<Envelope>) -> anyhow::Result<Started> {
    // Source names live as long as the process: they label every envelope.
    let name: &'static str = Box::leak(config.name().to_owned().into_boxed_str());
    let at = || format!("source {name:?} ({})", config.kind());
    match config {
        SourceConfig::Mqtt(c) => {
            let mut login = (c.username.clone(), c.password.clone());
            let mut devices = None;
            let mut embedded = None;
            let (host, port) = match &c.broker {
                Some(broker) => {
                    parse_host_port(broker).with_context(|| format!("{}: broker must be host:port", at()))?
                }
                None => {
                    let listen = c.embedded_listen;
                    let users = embedded_users(&c.embedded_credentials).with_context(at)?;
                    login = (Some("tidewatch".into()), users.get("tidewatch").cloned());
                    devices = users.get("device").map(|p| ("device".to_owned(), p.clone()));
                    embedded = users.get("tidewatch").map(|p| (listen, p.clone()));
                    let access = embedded::Access {
                        users,
                        reserved: vec![c.client_id.clone()],
                        anonymous: c.embedded_anonymous,
                    };
                    embedded::start(listen, access)
                        .with_context(|| format!("{}: starting the embedded MQTT broker", at()))?;
                    tracing::info!(%listen, credentials = %c.embedded_credentials.display(), "embedded MQTT broker started");
                    (listen.ip().to_string(), listen.port())
                }
            };
            let filters = c.route.iter().map(|r| r.filter.clone()).collect();
            let mut mqtt = MqttSourceConfig::new(host.clone(), port, c.client_id.clone(), filters);
            mqtt.keep_alive_s = c.keep_alive_s;
            mqtt.max_backoff_s = c.max_backoff_s;
            mqtt.max_payload = c.max_message_kb.max(1) * 1024;
            (mqtt.username, mqtt.password) = login;
            if let Some(tls) = &c.tls {
                anyhow::ensure!(c.broker.is_some(), "{}: tls is for an external broker", at());
                mqtt.tls = Some(tls.load().with_context(at)?);
            }
            let source = MqttSource::start(&mqtt, name, tx);
            Ok(Started {
                running: Running::mqtt(name, &source),
                broker: Some((host, port, devices)),
                embedded,
                file: None,
            })
        }
        SourceConfig::Kafka(c) => {
            let ms = |text: &str| parse_duration(text).unwrap_or(0).max(0) as u64;
            let kafka = KafkaSourceConfig {
                name,
                brokers: c.brokers.clone(),
                group_id: c.group_id.clone(),
                topics: c.route.iter().map(|r| r.filter.clone()).collect(),
                max_payload: c.max_message_kb.max(1) * 1024,
                session_timeout_ms: ms(&c.session_timeout),
                commit_interval_ms: ms(&c.commit_interval),
                options: c.options.clone(),
            };
            let running = tidewatch_connectors::kafka::start(kafka, tx).map_err(anyhow::Error::msg)?;
            Ok(Started { running, broker: None, embedded: None, file: None })
        }
        SourceConfig::Hj212Tcp(l) | SourceConfig::Sl651Tcp(l) => {
            let protocol: Arc<dyn StreamProtocol> = match config {
                SourceConfig::Hj212Tcp(_) => Arc::new(Hj212Stream),
                _ => Arc::new(Sl651Stream { zone: l.time_zone }),
            };
            let listener = TcpListenerConfig {
                name,
                listen: l.listen,
                idle_timeout: Duration::from_secs(l.idle_timeout_s.max(1)),
                max_connections: l.max_connections,
                max_per_address: l.max_connections_per_address,
                max_buffer: 64 * 1024,
            };
            let source = tidewatch_connectors::tcp::start(listener, protocol, tx)
                .await
                .with_context(|| format!("{}: cannot listen on {}", at(), l.listen))?;
            tracing::info!(source = name, addr = %source.local_addr, kind = config.kind(), "listening");
            Ok(Started { running: Running::tcp(name, config.kind(), source), broker: None, embedded: None, file: None })
        }
        SourceConfig::File(f) => {
            let time_of = f.speed.map(|_| -> tidewatch_connectors::file::TimeOf {
                let decoder = f.mapping.clone().into_decoder().expect("checked");
                Arc::new(move |line: &[u8]| {
                    let mut time = None;
                    decoder.decode(line, &mut |r| {
                        if let Ok(r) = r {
                            time = time.or(r.time);
                        }
                    });
                    time
                })
            });
            if f.speed.is_some() && f.format == FileFormat::Csv {
                anyhow::bail!("{}: speed works with format = \"jsonl\" only (for now)", at());
            }
            let file = FileSourceConfig {
                name,
                path: f.path.clone(),
                header: f.format == FileFormat::Csv,
                speed: f.speed,
                time_of,
                chunk_lines: 512,
            };
            let (running, status) = tidewatch_connectors::file::start(file, tx).map_err(anyhow::Error::msg)?;
            Ok(Started { running, broker: None, embedded: None, file: Some(status) })
        }
    }
}

/// The embedded broker's users from its credentials file, which is made (readable by this
/// user only) with generated passwords for `tidewatch` and `device` when it is missing.
fn embedded_users(path: &std::path::Path) -> anyhow::Result<std::collections::HashMap<String, String>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Credentials {
        users: std::collections::HashMap<String, String>,
    }
    if !path.exists() {
        let text = format!(
            "# Users of Tidewatch's embedded MQTT broker (username = \"password\"), generated on\n\
             # first start. \"tidewatch\" is Tidewatch's own connection (its client id is reserved\n\
             # for it); give publishers \"device\" or add users of their own, then restart.\n\
             [users]\ntidewatch = \"{}\"\ndevice = \"{}\"\n",
            tidewatch_alerting::users::random_secret(""),
            tidewatch_alerting::users::random_secret("")
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "Created the embedded MQTT broker's users in {} (publishers log in as \"device\" with the password there)",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let credentials: Credentials = tidewatch_ingest::toml_all::parse(&text, &path.display().to_string())
        .map_err(|p| anyhow::anyhow!("{}", p.join("\n  ")))?;
    if !credentials.users.contains_key("tidewatch") {
        anyhow::bail!("{}: needs a user \"tidewatch\" (Tidewatch's own connection)", path.display());
    }
    Ok(credentials.users)
}

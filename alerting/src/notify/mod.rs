//! Notifiers: the channels duty staff watch.
//!
//! A channel is configured in the duty file (`[channel.NAME]`, a `kind` and its fields);
//! [`Notifier::send`] delivers one [`Outgoing`] — a message about one or more notices, for
//! some members — and says what the far end answered. Retries, rate limits and grouping
//! belong to the dispatcher, not here.

mod dingtalk;
mod email;
mod kafka;
mod mqtt;
mod sms;
mod webhook;
mod wecom;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duty::Member;
use crate::lifecycle::{Happening, Notice};
use crate::message::Message;

pub use dingtalk::sign as dingtalk_sign;

/// The kinds of channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Generic JSON webhook: POSTs the notices and the rendered message.
    Webhook,
    /// DingTalk custom robot (markdown, optional signing).
    Dingtalk,
    /// WeCom (企业微信) group robot (markdown).
    Wecom,
    /// E-mail over SMTP.
    Email,
    /// SMS through an HTTP gateway.
    Sms,
    /// An MQTT alert topic: one JSON notice per message.
    Mqtt,
    /// A Kafka alert topic: one JSON notice per message, keyed by alert id.
    Kafka,
}

/// How to talk to the SMTP server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain SMTP (a local relay).
    None,
    /// STARTTLS (usually port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// A channel as written in the duty file. Which fields apply depends on `kind`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub kind: ChannelKind,
    /// webhook, dingtalk, wecom, sms: where to POST (for robots, the webhook URL with its token or key).
    pub url: Option<String>,
    /// dingtalk: the signing secret (`SEC…`); requests then carry `timestamp` and `sign`.
    pub secret: Option<String>,
    /// webhook, sms: extra HTTP headers (e.g. an API key).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// sms: the JSON body, with `{phones}` (a JSON array) and `{text}` (a JSON string) filled in.
    pub body: Option<String>,
    /// email: SMTP server as `host:port`.
    pub smtp: Option<String>,
    /// email: none, starttls or tls.
    #[serde(default)]
    pub tls: SmtpTls,
    /// email, mqtt: the login.
    pub username: Option<String>,
    pub password: Option<String>,
    /// mqtt: TLS to the broker, trusting this CA (PEM; relative to the duty file).
    pub ca: Option<PathBuf>,
    /// mqtt: a client certificate chain and its key (PEM), for brokers that demand one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// kafka: librdkafka settings passed through (e.g. `security.protocol`, `sasl.*`, `ssl.*`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// email: the sender, e.g. `Tidewatch <alerts@example.cn>`.
    pub from: Option<String>,
    /// mqtt: broker as `host:port`.
    pub broker: Option<String>,
    /// kafka: bootstrap servers, `host:port[,host:port…]`.
    pub brokers: Option<String>,
    /// mqtt, kafka: topic, with `{region}`, `{station}`, `{rule}` and `{severity}` filled in.
    pub topic: Option<String>,
    /// mqtt: 0 or 1.
    #[serde(default = "one")]
    pub qos: u8,
    /// Messages a minute the far end accepts (DingTalk and WeCom robots: 20, the default
    /// for them); more wait and are batched, never dropped.
    pub rate_per_minute: Option<u32>,
    /// Which notifications it takes; default all.
    pub notify_on: Option<Vec<Happening>>,
    /// Give up on one attempt after this many seconds (it is retried).
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
}

fn one() -> u8 {
    1
}

fn default_timeout() -> u64 {
    10
}

impl ChannelConfig {
    /// What is missing or wrong, for the duty file check.
    pub fn check(&self) -> Vec<String> {
        let kind = format!("{:?}", self.kind).to_lowercase();
        let mut problems = Vec::new();
        let mut need = |field: &str, present: bool| {
            if !present {
                problems.push(format!("kind {kind} needs {field}"));
            }
        };
        match self.kind {
            ChannelKind::Webhook | ChannelKind::Dingtalk | ChannelKind::Wecom | ChannelKind::Sms => {
                need("url", self.url.is_some())
            }
            ChannelKind::Email => {
                need("smtp", self.smtp.is_some());
                need("from", self.from.is_some());
            }
            ChannelKind::Mqtt => {
                need("broker", self.broker.is_some());
                need("topic", self.topic.is_some());
            }
            ChannelKind::Kafka => {
                need("brokers", self.brokers.is_some());
                need("topic", self.topic.is_some());
            }
        }
        for broker in self.brokers.iter().flat_map(|b| b.split(',')) {
            if let Err(e) = host_port("brokers", broker.trim()) {
                problems.push(e);
            }
        }
        if let Some(url) = &self.url {
            if reqwest::Url::parse(url).is_err() {
                problems.push(format!("url {url:?} is not a URL"));
            }
        }
        if let Some(from) = &self.from {
            if from.parse::<lettre::message::Mailbox>().is_err() {
                problems.push(format!("from {from:?} is not an e-mail address"));
            }
        }
        let files = [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)];
        for (field, path) in files.iter().filter_map(|(field, path)| Some((field, path.as_ref()?))) {
            if self.kind != ChannelKind::Mqtt {
                problems.push(format!("{field} is for kind mqtt"));
            } else if let Err(e) = std::fs::metadata(path) {
                problems.push(format!("{field} {}: {e}", path.display()));
            }
        }
        if self.cert.is_some() != self.key.is_some() {
            problems.push("cert and key go together".into());
        }
        if self.cert.is_some() && self.ca.is_none() {
            problems.push("cert needs ca (TLS)".into());
        }
        if self.username.is_some() != self.password.is_some() {
            problems.push("username and password go together".into());
        }
        if !self.options.is_empty() && self.kind != ChannelKind::Kafka {
            problems.push("options is for kind kafka".into());
        }
        for (field, value) in [("smtp", &self.smtp), ("broker", &self.broker)] {
            if let Some(Err(e)) = value.as_deref().map(|v| host_port(field, v)) {
                problems.push(e);
            }
        }
        if self.qos > 1 {
            problems.push("qos must be 0 or 1".into());
        }
        if self.rate_per_minute == Some(0) {
            problems.push("rate_per_minute must be at least 1".into());
        }
        problems
    }

    /// Makes the file paths in it relative to `dir` (the duty file's folder).
    pub fn resolve_paths(&mut self, dir: &Path) {
        for path in [&mut self.ca, &mut self.cert, &mut self.key].into_iter().flatten() {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    /// Whether it takes notifications of this kind.
    pub fn takes(&self, happening: Happening) -> bool {
        match &self.notify_on {
            Some(kinds) => kinds.contains(&happening),
            None => happening != Happening::Suppressed,
        }
    }

    /// The rate limit, if any.
    pub fn rate_per_minute(&self) -> Option<u32> {
        self.rate_per_minute.or(match self.kind {
            ChannelKind::Dingtalk | ChannelKind::Wecom => Some(20),
            _ => None,
        })
    }
}

/// One message to send: about `notices` (outbox rows `ids`), for `recipients`.
pub struct Outgoing<'a> {
    pub ids: &'a [i64],
    pub notices: &'a [Notice],
    pub recipients: &'a [&'a Member],
    pub message: &'a Message,
}

/// Why a send failed. Every failure is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("refused: errcode {code}: {message}")]
    Refused { code: i64, message: String },
    #[error("{0}")]
    Transport(String),
    #[error("no recipient has {0}")]
    NoRecipient(&'static str),
}

impl From<reqwest::Error> for NotifyError {
    fn from(e: reqwest::Error) -> Self {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        // reqwest quotes the URL, and robots carry their token in it.
        NotifyError::Transport(crate::secrets::redact(&text))
    }
}

/// A configured channel, ready to send.
pub enum Notifier {
    Webhook(webhook::Webhook),
    Dingtalk(dingtalk::DingTalk),
    Wecom(wecom::WeCom),
    Email(email::Email),
    Sms(sms::Sms),
    Mqtt(mqtt::MqttTopic),
    Kafka(kafka::KafkaTopic),
}

impl Notifier {
    /// Builds the notifier of a checked channel.
    pub fn new(name: &str, config: &ChannelConfig) -> Result<Notifier, String> {
        let timeout = Duration::from_secs(config.timeout_s.max(1));
        let http = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .user_agent(concat!("tidewatch/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("channel {name:?}: {e}"))
        };
        let url = || config.url.clone().ok_or_else(|| format!("channel {name:?} needs url"));
        Ok(match config.kind {
            ChannelKind::Webhook => {
                Notifier::Webhook(webhook::Webhook { http: http()?, url: url()?, headers: config.headers.clone() })
            }
            ChannelKind::Dingtalk => {
                Notifier::Dingtalk(dingtalk::DingTalk { http: http()?, url: url()?, secret: config.secret.clone() })
            }
            ChannelKind::Wecom => Notifier::Wecom(wecom::WeCom { http: http()?, url: url()? }),
            ChannelKind::Sms => Notifier::Sms(sms::Sms {
                http: http()?,
                url: url()?,
                headers: config.headers.clone(),
                body: config.body.clone().unwrap_or_else(|| sms::DEFAULT_BODY.to_owned()),
            }),
            ChannelKind::Email => Notifier::Email(email::Email::new(name, config, timeout)?),
            ChannelKind::Mqtt => Notifier::Mqtt(mqtt::MqttTopic::new(name, config, timeout)?),
            ChannelKind::Kafka => Notifier::Kafka(kafka::KafkaTopic::new(name, config, timeout)?),
        })
    }

    /// Sends one message; `Ok` carries what the far end said, for the audit trail.
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<String, NotifyError> {
        match self {
            Notifier::Webhook(n) => n.send(out).await,
            Notifier::Dingtalk(n) => n.send(out).await,
            Notifier::Wecom(n) => n.send(out).await,
            Notifier::Email(n) => n.send(out).await,
            Notifier::Sms(n) => n.send(out).await,
            Notifier::Mqtt(n) => n.send(out).await,
            Notifier::Kafka(n) => n.send(out).await,
        }
    }
}

/// A topic template with the notice's `{region}`, `{station}`, `{rule}` and `{severity}`.
fn fill_topic(template: &str, notice: &Notice) -> String {
    template
        .replace("{region}", &notice.subject.region)
        .replace("{station}", &notice.subject.station)
        .replace("{rule}", &notice.rule)
        .replace("{severity}", notice.severity.name())
}

/// `host:port` of a channel's `field`, or why not.
fn host_port<'a>(field: &str, value: &'a str) -> Result<(&'a str, u16), String> {
    let bad = || format!("{field} {value:?} must be host:port");
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    Ok((host, port.parse().map_err(|_| bad())?))
}

/// POSTs JSON and returns the response body, or the status as an error.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: &serde_json::Value,
) -> Result<String, NotifyError> {
    let mut request = http.post(url).json(body);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        let body: String = text.chars().take(300).collect();
        return Err(NotifyError::Status { status: status.as_u16(), body: crate::secrets::redact(&body) });
    }
    Ok(text)
}

/// Robots answer 200 with `{"errcode": N, "errmsg": "..."}`; anything but 0 is a failure
/// (130101 / 45009: over the rate limit).
fn robot_answer(text: String) -> Result<String, NotifyError> {
    let answer: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
        NotifyError::Transport(format!("not a robot answer: {}", text.chars().take(200).collect::<String>()))
    })?;
    match answer["errcode"].as_i64() {
        Some(0) => Ok(text),
        Some(code) => Err(NotifyError::Refused { code, message: answer["errmsg"].as_str().unwrap_or("").to_owned() }),
        None => Err(NotifyError::Transport(format!("no errcode in {}", text.chars().take(200).collect::<String>()))),
    }
}

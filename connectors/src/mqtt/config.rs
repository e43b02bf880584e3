//! What a user writes to connect to a broker.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Connection to one MQTT broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSourceConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Stable client id: with `clean_session = false` the broker keeps this client's
    /// subscriptions and queues QoS 1 messages for it while it is away.
    pub client_id: String,
    /// Topic filters to subscribe to, at QoS 1.
    pub filters: Vec<String>,
    /// Keep-alive interval, in seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// Longest wait between reconnection attempts, in seconds (back-off doubles up to it).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_s: u64,
    /// QoS 1 messages in flight from the broker at once.
    #[serde(default = "default_inflight")]
    pub inflight: u16,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Messages larger than this are refused (one dead letter, `too_large`) and acknowledged,
    /// so the broker does not send them again.
    #[serde(default = "default_max_payload")]
    pub max_payload: usize,
    /// TLS to the broker: the CA certificates to trust (PEM), and optionally a client
    /// certificate chain and its key (PEM).
    #[serde(skip)]
    pub tls: Option<MqttTls>,
}

/// PEM bytes for a TLS connection to the broker.
#[derive(Clone, PartialEq)]
pub struct MqttTls {
    pub ca: Vec<u8>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for MqttTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        write!(f, "MqttTls {{ ca: {} bytes, client certificate: {} }}", self.ca.len(), self.client.is_some())
    }
}

fn default_max_payload() -> usize {
    1 << 20
}

/// What the client accepts off the wire at all: a message over the broker's own limit
/// (set it at or below this) would close the connection on every delivery.
pub const MAX_PACKET: usize = 64 << 20;

fn default_keep_alive() -> u64 {
    30
}
fn default_max_backoff() -> u64 {
    10
}
fn default_inflight() -> u16 {
    1000
}

impl MqttSourceConfig {
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>, filters: Vec<String>) -> Self {
        MqttSourceConfig {
            host: host.into(),
            port,
            client_id: client_id.into(),
            filters,
            keep_alive_s: default_keep_alive(),
            max_backoff_s: default_max_backoff(),
            inflight: default_inflight(),
            username: None,
            password: None,
            max_payload: default_max_payload(),
            tls: None,
        }
    }

    pub fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.max_backoff_s.max(1))
    }
}

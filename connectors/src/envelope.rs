//! What every source yields.

use bytes::Bytes;

/// Payload bytes and their provenance.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The route or connector name, e.g. `mqtt`.
    pub source: &'static str,
    /// MQTT topic (or Kafka topic/partition, or peer address).
    pub topic: String,
    pub payload: Bytes,
    /// Wall-clock receive time, ms since the epoch.
    pub received_at: i64,
    /// How to acknowledge it to the source, once handed on.
    pub ack: AckToken,
}

/// Source-specific acknowledgement data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckToken {
    /// Nothing to acknowledge (QoS 0, files).
    None,
    /// An MQTT packet id at QoS 1 or 2.
    Mqtt { pkid: u16, qos: u8 },
}

/// Wall-clock time in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

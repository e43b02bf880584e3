//! What every source yields.

use bytes::Bytes;

/// Payload bytes and their provenance.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The connector's name, e.g. `mqtt`, or a TCP listener's name.
    pub source: &'static str,
    /// MQTT topic (or Kafka topic/partition, or peer address).
    pub topic: String,
    pub payload: Bytes,
    /// Wall-clock receive time, ms since the epoch.
    pub received_at: i64,
    /// How to acknowledge it to the source, once handed on.
    pub ack: AckToken,
    /// Set when the connector could not cut these bytes into a message (garbage between
    /// frames, a connection closed mid-frame): the bytes are a dead letter, not a payload.
    pub framing_error: Option<String>,
    /// Set when the message was too large to take: (its size, the limit). The payload then
    /// holds only its start, for the dead letter.
    pub oversize: Option<(usize, usize)>,
}

/// Source-specific acknowledgement data.
#[derive(Clone, Debug)]
pub enum AckToken {
    /// Nothing to acknowledge (QoS 0, files).
    None,
    /// An MQTT packet id at QoS 1 or 2.
    Mqtt { pkid: u16, qos: u8 },
    /// Bytes to write back on the connection the message came on (a protocol's answer).
    Reply { to: tokio::sync::mpsc::UnboundedSender<Bytes>, bytes: Bytes },
}

impl AckToken {
    /// Sends a `Reply` answer; other kinds are acknowledged by their source's acker.
    /// A closed connection is not an error: the device will send again.
    pub fn reply(self) -> Option<AckToken> {
        match self {
            AckToken::Reply { to, bytes } => {
                let _ = to.send(bytes);
                None
            }
            other => Some(other),
        }
    }
}

/// Wall-clock time in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

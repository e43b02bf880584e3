//! What every source yields.

use std::sync::Arc;

use bytes::Bytes;

/// Payload bytes and their provenance.
#[derive(Debug)]
pub struct Envelope {
    /// The source's name, e.g. `mqtt`, a TCP listener's or a Kafka source's name.
    pub source: &'static str,
    /// MQTT or Kafka topic, the peer's address, or the file's path.
    pub topic: String,
    pub payload: Bytes,
    /// Wall-clock receive time, ms since the epoch.
    pub received_at: i64,
    /// How to acknowledge it to its source, once handed on.
    pub ack: Ack,
    /// Set when the connector could not cut these bytes into a message (garbage between
    /// frames, a connection closed mid-frame): the bytes are a dead letter, not a payload.
    pub framing_error: Option<String>,
    /// Set when the message was too large to take: (its size, the limit). The payload then
    /// holds only its start, for the dead letter.
    pub oversize: Option<(usize, usize)>,
    /// The source has nothing more (a replayed file ended); the payload may be empty.
    pub last: bool,
}

/// An envelope's own acknowledgement: whoever has handed its contents on calls
/// [`Ack::send`], whatever the source.
pub enum Ack {
    /// Nothing to acknowledge (QoS 0, files).
    None,
    /// An MQTT PUBACK (QoS 1) or PUBREC (QoS 2), through the client that received it.
    Mqtt { client: crate::mqtt::MqttAcker, pkid: u16, qos: u8 },
    /// A Kafka offset, stored for the consumer group's next commit.
    Kafka { offsets: Arc<dyn crate::kafka::OffsetStore>, topic: Arc<str>, partition: i32, offset: i64 },
    /// Bytes to write back on the connection the message came on (a protocol's answer).
    Reply { to: tokio::sync::mpsc::UnboundedSender<Bytes>, bytes: Bytes },
}

impl Ack {
    /// Acknowledges. Must be called in the order the source delivered its envelopes. A
    /// closed connection is not an error: the device or broker sends again.
    pub async fn send(self) {
        match self {
            Ack::None => {}
            Ack::Mqtt { client, pkid, qos } => client.ack(pkid, qos).await,
            Ack::Kafka { offsets, topic, partition, offset } => offsets.store(&topic, partition, offset),
            Ack::Reply { to, bytes } => {
                let _ = to.send(bytes);
            }
        }
    }

    /// Whether this is a protocol answer to a device (withheld from devices that did not
    /// prove who they are).
    pub fn is_reply(&self) -> bool {
        matches!(self, Ack::Reply { .. })
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ack::None => f.write_str("None"),
            Ack::Mqtt { pkid, qos, .. } => write!(f, "Mqtt {{ pkid: {pkid}, qos: {qos} }}"),
            Ack::Kafka { topic, partition, offset, .. } => write!(f, "Kafka {{ {topic}/{partition}@{offset} }}"),
            Ack::Reply { bytes, .. } => write!(f, "Reply {{ {} bytes }}", bytes.len()),
        }
    }
}

/// Wall-clock time in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

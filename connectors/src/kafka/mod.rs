//! Kafka: a consumer-group source whose envelopes carry their offsets, and a producer sink.
//!
//! At least once: the consumer does not store an offset by itself
//! (`enable.auto.offset.store = false`); an envelope's [`Ack`](crate::Ack) stores it once
//! its readings are handed on (and logged, with crash safety on), and the periodic commit
//! sends what was stored. A partition taken away by a rebalance commits what was stored
//! before it goes; what was delivered after that is delivered again to its new owner.

mod sink;
mod source;

pub use sink::{KafkaSink, KafkaSinkConfig};
pub use source::{start, KafkaSourceConfig, KafkaStatus};

/// Where acknowledged offsets go.
pub trait OffsetStore: Send + Sync {
    /// Marks `offset` of `topic`/`partition` as handled: the next commit moves past it.
    fn store(&self, topic: &str, partition: i32, offset: i64);
}

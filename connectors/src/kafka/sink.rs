//! Producing records (readings, dead letters) to a topic, bounded.
//!
//! librdkafka queues and batches; its queue is the bound (`queue_messages`). A record that
//! finds it full is dropped and counted, never waited for: a slow Kafka must not hold up
//! alerting. Delivery reports count what the broker acknowledged and what it refused.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::sink::SinkCounts;

/// One Kafka sink, as configured.
#[derive(Clone, Debug)]
pub struct KafkaSinkConfig {
    pub name: String,
    pub brokers: String,
    pub topic: String,
    /// Records waiting for the broker at most; more are dropped and counted.
    pub queue_messages: usize,
    /// How long librdkafka gathers records into one request.
    pub linger_ms: u64,
    /// librdkafka settings passed through (TLS, SASL).
    pub options: BTreeMap<String, String>,
}

struct Counting {
    counts: Arc<SinkCounts>,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() { &self.counts.delivered } else { &self.counts.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<Counting>,
    topic: String,
    pub counts: Arc<SinkCounts>,
}

impl KafkaSink {
    pub fn new(config: &KafkaSinkConfig) -> Result<KafkaSink, String> {
        let counts = Arc::new(SinkCounts::default());
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", format!("tidewatch-sink-{}", config.name))
            .set("linger.ms", config.linger_ms.to_string())
            .set("queue.buffering.max.messages", config.queue_messages.max(1).to_string())
            .set("compression.type", "lz4");
        for (key, value) in &config.options {
            client.set(key, value);
        }
        let producer = client
            .create_with_context(Counting { counts: counts.clone() })
            .map_err(|e| format!("sink {:?}: {e}", config.name))?;
        Ok(KafkaSink { producer, topic: config.topic.clone(), counts })
    }

    /// Queues one record; a full queue drops it (counted).
    pub fn send(&self, key: &[u8], payload: &[u8]) {
        let record = BaseRecord::<[u8], [u8]>::to(&self.topic).key(key).payload(payload);
        match self.producer.send(record) {
            Ok(()) => {}
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, topic = %self.topic, "record not queued");
            }
        }
    }

    /// Waits (at most `timeout`) for what is queued to be delivered.
    pub fn flush(&self, timeout: std::time::Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, topic = %self.topic, "Kafka sink: records still queued at shutdown");
        }
    }
}

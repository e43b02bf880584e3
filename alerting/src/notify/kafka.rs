//! A Kafka alert topic: each notice as one JSON message keyed by its alert id, so that every
//! change of one alert lands in one partition, in order.
//!
//! One producer per channel, kept for the process (librdkafka keeps its own connections and
//! reconnects). A send counts as delivered only when the broker has acknowledged every one
//! of its messages (`acks=all`, idempotent producer); a message not acknowledged within the
//! channel's timeout fails the send, and the dispatcher retries it: at least once, each notice
//! carrying its ids.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{ChannelConfig, NotifyError, Outgoing};

pub struct KafkaTopic {
    producer: FutureProducer,
    brokers: String,
    topic: String,
    timeout: Duration,
}

impl KafkaTopic {
    pub fn new(name: &str, config: &ChannelConfig, timeout: Duration) -> Result<KafkaTopic, String> {
        let brokers = config.brokers.clone().ok_or_else(|| format!("channel {name:?} needs brokers"))?;
        let topic = config.topic.clone().ok_or_else(|| format!("channel {name:?} needs topic"))?;
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &brokers)
            .set("client.id", format!("tidewatch-alerts-{name}"))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Alerts are few and urgent: no batching delay.
            .set("linger.ms", "0")
            .set("message.timeout.ms", timeout.as_millis().max(1000).to_string());
        // TLS and SASL settings, as librdkafka names them.
        for (key, value) in &config.options {
            client.set(key, value);
        }
        let producer = client.create::<FutureProducer>().map_err(|e| format!("channel {name:?}: {e}"))?;
        Ok(KafkaTopic { producer, brokers, topic, timeout })
    }

    /// Produces every notice and waits until the broker has acknowledged each one.
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<String, NotifyError> {
        let n = out.notices.len();
        let mut messages = Vec::with_capacity(n);
        for notice in out.notices {
            let topic = super::fill_topic(&self.topic, notice);
            let key = notice.alert_id.to_string();
            let payload = serde_json::to_vec(notice).unwrap_or_default();
            messages.push((topic, key, payload));
        }
        let sends = messages.iter().map(|(topic, key, payload)| {
            let record = FutureRecord::to(topic).key(key).payload(payload);
            self.producer.send(record, self.timeout)
        });
        let mut delivered = 0;
        let mut first_error = None;
        for result in join_all(sends).await {
            match result {
                Ok(_) => delivered += 1,
                Err((e, _)) => {
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        match first_error {
            None => Ok(format!("{n} produced")),
            Some(e) => Err(NotifyError::Transport(format!(
                "Kafka {}: {delivered} of {n} acknowledged: {e}",
                crate::secrets::redact(&self.brokers)
            ))),
        }
    }
}

//! Consuming topics as a member of a consumer group.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::ClientContext;
use tokio::sync::mpsc;

use super::OffsetStore;
use crate::envelope::{now_ms, Ack, Envelope};
use crate::source::{Health, Running};

/// One Kafka source, as configured.
#[derive(Clone, Debug)]
pub struct KafkaSourceConfig {
    /// Name used as the envelopes' source.
    pub name: &'static str,
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    /// Messages larger than this are handed on as `oversize` (their start only).
    pub max_payload: usize,
    /// A member silent this long is dropped from the group and its partitions reassigned.
    pub session_timeout_ms: u64,
    /// How often stored offsets are committed.
    pub commit_interval_ms: u64,
    /// Further librdkafka settings (e.g. `security.protocol`), passed as they are.
    pub options: BTreeMap<String, String>,
}

/// Counters for health checks and metrics.
#[derive(Debug, Default)]
pub struct KafkaStatus {
    /// Some partitions are assigned to this member.
    pub assigned: AtomicBool,
    pub partitions: AtomicU64,
    pub messages: AtomicU64,
    pub errors: AtomicU64,
    pub rebalances: AtomicU64,
    /// Offsets that could not be stored (their partition had moved to another member).
    pub unstored: AtomicU64,
}

impl Health for KafkaStatus {
    fn up(&self) -> bool {
        self.assigned.load(Ordering::Relaxed)
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "partitions": self.partitions.load(Ordering::Relaxed),
            "messages": self.messages.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "rebalances": self.rebalances.load(Ordering::Relaxed),
            "offsets_unstored": self.unstored.load(Ordering::Relaxed),
        })
    }
}

/// Logs librdkafka's errors and commits what is stored before partitions go.
struct GroupContext {
    name: &'static str,
    status: Arc<KafkaStatus>,
}

impl ClientContext for GroupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.status.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(source = self.name, %error, reason, "Kafka client error");
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // What was handed on so far is committed before another member takes over.
            if partitions.count() > 0 {
                if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                    tracing::debug!(source = self.name, error = %e, "commit before revocation");
                }
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.status.rebalances.fetch_add(1, Ordering::Relaxed);
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        self.status.partitions.store(assigned as u64, Ordering::Relaxed);
        self.status.assigned.store(assigned > 0, Ordering::Relaxed);
        match rebalance {
            Rebalance::Assign(p) => {
                tracing::info!(source = self.name, partitions = p.count(), "Kafka partitions assigned")
            }
            Rebalance::Revoke(p) => {
                tracing::info!(source = self.name, partitions = p.count(), "Kafka partitions revoked")
            }
            Rebalance::Error(e) => tracing::warn!(source = self.name, error = %e, "Kafka rebalance failed"),
        }
    }
}

/// The consumer, shared by the receiving task and every unacknowledged envelope: the last
/// one dropped closes it, which commits what was stored.
struct Group {
    consumer: StreamConsumer<GroupContext>,
}

impl OffsetStore for Group {
    fn store(&self, topic: &str, partition: i32, offset: i64) {
        if self.consumer.store_offset(topic, partition, offset).is_err() {
            // Revoked meanwhile: its new owner starts from the last commit and delivers it
            // again (a duplicate, never a loss).
            self.consumer.context().status.unstored.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Joins the group and starts sending envelopes to `tx`; a full channel stops consuming
/// (the broker keeps the rest).
pub fn start(config: KafkaSourceConfig, tx: mpsc::Sender<Envelope>) -> Result<Running, String> {
    let status = Arc::new(KafkaStatus::default());
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("client.id", format!("tidewatch-{}", config.name))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", config.commit_interval_ms.max(100).to_string())
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout_ms.max(1000).to_string())
        .set("enable.partition.eof", "false");
    for (key, value) in &config.options {
        client.set(key, value);
    }
    let consumer: StreamConsumer<GroupContext> = client
        .create_with_context(GroupContext { name: config.name, status: status.clone() })
        .map_err(|e| format!("Kafka source {:?}: {e}", config.name))?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| format!("Kafka source {:?}: subscribing: {e}", config.name))?;
    let group = Arc::new(Group { consumer });
    let task = tokio::spawn(receive(config.clone(), group, tx, status.clone()));
    tracing::info!(source = config.name, brokers = %config.brokers, group = %config.group_id, topics = ?config.topics, "Kafka source started");
    Ok(Running::task(config.name, "kafka", status, task.abort_handle()))
}

async fn receive(config: KafkaSourceConfig, group: Arc<Group>, tx: mpsc::Sender<Envelope>, status: Arc<KafkaStatus>) {
    let offsets: Arc<dyn OffsetStore> = group.clone();
    // Topic names repeat: one shared copy each, not one per message.
    let mut names: Vec<Arc<str>> = Vec::new();
    loop {
        let envelope = match group.consumer.recv().await {
            Ok(message) => {
                status.messages.fetch_add(1, Ordering::Relaxed);
                let payload = message.payload().unwrap_or_default();
                let size = payload.len();
                let (payload, oversize) = if size > config.max_payload {
                    (Bytes::copy_from_slice(&payload[..4096.min(size)]), Some((size, config.max_payload)))
                } else {
                    (Bytes::copy_from_slice(payload), None)
                };
                let topic = match names.iter().find(|n| &***n == message.topic()) {
                    Some(name) => name.clone(),
                    None => {
                        let name: Arc<str> = Arc::from(message.topic());
                        names.push(name.clone());
                        name
                    }
                };
                Envelope {
                    source: config.name,
                    topic: message.topic().to_owned(),
                    payload,
                    received_at: now_ms(),
                    framing_error: None,
                    oversize,
                    last: false,
                    ack: Ack::Kafka {
                        offsets: offsets.clone(),
                        topic,
                        partition: message.partition(),
                        offset: message.offset(),
                    },
                }
            }
            Err(e) => {
                status.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = config.name, error = %e, "Kafka receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if tx.send(envelope).await.is_err() {
            return; // the consumer of envelopes is gone: shutting down
        }
    }
}

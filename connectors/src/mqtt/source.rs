//! Subscribing to a broker and yielding envelopes.
//!
//! rumqttc's event loop must be polled continuously; after an error the next poll reconnects
//! at once, so back-off is ours to add. Subscriptions are sent again on every ConnAck (a
//! broker that lost its state would otherwise leave us subscribed to nothing). Acks are
//! manual and sent in order by the consumer of the envelopes, after hand-off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::MqttSourceConfig;
use crate::envelope::{now_ms, Ack, Envelope};

/// Connection state other parts of the process can read (health checks, metrics).
#[derive(Debug, Default)]
pub struct MqttStatus {
    pub connected: AtomicBool,
    /// Connections established, including the first.
    pub connections: AtomicU64,
    pub connection_errors: AtomicU64,
    /// Set when the source is being stopped.
    pub stopping: AtomicBool,
}

impl crate::source::Health for MqttStatus {
    fn up(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "connected": self.connected.load(Ordering::Relaxed),
            "connections": self.connections.load(Ordering::Relaxed),
            "connection_errors": self.connection_errors.load(Ordering::Relaxed),
        })
    }
}

/// Acknowledges envelopes to the broker. Acks must be sent in the order messages arrived.
#[derive(Clone)]
pub struct MqttAcker {
    client: AsyncClient,
}

impl MqttAcker {
    pub async fn ack(&self, pkid: u16, qos: u8) {
        {
            let qos = match qos {
                1 => QoS::AtLeastOnce,
                2 => QoS::ExactlyOnce,
                _ => return,
            };
            let mut publish = Publish::new("", qos, Vec::new());
            publish.pkid = pkid;
            // Usually there is room in the request channel: no future, no wake-up.
            if self.client.try_ack(&publish).is_ok() {
                return;
            }
            // Fails only when the event loop is gone (shutting down); the broker then
            // redelivers the message to the persistent session, which is what we want.
            if let Err(e) = self.client.ack(&publish).await {
                tracing::debug!(error = %e, "ack not sent: event loop stopped");
            }
        }
    }
}

/// A running MQTT subscription.
pub struct MqttSource {
    pub acker: MqttAcker,
    pub status: Arc<MqttStatus>,
    task: JoinHandle<()>,
    client: AsyncClient,
}

impl MqttSource {
    /// Connects (in the background, retrying) and starts sending envelopes to `tx`. When
    /// the channel is full the event loop waits, and the broker holds the rest.
    pub fn start(config: &MqttSourceConfig, source: &'static str, tx: mpsc::Sender<Envelope>) -> MqttSource {
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options
            .set_keep_alive(Duration::from_secs(config.keep_alive_s.max(5)))
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_inflight(config.inflight.max(1))
            .set_max_packet_size(super::config::MAX_PACKET, 1 << 20);
        if let (Some(user), Some(pass)) = (&config.username, &config.password) {
            options.set_credentials(user, pass);
        }
        if let Some(tls) = &config.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Simple {
                ca: tls.ca.clone(),
                alpn: None,
                client_auth: tls.client.clone(),
            }));
        }
        let (client, eventloop) = AsyncClient::new(options, 4096);
        let status = Arc::new(MqttStatus::default());
        let task = tokio::spawn(run(eventloop, client.clone(), config.clone(), source, tx, status.clone()));
        MqttSource { acker: MqttAcker { client: client.clone() }, status, task, client }
    }

    /// A handle that stops the connection.
    pub fn task_handle(&self) -> SourceHandle {
        SourceHandle { client: self.client.clone(), task: self.task.abort_handle(), status: self.status.clone() }
    }
}

/// Stops a source's event loop.
pub struct SourceHandle {
    client: AsyncClient,
    task: tokio::task::AbortHandle,
    status: Arc<MqttStatus>,
}

impl SourceHandle {
    /// Disconnects cleanly and stops the event loop. Unacknowledged messages stay with the
    /// broker's persistent session and are delivered again on the next connection.
    pub async fn stop(self) {
        // The broker closing the connection after our DISCONNECT is no reason to reconnect.
        self.status.stopping.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.task.abort();
    }
}

/// A connection up this long counts as working: the next failure starts back-off afresh.
const STABLE: Duration = Duration::from_secs(30);

async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    config: MqttSourceConfig,
    source: &'static str,
    tx: mpsc::Sender<Envelope>,
    status: Arc<MqttStatus>,
) {
    let acker = MqttAcker { client: client.clone() };
    let mut backoff = Duration::from_millis(100);
    // When the current connection came up: back-off starts afresh only once a connection
    // has stayed up, so a broker that accepts and drops at once is not hammered.
    let mut up_since: Option<std::time::Instant> = None;
    // Envelopes received but not yet taken by the consumer. The event loop must never wait
    // for the consumer: the consumer's acks travel through the event loop, so waiting would
    // deadlock as soon as both channels fill. Unacknowledged QoS 1 messages are bounded by
    // the broker's in-flight limit, which bounds this queue.
    let mut pending: VecDeque<Envelope> = VecDeque::new();
    loop {
        let event = {
            // The poll future is kept until it completes (it is not documented as cancel
            // safe); meanwhile queued envelopes are handed on as the consumer makes room.
            let poll = eventloop.poll();
            tokio::pin!(poll);
            loop {
                tokio::select! {
                    biased;
                    event = &mut poll => break event,
                    permit = tx.reserve(), if !pending.is_empty() => match permit {
                        Ok(permit) => permit.send(pending.pop_front().expect("not empty")),
                        Err(_) => return, // consumer gone: shutting down
                    },
                }
            }
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let size = p.payload.len();
                let (payload, oversize) = if size > config.max_payload {
                    (p.payload.slice(..4096.min(size)), Some((size, config.max_payload)))
                } else {
                    (p.payload, None)
                };
                pending.push_back(Envelope {
                    source,
                    topic: p.topic,
                    payload,
                    received_at: now_ms(),
                    framing_error: None,
                    oversize,
                    last: false,
                    ack: match p.qos {
                        QoS::AtMostOnce => Ack::None,
                        QoS::AtLeastOnce => Ack::Mqtt { client: acker.clone(), pkid: p.pkid, qos: 1 },
                        QoS::ExactlyOnce => Ack::Mqtt { client: acker.clone(), pkid: p.pkid, qos: 2 },
                    },
                });
                // Hand on at once when there is room, without waiting for the next event.
                while let Some(envelope) = pending.pop_front() {
                    match tx.try_send(envelope) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(envelope)) => {
                            pending.push_front(envelope);
                            break;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                up_since = Some(std::time::Instant::now());
                status.connected.store(true, Ordering::Relaxed);
                status.connections.fetch_add(1, Ordering::Relaxed);
                tracing::info!(host = %config.host, port = config.port, session_present = ack.session_present, "MQTT connected");
                for filter in &config.filters {
                    if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(filter = %filter, error = %e, "MQTT subscribe request failed");
                    }
                }
            }
            Ok(_) => {}
            Err(_) if status.stopping.load(Ordering::Relaxed) => {
                status.connected.store(false, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                let was_connected = status.connected.swap(false, Ordering::Relaxed);
                let failures = status.connection_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if was_connected {
                    tracing::warn!(host = %config.host, port = config.port, error = %e, "MQTT connection lost; reconnecting");
                } else if status.connections.load(Ordering::Relaxed) == 0
                    && (failures == 1 || failures.is_multiple_of(100))
                {
                    // Never connected: say so (a wrong address, certificate or password
                    // otherwise looks like silence), then again now and then.
                    tracing::warn!(host = %config.host, port = config.port, error = %e, failures, "cannot connect to the MQTT broker; retrying");
                } else {
                    tracing::debug!(host = %config.host, port = config.port, error = %e, retry_in = ?backoff, "MQTT connect failed");
                }
                if up_since.take().is_some_and(|at| at.elapsed() >= STABLE) {
                    backoff = Duration::from_millis(100);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.max_backoff());
            }
        }
    }
}

//! An MQTT alert topic: each notice as one JSON message, at QoS 1 confirmed by the broker.
//!
//! One connection per channel, kept open: a notice is on the broker a round trip after the
//! dispatcher hands it over, not a TCP and MQTT handshake later. A send counts as
//! delivered only when the broker has acknowledged every one of its messages (QoS 1) or
//! they have left for the socket (QoS 0). Any connection error fails every send still
//! waiting (the dispatcher retries them: at least once, each notice carrying its ids) and
//! drops the connection; the next send opens a new one. Nothing from a dead connection can
//! complete a later send: acknowledgements are matched to sends on one connection only.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::oneshot;

use super::{ChannelConfig, NotifyError, Outgoing};

pub struct MqttTopic {
    host: String,
    port: u16,
    topic: String,
    qos: QoS,
    timeout: Duration,
    /// Login and TLS, as configured.
    credentials: Option<(String, String)>,
    tls: Option<rumqttc::TlsConfiguration>,
    /// The open connection, if any; held while publishing so that messages enter the
    /// connection in the order their waiters are queued.
    link: tokio::sync::Mutex<Option<Link>>,
}

/// One connection: its client, and the sends waiting on it.
struct Link {
    client: AsyncClient,
    waiting: Arc<Mutex<Waiting>>,
    dead: Arc<AtomicBool>,
}

/// Sends waiting for their messages to leave (in request order) and then to be acknowledged
/// (by packet id).
#[derive(Default)]
struct Waiting {
    to_leave: VecDeque<Arc<Waiter>>,
    to_ack: HashMap<u16, Arc<Waiter>>,
}

struct Waiter {
    messages_left: AtomicUsize,
    done: Mutex<Option<oneshot::Sender<Result<(), String>>>>,
}

impl Waiter {
    fn one_done(&self) {
        if self.messages_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish(Ok(()));
        }
    }

    fn finish(&self, result: Result<(), String>) {
        if let Some(done) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = done.send(result);
        }
    }
}

/// Marks the connection dead unless publishing finished.
struct Publishing<'a> {
    dead: &'a AtomicBool,
    finished: bool,
}

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.dead.store(true, Ordering::Release);
        }
    }
}

impl MqttTopic {
    pub fn new(name: &str, config: &ChannelConfig, timeout: Duration) -> Result<MqttTopic, String> {
        let broker = config.broker.as_deref().ok_or_else(|| format!("channel {name:?} needs broker"))?;
        let (host, port) = super::host_port("broker", broker).map_err(|e| format!("channel {name:?}: {e}"))?;
        let read = |path: &std::path::PathBuf| {
            std::fs::read(path).map_err(|e| format!("channel {name:?}: cannot read {}: {e}", path.display()))
        };
        let tls = match (&config.ca, &config.cert, &config.key) {
            (None, None, None) => None,
            (Some(ca), cert, key) => Some(rumqttc::TlsConfiguration::Simple {
                ca: read(ca)?,
                alpn: None,
                client_auth: match (cert, key) {
                    (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                    (None, None) => None,
                    _ => return Err(format!("channel {name:?}: cert and key go together")),
                },
            }),
            (None, ..) => return Err(format!("channel {name:?}: a client certificate needs ca (TLS)")),
        };
        Ok(MqttTopic {
            host: host.to_owned(),
            port,
            topic: config.topic.clone().unwrap_or_default(),
            qos: if config.qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce },
            timeout,
            credentials: config.username.clone().zip(config.password.clone()),
            tls,
            link: tokio::sync::Mutex::new(None),
        })
    }

    /// Publishes every notice and waits until the broker has confirmed each one (QoS 1).
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<String, NotifyError> {
        let n = out.notices.len();
        if n == 0 {
            return Ok("0 published".to_owned());
        }
        let (done, confirmed) = oneshot::channel();
        let waiter = Arc::new(Waiter { messages_left: AtomicUsize::new(n), done: Mutex::new(Some(done)) });
        let transport = |e: String| NotifyError::Transport(format!("MQTT {}:{}: {e}", self.host, self.port));
        let work = async {
            {
                let mut link = self.link.lock().await;
                if link.as_ref().is_none_or(|l| l.dead.load(Ordering::Acquire)) {
                    *link = Some(self.connect());
                }
                let Some(link) = link.as_ref() else { unreachable!("just connected") };
                // Cancelled half way (the timeout), the queue of waiters would no longer
                // match the messages on the connection: then the connection is given up.
                let mut guard = Publishing { dead: &link.dead, finished: false };
                for notice in out.notices {
                    let topic = super::fill_topic(&self.topic, notice);
                    let payload = serde_json::to_vec(notice).unwrap_or_default();
                    link.waiting.lock().unwrap_or_else(|e| e.into_inner()).to_leave.push_back(waiter.clone());
                    if let Err(e) = link.client.publish(topic, self.qos, false, payload).await {
                        return Err(transport(e.to_string()));
                    }
                }
                guard.finished = true;
            }
            match confirmed.await {
                Ok(Ok(())) => Ok(format!("{n} published")),
                Ok(Err(e)) => Err(transport(e)),
                Err(_) => Err(transport("connection closed".to_owned())),
            }
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| transport("timed out".to_owned()))?
    }

    /// Opens a connection; its event loop runs until the first error, then fails whatever
    /// waits on it and marks it dead.
    fn connect(&self) -> Link {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = format!("tidewatch-alerts-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut options = MqttOptions::new(id, &self.host, self.port);
        options.set_keep_alive(Duration::from_secs(30));
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user, password);
        }
        if let Some(tls) = &self.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(tls.clone()));
        }
        let (client, mut events) = AsyncClient::new(options, 1024);
        // Alerts are small and urgent: no Nagle delay waiting for the previous segment's ACK.
        let mut network = events.network_options();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let dead = Arc::new(AtomicBool::new(false));
        let acked = self.qos != QoS::AtMostOnce;
        tokio::spawn({
            // The task holds no client: when the link is dropped, the event loop ends.
            let (waiting, dead) = (waiting.clone(), dead.clone());
            async move {
                let error = loop {
                    match events.poll().await {
                        Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                            let mut w = waiting.lock().unwrap_or_else(|e| e.into_inner());
                            if let Some(waiter) = w.to_leave.pop_front() {
                                if acked {
                                    w.to_ack.insert(pkid, waiter);
                                } else {
                                    waiter.one_done();
                                }
                            }
                        }
                        Ok(Event::Incoming(Packet::PubAck(ack))) => {
                            let waiter = waiting.lock().unwrap_or_else(|e| e.into_inner()).to_ack.remove(&ack.pkid);
                            if let Some(waiter) = waiter {
                                waiter.one_done();
                            }
                        }
                        Ok(_) => {}
                        Err(e) => break e.to_string(),
                    }
                };
                dead.store(true, Ordering::Release);
                let w = std::mem::take(&mut *waiting.lock().unwrap_or_else(|e| e.into_inner()));
                for waiter in w.to_leave.into_iter().chain(w.to_ack.into_values()) {
                    waiter.finish(Err(error.clone()));
                }
                tracing::debug!(%error, "MQTT alert-topic connection closed");
            }
        });
        Link { client, waiting, dead }
    }
}

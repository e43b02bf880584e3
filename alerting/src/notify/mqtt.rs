//! An MQTT alert topic: each notice as one JSON message, at QoS 1 confirmed by the broker.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use super::{ChannelConfig, NotifyError, Outgoing};

pub struct MqttTopic {
    host: String,
    port: u16,
    topic: String,
    qos: QoS,
    timeout: Duration,
}

impl MqttTopic {
    pub fn new(name: &str, config: &ChannelConfig, timeout: Duration) -> Result<MqttTopic, String> {
        let broker = config.broker.as_deref().ok_or_else(|| format!("channel {name:?} needs broker"))?;
        let (host, port) = super::host_port("broker", broker).map_err(|e| format!("channel {name:?}: {e}"))?;
        Ok(MqttTopic {
            host: host.to_owned(),
            port,
            topic: config.topic.clone().unwrap_or_default(),
            qos: if config.qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce },
            timeout,
        })
    }

    /// Connects, publishes every notice and waits until the broker has confirmed each one
    /// (QoS 1), so a notification counts as delivered only once the broker holds it.
    /// Alert traffic is light and grouped; a connection per message keeps this simple.
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<String, NotifyError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = format!(
            "tidewatch-alerts-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, &self.host, self.port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, out.notices.len() + 4);
        let work = async {
            for n in out.notices {
                let topic = self
                    .topic
                    .replace("{region}", &n.subject.region)
                    .replace("{station}", &n.subject.station)
                    .replace("{rule}", &n.rule)
                    .replace("{severity}", n.severity.name());
                let payload = serde_json::to_vec(n).unwrap_or_default();
                client
                    .publish(topic, self.qos, false, payload)
                    .await
                    .map_err(|e| NotifyError::Transport(e.to_string()))?;
            }
            let mut confirmed = 0;
            let wanted = if self.qos == QoS::AtMostOnce { 0 } else { out.notices.len() };
            let mut sent = 0;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => confirmed += 1,
                    Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))) => sent += 1,
                    Ok(_) => {}
                    Err(e) => return Err(NotifyError::Transport(format!("MQTT {}:{}: {e}", self.host, self.port))),
                }
                if confirmed >= wanted && sent >= out.notices.len() {
                    break;
                }
            }
            let _ = client.disconnect().await;
            Ok(format!("{sent} published"))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| NotifyError::Transport(format!("MQTT {}:{}: timed out", self.host, self.port)))?
    }
}

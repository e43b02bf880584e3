//! `tidewatch load`: publish synthetic readings, for throughput and latency measurements.
//!
//! Readings are mapped JSON for stations `L0`…`L{n-1}` (`--write-stations` writes a matching
//! registry with `warning_level = 10`), event times one millisecond apart ending now, so
//! nothing is late or from the future. `scripts/load.sh` uses it to compare Tidewatch's
//! throughput with a plain subscriber's.
//!
//! Latency mode (`--crossing-every N --alerts-topic T`, used by `scripts/latency.sh`): every
//! N-th reading crosses its station's warning level and that station's next reading falls
//! back. The tool subscribes to the crossings' topic itself (what the broker alone takes
//! from publish to delivery) and to the alert topic, and times each crossing from the moment
//! it was handed to the socket to (a) its delivery back from the broker and (b) the `fire`
//! notice for its station on the alert topic: reading→alert as a duty officer's client sees
//! it, beside the broker-only figure of the same run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tidewatch_connectors::envelope::now_ms;

#[derive(clap::Args)]
pub struct LoadOptions {
    /// Broker as host:port.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker: String,
    /// Readings to publish.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Distinct stations (L0, L1, ...).
    #[arg(long, default_value_t = 1000)]
    pub stations: u32,
    /// MQTT QoS (0 or 1).
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    #[arg(long, default_value = "tidewatch/json")]
    pub topic_prefix: String,
    /// Also write a station registry for L0..: point a config's `stations` at it.
    #[arg(long)]
    pub write_stations: Option<PathBuf>,
    /// Publish at this many readings per second instead of as fast as possible.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Latency mode: every this many readings, one crosses the stations' warning level
    /// (15 m against 10 m) and the next reading of that station falls back.
    #[arg(long)]
    pub crossing_every: Option<u64>,
    /// Latency mode: the alert topic to time fire notices on (e.g. `tidewatch/alerts/#`);
    /// the crossings' own topic is timed too, for the broker-only figure.
    #[arg(long)]
    pub alerts_topic: Option<String>,
    /// Produce to this Kafka cluster (`host:port[,…]`) instead of publishing over MQTT.
    #[arg(long)]
    pub kafka: Option<String>,
    /// The Kafka topic.
    #[arg(long, default_value = "readings")]
    pub kafka_topic: String,
    /// Latency mode: also write every timed crossing to this file, one line each:
    /// seconds since the start, `broker` or `alert`, milliseconds (to find when slow ones happen).
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// With `--kafka`: instead of producing, consume `--count` records from the topic's
    /// start with a fresh group and report the rate: rdkafka alone, no decoding.
    #[arg(long)]
    pub drain: bool,
}

/// Crossing readings waiting for their delivery and their alert, by station.
#[derive(Default)]
struct Pending {
    sent: HashMap<u32, Instant>,
    broker: Vec<Duration>,
    alert: Vec<Duration>,
    /// Broker-only time of each crossing whose alert is still awaited, by station.
    delivered: HashMap<u32, Duration>,
    /// Alert time minus broker-only time of the same crossing: what Tidewatch adds.
    added: Vec<Duration>,
    /// (when sent, which, how long) for `--samples`.
    log: Vec<(Instant, &'static str, Duration)>,
}

pub async fn run(o: LoadOptions) -> anyhow::Result<()> {
    let (host, port) =
        crate::config::parse_host_port(&o.broker).ok_or_else(|| anyhow::anyhow!("--broker must be host:port"))?;
    let broker = (host, port);
    if let Some(path) = &o.write_stations {
        let mut toml = String::with_capacity(o.stations as usize * 120);
        for i in 0..o.stations {
            toml += &format!("[[station]]\nid = \"L{i}\"\nname = \"Load {i}\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"330100\"\nattributes = {{ warning_level = 10.0 }}\n");
        }
        std::fs::write(path, toml)?;
    }
    if let Some(brokers) = &o.kafka {
        return if o.drain {
            crate::load_kafka::drain(brokers, &o.kafka_topic, o.count)
        } else {
            crate::load_kafka::produce(brokers, &o.kafka_topic, o.count, u64::from(o.stations.max(1)))
        };
    }
    let qos = match o.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        q => anyhow::bail!("--qos {q}: 0 or 1"),
    };
    let pending = Arc::new(Mutex::new(Pending::default()));
    // Crossings alone make alerts (e.g. for a recovery run); with an alert topic they are timed.
    let timed = match (&o.alerts_topic, o.crossing_every) {
        (Some(alerts), Some(_)) => {
            watch(&o, &broker, alerts, pending.clone()).await?;
            true
        }
        (None, _) => false,
        (Some(_), None) => anyhow::bail!("--alerts-topic needs --crossing-every: the crossings are what is timed"),
    };

    let mut options = MqttOptions::new(format!("tidewatch-load-{}", std::process::id()), &broker.0, broker.1);
    options.set_keep_alive(Duration::from_secs(60)).set_inflight(u16::MAX).set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let count = o.count;
    let stations = u64::from(o.stations.max(1));
    let crossing_every = o.crossing_every.unwrap_or(0);
    // Count publishes the event loop has written (QoS 0) or the broker acknowledged (QoS 1);
    // note when each crossing reading leaves for the socket.
    let driver = tokio::spawn({
        let pending = pending.clone();
        async move {
            let mut done = 0u64;
            let mut written = 0u64;
            while done < count {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                        if crossing_every > 0 && written % crossing_every == 0 {
                            let station = (written % stations) as u32;
                            pending.lock().unwrap_or_else(|e| e.into_inner()).sent.insert(station, Instant::now());
                        }
                        written += 1;
                        if qos == QoS::AtMostOnce {
                            done += 1;
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => done += 1,
                    Ok(_) => {}
                    Err(e) => anyhow::bail!("MQTT: {e}"),
                }
            }
            // Let the last packets leave the socket before disconnecting.
            let _ = tokio::time::timeout(Duration::from_millis(500), async { while eventloop.poll().await.is_ok() {} })
                .await;
            Ok(())
        }
    });
    let start = Instant::now();
    let t0 = now_ms() - o.count as i64 - 1000;
    // Stations whose last reading crossed: their next one falls back, which resolves.
    for i in 0..o.count {
        if let Some(rate) = o.rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            if i % 64 == 0 && due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let station = i % stations;
        let crossing = crossing_every > 0 && i % crossing_every == 0;
        let value = if crossing { 15.0 } else { 5.0 + (i % 1000) as f64 / 1000.0 };
        let payload = format!(
            r#"{{"station":"L{station}","quantity":"water_level","value":{value:.3},"time":{}}}"#,
            t0 + i as i64
        );
        // Crossings on a topic of their own, so that timing them does not double the
        // broker's work (Tidewatch's route takes both).
        let topic = if crossing {
            format!("{}/crossing/L{station}", o.topic_prefix)
        } else {
            format!("{}/L{station}", o.topic_prefix)
        };
        client.publish(topic, qos, false, payload).await?;
    }
    driver.await??;
    let secs = start.elapsed().as_secs_f64();
    println!("published {} readings in {secs:.2} s: {:.0} readings/s", o.count, o.count as f64 / secs);

    if timed {
        // The last alerts may still be on their way.
        let expected = o.count.div_ceil(crossing_every.max(1)) as usize;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && pending.lock().unwrap_or_else(|e| e.into_inner()).alert.len() < expected {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let p = pending.lock().unwrap_or_else(|e| e.into_inner());
        report("broker only (publish → delivered to a subscriber)", &p.broker, expected);
        report("reading → alert (publish → fire notice on the alert topic)", &p.alert, expected);
        report("added by Tidewatch (each crossing's alert time minus its broker-only time)", &p.added, expected);
        if let Some(path) = &o.samples {
            let lines: String = p
                .log
                .iter()
                .map(|(sent, what, took)| {
                    format!("{:.4} {what} {:.3}\n", (*sent - start).as_secs_f64(), took.as_secs_f64() * 1000.0)
                })
                .collect();
            std::fs::write(path, lines)?;
        }
    }
    Ok(())
}

/// Subscribes to the readings and the alert topic and times crossings, on a thread and
/// runtime of its own: a publisher busy on the shared runtime must not delay the clock.
/// The thread ends with the process.
async fn watch(
    o: &LoadOptions,
    broker: &(String, u16),
    alerts: &str,
    pending: Arc<Mutex<Pending>>,
) -> anyhow::Result<()> {
    let mut options = MqttOptions::new(format!("tidewatch-watch-{}", std::process::id()), &broker.0, broker.1);
    options.set_keep_alive(Duration::from_secs(60)).set_max_packet_size(1 << 20, 1 << 20);
    let prefix = o.topic_prefix.clone();
    let alerts = alerts.to_string();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    std::thread::Builder::new().name("load-watch".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => return drop(ready_tx.send(Err(e.into()))),
        };
        runtime.block_on(async move {
            let (client, mut eventloop) = AsyncClient::new(options, 1000);
            no_delay(&mut eventloop);
            let subscribed = async {
                client.subscribe(format!("{prefix}/crossing/#"), QoS::AtMostOnce).await?;
                client.subscribe(alerts, QoS::AtMostOnce).await?;
                // Wait for both subscriptions before anything is published.
                let mut acked = 0;
                while acked < 2 {
                    if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
                        acked += 1;
                    }
                }
                anyhow::Ok(())
            }
            .await;
            let failed = subscribed.is_err();
            let _ = ready_tx.send(subscribed);
            if failed {
                return;
            }
            loop {
                let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await else { continue };
                let now = Instant::now();
                let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
                if p.topic.starts_with(&prefix) {
                    if is_crossing(&p.payload) {
                        if let Some(station) = station_of(&p.payload) {
                            if let Some(&sent) = pending.sent.get(&station) {
                                pending.broker.push(now - sent);
                                pending.delivered.insert(station, now - sent);
                                pending.log.push((sent, "broker", now - sent));
                            }
                        }
                    }
                } else if let Ok(notice) = serde_json::from_slice::<serde_json::Value>(&p.payload) {
                    let fire = notice["transition"] == "fire";
                    let station = notice["station"].as_str().and_then(|s| s.strip_prefix('L')?.parse::<u32>().ok());
                    if let (true, Some(station)) = (fire, station) {
                        if let Some(sent) = pending.sent.remove(&station) {
                            pending.alert.push(now - sent);
                            if let Some(broker) = pending.delivered.remove(&station) {
                                pending.added.push((now - sent).saturating_sub(broker));
                            }
                            pending.log.push((sent, "alert", now - sent));
                        }
                    }
                }
            }
        });
    })?;
    ready_rx.await.map_err(|_| anyhow::anyhow!("the watcher thread ended"))?
}

/// Timing tools must not measure Nagle's algorithm.
fn no_delay(eventloop: &mut rumqttc::EventLoop) {
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
}

/// Whether a reading's payload is a crossing (`"value":15.000`).
fn is_crossing(payload: &[u8]) -> bool {
    const CROSSING: &[u8] = b"\"value\":15.000";
    payload.windows(CROSSING.len()).any(|w| w == CROSSING)
}

fn station_of(payload: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(payload).ok()?;
    let rest = text.split_once("\"station\":\"L")?.1;
    rest[..rest.find('"')?].parse().ok()
}

fn report(what: &str, samples: &[Duration], expected: usize) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        println!("{what}: no samples of {expected}");
        return;
    }
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: {} of {expected} timed; p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        ms[ms.len() - 1]
    );
}

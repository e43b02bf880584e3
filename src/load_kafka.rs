//! `tidewatch load --kafka`: produce synthetic readings to a topic, or drain it with a bare
//! rdkafka consumer (the rate Kafka and librdkafka give with no work per record), for
//! `scripts/kafka-load.sh`.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tidewatch_connectors::envelope::now_ms;

/// The same readings as the MQTT load: station `L{i % stations}`, 1 ms apart, ending now.
pub fn produce(brokers: &str, topic: &str, count: u64, stations: u64) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let start = Instant::now();
    let t0 = now_ms() - count as i64 - 1000;
    let mut payload = String::with_capacity(128);
    for i in 0..count {
        let station = i % stations;
        payload.clear();
        use std::fmt::Write;
        let _ = write!(
            payload,
            r#"{{"station":"L{station}","quantity":"water_level","value":{:.3},"time":{}}}"#,
            5.0 + (i % 1000) as f64 / 1000.0,
            t0 + i as i64
        );
        let key = format!("L{station}");
        let mut record = BaseRecord::to(topic).key(key.as_str()).payload(payload.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let secs = start.elapsed().as_secs_f64();
    println!("produced {count} readings in {secs:.2} s: {:.0} readings/s", count as f64 / secs);
    Ok(())
}

/// Consumes `count` records from the topic's start and prints the rate.
pub fn drain(brokers: &str, topic: &str, count: u64) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("tidewatch-drain-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let start = Instant::now();
    let mut seen = 0u64;
    let mut bytes = 0usize;
    // Joining the group takes a moment; after that records come steadily. A poll may also
    // return nothing after serving an event (a rebalance): only a long silence is an error.
    let mut last = Instant::now();
    let mut first = None;
    while seen < count {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                seen += 1;
                bytes += rdkafka::Message::payload(&m).map_or(0, <[u8]>::len);
                last = Instant::now();
            }
            Some(Err(e)) => anyhow::bail!("Kafka: {e}"),
            None if last.elapsed() > Duration::from_secs(60) => {
                anyhow::bail!("no record for 60 s after {seen} of {count}")
            }
            None => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let streaming = first.map_or(secs, |f: Instant| f.elapsed().as_secs_f64());
    println!(
        "drained {count} records ({bytes} bytes) in {secs:.2} s: {:.0} records/s ({:.0}/s from the first record, after {:.2} s joining)",
        count as f64 / secs,
        count as f64 / streaming,
        secs - streaming
    );
    Ok(())
}

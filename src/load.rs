//! `tidewatch load`: publish synthetic readings at full speed, for throughput measurements.
//!
//! Readings are mapped JSON for stations `L0`…`L{n-1}` (`--write-stations` writes a matching
//! registry), event times one millisecond apart ending now, so nothing is late or from the
//! future. `scripts/load.sh` uses it to compare Tidewatch with a plain subscriber.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, QoS};
use tidewatch_connectors::envelope::now_ms;

pub struct LoadOptions {
    pub broker: (String, u16),
    pub count: u64,
    pub stations: u32,
    pub qos: u8,
    pub topic_prefix: String,
    pub write_stations: Option<PathBuf>,
}

pub async fn run(o: LoadOptions) -> anyhow::Result<()> {
    if let Some(path) = &o.write_stations {
        let mut toml = String::with_capacity(o.stations as usize * 120);
        for i in 0..o.stations {
            toml += &format!("[[station]]\nid = \"L{i}\"\nname = \"Load {i}\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"330100\"\nattributes = {{ warning_level = 10.0 }}\n");
        }
        std::fs::write(path, toml)?;
    }
    let qos = match o.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        q => anyhow::bail!("--qos {q}: 0 or 1"),
    };
    let mut options = MqttOptions::new(format!("tidewatch-load-{}", std::process::id()), &o.broker.0, o.broker.1);
    options.set_keep_alive(Duration::from_secs(60)).set_inflight(u16::MAX).set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let count = o.count;
    // Count publishes the event loop has written (QoS 0) or the broker acknowledged (QoS 1).
    let driver = tokio::spawn(async move {
        let mut done = 0u64;
        while done < count {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Publish(_))) if qos == QoS::AtMostOnce => done += 1,
                Ok(Event::Incoming(rumqttc::Packet::PubAck(_))) => done += 1,
                Ok(_) => {}
                Err(e) => anyhow::bail!("MQTT: {e}"),
            }
        }
        // Let the last packets leave the socket before disconnecting.
        let _ =
            tokio::time::timeout(Duration::from_millis(500), async { while eventloop.poll().await.is_ok() {} }).await;
        Ok(())
    });
    let start = Instant::now();
    let t0 = now_ms() - o.count as i64 - 1000;
    for i in 0..o.count {
        let station = i % u64::from(o.stations.max(1));
        let payload = format!(
            r#"{{"station":"L{station}","quantity":"water_level","value":{:.3},"time":{}}}"#,
            5.0 + (i % 1000) as f64 / 1000.0,
            t0 + i as i64
        );
        client.publish(format!("{}/L{station}", o.topic_prefix), qos, false, payload).await?;
    }
    driver.await??;
    let secs = start.elapsed().as_secs_f64();
    println!("published {} readings in {secs:.2} s: {:.0} readings/s", o.count, o.count as f64 / secs);
    Ok(())
}

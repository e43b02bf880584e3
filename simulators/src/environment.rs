//! An air-pollution episode and a dissolved-oxygen drop, reported by environmental data
//! loggers as HJ 212-2017 real-time packets (CN 2011), encoded with `ingest`'s encoder.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tidewatch_ingest::hj212;
use tidewatch_ingest::Registry;

use crate::flood::SimPayload;

const MIN: i64 = 60_000;

#[derive(Clone, Debug)]
enum Monitor {
    /// PM2.5 (µg/m³) rising from `base` to `peak` between `rise_from` and `rise_to` minutes,
    /// holding, then clearing from `clear_from` minutes.
    Air { base: f64, peak: f64, rise_from: f64, rise_to: f64, clear_from: f64 },
    /// Dissolved oxygen (mg/L) dipping from `normal` to `low` between two minutes.
    Water { normal: f64, low: f64, from: f64, to: f64 },
}

/// The environment stations' loggers (ids `AQ-…` and `WQ-…` in the registry).
#[derive(Clone, Debug)]
pub struct EnvironmentScenario {
    loggers: Vec<(String, Monitor)>,
    start_ms: i64,
    zone: Tz,
    topic_prefix: String,
}

impl EnvironmentScenario {
    pub fn new(registry: &Registry, start_ms: i64, topic_prefix: &str) -> Self {
        let mut loggers = Vec::new();
        for (i, s) in registry.stations().iter().enumerate() {
            let monitor = if s.id.starts_with("AQ-") {
                // Two air stations: one episode clears after a yellow, one reaches orange.
                let peak = if i % 2 == 0 { 118.0 } else { 168.0 };
                Monitor::Air { base: 32.0, peak, rise_from: 20.0, rise_to: 80.0, clear_from: 220.0 }
            } else if s.id.starts_with("WQ-") {
                Monitor::Water { normal: 7.6, low: 4.1, from: 40.0, to: 170.0 }
            } else {
                continue;
            };
            loggers.push((s.id.clone(), monitor));
        }
        EnvironmentScenario {
            loggers,
            start_ms,
            zone: chrono_tz::Asia::Shanghai,
            topic_prefix: topic_prefix.trim_end_matches('/').to_owned(),
        }
    }

    pub fn logger_count(&self) -> usize {
        self.loggers.len()
    }

    /// Packets the loggers send in simulated minute `minute` (each reports every minute).
    pub fn messages_at(&self, minute: i64) -> Vec<SimPayload> {
        let t = self.start_ms + minute * MIN;
        let Some(local) = DateTime::<Utc>::from_timestamp_millis(t).map(|d| d.with_timezone(&self.zone)) else {
            return Vec::new();
        };
        let (qn, data_time) = (local.format("%Y%m%d%H%M%S000").to_string(), local.format("%Y%m%d%H%M%S").to_string());
        let m = minute as f64;
        self.loggers
            .iter()
            .map(|(id, monitor)| {
                let cp = match *monitor {
                    Monitor::Air { base, peak, rise_from, rise_to, clear_from } => {
                        let up = ((m - rise_from) / (rise_to - rise_from)).clamp(0.0, 1.0);
                        let down = ((m - clear_from) / 60.0).clamp(0.0, 1.0);
                        let pm25 = base + (peak - base) * up * (1.0 - down);
                        format!(
                            "DataTime={data_time};a34004-Rtd={pm25:.1},a34004-Flag=N;a34002-Rtd={:.1},a34002-Flag=N;a21005-Rtd={:.3},a21005-Flag=N",
                            pm25 * 1.6,
                            0.6 + pm25 / 200.0
                        )
                    }
                    Monitor::Water { normal, low, from, to } => {
                        let x = ((m - from) / (to - from)).clamp(0.0, 1.0);
                        let dip = (x * std::f64::consts::PI).sin().max(0.0);
                        let oxygen = normal - (normal - low) * dip.powf(0.5);
                        format!("DataTime={data_time};w01009-Rtd={oxygen:.2},w01009-Flag=N;w01001-Rtd=7.42,w01001-Flag=N")
                    }
                };
                let st = if id.starts_with("AQ-") { "22" } else { "21" };
                let packet = hj212::encode(&format!("QN={qn};ST={st};CN=2011;PW=123456;MN={id};Flag=4;CP=&&{cp}&&"));
                SimPayload { topic: format!("{}/{id}", self.topic_prefix), payload: packet.into_bytes() }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_ingest::hj212::Hj212Decoder;
    use tidewatch_ingest::Quantity;

    fn registry() -> Registry {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/stations.toml");
        Registry::load(&path).unwrap()
    }

    #[test]
    fn loggers_send_valid_hj212_that_decodes_to_the_episode() {
        let s = EnvironmentScenario::new(&registry(), 1_764_000_000_000, "tidewatch/hj212");
        assert_eq!(s.logger_count(), 3);
        let mut peak_pm25 = 0.0f64;
        let mut lowest_oxygen = f64::MAX;
        for minute in 0..300 {
            for msg in s.messages_at(minute) {
                let mut decoded = 0;
                Hj212Decoder::default().decode(&msg.payload, &mut |r| {
                    let r = r.expect("the simulator's packets are valid");
                    assert_eq!(r.time, Some(1_764_000_000_000 + minute * MIN));
                    match r.quantity {
                        Quantity::Pm25 => peak_pm25 = peak_pm25.max(r.value),
                        Quantity::DissolvedOxygen => lowest_oxygen = lowest_oxygen.min(r.value),
                        _ => {}
                    }
                    decoded += 1;
                });
                assert!(decoded >= 2);
            }
        }
        assert!(peak_pm25 > 150.0, "an orange episode: {peak_pm25}");
        assert!(lowest_oxygen < 5.0, "below class III: {lowest_oxygen}");
    }
}

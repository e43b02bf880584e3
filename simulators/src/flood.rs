//! A flood on the Qiantang: a storm over the upper basin, then a flood wave that travels
//! downstream, crossing each gauge's warning level at a different time and height.

use serde_json::json;
use tidewatch_ingest::{Quantity, Registry, Station};

const MIN: i64 = 60_000;

/// One gauge's part in the scenario.
#[derive(Clone, Debug)]
struct Gauge {
    id: String,
    quantity_plan: Plan,
    /// Reports every `interval` minutes, offset by `phase` so gauges do not all speak at once.
    phase: i64,
}

#[derive(Clone, Debug)]
enum Plan {
    /// base + amplitude × hydrograph((t - arrival) / rise)
    River { base: f64, amplitude: f64, arrival_min: f64, rise_min: f64 },
    /// Rolling one-hour rainfall following a storm cell's passage.
    Rain { peak_mm_h: f64, centre_min: f64, width_min: f64 },
}

/// A device message the scenario emits: MQTT topic and JSON payload.
#[derive(Clone, Debug, PartialEq)]
pub struct SimPayload {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// The flood scenario over a registry's water stations.
#[derive(Clone, Debug)]
pub struct FloodScenario {
    gauges: Vec<Gauge>,
    start_ms: i64,
    interval_min: i64,
    topic_prefix: String,
}

/// Unit-peak hydrograph: rises to 1 at x = 1, then recedes more slowly.
fn hydrograph(x: f64) -> f64 {
    if x <= 0.0 {
        0.0
    } else {
        let k = 3.0;
        (x.powf(k) * (k * (1.0 - x)).exp()).min(1.0)
    }
}

/// Deterministic noise in [-1, 1] from a seed and a time.
fn noise(seed: u64, t: i64) -> f64 {
    let mut z = seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z as f64 / u64::MAX as f64) * 2.0 - 1.0
}

impl FloodScenario {
    /// Builds the scenario for the registry's river gauges (stations with a
    /// `warning_level`) and rain gauges (ids starting `RG-`), starting at `start_ms`.
    ///
    /// Peaks are chosen so that, going downstream, some gauges stay below warning, most
    /// reach yellow, a few orange and one red: every colour of the ladder is exercised.
    pub fn new(registry: &Registry, start_ms: i64, topic_prefix: &str) -> Self {
        let mut gauges = Vec::new();
        let rivers: Vec<&Station> =
            registry.stations().iter().filter(|s| s.attribute("warning_level").is_some()).collect();
        // How far past the warning level each river gauge peaks, as a fraction of the
        // warning-to-guarantee band; cycles so every colour appears.
        let excess = [-0.6, 0.4, 0.7, 1.4, 0.5, -0.3, 0.9, 1.2, 0.3, 2.1, 0.6, -0.8];
        for (i, s) in rivers.iter().enumerate() {
            let warning = s.attribute("warning_level").unwrap_or(0.0);
            let guarantee = s.attribute("guarantee_level").unwrap_or(warning + 1.0);
            let band = (guarantee - warning).max(0.5);
            let base = warning - 1.5 * band;
            let peak = warning + excess[i % excess.len()] * band;
            gauges.push(Gauge {
                id: s.id.clone(),
                quantity_plan: Plan::River {
                    base,
                    amplitude: peak - base,
                    arrival_min: 15.0 + 12.0 * i as f64,
                    rise_min: 50.0,
                },
                phase: i as i64,
            });
        }
        let rains: Vec<&Station> = registry.stations().iter().filter(|s| s.id.starts_with("RG-")).collect();
        let peaks = [18.0, 35.0, 55.0, 25.0, 75.0, 12.0, 42.0];
        for (i, s) in rains.iter().enumerate() {
            gauges.push(Gauge {
                id: s.id.clone(),
                quantity_plan: Plan::Rain {
                    peak_mm_h: peaks[i % peaks.len()],
                    centre_min: 20.0 + 4.0 * i as f64,
                    width_min: 25.0,
                },
                phase: i as i64 + 2,
            });
        }
        FloodScenario { gauges, start_ms, interval_min: 5, topic_prefix: topic_prefix.trim_end_matches('/').to_owned() }
    }

    pub fn gauge_count(&self) -> usize {
        self.gauges.len()
    }

    /// Messages the gauges send in simulated minute `minute` since the start.
    pub fn messages_at(&self, minute: i64) -> Vec<SimPayload> {
        let t = self.start_ms + minute * MIN;
        let mut out = Vec::new();
        for (seed, g) in self.gauges.iter().enumerate() {
            if (minute + g.phase) % self.interval_min != 0 {
                continue;
            }
            let m = minute as f64;
            let records = match g.quantity_plan {
                Plan::River { base, amplitude, arrival_min, rise_min } => {
                    let level =
                        base + amplitude * hydrograph((m - arrival_min) / rise_min) + 0.01 * noise(seed as u64, t);
                    vec![
                        json!({"station": g.id, "quantity": Quantity::WaterLevel.name(), "value": round(level, 3), "unit": "m", "time": t}),
                    ]
                }
                Plan::Rain { peak_mm_h, centre_min, width_min } => {
                    let x = (m - centre_min) / width_min;
                    let rate = (peak_mm_h * (-x * x / 2.0).exp() * (1.0 + 0.05 * noise(seed as u64, t))).max(0.0);
                    let five_min = rate / 12.0;
                    vec![
                        json!({"station": g.id, "quantity": Quantity::Rainfall1h.name(), "value": round(rate, 1), "unit": "mm", "time": t}),
                        json!({"station": g.id, "quantity": Quantity::Rainfall.name(), "value": round(five_min, 1), "unit": "mm", "time": t}),
                    ]
                }
            };
            out.push(SimPayload {
                topic: format!("{}/{}", self.topic_prefix, g.id),
                payload: serde_json::to_vec(&serde_json::Value::Array(records)).unwrap_or_default(),
            });
        }
        // Injected faults, so the dead-letter path is visible: a gauge nobody registered,
        // a broken payload, and a physically impossible level.
        if minute > 0 && minute % 37 == 0 {
            out.push(SimPayload {
                topic: format!("{}/QT-UNKNOWN", self.topic_prefix),
                payload: serde_json::to_vec(
                    &json!({"station": "QT-UNKNOWN", "quantity": "water_level", "value": 3.2, "time": t}),
                )
                .unwrap_or_default(),
            });
            out.push(SimPayload {
                topic: format!("{}/QT-LX", self.topic_prefix),
                payload: b"{\"station\":\"QT-LX\",\"value\":".to_vec(),
            });
            out.push(SimPayload {
                topic: format!("{}/QT-FY", self.topic_prefix),
                payload: serde_json::to_vec(
                    &json!({"station": "QT-FY", "quantity": "water_level", "value": 99999.0, "time": t}),
                )
                .unwrap_or_default(),
            });
        }
        out
    }
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/stations.toml");
        Registry::load(&path).unwrap()
    }

    #[test]
    fn the_scenario_is_a_pure_function_of_time() {
        let r = registry();
        let a = FloodScenario::new(&r, 1_764_000_000_000, "tidewatch/json");
        let b = FloodScenario::new(&r, 1_764_000_000_000, "tidewatch/json");
        for m in [0, 17, 90, 240] {
            assert_eq!(a.messages_at(m), b.messages_at(m));
        }
    }

    #[test]
    fn every_gauge_reports_every_five_minutes() {
        let r = registry();
        let s = FloodScenario::new(&r, 0, "t");
        let count: usize = (1..=5).map(|m| s.messages_at(m).len()).sum();
        assert_eq!(count, s.gauge_count());
    }

    #[test]
    fn rivers_peak_above_and_below_their_warning_levels() {
        let r = registry();
        let s = FloodScenario::new(&r, 0, "t");
        let mut peaks = std::collections::HashMap::<String, f64>::new();
        for m in 0..600 {
            for msg in s.messages_at(m) {
                let Ok(serde_json::Value::Array(records)) = serde_json::from_slice(&msg.payload) else {
                    continue;
                };
                for rec in records {
                    if rec["quantity"] == "water_level" {
                        let id = rec["station"].as_str().unwrap().to_owned();
                        let v = rec["value"].as_f64().unwrap();
                        let p = peaks.entry(id).or_insert(f64::MIN);
                        *p = p.max(v);
                    }
                }
            }
        }
        let mut above_guarantee = 0;
        let mut below_warning = 0;
        for st in r.stations().iter().filter(|s| s.attribute("warning_level").is_some()) {
            let peak = peaks[&st.id];
            if peak > st.attribute("guarantee_level").unwrap() + 0.5 {
                above_guarantee += 1;
            }
            if peak < st.attribute("warning_level").unwrap() {
                below_warning += 1;
            }
        }
        assert!(above_guarantee >= 1, "some gauge must reach red");
        assert!(below_warning >= 1, "some gauge must stay below warning");
    }
}

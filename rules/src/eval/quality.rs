//! `quality`: a sensor that cannot be trusted — stuck, spiking, jumping impossibly, or
//! flagged by its own device.
//!
//! ```toml
//! kind = "quality"
//! flatline = "6h"          # the same value for six hours
//! spike = 2.0              # a reading further than this from the median of the last five
//! max_rate = 5.0           # a change faster than this per hour is physically impossible
//! flags = true             # device-flagged readings (maintenance, fault) count (default)
//! levels = [{ severity = "blue", above = 0 }]
//! ```
//!
//! The value judged is how many checks the latest reading fails (0 when it passes all), so
//! `above = 0` fires on any failure; with `clear_for` a sensor must stay healthy that long
//! before it recovers. Its alerts are maintenance alerts: they go to the `maintenance`
//! domain's duty team. While a quality rule holds an alert on a sensor, its readings drive
//! no other rule, so a stuck gauge cannot hold a flood warning open and a spiking one cannot
//! raise one.

use tidewatch_ingest::{Quality, Reading};

use super::Kind;
use crate::duration::format_duration;
use crate::event::Evidence;
use crate::file::Fields;

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub flatline_ms: Option<i64>,
    pub spike: Option<f64>,
    pub max_rate_per_h: Option<f64>,
    pub flags: bool,
}

/// Readings the spike check compares against.
const RECENT: usize = 5;

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    last: Option<(i64, f64)>,
    /// Since when the value has not changed.
    flat_since: i64,
    recent: [f64; RECENT],
    recent_len: u8,
    recent_next: u8,
    /// Which checks the latest reading failed (bit 0 flatline, 1 spike, 2 jump, 3 flag).
    failed: u8,
}

const CHECKS: [&str; 4] = ["flatline", "spike", "impossible_jump", "device_flag"];

impl Kind for Params {
    const NAME: &'static str = "quality";
    const FIELDS: &'static [&'static str] = &["flatline", "spike", "max_rate", "flags"];
    const SEES_FLAGGED: bool = true;
    type State = State;

    fn parse(fields: &mut Fields<'_, '_>) -> Option<Self> {
        let flatline = if fields.has("flatline") { fields.duration("flatline").map(Some) } else { Some(None) };
        let spike = if fields.has("spike") { fields.positive("spike").map(Some) } else { Some(None) };
        let max_rate = if fields.has("max_rate") { fields.positive("max_rate").map(Some) } else { Some(None) };
        let flags = if fields.has("flags") { fields.boolean("flags") } else { Some(true) };
        Some(Params { flatline_ms: flatline?, spike: spike?, max_rate_per_h: max_rate?, flags: flags? })
    }

    fn on_reading(&self, state: &mut State, reading: &Reading, _sign: f64) -> Option<f64> {
        let (t, v) = (reading.time, reading.value);
        let mut failed = 0u8;
        if reading.quality != Quality::Good {
            if self.flags {
                failed |= 1 << 3;
            }
            // A flagged value says nothing about the instrument's behaviour: keep the history.
            state.failed = failed;
            return Some(failed.count_ones() as f64);
        }
        let flat_since = match state.last {
            Some((_, previous)) if previous == v => state.flat_since,
            _ => t,
        };
        if let Some(limit) = self.flatline_ms {
            if t - flat_since >= limit {
                failed |= 1;
            }
        }
        if let (Some(spike), true) = (self.spike, state.recent_len as usize == RECENT) {
            let mut recent = state.recent;
            recent.sort_by(f64::total_cmp);
            if (v - recent[RECENT / 2]).abs() > spike {
                failed |= 1 << 1;
            }
        }
        if let (Some(max_rate), Some((lt, lv))) = (self.max_rate_per_h, state.last) {
            let hours = (t - lt) as f64 / 3_600_000.0;
            if hours > 0.0 && (v - lv).abs() / hours > max_rate {
                failed |= 1 << 2;
            }
        }
        if failed & 0b110 == 0 {
            // A spike or an impossible jump does not join the history it is judged against.
            state.last = Some((t, v));
            state.flat_since = flat_since;
            state.recent[state.recent_next as usize] = v;
            state.recent_next = ((state.recent_next as usize + 1) % RECENT) as u8;
            state.recent_len = (state.recent_len + 1).min(RECENT as u8);
        }
        state.failed = failed;
        Some(failed.count_ones() as f64)
    }

    fn unit(&self, _reading_unit: &str) -> Option<String> {
        Some("checks failed".to_owned())
    }

    fn evidence(&self, state: &State, _threshold: f64, evidence: &mut Evidence) {
        let failing: Vec<&str> = (0..4).filter(|b| state.failed & (1 << b) != 0).map(|b| CHECKS[b]).collect();
        let mut measure = String::from("quality checks failed");
        if !failing.is_empty() {
            measure = format!("{measure}: {}", failing.join(", "));
        }
        if let (Some(ms), true) = (self.flatline_ms, state.failed & 1 != 0) {
            measure = format!("{measure} (unchanged for {} or more)", format_duration(ms));
        }
        evidence.measure(measure);
        if let Some((t, v)) = state.last {
            evidence.fact("last_value", v).fact("last_time_ms", t as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_ingest::Quantity;

    const MIN: i64 = 60_000;

    fn reading(minute: i64, value: f64) -> Reading {
        crate::eval::test_reading(Quantity::WaterLevel, minute, value)
    }

    fn params() -> Params {
        Params { flatline_ms: Some(60 * MIN), spike: Some(1.0), max_rate_per_h: Some(6.0), flags: true }
    }

    #[test]
    fn a_stuck_value_fails_after_the_flatline_duration_and_recovers_on_change() {
        let p = params();
        let mut s = State::default();
        let values: Vec<f64> = (0..=70).step_by(5).map(|m| p.on_reading(&mut s, &reading(m, 10.0), 1.0).unwrap()).collect();
        assert_eq!(values[11], 0.0, "55 minutes unchanged");
        assert_eq!(values[12], 1.0, "60 minutes unchanged");
        assert_eq!(p.on_reading(&mut s, &reading(75, 10.01), 1.0), Some(0.0));
    }

    #[test]
    fn a_spike_and_an_impossible_jump_fail_a_device_flag_too() {
        let p = params();
        let mut s = State::default();
        for m in 0..5 {
            assert_eq!(p.on_reading(&mut s, &reading(m * 10, 10.0 + m as f64 * 0.01), 1.0), Some(0.0));
        }
        // 3 m in ten minutes: a spike and 18 m/h.
        assert_eq!(p.on_reading(&mut s, &reading(50, 13.0), 1.0), Some(2.0));
        let flagged = Reading { quality: Quality::Fault, ..reading(60, 10.0) };
        assert_eq!(p.on_reading(&mut s, &flagged, 1.0), Some(1.0));
        assert_eq!(p.on_reading(&mut s, &reading(70, 10.05), 1.0), Some(0.0), "the spike did not join the median");
    }
}

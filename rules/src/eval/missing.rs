//! `missing`: a sensor (or a whole station) that has stopped reporting.
//!
//! ```toml
//! kind = "missing"
//! expected = "5m"          # the reporting interval; "learn" takes it from the sensor's own cadence
//! per = "station"          # one alert when the station is silent on every selected quantity
//! levels = [{ severity = "yellow", above = 3 }, { severity = "orange", above = 12 }]
//! ```
//!
//! The value is the silence so far in expected intervals: `above = 3` fires once nothing
//! has come for more than three intervals, and the next reading resolves it. Silence is
//! measured in event time: replaying a file, the gaps in the file; live, the watermark,
//! which follows the other sources' readings and, when the whole network is quiet, the wall
//! clock (after `engine.idle_timeout`) — so a silent network still alerts.
//!
//! A sensor is watched from its first reading on: a station that never reported since start
//! raises nothing (the registry says where stations are, not that they are alive).
//! With `expected = "learn"`, the interval is a moving average of the gaps between readings,
//! and nothing is judged before three gaps are known.

use tidewatch_ingest::Reading;

use super::ladder::Ladder;
use super::Kind;
use crate::duration::format_duration;
use crate::event::Evidence;
use crate::file::Fields;

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// The expected interval, or `None` to learn it.
    pub expected_ms: Option<i64>,
    /// One state per station rather than per sensor.
    pub per_station: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    last: Option<i64>,
    /// Learned interval (ms) and how many gaps it is made of.
    learned: f64,
    gaps: u32,
}

/// Gaps needed before a learned interval is trusted.
const LEARN_GAPS: u32 = 3;

impl Params {
    fn interval(&self, state: &State) -> Option<f64> {
        match self.expected_ms {
            Some(ms) => Some(ms as f64),
            None => (state.gaps >= LEARN_GAPS && state.learned > 0.0).then_some(state.learned),
        }
    }
}

impl Kind for Params {
    const NAME: &'static str = "missing";
    const FIELDS: &'static [&'static str] = &["expected", "per"];
    const GATED_BY_QUALITY: bool = false;
    type State = State;

    fn parse(fields: &mut Fields<'_, '_>) -> Option<Self> {
        let expected = match fields.text("expected").as_deref() {
            Some("learn") => Some(None),
            Some(_) => fields.duration("expected").map(Some),
            None if fields.has("expected") => None,
            None => fields.missing("expected", "\"5m\" or \"learn\""),
        };
        let per = if fields.has("per") { fields.choice("per", &["sensor", "station"]) } else { Some("sensor") };
        Some(Params { expected_ms: expected?, per_station: per? == "station" })
    }

    fn on_reading(&self, state: &mut State, reading: &Reading, _sign: f64) -> Option<f64> {
        if let Some(last) = state.last {
            let gap = (reading.time - last) as f64;
            if gap > 0.0 {
                // A moving average that a single long outage does not ruin: gaps over ten
                // times the current estimate count as ten times.
                let gap = if state.gaps > 0 { gap.min(10.0 * state.learned) } else { gap };
                state.learned = if state.gaps == 0 { gap } else { 0.8 * state.learned + 0.2 * gap };
                state.gaps = state.gaps.saturating_add(1);
            }
        }
        state.last = Some(state.last.map_or(reading.time, |l| l.max(reading.time)));
        Some(0.0)
    }

    fn next_change(&self, state: &State, ladder: &Ladder, after: i64) -> Option<i64> {
        let last = state.last?;
        let interval = self.interval(state)?;
        // The first level threshold the silence has not yet passed at `after`.
        (0..ladder.len())
            .map(|l| last + (ladder.threshold(l as u8) * interval).floor() as i64 + 1)
            .find(|&t| t > after)
    }

    fn value_at(&self, state: &State, time: i64) -> Option<f64> {
        Some((time - state.last?) as f64 / self.interval(state)?)
    }

    fn unit(&self, _reading_unit: &str) -> Option<String> {
        Some("intervals".to_owned())
    }

    fn evidence(&self, state: &State, _threshold: f64, evidence: &mut Evidence) {
        match self.interval(state) {
            Some(ms) => evidence.measure(format!("silence in expected intervals of {}", format_duration(ms as i64))),
            None => evidence.measure("silence in expected intervals"),
        };
        if let Some(last) = state.last {
            evidence.fact("last_reading_ms", last as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_ingest::Quantity;

    const MIN: i64 = 60_000;

    fn reading(minute: i64) -> Reading {
        crate::eval::test_reading(Quantity::WaterLevel, minute, 1.0)
    }

    #[test]
    fn silence_is_counted_in_expected_intervals() {
        let p = Params { expected_ms: Some(5 * MIN), per_station: false };
        let ladder = Ladder::new(&[3.0, 12.0], 1.0);
        let mut s = State::default();
        p.on_reading(&mut s, &reading(0), 1.0);
        assert_eq!(p.next_change(&s, &ladder, 0), Some(15 * MIN + 1), "just past three intervals");
        assert_eq!(p.value_at(&s, 15 * MIN + 1), Some((15 * MIN + 1) as f64 / (5 * MIN) as f64));
        assert_eq!(p.next_change(&s, &ladder, 15 * MIN + 1), Some(60 * MIN + 1));
        assert_eq!(p.next_change(&s, &ladder, 60 * MIN + 1), None);
    }

    #[test]
    fn a_learned_interval_waits_for_three_gaps() {
        let p = Params { expected_ms: None, per_station: false };
        let ladder = Ladder::new(&[3.0], 1.0);
        let mut s = State::default();
        for m in [0, 10, 20] {
            p.on_reading(&mut s, &reading(m), 1.0);
            assert_eq!(p.next_change(&s, &ladder, m * MIN), None);
        }
        p.on_reading(&mut s, &reading(30), 1.0);
        assert_eq!(p.next_change(&s, &ladder, 30 * MIN), Some(60 * MIN + 1));
    }
}

//! `forecast`: alert before a level is reached, from the recent trend.
//!
//! ```toml
//! kind = "forecast"
//! window = "2h"            # fit the trend over the last two hours
//! lead = "2h"              # alert when the level is predicted within two hours
//! model = "linear"         # linear | approach (a value levelling off exponentially)
//! levels = [{ severity = "orange", above = "station.guarantee_level" }]
//! ```
//!
//! The value judged is the predicted value `lead` ahead (or the current one, if that is
//! already further beyond): so the ladder fires as soon as the predicted crossing of a level
//! is within `lead`, and clears when the trend turns. `approach` fits
//! `dv/dt = k (level - v)` — a river rising towards its crest slows down, and a straight
//! line through its rise would overshoot — and falls back to the line when the points do not
//! level off. The alert's evidence carries the predicted value, the trend per hour and the
//! predicted time of crossing the level's threshold.

use tidewatch_ingest::Reading;

use super::samples::Samples;
use super::Kind;
use crate::duration::format_duration;
use crate::event::Evidence;
use crate::file::Fields;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Linear,
    Approach,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub window_ms: i64,
    pub lead_ms: i64,
    pub model: Model,
    pub min_points: u32,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    samples: Samples,
    /// The last prediction: (time it was made, current fitted value, predicted value).
    last: Option<Prediction>,
}

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Prediction {
    made_at: i64,
    current: f64,
    predicted: f64,
    slope: f64,
    /// For `approach`: the level and rate (per hour) it levels off at.
    approach: Option<(f64, f64)>,
}

const HOUR: f64 = 3_600_000.0;

impl Kind for Params {
    const NAME: &'static str = "forecast";
    const FIELDS: &'static [&'static str] = &["window", "lead", "model", "min_points"];
    type State = State;

    fn parse(fields: &mut Fields<'_, '_>) -> Option<Self> {
        let window_ms = fields.required_duration("window", "\"2h\"");
        let lead_ms = fields.required_duration("lead", "\"2h\"");
        let model = if fields.has("model") { fields.choice("model", &["linear", "approach"]) } else { Some("linear") };
        let min_points = if fields.has("min_points") { fields.count("min_points", 3..=16) } else { Some(4) };
        let model = if model? == "approach" { Model::Approach } else { Model::Linear };
        Some(Params { window_ms: window_ms?, lead_ms: lead_ms?, model, min_points: min_points? })
    }

    fn on_reading(&self, state: &mut State, reading: &Reading, sign: f64) -> Option<f64> {
        state.samples.push(reading.time, reading.value, self.window_ms);
        let fit = state.samples.fit()?;
        if fit.points < self.min_points as usize || fit.span_h * HOUR < self.window_ms as f64 / 2.0 {
            state.last = None;
            return None;
        }
        let lead_h = self.lead_ms as f64 / HOUR;
        let approach = match self.model {
            Model::Approach => state.samples.approach(),
            Model::Linear => None,
        };
        let predicted = match approach {
            Some((level, k)) => level - (level - fit.at_newest) * (-k * lead_h).exp(),
            None => fit.at_newest + fit.slope * lead_h,
        };
        state.last =
            Some(Prediction { made_at: reading.time, current: fit.at_newest, predicted, slope: fit.slope, approach });
        // Oriented: whichever of now and then is further along the ladder.
        Some(if (predicted - reading.value) * sign > 0.0 { predicted } else { reading.value })
    }

    fn evidence(&self, state: &State, threshold: f64, evidence: &mut Evidence) {
        evidence.measure(format!("value predicted {} ahead", format_duration(self.lead_ms)));
        let Some(p) = state.last else { return };
        evidence.fact("predicted_value", p.predicted).fact("trend_per_hour", p.slope);
        let hours = match p.approach {
            Some((level, k)) => {
                let ratio = (level - threshold) / (level - p.current);
                (ratio > 0.0 && ratio < 1.0).then(|| -ratio.ln() / k)
            }
            None => {
                let h = (threshold - p.current) / p.slope;
                (p.slope != 0.0 && h.is_finite()).then_some(h)
            }
        };
        if let Some(h) = hours.filter(|h| *h >= 0.0) {
            evidence.fact("predicted_crossing_ms", (p.made_at as f64 + h * HOUR).round());
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

    #[test]
    fn a_steady_rise_predicts_the_crossing_time() {
        let p = Params { window_ms: 120 * MIN, lead_ms: 120 * MIN, model: Model::Linear, min_points: 4 };
        let mut s = State::default();
        let mut last = None;
        // 0.5 m/h from 27 m; the 30 m level is reached at 6 h.
        for m in (0..=180).step_by(10) {
            last = p.on_reading(&mut s, &reading(m, 27.0 + 0.5 * m as f64 / 60.0), 1.0);
        }
        let predicted = last.unwrap();
        assert!((predicted - (28.5 + 1.0)).abs() < 1e-9, "at 3 h: 28.5 now, 29.5 in two hours; got {predicted}");
        let mut e = Evidence::default();
        p.evidence(&s, 30.0, &mut e);
        assert_eq!(e.get("predicted_crossing_ms"), Some((360 * MIN) as f64));
    }

    #[test]
    fn a_rise_levelling_off_is_not_extrapolated_as_a_line() {
        let level = |m: i64| 30.0 - 4.0 * (-(m as f64) / 60.0).exp(); // crest at 30 m, k = 1/h
        let linear = Params { window_ms: 120 * MIN, lead_ms: 180 * MIN, model: Model::Linear, min_points: 4 };
        let approach = Params { model: Model::Approach, ..linear.clone() };
        let (mut a, mut b) = (State::default(), State::default());
        let (mut by_line, mut by_approach) = (None, None);
        for m in (0..=120).step_by(10) {
            by_line = linear.on_reading(&mut a, &reading(m, level(m)), 1.0);
            by_approach = approach.on_reading(&mut b, &reading(m, level(m)), 1.0);
        }
        assert!(by_line.unwrap() > 30.5, "a line overshoots the crest: {by_line:?}");
        let truth = level(300);
        assert!((by_approach.unwrap() - truth).abs() < 0.1, "{by_approach:?} vs {truth}");
    }
}

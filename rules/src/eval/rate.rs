//! `rate`: how fast a value rises or falls, per hour, over a window.
//!
//! ```toml
//! kind = "rate"
//! window = "1h"        # fit the trend over the last hour
//! min_points = 3       # and only with at least three points (default 3)
//! levels = [{ severity = "yellow", above = 0.3 }]   # rising faster than 0.3 m/h
//! ```
//!
//! The rate is the slope of a least-squares line through the window's points, so one noisy
//! reading moves it little and irregular sampling is weighed by time, not by count. Memory is
//! the fixed [`Samples`] ring. A window with too few points, or points covering less than
//! half of it (a gap, a sensor just started), gives no rate: the ladder keeps its state.

use tidewatch_ingest::Reading;

use super::samples::Samples;
use super::Kind;
use crate::duration::format_duration;
use crate::event::Evidence;
use crate::file::Fields;

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub window_ms: i64,
    pub min_points: u32,
}

impl Kind for Params {
    const NAME: &'static str = "rate";
    const FIELDS: &'static [&'static str] = &["window", "min_points"];
    type State = Samples;

    fn parse(fields: &mut Fields<'_, '_>) -> Option<Self> {
        // Every field is read before any `?`, so all their problems are reported at once.
        let window_ms = fields.required_duration("window", "\"1h\"");
        let min_points = if fields.has("min_points") { fields.count("min_points", 2..=16) } else { Some(3) };
        Some(Params { window_ms: window_ms?, min_points: min_points? })
    }

    fn on_reading(&self, samples: &mut Samples, reading: &Reading, _sign: f64) -> Option<f64> {
        samples.push(reading.time, reading.value, self.window_ms);
        let fit = samples.fit()?;
        let enough = fit.points >= self.min_points as usize && fit.span_h * 3_600_000.0 >= self.window_ms as f64 / 2.0;
        enough.then_some(fit.slope)
    }

    fn unit(&self, reading_unit: &str) -> Option<String> {
        Some(format!("{reading_unit}/h"))
    }

    fn evidence(&self, samples: &Samples, _threshold: f64, evidence: &mut Evidence) {
        evidence.measure(format!("change per hour over {}", format_duration(self.window_ms)));
        if let Some(fit) = samples.fit() {
            evidence.fact("points", fit.points as f64).fact("span_hours", fit.span_h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_ingest::Quantity;

    fn reading(minute: i64, value: f64) -> Reading {
        crate::eval::test_reading(Quantity::WaterLevel, minute, value)
    }

    #[test]
    fn no_rate_until_the_points_cover_half_the_window() {
        let p = Params { window_ms: 3_600_000, min_points: 3 };
        let mut s = Samples::default();
        assert_eq!(p.on_reading(&mut s, &reading(0, 10.0), 1.0), None);
        assert_eq!(p.on_reading(&mut s, &reading(10, 10.1), 1.0), None);
        assert_eq!(p.on_reading(&mut s, &reading(20, 10.2), 1.0), None, "20 minutes of a 1 h window");
        let rate = p.on_reading(&mut s, &reading(30, 10.3), 1.0).unwrap();
        assert!((rate - 0.6).abs() < 1e-9, "0.1 m per 10 min is 0.6 m/h, got {rate}");
    }

    #[test]
    fn a_gap_longer_than_the_window_gives_no_rate() {
        let p = Params { window_ms: 3_600_000, min_points: 3 };
        let mut s = Samples::default();
        for m in (0..=60).step_by(5) {
            p.on_reading(&mut s, &reading(m, 10.0 + m as f64 / 100.0), 1.0);
        }
        assert_eq!(p.on_reading(&mut s, &reading(200, 13.0), 1.0), None);
    }
}

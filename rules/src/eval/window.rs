//! `window`: sum, mean, min, max or count over a sliding window.
//!
//! ```toml
//! kind = "window"
//! window = "3h"
//! aggregate = "sum"            # sum | mean | min | max | count
//! input = "cumulative"         # increment (default): each reading is an amount;
//!                              # cumulative: a counter, its increases are the amounts
//! step = "5m"                  # how finely the window slides (default: window / 24)
//! levels = [{ severity = "orange", above = 50 }, { severity = "red", above = 100 }]
//! ```
//!
//! The window is a ring of `window / step` steps, so memory per sensor is fixed by the
//! rule (24 steps by default: 24 h of 5-minute rain cost the same as 1 h), not by how often
//! the gauge reports. The window at time t covers the buckets from `t - window` (rounded down
//! to a step) to t. A counter that goes down has been reset: its new value is the increase.
//! With no readings, the window still empties as time passes, so an alert on a rain total
//! resolves when a gauge falls silent rather than holding forever.

use tidewatch_ingest::Reading;

use super::ladder::Ladder;
use super::Kind;
use crate::duration::format_duration;
use crate::event::Evidence;
use crate::file::Fields;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Mean,
    Min,
    Max,
    Count,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub window_ms: i64,
    pub step_ms: i64,
    pub aggregate: Aggregate,
    /// The readings are a running counter (e.g. a rain gauge's total since power-on).
    pub cumulative: bool,
}

impl Params {
    fn buckets(&self) -> usize {
        (self.window_ms / self.step_ms) as usize
    }
}

/// One sensor's window: a ring of steps, the newest at `head`.
///
/// Per step one number — its sum, minimum or maximum, NaN while it holds no reading — and,
/// only for `mean` and `count`, how many readings it holds: 24 steps of a sum cost 192 bytes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct State {
    accs: Box<[f64]>,
    counts: Box<[u16]>,
    /// Step number (time / step) of the newest step; meaningful once `accs` exists.
    head: i64,
    /// The counter's previous value, for `cumulative` input (NaN before the first).
    previous: f64,
}

impl Default for State {
    fn default() -> Self {
        State { accs: Box::default(), counts: Box::default(), head: 0, previous: f64::NAN }
    }
}

/// Buckets per window at most: bounds memory whatever `step` says.
const MAX_BUCKETS: i64 = 288;

impl Kind for Params {
    const NAME: &'static str = "window";
    const FIELDS: &'static [&'static str] = &["window", "aggregate", "input", "step"];
    type State = State;

    fn parse(fields: &mut Fields<'_, '_>) -> Option<Self> {
        let window_ms = fields.required_duration("window", "\"3h\"");
        let aggregate = if fields.has("aggregate") {
            fields.choice("aggregate", &["sum", "mean", "min", "max", "count"])
        } else {
            fields.missing("aggregate", "\"sum\"")
        };
        let input = if fields.has("input") { fields.choice("input", &["increment", "cumulative"]) } else { Some("increment") };
        let step_ms = if fields.has("step") { fields.duration("step").map(Some) } else { Some(None) };
        let window_ms = window_ms?;
        let step_ms = step_ms?.unwrap_or((window_ms / 24).max(1));
        if window_ms % step_ms != 0 || window_ms / step_ms > MAX_BUCKETS {
            fields.error(
                "step",
                format!(
                    "`step` must divide `window` into at most {MAX_BUCKETS} steps ({} into {})",
                    format_duration(window_ms),
                    format_duration(step_ms)
                ),
            );
            return None;
        }
        let aggregate = match aggregate? {
            "sum" => Aggregate::Sum,
            "mean" => Aggregate::Mean,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            _ => Aggregate::Count,
        };
        Some(Params { window_ms, step_ms, aggregate, cumulative: input? == "cumulative" })
    }

    fn on_reading(&self, state: &mut State, reading: &Reading, _sign: f64) -> Option<f64> {
        let amount = if self.cumulative {
            let previous = std::mem::replace(&mut state.previous, reading.value);
            if previous.is_nan() {
                return None; // the first value of a counter is no amount yet
            } else if reading.value >= previous {
                reading.value - previous
            } else {
                reading.value // reset
            }
        } else {
            reading.value
        };
        let n = self.buckets();
        if state.accs.is_empty() {
            state.accs = vec![f64::NAN; n].into_boxed_slice();
            if matches!(self.aggregate, Aggregate::Mean | Aggregate::Count) {
                state.counts = vec![0; n].into_boxed_slice();
            }
            state.head = reading.time.div_euclid(self.step_ms);
        }
        let index = reading.time.div_euclid(self.step_ms);
        // Clear the steps the window slid past (at most all of them).
        let advance = (index - state.head).clamp(0, n as i64);
        for i in 1..=advance {
            let slot = (state.head + i).rem_euclid(n as i64) as usize;
            state.accs[slot] = f64::NAN;
            if let Some(c) = state.counts.get_mut(slot) {
                *c = 0;
            }
        }
        state.head = state.head.max(index);
        let slot = index.rem_euclid(n as i64) as usize;
        let acc = &mut state.accs[slot];
        *acc = match self.aggregate {
            _ if acc.is_nan() => amount,
            Aggregate::Min => acc.min(amount),
            Aggregate::Max => acc.max(amount),
            _ => *acc + amount,
        };
        if let Some(c) = state.counts.get_mut(slot) {
            *c = c.saturating_add(1);
        }
        self.value(state, reading.time)
    }

    fn next_change(&self, state: &State, _ladder: &Ladder, after: i64) -> Option<i64> {
        // The next time a bucket that still holds readings leaves the window.
        if state.accs.is_empty() {
            return None;
        }
        let n = self.buckets() as i64;
        let first = (state.head - n + 1..=state.head)
            .find(|&b| b + n > after.div_euclid(self.step_ms) && !state.accs[b.rem_euclid(n) as usize].is_nan())?;
        Some((first + n) * self.step_ms)
    }

    fn value_at(&self, state: &State, time: i64) -> Option<f64> {
        self.value(state, time)
    }

    fn unit(&self, _reading_unit: &str) -> Option<String> {
        (self.aggregate == Aggregate::Count).then(|| "readings".to_owned())
    }

    fn evidence(&self, state: &State, _threshold: f64, evidence: &mut Evidence) {
        let what = match self.aggregate {
            Aggregate::Sum => "sum",
            Aggregate::Mean => "mean",
            Aggregate::Min => "minimum",
            Aggregate::Max => "maximum",
            Aggregate::Count => "count of readings",
        };
        evidence.measure(format!("{what} over {}", format_duration(self.window_ms)));
        if state.counts.is_empty() {
            let steps = state.accs.iter().filter(|a| !a.is_nan()).count();
            evidence.fact("steps_with_readings", steps as f64);
        } else {
            let readings: u32 = state.counts.iter().map(|&c| u32::from(c)).sum();
            evidence.fact("readings_in_window", readings as f64);
        }
    }
}

impl Params {
    /// The aggregate over the window ending at `time`; `None` when it holds nothing to
    /// judge (no readings, for anything but `sum` and `count`).
    fn value(&self, state: &State, time: i64) -> Option<f64> {
        let n = self.buckets() as i64;
        let now = time.div_euclid(self.step_ms);
        let live = (state.head - n + 1).max(now - n + 1)..=state.head.min(now);
        let mut count = 0u64;
        let mut acc: Option<f64> = None;
        for b in live {
            let slot = b.rem_euclid(n) as usize;
            let step = *state.accs.get(slot)?;
            if step.is_nan() {
                continue;
            }
            count += state.counts.get(slot).map_or(0, |&c| u64::from(c));
            acc = Some(match (self.aggregate, acc) {
                (_, None) => step,
                (Aggregate::Min, Some(a)) => a.min(step),
                (Aggregate::Max, Some(a)) => a.max(step),
                (_, Some(a)) => a + step,
            });
        }
        match self.aggregate {
            Aggregate::Sum => Some(acc.unwrap_or(0.0)),
            Aggregate::Count => Some(count as f64),
            Aggregate::Mean => acc.map(|a| a / count as f64),
            Aggregate::Min | Aggregate::Max => acc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_ingest::Quantity;

    const MIN: i64 = 60_000;

    fn reading(minute: i64, value: f64) -> Reading {
        crate::eval::test_reading(Quantity::Rainfall, minute, value)
    }

    fn params(aggregate: Aggregate, cumulative: bool) -> Params {
        Params { window_ms: 60 * MIN, step_ms: 5 * MIN, aggregate, cumulative }
    }

    #[test]
    fn a_sum_slides_with_the_readings() {
        let p = params(Aggregate::Sum, false);
        let mut s = State::default();
        let mut last = 0.0;
        for m in (0..120).step_by(5) {
            last = p.on_reading(&mut s, &reading(m, 1.0), 1.0).unwrap();
        }
        assert_eq!(last, 12.0, "twelve 5-minute amounts in the hour");
        // At 150 min the window is the steps from 95 min on: the readings at 95 … 115.
        assert_eq!(p.value_at(&s, 150 * MIN), Some(5.0));
        assert_eq!(p.value_at(&s, 200 * MIN), Some(0.0));
    }

    #[test]
    fn a_cumulative_counter_with_a_reset_gives_its_increases() {
        let p = params(Aggregate::Sum, true);
        let mut s = State::default();
        assert_eq!(p.on_reading(&mut s, &reading(0, 100.0), 1.0), None);
        assert_eq!(p.on_reading(&mut s, &reading(5, 102.5), 1.0), Some(2.5));
        assert_eq!(p.on_reading(&mut s, &reading(10, 1.0), 1.0), Some(3.5), "reset: 1.0 fell since");
        assert_eq!(p.on_reading(&mut s, &reading(15, 4.0), 1.0), Some(6.5));
    }

    #[test]
    fn mean_min_max_and_count() {
        for (aggregate, expected) in
            [(Aggregate::Mean, 2.0), (Aggregate::Min, 1.0), (Aggregate::Max, 3.0), (Aggregate::Count, 3.0)]
        {
            let p = params(aggregate, false);
            let mut s = State::default();
            p.on_reading(&mut s, &reading(0, 1.0), 1.0);
            p.on_reading(&mut s, &reading(1, 3.0), 1.0);
            let v = p.on_reading(&mut s, &reading(7, 2.0), 1.0).unwrap();
            assert_eq!(v, expected, "{aggregate:?}");
        }
    }

    #[test]
    fn the_window_empties_when_the_gauge_falls_silent() {
        let p = params(Aggregate::Max, false);
        let mut s = State::default();
        p.on_reading(&mut s, &reading(0, 5.0), 1.0);
        p.on_reading(&mut s, &reading(30, 2.0), 1.0);
        let ladder = Ladder::new(&[1.0], 1.0);
        assert_eq!(p.next_change(&s, &ladder, 30 * MIN), Some(60 * MIN), "the first bucket leaves at 60 min");
        assert_eq!(p.value_at(&s, 60 * MIN), Some(2.0));
        assert_eq!(p.next_change(&s, &ladder, 60 * MIN), Some(90 * MIN));
        assert_eq!(p.value_at(&s, 90 * MIN), None, "nothing left to judge");
        assert_eq!(p.next_change(&s, &ladder, 90 * MIN), None);
    }

    #[test]
    fn memory_does_not_grow_with_the_reading_rate() {
        let p = Params { window_ms: 24 * 60 * MIN, step_ms: 60 * MIN, aggregate: Aggregate::Sum, cumulative: false };
        let mut s = State::default();
        for sec in 0..200_000 {
            p.on_reading(&mut s, &Reading { time: sec * 1000, ..reading(0, 0.001) }, 1.0);
        }
        assert_eq!((s.accs.len(), s.counts.len()), (24, 0), "a sum keeps one number per step");
    }
}

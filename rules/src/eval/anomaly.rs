//! `anomaly`: how unusual a reading is against the sensor's own recent behaviour.
//!
//! ```toml
//! kind = "anomaly"
//! method = "mad"           # zscore | mad | ewma
//! samples = 48             # zscore, mad: the baseline is the last 48 readings
//! half_life = 24           # ewma: readings after which an old reading weighs half
//! seasonal = "hour_of_day" # ewma only: a baseline per hour of the day (China Standard Time)
//! warm_up = 48             # readings before anything is scored (default: the baseline's size)
//! side = "both"            # both | high | low: which deviations count
//! levels = [{ severity = "yellow", above = 4 }, { severity = "orange", above = 6 }]
//! ```
//!
//! The value judged is the score: how many standard deviations (for `mad`, scaled median
//! absolute deviations, which one wild reading cannot inflate) the reading lies from the
//! baseline, computed *before* the reading joins the baseline. The alert's evidence carries
//! the score, the baseline, its spread and the two-sided normal p-value.
//!
//! Memory per sensor is fixed by the rule: `samples` values for `zscore` and `mad`, two
//! numbers (or 24 pairs with `seasonal`) for `ewma`.

use statrs::distribution::{ContinuousCDF, Normal};
use tidewatch_ingest::Reading;

use super::Kind;
use crate::event::Evidence;
use crate::file::Fields;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Mean and standard deviation of the last `samples` readings.
    ZScore { samples: u32 },
    /// Median and median absolute deviation (× 1.4826) of the last `samples` readings.
    Mad { samples: u32 },
    /// Exponentially weighted mean and variance.
    Ewma { half_life: u32, hour_of_day: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Both,
    High,
    Low,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub method: Method,
    pub warm_up: u32,
    pub side: Side,
    /// Spreads below this count as this, so a flat baseline does not make every change infinite.
    pub min_spread: f64,
}

/// One sensor's baseline.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// zscore, mad: the last `samples` values, a ring (single precision: enough for a
    /// baseline, and half the memory).
    values: Box<[f32]>,
    /// mad: the same values in order, kept sorted as they come and go, so the median and
    /// the MAD cost a walk of half the window, not a sort per reading.
    sorted: Box<[f32]>,
    /// ewma: (mean, variance, count) per slot, one slot or 24.
    cells: Box<[f64]>,
    next: u32,
    seen: u32,
    /// zscore: running sum and sum of squares of the ring.
    sum: f64,
    sum_sq: f64,
    /// The last score and baseline, for evidence.
    last: Option<Scored>,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Scored {
    score: f64,
    baseline: f64,
    spread: f64,
}

/// China Standard Time, for hour-of-day baselines (no daylight saving).
const CST_OFFSET_MS: i64 = 8 * 3_600_000;

impl Kind for Params {
    const NAME: &'static str = "anomaly";
    const FIELDS: &'static [&'static str] = &["method", "samples", "half_life", "seasonal", "warm_up", "side", "min_spread"];
    type State = State;

    fn parse(fields: &mut Fields<'_, '_>) -> Option<Self> {
        let method = if fields.has("method") {
            fields.choice("method", &["zscore", "mad", "ewma"])
        } else {
            fields.missing("method", "\"mad\"")
        };
        let samples = if fields.has("samples") { fields.count("samples", 8..=1024) } else { Some(48) };
        let half_life = if fields.has("half_life") { fields.count("half_life", 1..=100_000) } else { Some(24) };
        let seasonal = if fields.has("seasonal") { fields.choice("seasonal", &["hour_of_day"]).map(Some) } else { Some(None) };
        let warm_up = if fields.has("warm_up") { fields.count("warm_up", 0..=1_000_000).map(Some) } else { Some(None) };
        let side = if fields.has("side") { fields.choice("side", &["both", "high", "low"]) } else { Some("both") };
        let min_spread = if fields.has("min_spread") { fields.positive("min_spread") } else { Some(1e-9) };
        let method = method?;
        let (samples, half_life, seasonal) = (samples?, half_life?, seasonal?);
        if method != "ewma" && seasonal.is_some() {
            fields.error("seasonal", "`seasonal` needs method = \"ewma\"");
            return None;
        }
        if fields.has("samples") && method == "ewma" {
            fields.error("samples", "`samples` is for method = \"zscore\" or \"mad\"; ewma uses `half_life`");
            return None;
        }
        if fields.has("half_life") && method != "ewma" {
            fields.error("half_life", format!("`half_life` is for method = \"ewma\"; {method} uses `samples`"));
            return None;
        }
        let method = match method {
            "zscore" => Method::ZScore { samples },
            "mad" => Method::Mad { samples },
            _ => Method::Ewma { half_life, hour_of_day: seasonal.is_some() },
        };
        let default_warm_up = match method {
            Method::ZScore { samples } | Method::Mad { samples } => samples,
            // Per hour slot, a day of data counts once: two weeks warm a seasonal baseline.
            Method::Ewma { half_life, hour_of_day } => 2 * half_life * if hour_of_day { 14 } else { 1 },
        };
        let side = match side? {
            "high" => Side::High,
            "low" => Side::Low,
            _ => Side::Both,
        };
        Some(Params { method, warm_up: warm_up?.unwrap_or(default_warm_up), side, min_spread: min_spread? })
    }

    fn on_reading(&self, state: &mut State, reading: &Reading, _sign: f64) -> Option<f64> {
        let x = reading.value;
        let baseline = self.baseline(state, reading.time);
        self.learn(state, reading.time, x);
        state.seen = state.seen.saturating_add(1);
        let (mean, spread) = baseline?;
        if state.seen <= self.warm_up {
            return None;
        }
        let z = (x - mean) / spread.max(self.min_spread);
        let score = match self.side {
            Side::Both => z.abs(),
            Side::High => z,
            Side::Low => -z,
        };
        state.last = Some(Scored { score, baseline: mean, spread });
        Some(score)
    }

    fn unit(&self, _reading_unit: &str) -> Option<String> {
        Some("σ".to_owned())
    }

    fn evidence(&self, state: &State, _threshold: f64, evidence: &mut Evidence) {
        let measure = match self.method {
            Method::ZScore { samples } => format!("z-score against the last {samples} readings"),
            Method::Mad { samples } => format!("robust z-score (median, MAD) against the last {samples} readings"),
            Method::Ewma { hour_of_day: true, .. } => "z-score against the hour-of-day baseline".to_owned(),
            Method::Ewma { .. } => "z-score against the exponentially weighted baseline".to_owned(),
        };
        evidence.measure(measure);
        if let Some(s) = state.last {
            let normal = Normal::standard();
            let p = 2.0 * (1.0 - normal.cdf(s.score.abs()));
            evidence.fact("score", s.score).fact("baseline", s.baseline).fact("spread", s.spread).fact("p_value", p);
        }
    }
}

impl Params {
    /// The baseline (centre, spread) before `time`'s reading, if there is one.
    fn baseline(&self, state: &State, time: i64) -> Option<(f64, f64)> {
        match self.method {
            Method::ZScore { samples } => {
                let n = state.seen.min(samples) as f64;
                if n < 2.0 {
                    return None;
                }
                let mean = state.sum / n;
                let var = ((state.sum_sq - n * mean * mean) / (n - 1.0)).max(0.0);
                Some((mean, var.sqrt()))
            }
            Method::Mad { samples } => {
                let n = state.seen.min(samples) as usize;
                if n < 3 {
                    return None;
                }
                let sorted = &state.sorted[..n];
                let median = middle(n, |i| f64::from(sorted[i]));
                Some((median, 1.4826 * median_deviation(sorted, median)))
            }
            Method::Ewma { hour_of_day, .. } => {
                let slot = if hour_of_day { hour(time) } else { 0 };
                let (mean, var, count) = ewma_slot(state, slot)?;
                (count >= 2.0).then(|| (mean, var.sqrt()))
            }
        }
    }

    fn learn(&self, state: &mut State, time: i64, x: f64) {
        match self.method {
            Method::ZScore { samples } | Method::Mad { samples } => {
                let mad = matches!(self.method, Method::Mad { .. });
                if state.values.is_empty() {
                    state.values = vec![0.0; samples as usize].into_boxed_slice();
                    if mad {
                        state.sorted = vec![0.0; samples as usize].into_boxed_slice();
                    }
                }
                let x32 = x as f32;
                let i = state.next as usize;
                let filled = state.seen.min(samples) as usize;
                if state.seen >= samples {
                    let old = state.values[i];
                    state.sum -= f64::from(old);
                    state.sum_sq -= f64::from(old) * f64::from(old);
                    if mad {
                        // Out with the oldest value, in with the new, keeping the order.
                        let at = state.sorted[..filled].partition_point(|&v| v < old);
                        state.sorted.copy_within(at + 1..filled, at);
                    }
                }
                if mad {
                    let len = if state.seen >= samples { filled - 1 } else { filled };
                    let at = state.sorted[..len].partition_point(|&v| v < x32);
                    state.sorted.copy_within(at..len, at + 1);
                    state.sorted[at] = x32;
                }
                state.values[i] = x32;
                state.sum += f64::from(x32);
                state.sum_sq += f64::from(x32) * f64::from(x32);
                state.next = (state.next + 1) % samples;
            }
            Method::Ewma { half_life, hour_of_day } => {
                if state.cells.is_empty() {
                    state.cells = vec![0.0; if hour_of_day { 24 * 3 } else { 3 }].into_boxed_slice();
                }
                let slot = if hour_of_day { hour(time) } else { 0 };
                let alpha = 1.0 - 0.5f64.powf(1.0 / half_life as f64);
                let cell = &mut state.cells[slot * 3..slot * 3 + 3];
                if cell[2] == 0.0 {
                    cell[0] = x;
                    cell[1] = 0.0;
                } else {
                    let diff = x - cell[0];
                    let increment = alpha * diff;
                    cell[0] += increment;
                    cell[1] = (1.0 - alpha) * (cell[1] + diff * increment);
                }
                cell[2] += 1.0;
            }
        }
    }
}

fn ewma_slot(state: &State, slot: usize) -> Option<(f64, f64, f64)> {
    let cell = state.cells.get(slot * 3..slot * 3 + 3)?;
    Some((cell[0], cell[1], cell[2]))
}

/// The median of `n` ordered values given by index.
fn middle(n: usize, at: impl Fn(usize) -> f64) -> f64 {
    if n % 2 == 1 {
        at(n / 2)
    } else {
        (at(n / 2 - 1) + at(n / 2)) / 2.0
    }
}

/// The median of `|v - median|` over sorted values: the deviations below and above the
/// median are each already in order, so merging them outwards from the median finds the
/// middle one in half a pass.
fn median_deviation(sorted: &[f32], median: f64) -> f64 {
    let n = sorted.len();
    let split = sorted.partition_point(|&v| f64::from(v) < median);
    let (mut below, mut above) = (split, split); // next: sorted[below - 1], sorted[above]
    let mut previous = 0.0;
    for k in 0..=n / 2 {
        let down = (below > 0).then(|| median - f64::from(sorted[below - 1]));
        let up = (above < n).then(|| f64::from(sorted[above]) - median);
        let next = match (down, up) {
            (Some(d), Some(u)) if d <= u => {
                below -= 1;
                d
            }
            (Some(d), None) => {
                below -= 1;
                d
            }
            (_, Some(u)) => {
                above += 1;
                u
            }
            (None, None) => break,
        };
        if k == n / 2 {
            return if n % 2 == 1 { next } else { (previous + next) / 2.0 };
        }
        previous = next;
    }
    previous
}

fn hour(time: i64) -> usize {
    ((time + CST_OFFSET_MS).rem_euclid(86_400_000) / 3_600_000) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_ingest::{Quality, Quantity, SensorKey, StationKey};

    fn reading(i: i64, value: f64) -> Reading {
        Reading {
            sensor: SensorKey::new(StationKey(0), Quantity::DissolvedOxygen),
            quality: Quality::Good,
            time: i * 3_600_000,
            value,
        }
    }

    fn noisy(i: i64) -> f64 {
        // Deterministic noise in [-0.5, 0.5].
        ((i * 7919) % 101) as f64 / 100.0 - 0.5
    }

    fn scores(p: &Params, values: &[f64]) -> Vec<Option<f64>> {
        let mut s = State::default();
        values.iter().enumerate().map(|(i, &v)| p.on_reading(&mut s, &reading(i as i64, v), 1.0)).collect()
    }

    #[test]
    fn a_spike_scores_high_after_warm_up_and_normal_noise_does_not() {
        for method in [Method::ZScore { samples: 48 }, Method::Mad { samples: 48 }, Method::Ewma { half_life: 24, hour_of_day: false }] {
            let p = Params { method, warm_up: 48, side: Side::Both, min_spread: 1e-9 };
            let mut values: Vec<f64> = (0..100).map(|i| 8.0 + noisy(i)).collect();
            values.push(2.0);
            let s = scores(&p, &values);
            assert!(s[..48].iter().all(Option::is_none), "{method:?}: nothing scored during warm-up");
            assert!(s[48..100].iter().all(|z| z.unwrap() < 4.0), "{method:?}: noise stays low: {:?}", &s[48..100]);
            assert!(s[100].unwrap() > 6.0, "{method:?}: the drop scores {:?}", s[100]);
        }
    }

    proptest::proptest! {
        /// The half-pass MAD of sorted values equals the textbook one.
        #[test]
        fn median_deviation_matches_sorting_the_deviations(mut values in proptest::collection::vec(-1e3f32..1e3, 1..60)) {
            values.sort_by(f32::total_cmp);
            let n = values.len();
            let median = middle(n, |i| f64::from(values[i]));
            let mut deviations: Vec<f64> = values.iter().map(|&v| (f64::from(v) - median).abs()).collect();
            deviations.sort_by(f64::total_cmp);
            let expected = middle(n, |i| deviations[i]);
            proptest::prop_assert!((median_deviation(&values, median) - expected).abs() < 1e-9);
        }

        /// Values coming and going keep the sorted copy exactly the window's values.
        #[test]
        fn the_sorted_window_holds_exactly_the_last_values(values in proptest::collection::vec(-50i32..50, 1..200)) {
            let p = Params { method: Method::Mad { samples: 8 }, warm_up: 0, side: Side::Both, min_spread: 1e-9 };
            let mut s = State::default();
            for (i, &v) in values.iter().enumerate() {
                p.on_reading(&mut s, &reading(i as i64, f64::from(v)), 1.0);
                let n = (i + 1).min(8);
                let mut last: Vec<f32> = values[i + 1 - n..=i].iter().map(|&v| v as f32).collect();
                last.sort_by(f32::total_cmp);
                proptest::prop_assert_eq!(&s.sorted[..n], &last[..]);
            }
        }
    }

    #[test]
    fn mad_is_not_fooled_by_earlier_outliers() {
        let p = Params { method: Method::Mad { samples: 48 }, warm_up: 48, side: Side::Both, min_spread: 1e-9 };
        let mut values: Vec<f64> = (0..100).map(|i| 8.0 + noisy(i)).collect();
        for i in (50..100).step_by(10) {
            values[i] = 30.0; // a few wild readings inflate a plain standard deviation
        }
        values.push(11.0);
        let s = scores(&p, &values);
        assert!(s[100].unwrap() > 6.0, "{:?}", s[100]);
    }

    #[test]
    fn an_hour_of_day_baseline_expects_the_daily_cycle() {
        let p = Params {
            method: Method::Ewma { half_life: 5, hour_of_day: true },
            warm_up: 24 * 5,
            side: Side::High,
            min_spread: 0.1,
        };
        // Dissolved oxygen peaks in the afternoon: a daily cycle of ±3 around 8.
        let daily = |i: i64| 8.0 + 3.0 * ((hour(i * 3_600_000) as f64 - 9.0) / 24.0 * std::f64::consts::TAU).sin();
        let mut values: Vec<f64> = (0..24 * 14).map(|i| daily(i) + noisy(i) * 0.2).collect();
        let n = values.len() as i64;
        values.push(daily(n) + 2.0);
        let s = scores(&p, &values);
        assert!(s[24 * 10..24 * 14].iter().all(|z| z.unwrap() < 4.0), "the cycle itself is normal");
        assert!(s[n as usize].unwrap() > 4.0, "2 above the hour's normal: {:?}", s[n as usize]);
    }
}

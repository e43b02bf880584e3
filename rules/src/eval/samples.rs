//! A sensor's recent history in fixed memory, for kinds that fit a trend (`rate`, `forecast`).
//!
//! Keeps at most [`CAPACITY`] points over a time span, at least `span / (CAPACITY - 2)`
//! apart (the newest point is provisional: a reading closer than that to the one before it
//! replaces it), so a gauge reporting every second and one reporting every hour cost the same
//! 16 points, and irregular sampling gives a well-spread fit rather than one dominated by a
//! burst.

/// Points kept per sensor.
pub const CAPACITY: usize = 16;

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Samples {
    times: [i64; CAPACITY],
    values: [f64; CAPACITY],
    /// Index of the oldest point.
    start: u8,
    len: u8,
}

impl Default for Samples {
    fn default() -> Self {
        Samples { times: [0; CAPACITY], values: [0.0; CAPACITY], start: 0, len: 0 }
    }
}

/// A least-squares line through the points, with time in hours from the newest point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    /// Change per hour.
    pub slope: f64,
    /// Fitted value at the newest point's time.
    pub at_newest: f64,
    pub points: usize,
    /// Hours between the oldest and newest point used.
    pub span_h: f64,
    pub newest: i64,
}

const HOUR: f64 = 3_600_000.0;

impl Samples {
    fn at(&self, i: usize) -> (i64, f64) {
        let j = (self.start as usize + i) % CAPACITY;
        (self.times[j], self.values[j])
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn newest(&self) -> Option<(i64, f64)> {
        (self.len > 0).then(|| self.at(self.len as usize - 1))
    }

    /// Adds a point (times non-decreasing) and forgets points older than `time - span`.
    pub fn push(&mut self, time: i64, value: f64, span: i64) {
        let spacing = span / (CAPACITY as i64 - 2);
        while self.len > 0 && self.at(0).0 < time - span {
            self.start = ((self.start as usize + 1) % CAPACITY) as u8;
            self.len -= 1;
        }
        let len = self.len as usize;
        let provisional = len >= 2 && time - self.at(len - 2).0 < spacing;
        if provisional {
            let j = (self.start as usize + len - 1) % CAPACITY;
            self.times[j] = time;
            self.values[j] = value;
            return;
        }
        if len == CAPACITY {
            self.start = ((self.start as usize + 1) % CAPACITY) as u8;
            self.len -= 1;
        }
        let j = (self.start as usize + self.len as usize) % CAPACITY;
        self.times[j] = time;
        self.values[j] = value;
        self.len += 1;
    }

    /// Least squares over the points; `None` with fewer than two distinct times.
    pub fn fit(&self) -> Option<Fit> {
        let n = self.len();
        let (newest, _) = self.newest()?;
        let (oldest, _) = self.at(0);
        let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            let (t, v) = self.at(i);
            let x = (t - newest) as f64 / HOUR;
            sx += x;
            sy += v;
            sxx += x * x;
            sxy += x * v;
        }
        let nf = n as f64;
        let denominator = nf * sxx - sx * sx;
        if n < 2 || denominator.abs() < 1e-12 {
            return None;
        }
        let slope = (nf * sxy - sx * sy) / denominator;
        let intercept = (sy - slope * sx) / nf;
        Some(Fit { slope, at_newest: intercept, points: n, span_h: (newest - oldest) as f64 / HOUR, newest })
    }

    /// For a value approaching a level exponentially, `dv/dt = k (level - v)`: regresses the
    /// slope between neighbouring points on their mean value. Returns `(level, k per hour)`
    /// when the points do approach a level (k > 0).
    pub fn approach(&self) -> Option<(f64, f64)> {
        let n = self.len();
        if n < 3 {
            return None;
        }
        let (mut sx, mut sy, mut sxx, mut sxy, mut m) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for i in 1..n {
            let (t0, v0) = self.at(i - 1);
            let (t1, v1) = self.at(i);
            if t1 == t0 {
                continue;
            }
            let x = (v0 + v1) / 2.0;
            let y = (v1 - v0) / ((t1 - t0) as f64 / HOUR);
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
            m += 1.0;
        }
        let denominator = m * sxx - sx * sx;
        if m < 2.0 || denominator.abs() < 1e-12 {
            return None;
        }
        let b = (m * sxy - sx * sy) / denominator;
        let a = (sy - b * sx) / m;
        // dv/dt = a + b v = k (level - v) with k = -b, level = a / k.
        let k = -b;
        (k > 0.0).then(|| (a / k, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_straight_line_is_fitted_exactly_whatever_the_sampling() {
        let mut s = Samples::default();
        // 0.3 m/h, readings at irregular minutes.
        for m in [0, 1, 2, 7, 9, 30, 31, 32, 33, 45, 58, 59, 60] {
            s.push(m * MIN, 10.0 + 0.3 * m as f64 / 60.0, 60 * MIN);
        }
        let fit = s.fit().unwrap();
        assert!((fit.slope - 0.3).abs() < 1e-9, "{fit:?}");
        assert!((fit.at_newest - 10.3).abs() < 1e-9);
        assert!(s.len() <= CAPACITY);
    }

    #[test]
    fn memory_stays_bounded_at_a_high_reading_rate() {
        let mut s = Samples::default();
        for sec in 0..100_000 {
            s.push(sec * 1000, sec as f64, 60 * MIN);
        }
        assert!(s.len() <= CAPACITY);
        let fit = s.fit().unwrap();
        assert!((fit.slope - 3600.0).abs() < 1e-6);
        assert!(fit.span_h > 0.9, "the points still cover the hour: {fit:?}");
    }

    #[test]
    fn an_exponential_approach_finds_its_level() {
        let mut s = Samples::default();
        for m in 0..=12 {
            let t = m as f64 * 10.0 / 60.0; // hours
            s.push(m * 10 * MIN, 30.0 - 5.0 * (-0.8 * t).exp(), 120 * MIN);
        }
        let (level, k) = s.approach().unwrap();
        assert!((level - 30.0).abs() < 0.1, "level {level}");
        assert!((k - 0.8).abs() < 0.05, "k {k}");
    }
}

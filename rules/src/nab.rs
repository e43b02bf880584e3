//! Scoring anomaly detections the way the Numenta Anomaly Benchmark does (standard profile).
//!
//! Implemented from NAB's published description (Lavin & Ahmad, 2015, and the benchmark's
//! documentation): each labelled anomaly has a window of rows; the first detection inside a
//! window scores by how early it comes, `A_TP · σ(y)` with `σ(y) = 2 / (1 + e^{5y}) − 1` and
//! `y` from −1 (the window's first row) to 0 (its last); later detections in the same window
//! count for nothing; a detection outside every window is a false positive scored
//! `A_FP · σ(y)` with `y` its distance past the preceding window in window widths (so one just
//! after a window costs little), or `−A_FP` with no window before it; a window with no
//! detection costs `A_FN`. The first 15 % of each file (at most 750 rows) is probation: its
//! detections are not scored. A corpus score is normalised so that a detector that never
//! detects scores 0 and one that detects every window at its first row scores 100.

/// The weights of a NAB application profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    pub true_positive: f64,
    pub false_positive: f64,
    pub false_negative: f64,
}

impl Profile {
    /// NAB's standard profile.
    pub const STANDARD: Profile = Profile { true_positive: 1.0, false_positive: 0.11, false_negative: 1.0 };
}

/// NAB's scaled sigmoid of a position relative to a window.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// Rows of a file's probation period.
pub fn probation(rows: usize) -> usize {
    ((0.15 * rows as f64).floor() as usize).min(750)
}

/// The raw score of one file: `windows` as inclusive row ranges in time order, `detections`
/// as row indices (any order, duplicates allowed).
pub fn score_file(rows: usize, windows: &[(usize, usize)], detections: &[usize], profile: Profile) -> f64 {
    let mut detections: Vec<usize> = detections.iter().copied().filter(|&d| d >= probation(rows) && d < rows).collect();
    detections.sort_unstable();
    detections.dedup();
    let mut score = 0.0;
    let mut detected = vec![false; windows.len()];
    for &row in &detections {
        match windows.iter().position(|&(start, end)| (start..=end).contains(&row)) {
            Some(w) => {
                if !detected[w] {
                    detected[w] = true;
                    let (start, end) = windows[w];
                    let width = (end - start + 1) as f64;
                    let y = -((end - row + 1) as f64) / width;
                    score += profile.true_positive * scaled_sigmoid(y);
                }
            }
            None => {
                let previous = windows.iter().rev().find(|&&(_, end)| end < row);
                let unweighted = match previous {
                    Some(&(start, end)) => {
                        let width = (end - start + 1) as f64;
                        scaled_sigmoid((row - end) as f64 / (width - 1.0).max(1.0))
                    }
                    None => -1.0,
                };
                score += profile.false_positive * unweighted;
            }
        }
    }
    score - profile.false_negative * detected.iter().filter(|&&d| !d).count() as f64
}

/// The score a detector that finds every window at its first row gets.
pub fn perfect_score(windows: usize, profile: Profile) -> f64 {
    windows as f64 * profile.true_positive * scaled_sigmoid(-1.0)
}

/// The score a detector that never detects gets.
pub fn null_score(windows: usize, profile: Profile) -> f64 {
    -(windows as f64) * profile.false_negative
}

/// NAB's normalised score: 0 for the null detector, 100 for the perfect one.
pub fn normalised(raw: f64, windows: usize, profile: Profile) -> f64 {
    let (null, perfect) = (null_score(windows, profile), perfect_score(windows, profile));
    100.0 * (raw - null) / (perfect - null)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Profile = Profile::STANDARD;

    #[test]
    fn the_sigmoid_rewards_early_detection() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_3).abs() < 1e-6);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!(scaled_sigmoid(0.5) < 0.0 && scaled_sigmoid(0.5) > -1.0);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    #[test]
    fn perfect_and_null_detectors_score_100_and_0() {
        let windows = [(2000, 2099), (3000, 3099)];
        let perfect = score_file(4000, &windows, &[2000, 3000], P);
        assert!((normalised(perfect, 2, P) - 100.0).abs() < 1e-9);
        assert_eq!(normalised(score_file(4000, &windows, &[], P), 2, P), 0.0);
    }

    #[test]
    fn only_the_first_detection_in_a_window_counts_and_probation_is_ignored() {
        let windows = [(2000, 2099)];
        let once = score_file(4000, &windows, &[2050], P);
        assert_eq!(score_file(4000, &windows, &[2050, 2060, 2099], P), once);
        assert_eq!(score_file(4000, &windows, &[10, 2050], P), once, "row 10 is in probation");
        assert!((once - scaled_sigmoid(-50.0 / 100.0)).abs() < 1e-12);
    }

    #[test]
    fn false_positives_cost_less_just_after_a_window() {
        let windows = [(2000, 2099)];
        let base = score_file(4000, &windows, &[2000], P);
        let just_after = score_file(4000, &windows, &[2000, 2105], P) - base;
        let far_after = score_file(4000, &windows, &[2000, 3900], P) - base;
        let before = score_file(4000, &windows, &[2000, 1000], P) - base;
        assert!(just_after > far_after, "{just_after} vs {far_after}");
        assert!((far_after + 0.11).abs() < 1e-9);
        assert!((before + 0.11).abs() < 1e-9);
    }
}

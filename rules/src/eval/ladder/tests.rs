use super::*;
use proptest::prelude::*;

const MIN: i64 = 60_000;

/// yellow > 10, orange > 12, red > 14
fn ladder() -> Ladder {
    Ladder::new(&[10.0, 12.0, 14.0], 1.0)
}

fn params(for_min: i64, margin: f64) -> LadderParams {
    LadderParams { for_ms: for_min * MIN, clear_for_ms: 0, margin, sign: 1.0 }
}

/// Feeds (minute, value) pairs, then advances to `end_min`; returns (minute, transition, level).
fn run(p: LadderParams, values: &[(i64, f64)], end_min: i64) -> Vec<(i64, Transition, u8)> {
    let l = ladder();
    let mut state = LadderState::default();
    let mut out = Vec::new();
    let mut emit = |c: Change| out.push((c.time / MIN, c.transition, c.level));
    for &(m, v) in values {
        state.on_value(m * MIN, v, &l, &p, &mut emit);
    }
    state.advance_to(end_min * MIN, &l, &p, &mut emit);
    out
}

use Transition::*;

#[test]
fn fires_only_after_the_condition_held_for_the_whole_duration() {
    // Above yellow from minute 0; a 10-minute `for` fires at minute 10 exactly, by timer.
    let got = run(params(10, 0.0), &[(0, 11.0), (5, 11.0)], 30);
    assert_eq!(got, [(10, Fire, 0)]);
}

#[test]
fn a_dip_before_the_duration_restarts_the_clock() {
    let got = run(params(10, 0.0), &[(0, 11.0), (6, 9.0), (8, 11.0)], 30);
    assert_eq!(got, [(18, Fire, 0)]);
}

#[test]
fn a_jump_straight_to_red_fires_red_not_yellow_first() {
    let got = run(params(10, 0.0), &[(0, 15.0)], 30);
    assert_eq!(got, [(10, Fire, 2)]);
}

#[test]
fn ladder_goes_up_one_colour_at_a_time_as_each_holds() {
    let got = run(params(0, 0.0), &[(0, 11.0), (1, 12.5), (2, 14.5), (3, 12.5), (4, 11.0), (5, 9.0)], 10);
    assert_eq!(
        got,
        [(0, Fire, 0), (1, Escalate, 1), (2, Escalate, 2), (3, DeEscalate, 1), (4, DeEscalate, 0), (5, Resolve, 0)]
    );
}

#[test]
fn warning_clears_only_below_the_hysteresis_band() {
    // margin 0.5: yellow (10) holds until the value is at or below 9.5.
    let got = run(params(0, 0.5), &[(0, 10.2), (1, 9.8), (2, 10.1), (3, 9.5)], 10);
    assert_eq!(got, [(0, Fire, 0), (3, Resolve, 0)]);
}

#[test]
fn de_escalation_lands_on_the_highest_level_still_held_with_hysteresis() {
    // From red, a value of 11.8 is below orange (12) but inside orange's band (12 - 0.5).
    let got = run(params(0, 0.5), &[(0, 14.5), (1, 11.8), (2, 11.4)], 10);
    assert_eq!(got, [(0, Fire, 2), (1, DeEscalate, 1), (2, DeEscalate, 0)]);
}

#[test]
fn clear_for_delays_resolution_and_a_rebound_cancels_it() {
    let p = LadderParams { clear_for_ms: 5 * MIN, ..params(0, 0.0) };
    let got = run(p, &[(0, 11.0), (1, 9.0), (3, 11.0), (4, 9.0)], 20);
    assert_eq!(got, [(0, Fire, 0), (9, Resolve, 0)]);
}

#[test]
fn escalation_needs_its_own_duration_too() {
    let got = run(params(10, 0.0), &[(0, 11.0), (12, 12.5), (15, 12.5)], 40);
    assert_eq!(got, [(10, Fire, 0), (22, Escalate, 1)]);
}

#[test]
fn below_rules_are_the_mirror_image() {
    // Dissolved oxygen: yellow below 5, red below 3.
    let l = Ladder::new(&[5.0, 3.0], -1.0);
    let p = LadderParams { for_ms: 0, clear_for_ms: 0, margin: 0.2, sign: -1.0 };
    let mut s = LadderState::default();
    let mut out = Vec::new();
    for (t, v) in [(0, 6.0), (1, 4.0), (2, 2.5), (3, 5.1), (4, 5.3)] {
        s.on_value(t, -v, &l, &p, &mut |c| out.push((c.time, c.transition, c.level)));
    }
    assert_eq!(out, [(1, Fire, 0), (2, Escalate, 1), (3, DeEscalate, 0), (4, Resolve, 0)]);
}

proptest! {
    /// Whatever the values, the alert never skips a step of its own life: it fires before it
    /// escalates, it resolves only when active, and levels move the way the transition says.
    #[test]
    fn transitions_are_always_consistent(
        values in proptest::collection::vec((0i64..5, 5.0f64..16.0), 1..60),
        for_min in 0i64..4,
        margin in 0.0f64..1.0,
    ) {
        let mut t = 0;
        let timed: Vec<(i64, f64)> = values.iter().map(|&(dt, v)| { t += dt; (t, v) }).collect();
        let got = run(params(for_min, margin), &timed, t + 10);
        let mut active: Option<u8> = None;
        let mut last_time = i64::MIN;
        for (time, tr, level) in got {
            prop_assert!(time >= last_time);
            last_time = time;
            match tr {
                Fire => { prop_assert!(active.is_none()); active = Some(level); }
                Escalate => { prop_assert!(active.is_some_and(|a| level > a)); active = Some(level); }
                DeEscalate => { prop_assert!(active.is_some_and(|a| level < a)); active = Some(level); }
                Resolve => { prop_assert_eq!(active, Some(level)); active = None; }
            }
        }
    }

    /// With for = 0 and no hysteresis the active level is simply the highest level the last
    /// value is beyond.
    #[test]
    fn without_timing_the_level_follows_the_value(values in proptest::collection::vec(5.0f64..16.0, 1..40)) {
        let l = ladder();
        let p = params(0, 0.0);
        let mut s = LadderState::default();
        for (i, &v) in values.iter().enumerate() {
            s.on_value(i as i64, v, &l, &p, &mut |_| {});
            let expected = (0..3u8).rev().find(|&k| v > l.threshold(k));
            prop_assert_eq!(s.active(), expected);
        }
    }
}

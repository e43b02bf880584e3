//! The colour ladder: which level holds, for how long, and when it clears.
//!
//! Every rule kind ends here: the kind computes a value per sensor (the reading itself for
//! `threshold`), and the ladder turns the values into fire / escalate / de-escalate / resolve
//! with `for`, `clear_for` and hysteresis, all in event time.
//!
//! Values and thresholds are *oriented*: a `below` rule multiplies both by -1, so the
//! logic here only ever asks "is the value above the threshold".

use crate::event::Transition;

const NONE: i64 = i64::MIN;

/// Timing and hysteresis of a rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LadderParams {
    pub for_ms: i64,
    pub clear_for_ms: i64,
    pub margin: f64,
    /// +1 for `above` rules, -1 for `below`.
    pub sign: f64,
}

/// One sensor's oriented thresholds, least severe first, strictly increasing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ladder {
    thresholds: [f64; 4],
    len: u8,
}

impl Ladder {
    /// `values` as written (not oriented), at most four.
    pub fn new(values: &[f64], sign: f64) -> Ladder {
        assert!(!values.is_empty() && values.len() <= 4, "a ladder has one to four levels");
        let mut thresholds = [f64::INFINITY; 4];
        for (t, v) in thresholds.iter_mut().zip(values) {
            *t = v * sign;
        }
        Ladder { thresholds, len: values.len() as u8 }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Oriented threshold of a level.
    #[inline]
    pub fn threshold(&self, level: u8) -> f64 {
        self.thresholds[level as usize]
    }

    #[inline]
    pub fn beyond_lowest(&self, value: f64) -> bool {
        value > self.thresholds[0]
    }
}

/// A transition the ladder made, in ladder indices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    pub transition: Transition,
    /// The level after (for `Resolve`, the level that cleared).
    pub level: u8,
    pub previous: Option<u8>,
    pub time: i64,
    /// Oriented value behind the change.
    pub value: f64,
    /// Since when the causing condition has held.
    pub since: i64,
}

/// One sensor's state under one rule.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LadderState {
    active: Option<u8>,
    /// Per level: since when the value has been continuously beyond its threshold.
    beyond_since: [i64; 4],
    /// Since when the active level's clear condition has held.
    clear_since: i64,
    last_value: f64,
    /// Event time of the last value or timer applied.
    last_time: i64,
}

impl Default for LadderState {
    fn default() -> Self {
        LadderState {
            active: None,
            beyond_since: [NONE; 4],
            clear_since: NONE,
            last_value: f64::NEG_INFINITY,
            last_time: NONE,
        }
    }
}

impl LadderState {
    pub fn active(&self) -> Option<u8> {
        self.active
    }

    /// A fresh state that holds `level` active, as of `time`: a rule whose meaning changed
    /// takes over the alert its predecessor had open, which its next values then keep,
    /// move or clear.
    pub fn holding(level: u8, time: i64) -> LadderState {
        LadderState { active: Some(level), last_time: time, ..LadderState::default() }
    }

    /// The last (oriented) value applied.
    pub fn last_value(&self) -> f64 {
        self.last_value
    }

    /// Event time of the last value or timer applied (`i64::MIN` before any).
    pub fn last_time(&self) -> i64 {
        self.last_time
    }

    /// Nothing active and nothing pending: the state can be forgotten.
    pub fn is_idle(&self) -> bool {
        self.active.is_none() && self.beyond_since.iter().all(|&s| s == NONE)
    }

    /// The next event time at which a timer may change this state.
    pub fn next_deadline(&self, ladder: &Ladder, p: &LadderParams) -> Option<i64> {
        let above = self.active.map_or(0, |a| a as usize + 1);
        let escalate =
            self.beyond_since[above..ladder.len()].iter().filter(|&&s| s != NONE).map(|&s| s + p.for_ms).min();
        let clear = (self.clear_since != NONE).then(|| self.clear_since + p.clear_for_ms);
        match (escalate, clear) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies every timer due at or before `t`, assuming the last value persists.
    pub fn advance_to(&mut self, t: i64, ladder: &Ladder, p: &LadderParams, emit: &mut impl FnMut(Change)) {
        self.last_time = self.last_time.max(t);
        while let Some(deadline) = self.next_deadline(ladder, p) {
            if deadline > t || !self.settle(deadline, ladder, p, emit) {
                break;
            }
        }
    }

    /// A new (oriented) value at event time `t`, no earlier than any value before it.
    pub fn on_value(&mut self, t: i64, value: f64, ladder: &Ladder, p: &LadderParams, emit: &mut impl FnMut(Change)) {
        self.advance_to(t, ladder, p, emit);
        self.last_value = value;
        for level in 0..ladder.len() {
            let since = &mut self.beyond_since[level];
            if value > ladder.thresholds[level] {
                if *since == NONE {
                    *since = t;
                }
            } else {
                *since = NONE;
            }
        }
        self.clear_since = match self.active {
            Some(a) if value <= ladder.thresholds[a as usize] - p.margin => {
                if self.clear_since == NONE {
                    t
                } else {
                    self.clear_since
                }
            }
            _ => NONE,
        };
        while self.settle(t, ladder, p, emit) {}
    }

    /// Makes at most one transition due at `now`; true if it made one.
    fn settle(&mut self, now: i64, ladder: &Ladder, p: &LadderParams, emit: &mut impl FnMut(Change)) -> bool {
        let above = self.active.map_or(0, |a| a as usize + 1);
        let escalate_to = (above..ladder.len()).rev().find(|&l| {
            let since = self.beyond_since[l];
            since != NONE && now - since >= p.for_ms
        });
        if let Some(level) = escalate_to {
            let level = level as u8;
            let transition = if self.active.is_some() { Transition::Escalate } else { Transition::Fire };
            emit(Change {
                transition,
                level,
                previous: self.active,
                time: now,
                value: self.last_value,
                since: self.beyond_since[level as usize],
            });
            self.active = Some(level);
            self.clear_since = NONE;
            return true;
        }
        let Some(active) = self.active else {
            return false;
        };
        if self.clear_since == NONE || now - self.clear_since < p.clear_for_ms {
            return false;
        }
        // Lower levels keep their hysteresis band too: having been above them, the value
        // holds them until it falls past threshold - margin.
        let hold = (0..active).rev().find(|&l| self.last_value > ladder.thresholds[l as usize] - p.margin);
        let since = self.clear_since;
        match hold {
            Some(level) => {
                emit(Change {
                    transition: Transition::DeEscalate,
                    level,
                    previous: Some(active),
                    time: now,
                    value: self.last_value,
                    since,
                });
                self.active = Some(level);
                self.clear_since = NONE;
            }
            None => {
                emit(Change {
                    transition: Transition::Resolve,
                    level: active,
                    previous: Some(active),
                    time: now,
                    value: self.last_value,
                    since,
                });
                self.active = None;
                self.clear_since = NONE;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;

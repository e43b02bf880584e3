//! Evaluating compiled rules over readings in event-time order.
//!
//! [`Evaluator`] is plain Rust: the timely operator in [`crate::dataflow`] hands it the
//! readings the watermark has made complete, sorted by event time, and tests call it the same
//! way. Keys with no alert and no pending condition have no state at all, so a sensor reading
//! quietly below every threshold costs one hash lookup per rule.

pub mod ladder;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use tidewatch_ingest::{Quality, Reading, SensorKey};

use crate::compile::RuleSet;
use crate::event::AlertEvent;
use ladder::{Change, LadderState};

/// Per-rule, per-sensor state for one worker's share of the sensors.
pub struct Evaluator {
    rules: Arc<RuleSet>,
    states: Vec<FxHashMap<SensorKey, LadderState>>,
    /// (deadline, rule, sensor): when a `for` or `clear_for` timer may change a state.
    /// Entries go stale when a reading moves the deadline; stale ones are skipped on pop.
    timers: BinaryHeap<Reverse<(i64, u32, SensorKey)>>,
}

impl Evaluator {
    pub fn new(rules: Arc<RuleSet>) -> Self {
        let states = (0..rules.rules.len()).map(|_| FxHashMap::default()).collect();
        Evaluator { rules, states, timers: BinaryHeap::new() }
    }

    /// True while some state waits for a timer: the caller must keep a capability for it.
    pub fn has_timers(&self) -> bool {
        !self.timers.is_empty()
    }

    /// Applies `readings` (sorted by time, all before `complete_before`), then fires every
    /// timer due before `complete_before`: after this call, all transitions with event time
    /// `< complete_before` have been emitted, in event-time order.
    pub fn advance(&mut self, readings: &[Reading], complete_before: i64, emit: &mut impl FnMut(AlertEvent)) {
        debug_assert!(readings.windows(2).all(|w| w[0].time <= w[1].time));
        for reading in readings {
            self.fire_timers(reading.time, emit);
            if reading.quality != Quality::Good {
                continue;
            }
            let key = reading.sensor;
            for &rule_index in self.rules.rules_for(key.quantity) {
                let rule = &self.rules.rules[rule_index as usize];
                let Some(ladder) = rule.ladder(key.station) else {
                    continue;
                };
                let value = reading.value * rule.params.sign;
                let states = &mut self.states[rule_index as usize];
                let state = match states.get_mut(&key) {
                    Some(state) => state,
                    // The common case: no state and nothing beyond the lowest level.
                    None if !ladder.beyond_lowest(value) => continue,
                    None => states.entry(key).or_default(),
                };
                let before = state.next_deadline(ladder, &rule.params);
                state.on_value(reading.time, value, ladder, &rule.params, &mut |c| {
                    emit(make_event(rule, ladder, key, c))
                });
                let after = state.next_deadline(ladder, &rule.params);
                if state.is_idle() {
                    states.remove(&key);
                } else if after.is_some() && after != before {
                    self.timers.push(Reverse((after.unwrap_or_default(), rule_index, key)));
                }
            }
        }
        self.fire_timers(complete_before - 1, emit);
    }

    /// Fires timers with deadline `<= up_to`.
    fn fire_timers(&mut self, up_to: i64, emit: &mut impl FnMut(AlertEvent)) {
        while let Some(&Reverse((deadline, rule_index, key))) = self.timers.peek() {
            if deadline > up_to {
                break;
            }
            self.timers.pop();
            let rule = &self.rules.rules[rule_index as usize];
            let states = &mut self.states[rule_index as usize];
            let (Some(state), Some(ladder)) = (states.get_mut(&key), rule.ladder(key.station)) else {
                continue;
            };
            if state.next_deadline(ladder, &rule.params) != Some(deadline) {
                continue; // stale: a reading moved or cancelled this deadline
            }
            state.advance_to(deadline, ladder, &rule.params, &mut |c| emit(make_event(rule, ladder, key, c)));
            match state.next_deadline(ladder, &rule.params) {
                _ if state.is_idle() => {
                    states.remove(&key);
                }
                Some(next) => self.timers.push(Reverse((next, rule_index, key))),
                None => {}
            }
        }
    }
}

/// The event for a ladder change, in the rule's own orientation and colours.
fn make_event(rule: &crate::compile::CompiledRule, ladder: &ladder::Ladder, key: SensorKey, c: Change) -> AlertEvent {
    let sign = rule.params.sign;
    AlertEvent {
        rule: rule.id.clone(),
        key,
        transition: c.transition,
        severity: rule.severities[c.level as usize],
        previous: c.previous.map(|p| rule.severities[p as usize]),
        event_time: c.time,
        value: c.value * sign,
        threshold: ladder.threshold(c.level) * sign,
        since: c.since,
    }
}

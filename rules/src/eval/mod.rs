//! Evaluating compiled rules over readings, on arrival.
//!
//! Every rule kind is one module here: its typed parameters (parsed from the rule file), its
//! per-sensor state, and the value it feeds to the shared colour [`ladder`]. The [`kinds!`]
//! list below is the one place that names them all; adding a kind means writing its module,
//! adding a line there and a section to `docs/rules.md`.
//!
//! [`Evaluator`] is plain Rust: the timely operator in [`crate::dataflow`] hands it readings
//! as they arrive and the watermark as it moves, and tests call it the same way.
//!
//! # When a reading is decided
//! Devices deliver their own readings in order, so a reading that is not older than
//! anything its sensor has already decided is evaluated **on arrival**: its transitions go out
//! at once, whatever the global watermark says. The watermark only drives what no reading of
//! the sensor can decide: `for` timers of silent sensors, windows emptying, missing data.
//! A reading older than what its sensor has already decided (an earlier reading, or a timer
//! the watermark fired) would change the past: it comes back as late instead. Within one
//! batch, readings are taken in event-time order, so a device's small reorderings inside a
//! batch are harmless.

pub mod ladder;
pub mod samples;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Debug;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use tidewatch_ingest::{Quality, Reading, SensorKey};

use crate::compile::{CompiledRule, RuleSet};
use crate::event::{AlertEvent, Evidence};
use crate::file::Fields;
use ladder::{Change, Ladder, LadderParams, LadderState};

/// What a rule kind computes for one sensor: the value its colour ladder judges.
///
/// Implementations are plain data and plain functions: no clock, no I/O. Values are in the
/// reading's unit (or the kind's own measure, e.g. a rate per hour); the evaluator orients
/// them for `below` ladders.
pub trait Kind: Clone + Debug + PartialEq + Send + Sync + 'static {
    /// The `kind = "…"` name.
    const NAME: &'static str;
    /// Fields this kind adds to a rule table.
    const FIELDS: &'static [&'static str];
    /// True when a sensor with no alert and nothing pending needs no state at all (a
    /// stateless kind), so quiet sensors cost one lookup.
    const STATELESS: bool = false;
    /// True when readings flagged by their device (not [`Quality::Good`]) reach this kind;
    /// every other kind ignores them.
    const SEES_FLAGGED: bool = false;
    /// False for kinds that judge arrivals rather than values (`missing`): a sensor failing
    /// a quality check still reports.
    const GATED_BY_QUALITY: bool = true;

    /// Per-sensor memory; bounded whatever the reading rate.
    type State: Default + Clone + Debug + Send + serde::Serialize + serde::de::DeserializeOwned;

    /// Reads the kind's fields, reporting problems through `fields`.
    fn parse(fields: &mut Fields<'_, '_>) -> Option<Self>;

    /// A reading of the sensor, in event-time order. Returns the value to judge, or `None`
    /// while the kind has too little data to say anything (warm-up, too few points).
    /// `sign` is +1 for `above` ladders and -1 for `below`.
    fn on_reading(&self, state: &mut Self::State, reading: &Reading, sign: f64) -> Option<f64>;

    /// For kinds whose value changes with time alone (windows emptying, silence growing):
    /// the next event time after `after` at which the value changes in a way the ladder
    /// could notice.
    fn next_change(&self, _state: &Self::State, _ladder: &Ladder, _after: i64) -> Option<i64> {
        None
    }

    /// The value at `time` with no new reading; `None` when nothing is left to judge (the
    /// ladder then clears).
    fn value_at(&self, _state: &Self::State, _time: i64) -> Option<f64> {
        None
    }

    /// The unit of the measure, when it is not the reading's (`unit`): e.g. `m/h` for a rate.
    fn unit(&self, _reading_unit: &str) -> Option<String> {
        None
    }

    /// What the value measures and the figures behind it, for an alert's evidence.
    /// `threshold` is the level's threshold as written (not oriented).
    fn evidence(&self, _state: &Self::State, _threshold: f64, _evidence: &mut Evidence) {}
}

/// The rule kinds, each `Variant => module`. The one list to extend with a new kind.
macro_rules! kinds {
    ($($variant:ident => $module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// A rule's kind with its typed parameters: `kind = "…"` in the rule file.
        #[derive(Clone, Debug, PartialEq)]
        pub enum KindSpec {
            $($variant($module::Params),)*
        }

        /// Every kind's name, in the order documented.
        pub const KINDS: &[&str] = &[$(<$module::Params as Kind>::NAME),*];

        impl KindSpec {
            pub fn name(&self) -> &'static str {
                match self {
                    $(KindSpec::$variant(_) => <$module::Params as Kind>::NAME,)*
                }
            }

            /// The fields a kind adds, or `None` for an unknown kind.
            pub fn fields(name: &str) -> Option<&'static [&'static str]> {
                match name {
                    $(<$module::Params as Kind>::NAME => Some(<$module::Params as Kind>::FIELDS),)*
                    _ => None,
                }
            }

            /// Parses the kind named `name`; `None` if it is unknown or its fields are wrong
            /// (problems reported through `fields`).
            pub fn parse(name: &str, fields: &mut Fields<'_, '_>) -> Option<KindSpec> {
                match name {
                    $(<$module::Params as Kind>::NAME => <$module::Params as Kind>::parse(fields).map(KindSpec::$variant),)*
                    _ => None,
                }
            }

            /// Whether a sensor failing a quality check stops driving this rule.
            pub fn gated_by_quality(&self) -> bool {
                match self {
                    $(KindSpec::$variant(_) => <$module::Params as Kind>::GATED_BY_QUALITY,)*
                }
            }

            fn table(&self) -> Table {
                match self {
                    $(KindSpec::$variant(p) => Table::$variant(Keyed { kind: p.clone(), states: FxHashMap::default() }),)*
                }
            }
        }

        /// One rule's per-sensor states, typed by its kind.
        enum Table {
            $($variant(Keyed<$module::Params>),)*
        }

        macro_rules! each_table {
            ($table:expr, $keyed:ident => $body:expr) => {
                match $table {
                    $(Table::$variant($keyed) => $body,)*
                }
            };
        }
    };
}

kinds! {
    Threshold => threshold,
    Rate => rate,
    Window => window,
    Missing => missing,
    Anomaly => anomaly,
    Forecast => forecast,
    Quality => quality,
}

/// One sensor's state under one rule: the kind's memory and the ladder's.
#[derive(Clone, Debug, Default)]
struct Slot<S> {
    kind: S,
    ladder: LadderState,
    /// Changed since the last checkpoint.
    dirty: bool,
}

/// One (rule, key) state as a checkpoint keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRow {
    /// Index of the rule in its [`RuleSet`].
    pub rule: u32,
    pub key: SensorKey,
    /// Event time the key's sensor was decided up to.
    pub decided: i64,
    /// The kind's and the ladder's state (postcard); `None` when the key has no state any
    /// more (a stateless kind's alert cleared).
    pub state: Option<Vec<u8>>,
}

/// What a checkpoint takes from one evaluator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointPart {
    /// Every state that changed since the previous checkpoint, or every state (`full`).
    pub rows: Vec<StateRow>,
    pub full: bool,
    /// Readings held for the watermark, not yet evaluated: all of them, every time.
    pub held: Vec<Reading>,
}

struct Keyed<K: Kind> {
    kind: K,
    states: FxHashMap<SensorKey, Slot<K::State>>,
}

/// Per-rule, per-sensor state for one worker's share of the sensors.
pub struct Evaluator {
    rules: Arc<RuleSet>,
    tables: Vec<Table>,
    /// Per sensor slot ([`RuleSet::sensor_slot`]): the event time up to which its state is
    /// decided. A reading before it is late.
    decided: Vec<i64>,
    /// (deadline, rule, sensor): when a timer (`for`, `clear_for`, or the kind's own) may
    /// change a state. Entries go stale when a reading moves the deadline; stale ones are
    /// skipped on pop.
    timers: BinaryHeap<Reverse<(i64, u32, SensorKey)>>,
    /// Readings taken since the last call, sorted before use (reused, never shrunk).
    scratch: Vec<Reading>,
    /// Readings from feeds that may deliver a sensor out of order (`reorder = true`): held
    /// until the watermark passes them, then taken in event-time order.
    held: Vec<Reading>,
    /// States removed since the last checkpoint: (rule, key).
    removed: Vec<(u32, SensorKey)>,
}

/// What happened to a reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Evaluated,
    /// Older than what its sensor's state has already decided (the time is returned).
    Late(i64),
}

impl Evaluator {
    pub fn new(rules: Arc<RuleSet>) -> Self {
        let tables = rules.rules.iter().map(|r| r.spec.kind.table()).collect();
        let decided = vec![i64::MIN; rules.sensor_slots()];
        Evaluator {
            rules,
            tables,
            decided,
            timers: BinaryHeap::new(),
            scratch: Vec::new(),
            held: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// The states changed since the last call (all of them when `full`), and the held
    /// readings; clears the changed marks. Costs a walk over the states, no copy of the
    /// unchanged ones.
    pub fn checkpoint(&mut self, full: bool) -> CheckpointPart {
        let mut rows: Vec<StateRow> = Vec::new();
        if !full {
            let removed = std::mem::take(&mut self.removed);
            rows.extend(removed.into_iter().map(|(rule, key)| StateRow { rule, key, decided: i64::MIN, state: None }));
        } else {
            self.removed.clear();
        }
        let (rules, decided) = (&*self.rules, &self.decided);
        let decided_of =
            |key: SensorKey| rules.sensor_slot(key).and_then(|s| decided.get(s).copied()).unwrap_or(i64::MIN);
        for (rule, table) in self.tables.iter_mut().enumerate() {
            each_table!(table, keyed => {
                for (key, slot) in keyed.states.iter_mut() {
                    if !(full || slot.dirty) {
                        continue;
                    }
                    slot.dirty = false;
                    let state = postcard::to_allocvec(&(&slot.kind, &slot.ladder)).ok();
                    rows.push(StateRow { rule: rule as u32, key: *key, decided: decided_of(*key), state });
                }
            })
        }
        CheckpointPart { rows, full, held: self.held.clone() }
    }

    /// Puts back states from a checkpoint (rows of this evaluator's keys, rule indices of
    /// its rule set) and re-arms their timers. Returns the rows that could not be read
    /// (a state written by an incompatible build): those keys start afresh.
    pub fn restore(&mut self, rows: &[StateRow], held: &[Reading]) -> usize {
        let mut refused = 0;
        let rules: &RuleSet = &self.rules;
        for row in rows {
            let (Some(rule), Some(bytes)) = (rules.rules.get(row.rule as usize), row.state.as_deref()) else {
                refused += usize::from(row.state.is_some());
                continue;
            };
            if let Some(decided) = rules.sensor_slot(row.key).and_then(|slot| self.decided.get_mut(slot)) {
                *decided = (*decided).max(row.decided);
            }
            let Some(ladder) = rule.ladder(row.key.station) else {
                refused += 1;
                continue;
            };
            let timers = &mut self.timers;
            let restored = each_table!(&mut self.tables[row.rule as usize], keyed => {
                match postcard::from_bytes(bytes) {
                    Ok((kind, ladder_state)) => {
                        let slot = Slot { kind, ladder: ladder_state, dirty: false };
                        if let Some(at) = deadline(&keyed.kind, &slot, ladder, &rule.params) {
                            timers.push(Reverse((at, row.rule, row.key)));
                        }
                        keyed.states.insert(row.key, slot);
                        true
                    }
                    Err(_) => false,
                }
            });
            refused += usize::from(!restored);
        }
        self.held.extend_from_slice(held);
        refused
    }

    /// Evaluates a batch as it arrives, in event-time order; `late` gets each reading older
    /// than what its sensor has already decided, with that time.
    pub fn on_batch(
        &mut self,
        batch: &[Reading],
        emit: &mut impl FnMut(AlertEvent),
        late: &mut impl FnMut(&Reading, i64),
    ) {
        let in_order = batch.windows(2).all(|w| w[0].time <= w[1].time);
        let mut scratch = std::mem::take(&mut self.scratch);
        let readings = if in_order {
            batch
        } else {
            scratch.clear();
            scratch.extend_from_slice(batch);
            // Stable: equal times keep their arrival order.
            scratch.sort_by_key(|r| r.time);
            &scratch[..]
        };
        for reading in readings {
            if let Outcome::Late(decided) = self.on_reading(reading, emit) {
                late(reading, decided);
            }
        }
        self.scratch = scratch;
    }

    /// Holds readings of a feed that may deliver a sensor's readings out of order: they are
    /// evaluated by [`Evaluator::release_held`] once the watermark has passed them, in
    /// event-time order, so any disorder within the allowed lateness gives the transitions
    /// of a sorted replay — at the price of waiting for the watermark.
    pub fn hold(&mut self, batch: &[Reading]) {
        self.held.extend_from_slice(batch);
    }

    /// Readings held and not yet released.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Evaluates the held readings with event times before `complete_before`, in event-time
    /// order, each after the timers due before it. Call before [`Evaluator::advance`].
    pub fn release_held(
        &mut self,
        complete_before: i64,
        emit: &mut impl FnMut(AlertEvent),
        late: &mut impl FnMut(&Reading, i64),
    ) {
        if self.held.is_empty() {
            return;
        }
        // Stable: equal times keep their arrival order.
        self.held.sort_by_key(|r| r.time);
        let ready = self.held.partition_point(|r| r.time < complete_before);
        let mut released = std::mem::take(&mut self.scratch);
        released.clear();
        released.extend(self.held.drain(..ready));
        self.replay(&released, emit, late);
        self.scratch = released;
    }

    /// Readings in event-time order as a replay takes them: each after the timers due
    /// before it, as if the watermark were right behind every reading. A recorded feed, a
    /// rule test and held readings all go through here.
    pub fn replay(
        &mut self,
        sorted: &[Reading],
        emit: &mut impl FnMut(AlertEvent),
        late: &mut impl FnMut(&Reading, i64),
    ) {
        for reading in sorted {
            self.advance(reading.time, emit);
            if let Outcome::Late(decided) = self.on_reading(reading, emit) {
                late(reading, decided);
            }
        }
    }

    /// One reading, on arrival.
    pub fn on_reading(&mut self, reading: &Reading, emit: &mut impl FnMut(AlertEvent)) -> Outcome {
        let key = reading.sensor;
        let rules: &RuleSet = &self.rules;
        let indices = rules.rules_for(key.quantity);
        if indices.is_empty() {
            return Outcome::Evaluated;
        }
        if let Some(decided) = rules.sensor_slot(key).and_then(|slot| self.decided.get_mut(slot)) {
            if reading.time < *decided {
                return Outcome::Late(*decided);
            }
            *decided = reading.time;
        }
        let mut failing_quality = false;
        for &rule_index in indices {
            let rule = &rules.rules[rule_index as usize];
            let is_quality = matches!(rule.spec.kind, KindSpec::Quality(_));
            if failing_quality && rule.spec.kind.gated_by_quality() {
                // The sensor fails a quality check: its values drive nothing else.
                continue;
            }
            let Some(ladder) = rule.ladder(key.station) else { continue };
            let alert_key = rule.alert_key(key);
            let step =
                Step { rule, rule_index, ladder, key: alert_key, timers: &mut self.timers, removed: &mut self.removed };
            let active =
                each_table!(&mut self.tables[rule_index as usize], keyed => step.reading(keyed, reading, emit));
            failing_quality |= is_quality && active;
        }
        Outcome::Evaluated
    }

    /// The watermark moved: every timer due before `complete_before` fires, in event-time
    /// order. After this call, all transitions with event time `< complete_before` of
    /// sensors that sent nothing newer have been emitted.
    pub fn advance(&mut self, complete_before: i64, emit: &mut impl FnMut(AlertEvent)) {
        let up_to = complete_before.saturating_sub(1);
        let rules: &RuleSet = &self.rules;
        while let Some(&Reverse((deadline, rule_index, key))) = self.timers.peek() {
            if deadline > up_to {
                break;
            }
            self.timers.pop();
            let rule = &rules.rules[rule_index as usize];
            let Some(ladder) = rule.ladder(key.station) else { continue };
            let step = Step { rule, rule_index, ladder, key, timers: &mut self.timers, removed: &mut self.removed };
            let fired = each_table!(&mut self.tables[rule_index as usize], keyed => step.timer(keyed, deadline, emit));
            if fired {
                // The sensor's state now reflects time up to the deadline: a reading from
                // before it would rewrite what was already decided.
                if let Some(decided) = rules.sensor_slot(key).and_then(|slot| self.decided.get_mut(slot)) {
                    *decided = (*decided).max(deadline);
                }
            }
        }
    }

    /// Takes a new rule set in place of the current one (a rule file was edited), at this
    /// point in the input: states of rules whose meaning is unchanged ([fingerprint]) are
    /// kept whole; a rule whose meaning changed starts afresh for every sensor, holding the
    /// colour of the alert it had open (so the new rule resolves or moves that alert, rather
    /// than leaving it open for ever); open alerts of a rule that is gone, or that no longer
    /// watches a station, are resolved (`emit`).
    ///
    /// [fingerprint]: crate::CompiledRule::fingerprint
    pub fn reload(&mut self, rules: Arc<RuleSet>, emit: &mut impl FnMut(AlertEvent)) -> Reloaded {
        let old = std::mem::replace(&mut self.rules, rules);
        let new: &RuleSet = &self.rules;
        let mut tables: Vec<Table> = new.rules.iter().map(|r| r.spec.kind.table()).collect();
        let mut decided = vec![i64::MIN; new.sensor_slots()];
        let mut done = Reloaded::default();
        for (index, table) in std::mem::take(&mut self.tables).into_iter().enumerate() {
            let was = &old.rules[index];
            // Each sensor's decided time carries over to the new rule set's slots.
            each_table!(&table, keyed => {
                for key in keyed.states.keys() {
                    if let (Some(from), Some(to)) = (old.sensor_slot(*key), new.sensor_slot(*key)) {
                        decided[to] = decided[to].max(self.decided[from]);
                    }
                }
            });
            let successor = new.rules.iter().position(|r| r.id == was.id);
            match successor {
                Some(to) if new.rules[to].fingerprint() == was.fingerprint() => {
                    tables[to] = table;
                    let rule = &new.rules[to];
                    each_table!(&mut tables[to], keyed => {
                        keyed.states.retain(|key, slot| {
                            slot.dirty = true;
                            if rule.ladder(key.station).is_some() {
                                done.kept += 1;
                                return true;
                            }
                            // The rule no longer watches this station.
                            done.resolved += usize::from(resolve_gone(was, *key, &slot.ladder, emit));
                            false
                        });
                    });
                }
                successor => {
                    let ladders: Vec<(SensorKey, LadderState)> =
                        each_table!(&table, keyed => keyed.states.iter().map(|(k, s)| (*k, s.ladder)).collect());
                    for (key, ladder) in ladders {
                        let Some(level) = ladder.active() else { continue };
                        let severity = was.severities[level as usize];
                        let heir =
                            successor.map(|to| (to, &new.rules[to])).filter(|(_, r)| r.ladder(key.station).is_some());
                        let Some((to, rule)) = heir else {
                            done.resolved += usize::from(resolve_gone(was, key, &ladder, emit));
                            continue;
                        };
                        // The new rule's level of the same colour, or the nearest below it
                        // (the alert steps down to it); none below: the alert resolves.
                        let Some(level) = rule.severities.iter().rposition(|s| *s <= severity) else {
                            done.resolved += usize::from(resolve_gone(was, key, &ladder, emit));
                            continue;
                        };
                        let level = level as u8;
                        if let Some(steps) =
                            rule.ladder(key.station).filter(|_| rule.severities[level as usize] != severity)
                        {
                            let time = ladder.last_time();
                            // The value as the old rule saw it, oriented for the new one.
                            let value = ladder.last_value() * was.params.sign * rule.params.sign;
                            let change = Change {
                                transition: crate::Transition::DeEscalate,
                                level,
                                previous: None,
                                time,
                                value,
                                since: time,
                            };
                            let mut down = event(rule, steps, key, change, Evidence::default());
                            // The colour before is the old rule's: the new one may not have it.
                            down.previous = Some(severity);
                            emit(down);
                        }
                        let ladder = LadderState::holding(level, ladder.last_time());
                        each_table!(&mut tables[to], keyed => {
                            keyed.states.insert(key, Slot { kind: Default::default(), ladder, dirty: true });
                        });
                        done.restarted += 1;
                    }
                }
            }
        }
        // Timers again, under the new rule indices.
        let mut timers = BinaryHeap::new();
        for (index, table) in tables.iter().enumerate() {
            let rule = &new.rules[index];
            each_table!(table, keyed => {
                for (key, slot) in &keyed.states {
                    let Some(ladder) = rule.ladder(key.station) else { continue };
                    if let Some(at) = deadline(&keyed.kind, slot, ladder, &rule.params) {
                        timers.push(Reverse((at, index as u32, *key)));
                    }
                }
            });
        }
        self.tables = tables;
        self.decided = decided;
        self.timers = timers;
        // Indices changed: the next checkpoint must be a full one.
        self.removed.clear();
        done
    }

    /// Sensors with state under some rule (for benchmarks and metrics).
    pub fn keys_with_state(&self) -> usize {
        self.tables.iter().map(|t| each_table!(t, keyed => keyed.states.len())).sum()
    }
}

/// What [`Evaluator::reload`] did (summed over workers, what a reload's report shows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// States of rules whose meaning did not change, kept as they were.
    pub kept: usize,
    /// Open alerts of rules whose meaning changed, held by the new rule's fresh state.
    pub restarted: usize,
    /// Open alerts resolved because their rule is gone or no longer watches the station.
    pub resolved: usize,
}

impl std::ops::AddAssign for Reloaded {
    fn add_assign(&mut self, other: Reloaded) {
        self.kept += other.kept;
        self.restarted += other.restarted;
        self.resolved += other.resolved;
    }
}

/// Resolves the alert a rule that is gone had open for `key`; false if it had none.
fn resolve_gone(rule: &CompiledRule, key: SensorKey, state: &LadderState, emit: &mut impl FnMut(AlertEvent)) -> bool {
    let (Some(level), Some(ladder)) = (state.active(), rule.ladder(key.station)) else { return false };
    let (time, value) = (state.last_time(), state.last_value());
    let change =
        Change { transition: crate::Transition::Resolve, level, previous: Some(level), time, value, since: time };
    let mut evidence = Evidence::default();
    evidence.measure("the rule was removed from the rule files, or no longer watches this station");
    emit(event(rule, ladder, key, change, evidence));
    true
}

/// One rule's work for one key: the generic code every kind shares.
struct Step<'a> {
    rule: &'a CompiledRule,
    rule_index: u32,
    ladder: &'a Ladder,
    key: SensorKey,
    timers: &'a mut BinaryHeap<Reverse<(i64, u32, SensorKey)>>,
    /// States removed, for the next checkpoint.
    removed: &'a mut Vec<(u32, SensorKey)>,
}

impl Step<'_> {
    /// Applies a reading; returns whether a level is active afterwards.
    fn reading<K: Kind>(self, keyed: &mut Keyed<K>, reading: &Reading, emit: &mut impl FnMut(AlertEvent)) -> bool {
        if reading.quality != Quality::Good && !K::SEES_FLAGGED {
            return keyed.states.get(&self.key).is_some_and(|s| s.ladder.active().is_some());
        }
        let p = &self.rule.params;
        let slot = match keyed.states.get_mut(&self.key) {
            Some(slot) => slot,
            None if K::STATELESS => {
                // The common case: no state and the value beyond no level.
                let value = keyed.kind.on_reading(&mut K::State::default(), reading, p.sign);
                if !value.is_some_and(|v| self.ladder.beyond_lowest(v * p.sign)) {
                    return false;
                }
                keyed.states.entry(self.key).or_default()
            }
            None => keyed.states.entry(self.key).or_default(),
        };
        let (rule, ladder, key, kind) = (self.rule, self.ladder, self.key, &keyed.kind);
        slot.dirty = true;
        let before = deadline(kind, slot, ladder, p);
        // What time alone decides up to this reading comes first, as in a sorted replay.
        run_due(rule, kind, slot, ladder, key, reading.time, emit);
        let value = kind.on_reading(&mut slot.kind, reading, p.sign);
        let state = &slot.kind;
        let emit = &mut |c| emit(make_event(rule, kind, state, ladder, key, c));
        match value {
            Some(value) => slot.ladder.on_value(reading.time, value * p.sign, ladder, p, emit),
            None => slot.ladder.advance_to(reading.time, ladder, p, emit),
        }
        let active = slot.ladder.active().is_some();
        let after = deadline(kind, slot, ladder, p);
        if K::STATELESS && slot.ladder.is_idle() {
            keyed.states.remove(&self.key);
            self.removed.push((self.rule_index, self.key));
        } else if let Some(next) = after.filter(|_| after != before) {
            self.timers.push(Reverse((next, self.rule_index, self.key)));
        }
        active
    }

    /// A timer popped at `at`; returns whether it was due (not stale).
    fn timer<K: Kind>(self, keyed: &mut Keyed<K>, at: i64, emit: &mut impl FnMut(AlertEvent)) -> bool {
        let p = &self.rule.params;
        let Some(slot) = keyed.states.get_mut(&self.key) else { return false };
        let kind = &keyed.kind;
        if deadline(kind, slot, self.ladder, p) != Some(at) {
            return false; // stale: a reading moved or cancelled this deadline
        }
        slot.dirty = true;
        run_due(self.rule, kind, slot, self.ladder, self.key, at, emit);
        match deadline(kind, slot, self.ladder, p) {
            _ if K::STATELESS && slot.ladder.is_idle() => {
                keyed.states.remove(&self.key);
                self.removed.push((self.rule_index, self.key));
            }
            Some(next) => self.timers.push(Reverse((next, self.rule_index, self.key))),
            None => {}
        }
        true
    }
}

/// Applies everything time alone decides for one state, up to and including `up_to`: the
/// ladder's `for` and `clear_for` timers, and the kind's own changes (a window emptying, a
/// silence growing), in event-time order.
fn run_due<K: Kind>(
    rule: &CompiledRule,
    kind: &K,
    slot: &mut Slot<K::State>,
    ladder: &Ladder,
    key: SensorKey,
    up_to: i64,
    emit: &mut impl FnMut(AlertEvent),
) {
    let p = &rule.params;
    while let Some(at) = deadline(kind, slot, ladder, p).filter(|&d| d <= up_to) {
        let changes = kind.next_change(&slot.kind, ladder, slot.ladder.last_time());
        let state = &slot.kind;
        let emit = &mut |c| emit(make_event(rule, kind, state, ladder, key, c));
        if changes == Some(at) {
            let value = kind.value_at(state, at).map_or(f64::NEG_INFINITY, |v| v * p.sign);
            slot.ladder.on_value(at, value, ladder, p, emit);
        } else {
            slot.ladder.advance_to(at, ladder, p, emit);
        }
        if deadline(kind, slot, ladder, p).is_some_and(|next| next <= at) {
            debug_assert!(false, "rule {}: a deadline at {at} did not move on", rule.id);
            break;
        }
    }
}

/// The next time a state may change without a reading: its ladder's timers or its kind's.
fn deadline<K: Kind>(kind: &K, slot: &Slot<K::State>, ladder: &Ladder, p: &LadderParams) -> Option<i64> {
    let a = slot.ladder.next_deadline(ladder, p);
    let b = kind.next_change(&slot.kind, ladder, slot.ladder.last_time());
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The event for a ladder change, with what the rule kind saw as its evidence.
fn make_event<K: Kind>(
    rule: &CompiledRule,
    kind: &K,
    state: &K::State,
    ladder: &Ladder,
    key: SensorKey,
    c: Change,
) -> AlertEvent {
    let mut evidence = Evidence::default();
    kind.evidence(state, quoted_threshold(rule, ladder, &c), &mut evidence);
    evidence.unit = kind.unit(key.quantity.canonical_unit());
    event(rule, ladder, key, c, evidence)
}

/// The threshold an event quotes: a resolve the lowest level's, whose threshold the value is
/// now back within; other changes the level they reached. As written (not oriented).
fn quoted_threshold(rule: &CompiledRule, ladder: &Ladder, c: &Change) -> f64 {
    let quoted = if c.transition == crate::Transition::Resolve { 0 } else { c.level };
    ladder.threshold(quoted) * rule.params.sign
}

/// The event for a ladder change, in the rule's own orientation and colours.
fn event(rule: &CompiledRule, ladder: &Ladder, key: SensorKey, c: Change, evidence: Evidence) -> AlertEvent {
    let sign = rule.params.sign;
    let threshold = quoted_threshold(rule, ladder, &c);
    AlertEvent {
        rule: rule.id.clone(),
        key,
        transition: c.transition,
        severity: rule.severities[c.level as usize],
        previous: c.previous.map(|p| rule.severities[p as usize]),
        event_time: c.time,
        // A cleared time-driven value (an emptied window) is reported as 0, not infinity.
        value: if c.value.is_finite() { c.value * sign } else { 0.0 },
        threshold,
        since: c.since,
        evidence,
    }
}

/// A good reading of station 0 at `minute` (for the kinds' tests).
#[cfg(test)]
pub(crate) fn test_reading(quantity: tidewatch_ingest::Quantity, minute: i64, value: f64) -> Reading {
    Reading {
        sensor: SensorKey::new(tidewatch_ingest::StationKey(0), quantity),
        quality: Quality::Good,
        time: minute * 60_000,
        value,
    }
}

#[cfg(test)]
mod tests;

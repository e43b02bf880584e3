//! The evaluator against a sorted replay: on-arrival evaluation must not change what fires.

use std::sync::Arc;

use proptest::prelude::*;
use tidewatch_ingest::{Quality, Quantity, Reading, Registry, SensorKey, StationKey};

use super::*;
use crate::compile::{compile, RuleSource};
use crate::{Severity, Transition};

const MIN: i64 = 60_000;

const LEVEL: &str = r#"
[[rule]]
id = "level"
kind = "threshold"
select = { quantity = "water_level" }
for = "10m"
clear_for = "5m"
clear_margin = 0.5
levels = [{ severity = "yellow", above = 5 }, { severity = "red", above = 8 }]
"#;

const RISE: &str = r#"
[[rule]]
id = "rise"
kind = "rate"
select = { quantity = "water_level" }
window = "30m"
levels = [{ severity = "yellow", above = 6 }]
"#;

const RAIN: &str = r#"
[[rule]]
id = "rain"
kind = "window"
select = { quantity = "rainfall" }
window = "30m"
step = "5m"
aggregate = "sum"
levels = [{ severity = "orange", above = 12 }]
"#;

const SILENT: &str = r#"
[[rule]]
id = "silent"
kind = "missing"
select = { quantity = ["water_level", "rainfall"] }
expected = "5m"
levels = [{ severity = "yellow", above = 4 }]
"#;

/// The rules most tests run: one of each of four kinds.
const RULES: [&str; 4] = [LEVEL, RISE, RAIN, SILENT];

/// Three stations, S0 to S2, in regions 330100 to 330102.
fn registry() -> Registry {
    let mut stations = String::new();
    for i in 0..3 {
        stations += &format!(
            "[[station]]\nid = \"S{i}\"\nname = \"S{i}\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"33010{i}\"\n"
        );
    }
    Registry::from_toml_str(&stations).unwrap()
}

/// A rule set over [`registry`].
fn set(text: &str) -> Arc<RuleSet> {
    Arc::new(compile(&[RuleSource { name: "t.toml".into(), text: text.into() }], &registry()).unwrap())
}

fn rules() -> Arc<RuleSet> {
    set(&RULES.concat())
}

fn reading(station: u32, quantity: Quantity, minute: i64, value: f64) -> Reading {
    Reading { sensor: SensorKey::new(StationKey(station), quantity), quality: Quality::Good, time: minute * MIN, value }
}

type Seen = Vec<(String, SensorKey, i64, Transition, crate::Severity)>;

fn summarise(mut events: Vec<AlertEvent>) -> Seen {
    let mut seen: Seen =
        events.drain(..).map(|e| (e.rule.to_string(), e.key, e.event_time, e.transition, e.severity)).collect();
    seen.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    seen
}

/// The reference: every reading in event-time order, the watermark right behind it.
fn sorted_replay(readings: &[Reading], end: i64) -> Seen {
    let mut sorted = readings.to_vec();
    sorted.sort_by_key(|r| r.time);
    let mut evaluator = Evaluator::new(rules());
    let mut events = Vec::new();
    evaluator.replay(&sorted, &mut |e| events.push(e), &mut |r, _| panic!("late in a sorted replay: {r:?}"));
    evaluator.advance(end, &mut |e| events.push(e));
    summarise(events)
}

/// `sorted` cut into batches of the sizes in `cuts` (taken in turn, again from the start when
/// they run out).
fn in_batches<'a>(sorted: &'a [Reading], cuts: &[usize]) -> Vec<&'a [Reading]> {
    let (mut batches, mut sent) = (Vec::new(), 0);
    for cut in cuts.iter().cycle() {
        if sent == sorted.len() {
            break;
        }
        let next = (sent + cut).min(sorted.len());
        batches.push(&sorted[sent..next]);
        sent = next;
    }
    batches
}

/// Per-sensor series: a level and a rain gauge at each of three stations, with gaps.
fn series() -> impl Strategy<Value = Vec<Reading>> {
    let sensor = (0u32..3, prop::bool::ANY, prop::collection::vec((1i64..12, 0.0f64..11.0), 1..40));
    prop::collection::vec(sensor, 1..6).prop_map(|sensors| {
        let mut out = Vec::new();
        for (station, rain, steps) in sensors {
            let quantity = if rain { Quantity::Rainfall } else { Quantity::WaterLevel };
            if out.iter().any(|r: &Reading| r.sensor == SensorKey::new(StationKey(station), quantity)) {
                continue;
            }
            let mut minute = 0;
            for (gap, value) in steps {
                minute += gap;
                let value = if rain { value / 2.0 } else { value };
                out.push(reading(station, quantity, minute, value));
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Sensors in order, interleaved across sensors in any way, in batches of any size, with
    /// the watermark at any point that does not pass a reading not yet sent: exactly the
    /// transitions of the sorted replay, and nothing late.
    #[test]
    fn on_arrival_evaluation_gives_the_transitions_of_a_sorted_replay(
        readings in series(),
        interleave in prop::collection::vec(any::<prop::sample::Index>(), 400),
        cuts in prop::collection::vec(1usize..20, 400),
        lateness in 0i64..30,
    ) {
        let end = readings.iter().map(|r| r.time).max().unwrap() + 120 * MIN;
        let expected = sorted_replay(&readings, end);

        // Each sensor's readings in order; which sensor goes next is arbitrary.
        let mut queues: Vec<Vec<Reading>> = Vec::new();
        for r in &readings {
            match queues.iter_mut().find(|q| q[0].sensor == r.sensor) {
                Some(q) => q.push(*r),
                None => queues.push(vec![*r]),
            }
        }
        for q in &mut queues {
            q.reverse();
        }
        let mut arrival = Vec::new();
        let mut choices = interleave.iter();
        while queues.iter().any(|q| !q.is_empty()) {
            let live: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
            let pick = choices.next().map_or(0, |c| c.index(live.len()));
            arrival.push(queues[live[pick]].pop().unwrap());
        }

        let mut evaluator = Evaluator::new(rules());
        let mut events = Vec::new();
        let mut late = Vec::new();
        let mut sent = 0;
        let mut newest = i64::MIN;
        for cut in cuts.iter().cycle() {
            if sent == arrival.len() {
                break;
            }
            let batch = &arrival[sent..(sent + cut).min(arrival.len())];
            sent += batch.len();
            evaluator.on_batch(batch, &mut |e| events.push(e), &mut |r, _| late.push(*r));
            newest = newest.max(batch.iter().map(|r| r.time).max().unwrap());
            // The watermark: newest minus the lateness, but never past a reading still to come.
            let pending = arrival[sent..].iter().map(|r| r.time).min().unwrap_or(i64::MAX);
            evaluator.advance((newest - lateness * MIN).min(pending), &mut |e| events.push(e));
        }
        evaluator.advance(end, &mut |e| events.push(e));
        prop_assert!(late.is_empty(), "late: {late:?}");
        prop_assert_eq!(summarise(events), expected);
    }
}

/// A checkpoint store as the runtime keeps one: rows replace rows, `None` deletes.
#[derive(Default)]
struct CheckpointStore {
    rows: std::collections::BTreeMap<(u32, SensorKey), StateRow>,
    held: Vec<Reading>,
}

impl CheckpointStore {
    fn apply(&mut self, part: CheckpointPart) {
        if part.full {
            self.rows.clear();
        }
        for row in part.rows {
            match row.state {
                Some(_) => self.rows.insert((row.rule, row.key), row),
                None => self.rows.remove(&(row.rule, row.key)),
            };
        }
        self.held = part.held;
    }

    fn rows(&self) -> Vec<StateRow> {
        self.rows.values().cloned().collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A crash at any point: the evaluator's incremental checkpoints (taken after any batch)
    /// restored into a fresh evaluator, the batches after the last checkpoint evaluated
    /// again. What the first evaluator emitted up to its checkpoint and what the second
    /// emits after it are exactly the transitions of an uninterrupted run.
    #[test]
    fn a_restart_from_the_last_checkpoint_gives_the_transitions_of_an_uninterrupted_run(
        readings in series(),
        cuts in prop::collection::vec(1usize..20, 400),
        checkpoint_after in prop::collection::vec(prop::bool::ANY, 400),
        crash_at in any::<prop::sample::Index>(),
        full in prop::bool::ANY,
    ) {
        let end = readings.iter().map(|r| r.time).max().unwrap() + 120 * MIN;
        let expected = sorted_replay(&readings, end);
        let mut sorted = readings.clone();
        sorted.sort_by_key(|r| r.time);
        let batches = in_batches(&sorted, &cuts);
        let crash = crash_at.index(batches.len() + 1);

        let mut first = Evaluator::new(rules());
        let mut store = CheckpointStore::default();
        // Events emitted up to the last checkpoint, and the batch the log replays from.
        let (mut committed, mut pending, mut replay_from) = (Vec::new(), Vec::new(), 0);
        for (i, batch) in batches[..crash].iter().enumerate() {
            first.on_batch(batch, &mut |e| pending.push(e), &mut |r, _| panic!("late: {r:?}"));
            first.advance(batch[0].time, &mut |e| pending.push(e));
            if checkpoint_after[i] {
                store.apply(first.checkpoint(full));
                committed.append(&mut pending);
                replay_from = i + 1;
            }
        }

        let mut second = Evaluator::new(rules());
        prop_assert_eq!(second.restore(&store.rows(), &store.held), 0);
        let mut events = committed;
        for batch in &batches[replay_from..] {
            second.on_batch(batch, &mut |e| events.push(e), &mut |r, _| panic!("late after restore: {r:?}"));
        }
        second.advance(end, &mut |e| events.push(e));
        prop_assert_eq!(summarise(events), expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A feed declared out of order (`reorder = true`): each reading delayed by anything up
    /// to the allowed lateness, so a sensor's own readings arrive in any order within it;
    /// held until the watermark passes them, they give exactly the sorted replay's transitions.
    #[test]
    fn held_readings_out_of_order_within_the_lateness_give_the_transitions_of_a_sorted_replay(
        readings in series(),
        delays in prop::collection::vec(0i64..30 * MIN, 400),
        cuts in prop::collection::vec(1usize..20, 400),
    ) {
        let lateness = 30 * MIN;
        let end = readings.iter().map(|r| r.time).max().unwrap() + 120 * MIN;
        let expected = sorted_replay(&readings, end);
        let mut arrival: Vec<(i64, Reading)> =
            readings.iter().zip(delays.iter().cycle()).map(|(r, d)| (r.time + d, *r)).collect();
        arrival.sort_by_key(|(at, _)| *at);
        let arrival: Vec<Reading> = arrival.into_iter().map(|(_, r)| r).collect();

        let mut evaluator = Evaluator::new(rules());
        let mut events = Vec::new();
        let mut late = Vec::new();
        let (mut sent, mut newest) = (0, i64::MIN);
        for cut in cuts.iter().cycle() {
            if sent == arrival.len() {
                break;
            }
            let batch = &arrival[sent..(sent + cut).min(arrival.len())];
            sent += batch.len();
            evaluator.hold(batch);
            newest = newest.max(batch.iter().map(|r| r.time).max().unwrap());
            let watermark = newest - lateness;
            evaluator.release_held(watermark, &mut |e| events.push(e), &mut |r, _| late.push(*r));
            evaluator.advance(watermark, &mut |e| events.push(e));
        }
        evaluator.release_held(end, &mut |e| events.push(e), &mut |r, _| late.push(*r));
        evaluator.advance(end, &mut |e| events.push(e));
        prop_assert!(late.is_empty(), "late: {late:?}");
        prop_assert_eq!(evaluator.held(), 0);
        prop_assert_eq!(summarise(events), expected);
    }
}

#[test]
fn a_reading_older_than_a_fired_timer_is_late_and_changes_nothing() {
    let mut evaluator = Evaluator::new(rules());
    let mut events = Vec::new();
    evaluator.on_reading(&reading(0, Quantity::WaterLevel, 0, 6.0), &mut |e| events.push(e));
    // The watermark passes the `for` deadline (10 min) with the sensor silent: it fires.
    evaluator.advance(11 * MIN, &mut |e| events.push(e));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].transition, Transition::Fire);
    // A reading from before the deadline would rewrite that: it is late.
    let outcome = evaluator.on_reading(&reading(0, Quantity::WaterLevel, 5, 1.0), &mut |e| events.push(e));
    assert_eq!(outcome, Outcome::Late(10 * MIN));
    assert_eq!(events.len(), 1);
}

#[test]
fn a_reading_decides_at_once_whatever_the_watermark() {
    let mut evaluator = Evaluator::new(rules());
    let mut events = Vec::new();
    // No watermark at all: the `for` of 10 minutes is complete with the second reading.
    evaluator.on_reading(&reading(1, Quantity::WaterLevel, 0, 9.0), &mut |e| events.push(e));
    evaluator.on_reading(&reading(1, Quantity::WaterLevel, 10, 9.0), &mut |e| events.push(e));
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].transition, events[0].severity), (Transition::Fire, crate::Severity::Red));
    assert_eq!(events[0].event_time, 10 * MIN);
}

#[test]
fn a_silent_station_is_found_by_the_watermark_and_resolved_by_its_next_reading() {
    let mut evaluator = Evaluator::new(rules());
    let mut events = Vec::new();
    evaluator.on_reading(&reading(2, Quantity::Rainfall, 0, 0.0), &mut |e| events.push(e));
    evaluator.advance(20 * MIN, &mut |e| events.push(e));
    assert!(events.is_empty(), "four intervals of silence are not yet more than four");
    evaluator.advance(21 * MIN, &mut |e| events.push(e));
    assert_eq!(events.len(), 1);
    assert_eq!((&*events[0].rule, events[0].transition), ("silent", Transition::Fire));
    assert_eq!(events[0].event_time, 20 * MIN + 1);
    evaluator.on_reading(&reading(2, Quantity::Rainfall, 30, 0.0), &mut |e| events.push(e));
    assert_eq!((&*events[1].rule, events[1].transition), ("silent", Transition::Resolve));
}

#[test]
fn a_sensor_failing_a_quality_check_drives_no_other_rule() {
    let registry = Registry::from_toml_str(
        "[[station]]\nid = \"S0\"\nname = \"S0\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"330100\"\n",
    )
    .unwrap();
    let text = r#"
[[rule]]
id = "level"
kind = "threshold"
select = { quantity = "water_level" }
levels = [{ severity = "red", above = 8 }]

[[rule]]
id = "gauge"
kind = "quality"
select = { quantity = "water_level" }
max_rate = 6
levels = [{ severity = "blue", above = 0 }]
"#;
    let rules = Arc::new(compile(&[RuleSource { name: "q.toml".into(), text: text.into() }], &registry).unwrap());
    let mut evaluator = Evaluator::new(rules);
    let mut events = Vec::new();
    evaluator.on_reading(&reading(0, Quantity::WaterLevel, 0, 5.0), &mut |e| events.push(e));
    // 500 m/h: the gauge, not the river.
    evaluator.on_reading(&reading(0, Quantity::WaterLevel, 1, 13.3), &mut |e| events.push(e));
    let seen: Vec<_> = events.iter().map(|e| (&*e.rule, e.transition)).collect();
    assert_eq!(seen, [("gauge", Transition::Fire)]);
    assert_eq!(events[0].evidence.measure.as_deref(), Some("quality checks failed: impossible_jump"));
}

#[test]
fn a_resolve_quotes_the_lowest_level_the_value_is_back_within() {
    let mut evaluator = Evaluator::new(rules());
    let mut events = Vec::new();
    let readings: Vec<Reading> = (0..=12)
        .map(|m| reading(0, Quantity::WaterLevel, m, 9.0))
        .chain((13..=20).map(|m| reading(0, Quantity::WaterLevel, m, 1.0)))
        .collect();
    evaluator.replay(&readings, &mut |e| events.push(e), &mut |r, _| panic!("late: {r:?}"));
    let level: Vec<_> = events.iter().filter(|e| &*e.rule == "level").collect();
    let fire = level.iter().find(|e| e.transition == Transition::Fire).unwrap();
    assert_eq!((fire.severity, fire.threshold), (crate::Severity::Red, 8.0));
    let resolve = level.iter().find(|e| e.transition == Transition::Resolve).unwrap();
    assert_eq!(resolve.severity, crate::Severity::Red, "the colour that cleared");
    assert_eq!(resolve.threshold, 5.0, "quoted: yellow's threshold, which 1.0 is back within");
}

fn feed(e: &mut Evaluator, readings: &[Reading]) -> Vec<AlertEvent> {
    let mut events = Vec::new();
    e.replay(readings, &mut |ev| events.push(ev), &mut |r, _| panic!("late {r:?}"));
    events
}

fn level(minutes: std::ops::Range<i64>, value: f64) -> Vec<Reading> {
    minutes.map(|m| reading(0, Quantity::WaterLevel, m, value)).collect()
}

#[test]
fn a_reload_keeps_the_state_of_unchanged_rules_whatever_their_place() {
    // Without a reload: above 5 from minute 0, yellow after the 10-minute `for`.
    let mut plain = Evaluator::new(set(LEVEL));
    let expected = feed(&mut plain, &level(0..15, 6.0));
    assert_eq!(expected.len(), 1);
    assert_eq!(expected[0].event_time, 10 * MIN);

    // The same with a reload at minute 5 that puts another rule first: the pending `for`
    // survives, and the alert fires at minute 10 as before.
    let mut e = Evaluator::new(set(LEVEL));
    let mut events = feed(&mut e, &level(0..5, 6.0));
    let done = e.reload(set(&format!("{RAIN}{LEVEL}")), &mut |ev| events.push(ev));
    assert_eq!(done, Reloaded { kept: 1, restarted: 0, resolved: 0 });
    events.extend(feed(&mut e, &level(5..15, 6.0)));
    assert_eq!(events, expected);
    // And the new rule works.
    let rain: Vec<Reading> = (15..25).map(|m| reading(1, Quantity::Rainfall, m, 3.0)).collect();
    assert!(feed(&mut e, &rain).iter().any(|ev| &*ev.rule == "rain" && ev.transition == Transition::Fire));
}

#[test]
fn a_changed_rule_takes_over_the_open_alert_and_clears_it_by_its_own_levels() {
    let mut e = Evaluator::new(set(LEVEL));
    let fired = feed(&mut e, &level(0..12, 6.0));
    assert_eq!(fired.iter().map(|ev| ev.transition).collect::<Vec<_>>(), [Transition::Fire]);
    // Yellow now starts at 7: 6 is below it, past the margin.
    let changed = LEVEL.replace("above = 5", "above = 7");
    let mut events = Vec::new();
    let done = e.reload(set(&changed), &mut |ev| events.push(ev));
    assert_eq!(done, Reloaded { kept: 0, restarted: 1, resolved: 0 });
    assert!(events.is_empty(), "{events:?}");
    events.extend(feed(&mut e, &level(12..20, 6.0)));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].transition, events[0].severity), (Transition::Resolve, Severity::Yellow));
    assert_eq!(events[0].event_time, 17 * MIN, "after the new rule's clear_for of 5 minutes");
    assert_eq!(events[0].threshold, 7.0);
}

#[test]
fn a_changed_rule_escalates_the_open_alert_it_took_over() {
    let mut e = Evaluator::new(set(LEVEL));
    feed(&mut e, &level(0..12, 6.0));
    let mut events = Vec::new();
    e.reload(set(&LEVEL.replace("10m", "1m")), &mut |ev| events.push(ev));
    events.extend(feed(&mut e, &level(12..15, 9.0)));
    let seen: Vec<_> = events.iter().map(|ev| (ev.transition, ev.severity, ev.previous)).collect();
    assert_eq!(seen, [(Transition::Escalate, Severity::Red, Some(Severity::Yellow))]);
}

#[test]
fn an_alert_whose_colour_the_changed_rule_lacks_steps_down_or_resolves() {
    let mut e = Evaluator::new(set(LEVEL));
    let fired = feed(&mut e, &level(0..12, 9.0));
    assert_eq!(fired.last().unwrap().severity, Severity::Red);
    // Red is gone: the alert steps down to yellow at once.
    let yellow_only = LEVEL.replace(r#", { severity = "red", above = 8 }"#, "");
    let mut events = Vec::new();
    e.reload(set(&yellow_only), &mut |ev| events.push(ev));
    let seen: Vec<_> = events.iter().map(|ev| (ev.transition, ev.severity, ev.previous, ev.value)).collect();
    assert_eq!(seen, [(Transition::DeEscalate, Severity::Yellow, Some(Severity::Red), 9.0)]);
    // Only orange now, above yellow: nothing below the alert's colour — it resolves.
    let orange = yellow_only.replace("\"yellow\"", "\"orange\"");
    let mut events = Vec::new();
    let done = e.reload(set(&orange), &mut |ev| events.push(ev));
    assert_eq!(done.resolved, 1);
    assert_eq!(events.iter().map(|ev| ev.transition).collect::<Vec<_>>(), [Transition::Resolve]);
}

#[test]
fn a_removed_rule_resolves_its_open_alerts() {
    let mut e = Evaluator::new(set(&format!("{LEVEL}{RAIN}")));
    let mut readings = level(0..12, 6.0);
    readings.extend((0..12).map(|m| reading(2, Quantity::WaterLevel, m, 6.5)));
    readings.sort_by_key(|r| r.time);
    assert_eq!(feed(&mut e, &readings).len(), 2);
    let mut events = Vec::new();
    let done = e.reload(set(RAIN), &mut |ev| events.push(ev));
    assert_eq!(done, Reloaded { kept: 0, restarted: 0, resolved: 2 });
    let mut resolved: Vec<_> = events.iter().map(|ev| (ev.key.station.0, ev.transition, ev.value)).collect();
    resolved.sort_by_key(|r| r.0);
    assert_eq!(resolved, [(0, Transition::Resolve, 6.0), (2, Transition::Resolve, 6.5)]);
    assert!(events[0].evidence.measure.as_deref().unwrap().contains("removed"));
    // Its readings now drive nothing.
    assert!(feed(&mut e, &level(12..40, 9.0)).is_empty());
}

#[test]
fn a_rule_that_stops_watching_a_station_resolves_its_alert_there() {
    let mut e = Evaluator::new(set(LEVEL));
    let mut readings = level(0..12, 6.0);
    readings.extend((0..12).map(|m| reading(1, Quantity::WaterLevel, m, 6.0)));
    readings.sort_by_key(|r| r.time);
    assert_eq!(feed(&mut e, &readings).len(), 2);
    // Same meaning, fewer stations: S1 is left out.
    let narrower = LEVEL.replace(
        r#"select = { quantity = "water_level" }"#,
        r#"select = { quantity = "water_level", stations = ["S0", "S2"] }"#,
    );
    let mut events = Vec::new();
    let done = e.reload(set(&narrower), &mut |ev| events.push(ev));
    assert_eq!(done, Reloaded { kept: 1, restarted: 0, resolved: 1 });
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].key.station.0, events[0].transition), (1, Transition::Resolve));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Reloading the same rules in another order, after any batch, changes nothing: the
    /// transitions are those of a run without a reload. A checkpoint taken after the reload
    /// names states by the new rule set's indices: restored into a fresh evaluator of the new
    /// rules, the run goes on as if uninterrupted.
    #[test]
    fn reloading_unchanged_rules_anywhere_changes_no_transition(
        readings in series(),
        cuts in prop::collection::vec(1usize..20, 400),
        reload_at in any::<prop::sample::Index>(),
        restart in prop::bool::ANY,
    ) {
        let end = readings.iter().map(|r| r.time).max().unwrap() + 120 * MIN;
        let expected = sorted_replay(&readings, end);
        let mut sorted = readings.clone();
        sorted.sort_by_key(|r| r.time);
        let batches = in_batches(&sorted, &cuts);
        let reload_at = reload_at.index(batches.len() + 1);
        let registry_rules = rules();
        let reversed = set(&RULES.iter().rev().copied().collect::<String>());
        prop_assert_eq!(reversed.rules.len(), registry_rules.rules.len());
        prop_assert!(reversed.rules[0].id != registry_rules.rules[0].id);

        let mut e = Evaluator::new(registry_rules);
        let mut events = Vec::new();
        for (i, batch) in batches.iter().enumerate() {
            if i == reload_at {
                let done = e.reload(reversed.clone(), &mut |ev| events.push(ev));
                prop_assert_eq!(done.restarted + done.resolved, 0);
                if restart {
                    let part = e.checkpoint(true);
                    e = Evaluator::new(reversed.clone());
                    prop_assert_eq!(e.restore(&part.rows, &part.held), 0);
                }
            }
            e.on_batch(batch, &mut |ev| events.push(ev), &mut |r, _| panic!("late: {r:?}"));
            e.advance(batch[0].time, &mut |ev| events.push(ev));
        }
        e.advance(end, &mut |ev| events.push(ev));
        prop_assert_eq!(summarise(events), expected);
    }
}

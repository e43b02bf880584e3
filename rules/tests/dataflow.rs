//! The engine end to end in one process: readings in, alert events out.

use std::sync::Arc;

use tidewatch_ingest::{Quantity, Reading, Registry, SensorKey};
use tidewatch_rules::{
    compile, AlertEvent, Engine, EngineConfig, EngineOutput, Restore, RuleSource, Severity, Transition,
};

const MIN: i64 = 60_000;
const T0: i64 = 1_764_000_000_000;

fn setup(stations: usize) -> (Registry, Arc<tidewatch_rules::RuleSet>) {
    let mut toml = String::new();
    for i in 0..stations {
        toml += &format!(
            "[[station]]\nid = \"S{i}\"\nname = \"Station {i}\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"330100\"\nattributes = {{ warning_level = 10.0, guarantee_level = 12.0 }}\n"
        );
    }
    let registry = Registry::from_toml_str(&toml).unwrap();
    let rules = compile(
        &[RuleSource {
            name: "t.toml".into(),
            text: r#"
[[rule]]
id = "level"
kind = "threshold"
select = { quantity = "water_level" }
for = "5m"
clear_margin = 0.2
levels = [
  { severity = "yellow", above = "station.warning_level" },
  { severity = "orange", above = "station.guarantee_level" },
]
"#
            .into(),
        }],
        &registry,
    )
    .unwrap();
    (registry, Arc::new(rules))
}

fn reading(station: u32, minute: i64, value: f64) -> Reading {
    Reading {
        sensor: SensorKey::new(tidewatch_ingest::StationKey(station), Quantity::WaterLevel),
        quality: tidewatch_ingest::Quality::Good,
        time: T0 + minute * MIN,
        value,
    }
}

/// Runs `batches` through an engine with `workers`, advancing the watermark right after each
/// batch (no pause: the watermark travels behind the batch) to the newest time seen minus the
/// lateness; returns the outputs.
fn run(workers: usize, lateness_min: i64, batches: Vec<Vec<Reading>>) -> (Vec<AlertEvent>, Vec<Reading>) {
    run_with_pause(workers, lateness_min, batches, usize::MAX)
}

/// As `run`, pausing before batch `pause_before` long enough for the engine to act on the
/// watermark so far: that batch arrives after the timers it would have changed.
fn run_with_pause(
    workers: usize,
    lateness_min: i64,
    batches: Vec<Vec<Reading>>,
    pause_before: usize,
) -> (Vec<AlertEvent>, Vec<Reading>) {
    let (_registry, rules) = setup(4);
    let engine = Engine::start(rules, EngineConfig { workers }).unwrap();
    let input = engine.input();
    let mut newest = i64::MIN;
    for (i, batch) in batches.into_iter().enumerate() {
        if i == pause_before {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        newest = newest.max(batch.iter().map(|r| r.time).max().unwrap());
        input.send(batch).unwrap();
        input.advance(newest - lateness_min * MIN);
    }
    drop(input);
    let output = engine.finish();
    let mut alerts = Vec::new();
    let mut late = Vec::new();
    for out in output.try_iter() {
        match out {
            EngineOutput::Alert(a) => alerts.push(a),
            EngineOutput::Late { reading, .. } => late.push(reading),
            EngineOutput::Checkpoint { .. } => panic!("no checkpoint was asked for"),
            EngineOutput::Reloaded { .. } => panic!("no reload was asked for"),
        }
    }
    alerts.sort_by_key(|a| (a.event_time, a.key));
    (alerts, late)
}

fn summary(alerts: &[AlertEvent]) -> Vec<(u32, i64, Transition, Severity)> {
    alerts.iter().map(|a| (a.key.station.0, (a.event_time - T0) / MIN, a.transition, a.severity)).collect()
}

fn flood_wave() -> Vec<Reading> {
    // Station 0 rises through yellow into orange and back; station 1 only touches yellow
    // briefly (shorter than `for`); station 2 stays low.
    let levels0 = [9.0, 10.5, 10.8, 11.5, 12.5, 12.8, 13.0, 12.9, 12.1, 11.0, 10.2, 9.7, 9.5];
    let levels1 = [9.0, 10.5, 10.6, 9.5, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0];
    let mut out = Vec::new();
    for (i, (&a, &b)) in levels0.iter().zip(&levels1).enumerate() {
        let m = i as i64 * 2;
        out.push(reading(0, m, a));
        out.push(reading(1, m, b));
        out.push(reading(2, m, 5.0));
    }
    out
}

const EXPECTED: &[(u32, i64, Transition, Severity)] = &[
    (0, 7, Transition::Fire, Severity::Yellow),
    (0, 13, Transition::Escalate, Severity::Orange),
    (0, 18, Transition::DeEscalate, Severity::Yellow),
    (0, 22, Transition::Resolve, Severity::Yellow),
];

#[test]
fn a_flood_wave_gives_exactly_the_expected_transitions() {
    let (alerts, late) = run(1, 10, flood_wave().chunks(3).map(|c| c.to_vec()).collect());
    assert!(late.is_empty());
    assert_eq!(summary(&alerts), EXPECTED);
    let fire = &alerts[0];
    assert_eq!(&*fire.rule, "level");
    assert_eq!(fire.threshold, 10.0);
    assert_eq!(fire.since, T0 + 2 * MIN, "evidence: above warning since minute 2");
}

#[test]
fn readings_reordered_across_sensors_or_within_a_batch_give_the_same_transitions() {
    let mut shuffled = flood_wave();
    // Reverse each run of 9 readings (three minutes of three sensors) and send each run as
    // one batch: within a batch, order does not matter.
    for chunk in shuffled.chunks_mut(9) {
        chunk.reverse();
    }
    let (alerts, late) = run(2, 10, shuffled.chunks(9).map(|c| c.to_vec()).collect());
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(summary(&alerts), EXPECTED);
    // Sensors interleaved in any order across batches, each in its own order: the same.
    let mut by_sensor = flood_wave();
    by_sensor.sort_by_key(|r| (r.sensor.station.0 * 7 % 3, r.time));
    let (alerts, late) = run(2, 10, by_sensor.chunks(2).map(|c| c.to_vec()).collect());
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(summary(&alerts), EXPECTED);
}

#[test]
fn a_reading_older_than_its_sensors_newest_in_an_earlier_batch_comes_back_late_not_lost() {
    let mut batches: Vec<Vec<Reading>> = flood_wave().chunks(3).map(|c| c.to_vec()).collect();
    // Station 0's minute-4 reading arriving after its minute-6 one: its sensor already
    // decided past it, however large the lateness.
    let moved = batches[2].remove(0);
    assert_eq!(moved, reading(0, 4, 10.8));
    batches.insert(4, vec![moved]);
    let (alerts, late) = run(2, 60, batches);
    assert_eq!(late, [moved]);
    assert_eq!(summary(&alerts), EXPECTED, "one reading inside a held level changes nothing here");
}

#[test]
fn readings_later_than_the_lateness_come_back_as_late_not_lost() {
    let mut batches: Vec<Vec<Reading>> = flood_wave().chunks(3).map(|c| c.to_vec()).collect();
    // Station 0 rises above yellow at minute 2 and the watermark (1 minute of lateness)
    // fires its `for` timer at minute 7 before its minute-6 reading arrives.
    let is_held = |r: &Reading| r.sensor.station.0 == 0 && r.time > T0 + 2 * MIN;
    let held: Vec<Reading> = batches.iter().flatten().copied().filter(is_held).collect();
    for batch in &mut batches {
        batch.retain(|r| !is_held(r));
    }
    let pause = batches.len();
    let (alerts, late) =
        run_with_pause(2, 1, batches.into_iter().chain(std::iter::once(held.clone())).collect(), pause);
    assert_eq!(late.len(), held.iter().filter(|r| r.time < T0 + 7 * MIN).count());
    assert_eq!(late[0], held[0]);
    assert_eq!(summary(&alerts)[0], (0, 7, Transition::Fire, Severity::Yellow));
}

#[test]
fn many_sensors_spread_over_workers_all_alert() {
    let (registry, rules) = setup(200);
    let engine = Engine::start(rules, EngineConfig { workers: 2 }).unwrap();
    let input = engine.input();
    for minute in 0..10 {
        let batch: Vec<Reading> =
            (0..registry.len() as u32).map(|s| reading(s, minute, 10.0 + s as f64 % 3.0)).collect();
        input.send(batch).unwrap();
        input.advance(T0 + minute * MIN);
    }
    drop(input);
    let fired: Vec<AlertEvent> = engine
        .finish()
        .try_iter()
        .filter_map(|o| match o {
            EngineOutput::Alert(a) if a.transition == Transition::Fire => Some(a),
            _ => None,
        })
        .collect();
    // Values 10.0 (not above 10), 11.0 (yellow), 12.0 (yellow: not above 12) by station % 3.
    let expected = (0..200).filter(|s| s % 3 != 0).count();
    assert_eq!(fired.len(), expected);
    assert!(fired.iter().all(|a| a.severity == Severity::Yellow && a.event_time == T0 + 5 * MIN));
}

#[test]
fn a_crossing_is_an_alert_on_arrival_without_any_watermark() {
    // No watermark is ever sent: with event-time evaluation gated on the watermark this
    // would wait for the allowed lateness (or the end of input); decided on arrival, the
    // alert is out while the engine is still running.
    let (_registry, rules) = setup(4);
    let engine = Engine::start(rules, EngineConfig { workers: 2 }).unwrap();
    let input = engine.input();
    input.send(vec![reading(0, 0, 12.5), reading(1, 0, 9.0)]).unwrap();
    input.send(vec![reading(0, 5, 12.6)]).unwrap();
    let out =
        engine.output().recv_timeout(std::time::Duration::from_secs(10)).expect("an alert before the end of input");
    match out {
        EngineOutput::Alert(a) => {
            assert_eq!((a.key.station.0, a.transition, a.severity), (0, Transition::Fire, Severity::Orange));
            assert_eq!(a.event_time, T0 + 5 * MIN);
        }
        other => panic!("{other:?}"),
    }
    drop(input);
    engine.finish();
}

#[test]
fn a_feed_declared_out_of_order_is_held_and_gives_the_same_transitions() {
    // Each sensor's own readings reversed in runs of three minutes, across batches: decided
    // on arrival they would be late; held until the watermark (10 minutes behind), exact.
    let mut shuffled = flood_wave();
    for chunk in shuffled.chunks_mut(9) {
        chunk.reverse();
    }
    let (_registry, rules) = setup(4);
    let engine = Engine::start(rules, EngineConfig { workers: 2 }).unwrap();
    let input = engine.input();
    let mut newest = i64::MIN;
    for batch in shuffled.chunks(2) {
        newest = newest.max(batch.iter().map(|r| r.time).max().unwrap());
        input.send_held(batch.to_vec()).unwrap();
        input.advance(newest - 10 * MIN);
    }
    drop(input);
    let (mut alerts, mut late) = (Vec::new(), Vec::new());
    for out in engine.finish().try_iter() {
        match out {
            EngineOutput::Alert(a) => alerts.push(a),
            EngineOutput::Late { reading, .. } => late.push(reading),
            EngineOutput::Checkpoint { .. } => panic!("no checkpoint was asked for"),
            EngineOutput::Reloaded { .. } => panic!("no reload was asked for"),
        }
    }
    alerts.sort_by_key(|a| (a.event_time, a.key));
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(summary(&alerts), EXPECTED);
}

/// A checkpoint taken through the dataflow, mid-wave with a `for` timer pending, restored
/// into an engine with another number of workers: the two runs together give exactly the
/// transitions of one uninterrupted run. Closing the first engine with its state kept fires
/// nothing early.
#[test]
fn a_checkpoint_restored_into_a_new_engine_continues_the_wave_exactly() {
    let (_registry, rules) = setup(4);
    let readings = flood_wave();
    // Minute 0 to 10 (station 0 yellow since 7; above orange since 8, its `for` pending).
    let (first, second) = readings.split_at(3 * 6);

    let engine = Engine::start(rules.clone(), EngineConfig { workers: 2 }).unwrap();
    let input = engine.input();
    for batch in first.chunks(3) {
        input.send(batch.to_vec()).unwrap();
    }
    input.checkpoint(42, false).unwrap();
    input.keep_pending_on_close();
    drop(input);
    let mut events = Vec::new();
    let mut restore = Restore::default();
    let mut parts = 0;
    for out in engine.finish().try_iter() {
        match out {
            // (Each worker's events come before its own part; parts of different workers
            // interleave with the others' events.)
            EngineOutput::Alert(a) => events.push(a),
            EngineOutput::Late { reading, .. } => panic!("late: {reading:?}"),
            EngineOutput::Checkpoint { position, part, .. } => {
                assert_eq!(position, 42);
                parts += 1;
                restore.rows.extend(part.rows);
                restore.held.extend(part.held);
            }
            EngineOutput::Reloaded { .. } => panic!("no reload was asked for"),
        }
    }
    assert_eq!(parts, 2, "one part per worker");
    assert_eq!(summary(&events), &EXPECTED[..1], "yellow fired, orange pending");
    // A store keeps the states; rows without one record a state that went away.
    restore.rows.retain(|r| r.state.is_some());
    assert!(!restore.rows.is_empty());

    let engine = Engine::start_from(rules, EngineConfig { workers: 3 }, restore).unwrap();
    let input = engine.input();
    for batch in second.chunks(3) {
        input.send(batch.to_vec()).unwrap();
    }
    drop(input);
    for out in engine.finish().try_iter() {
        match out {
            EngineOutput::Alert(a) => events.push(a),
            other => panic!("{other:?}"),
        }
    }
    events.sort_by_key(|a| (a.event_time, a.key));
    assert_eq!(summary(&events), EXPECTED);
}

#[test]
fn a_reload_reaches_every_worker_behind_the_readings_sent_before_it() {
    let (registry, rules) = setup(4);
    let engine = Engine::start(rules, EngineConfig { workers: 2 }).unwrap();
    let input = engine.input();
    // Every station above its warning level for the 5-minute `for`: four yellow alerts.
    for minute in 0..7 {
        input.send((0..4).map(|s| reading(s, minute, 11.0)).collect()).unwrap();
    }
    // The rule is renamed: the old one is gone (its alerts resolve), the new one starts afresh.
    let renamed = compile(
        &[RuleSource {
            name: "t.toml".into(),
            text: "[[rule]]\nid = \"level.v2\"\nkind = \"threshold\"\nselect = { quantity = \"water_level\" }\nlevels = [{ severity = \"red\", above = 10.5 }]\n".into(),
        }],
        &registry,
    )
    .unwrap();
    input.reload(Arc::new(renamed)).unwrap();
    input.send((0..4).map(|s| reading(s, 7, 11.0)).collect()).unwrap();
    drop(input);
    let (mut events, mut reloaded) = (Vec::new(), Vec::new());
    for out in engine.finish().try_iter() {
        match out {
            EngineOutput::Alert(a) => {
                events.push((a.rule.to_string(), a.key.station.0, a.transition.name(), a.severity))
            }
            EngineOutput::Reloaded { worker, done, .. } => reloaded.push((worker, done)),
            other => panic!("{other:?}"),
        }
    }
    reloaded.sort_by_key(|r| r.0);
    assert_eq!(reloaded.len(), 2, "{reloaded:?}");
    assert_eq!(reloaded.iter().map(|(_, d)| d.resolved).sum::<usize>(), 4);
    events.sort();
    let expected: Vec<_> = (0..4)
        .flat_map(|s| {
            [
                ("level".to_string(), s, Transition::Fire.name(), Severity::Yellow),
                ("level".to_string(), s, Transition::Resolve.name(), Severity::Yellow),
                ("level.v2".to_string(), s, Transition::Fire.name(), Severity::Red),
            ]
        })
        .collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(events, expected);
}

//! Throughput of the rules engine on pre-decoded readings, and of JSON decoding.
//!
//! `cargo bench --bench engine` — figures are recorded in BENCHMARKS.md.
//!
//! Engine: 100,000 water-level sensors, three threshold rules each (so 300,000 rule
//! evaluations per 100,000 readings), ten readings per sensor per iteration, about 5 % of
//! readings beyond a threshold so alert state is created, escalated and cleared.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tidewatch_ingest::json::JsonMapping;
use tidewatch_ingest::{Decoder, Limits, Normaliser, Quality, Quantity, Reading, Registry, SensorKey, StationKey};
use tidewatch_rules::eval::Evaluator;
use tidewatch_rules::{compile, Engine, EngineConfig, RuleSource};

const SENSORS: u32 = 100_000;
const ROUNDS: i64 = 10;
const MIN: i64 = 60_000;
const T0: i64 = 1_764_000_000_000;

fn registry(n: u32) -> Registry {
    let mut toml = String::with_capacity(n as usize * 160);
    for i in 0..n {
        toml += &format!(
            "[[station]]\nid = \"S{i}\"\nname = \"S{i}\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"330100\"\nattributes = {{ warning_level = 10.0, guarantee_level = 12.0 }}\n"
        );
    }
    Registry::from_toml_str(&toml).unwrap()
}

fn rules(registry: &Registry) -> Arc<tidewatch_rules::RuleSet> {
    Arc::new(compile(&[RuleSource { name: "bench.toml".into(), text: BENCH_RULES.into() }], registry).unwrap())
}

const BENCH_RULES: &str = r#"
[[rule]]
id = "level"
kind = "threshold"
select = { quantity = "water_level" }
for = "5m"
clear_margin = 0.1
levels = [
  { severity = "yellow", above = "station.warning_level" },
  { severity = "orange", above = "station.guarantee_level" },
  { severity = "red",    above = "station.guarantee_level + 0.5" },
]

[[rule]]
id = "level.fast"
kind = "threshold"
select = { quantity = "water_level" }
levels = [{ severity = "orange", above = "station.guarantee_level + 1" }]

[[rule]]
id = "level.low"
kind = "threshold"
select = { quantity = "water_level" }
for = "10m"
levels = [{ severity = "blue", below = 2.0 }, { severity = "yellow", below = 1.0 }]
"#;

/// Readings in event-time order, one round (all sensors) per minute.
fn readings(n: u32) -> Vec<Vec<Reading>> {
    (0..ROUNDS)
        .map(|round| {
            (0..n)
                .map(|s| {
                    // Deterministic spread: ~5 % of sensors above warning in later rounds.
                    let hot = s % 20 == 0 && round >= 2;
                    let value = if hot { 10.5 + (round as f64) * 0.3 } else { 5.0 + (s % 7) as f64 * 0.1 };
                    Reading {
                        sensor: SensorKey::new(StationKey(s), Quantity::WaterLevel),
                        quality: Quality::Good,
                        time: T0 + round * MIN,
                        value,
                    }
                })
                .collect()
        })
        .collect()
}

fn engine(c: &mut Criterion) {
    let registry = registry(SENSORS);
    let rules = rules(&registry);
    let rounds = readings(SENSORS);
    let total = SENSORS as u64 * ROUNDS as u64;

    // The workload must make alerts, or the figures measure nothing. Each of the 5,000 hot
    // sensors fires yellow under the first rule at minute 7 (above 10 since minute 2, held
    // 5 minutes; its orange and red conditions start at minutes 6 and 7 and would complete
    // after the data ends), and fires under the second at minute 9 (13.2 > 13). None is
    // below 2 for the third.
    let mut transitions = 0usize;
    let mut evaluator = Evaluator::new(rules.clone());
    for (i, round) in rounds.iter().enumerate() {
        evaluator.on_batch(round, &mut |_| transitions += 1, &mut |r, _| panic!("late: {r:?}"));
        evaluator.advance(T0 + (i as i64 + 1) * MIN, &mut |_| transitions += 1);
    }
    assert_eq!(transitions, 5_000 * 2, "one fire per hot sensor under each of the first two rules");

    let mut group = c.benchmark_group("rules");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(total));

    group.bench_function("evaluator_alone_1_thread", |b| {
        b.iter(|| {
            let mut evaluator = Evaluator::new(rules.clone());
            let mut alerts = 0usize;
            for (i, round) in rounds.iter().enumerate() {
                evaluator.on_batch(round, &mut |_| alerts += 1, &mut |_, _| {});
                evaluator.advance(T0 + (i as i64 + 1) * MIN, &mut |_| alerts += 1);
            }
            alerts
        })
    });

    for workers in [1usize, 2] {
        group.bench_with_input(BenchmarkId::new("dataflow", format!("{workers}_workers")), &workers, |b, &workers| {
            b.iter(|| {
                let engine = Engine::start(rules.clone(), EngineConfig { workers }).unwrap();
                let input = engine.input();
                for round in &rounds {
                    for chunk in round.chunks(10_000) {
                        input.send(chunk.to_vec()).unwrap();
                    }
                    input.advance(round[0].time);
                }
                drop(input);
                engine.finish().try_iter().count()
            })
        });
    }
    group.finish();
}

/// A rule reload on a worker that has state: how long its readings wait while it takes the
/// new rules. 100,000 sensors, every one with state under a `window` rule (a sum over 30
/// minutes), 5,000 with open alerts under the threshold rules.
fn reload(c: &mut Criterion) {
    let registry = registry(SENSORS);
    let window = r#"
[[rule]]
id = "level.mean"
kind = "window"
select = { quantity = "water_level" }
window = "30m"
aggregate = "mean"
levels = [{ severity = "blue", above = 100 }]
"#;
    let source = |text: &str| RuleSource { name: "bench.toml".into(), text: text.into() };
    let with_window = |text: &str| Arc::new(compile(&[source(text), source(window)], &registry).unwrap());
    // The same rules in another order (nothing changes), and with one rule's level moved.
    let text = BENCH_RULES;
    let before = with_window(text);
    let reordered = {
        let mut parts: Vec<&str> = text.split("[[rule]]").skip(1).collect();
        parts.reverse();
        with_window(&format!("[[rule]]{}", parts.join("[[rule]]")))
    };
    let changed = with_window(&text.replace("station.guarantee_level + 1", "station.guarantee_level + 2"));
    let rounds = readings(SENSORS);
    let mut warm = Evaluator::new(before.clone());
    for (i, round) in rounds.iter().enumerate() {
        warm.on_batch(round, &mut |_| {}, &mut |r, _| panic!("late: {r:?}"));
        warm.advance(T0 + (i as i64 + 1) * MIN, &mut |_| {});
    }
    assert!(warm.keys_with_state() > SENSORS as usize, "{}", warm.keys_with_state());

    let mut group = c.benchmark_group("reload");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, next) in [("unchanged_reordered", &reordered), ("one_rule_changed", &changed)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let mut e = Evaluator::new(before.clone());
                    for (i, round) in rounds.iter().enumerate() {
                        e.on_batch(round, &mut |_| {}, &mut |_, _| {});
                        e.advance(T0 + (i as i64 + 1) * MIN, &mut |_| {});
                    }
                    e
                },
                // (The evaluator is returned: dropping it is not part of a reload.)
                |mut e| {
                    e.reload(next.clone(), &mut |_| {});
                    e
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn json_decode(c: &mut Criterion) {
    let registry = Arc::new(registry(1000));
    let normaliser = Normaliser::new(registry, Limits { max_future_ms: i64::MAX / 4 });
    let decoder = Decoder::Json(JsonMapping::default().into_decoder().unwrap());
    // Single-reading payloads, as most devices publish them.
    let payloads: Vec<Vec<u8>> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"station":"S{}","quantity":"water_level","value":{:.3},"unit":"m","time":{}}}"#,
                i % 1000,
                5.0 + (i % 97) as f64 * 0.013,
                T0 + i as i64 * 1000
            )
            .into_bytes()
        })
        .collect();
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    let batch: Vec<u8> = {
        let records: Vec<&str> = payloads.iter().map(|p| std::str::from_utf8(p).unwrap()).collect();
        format!("[{}]", records.join(",")).into_bytes()
    };

    let mut group = c.benchmark_group("json_decode");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("single_reading_payloads", |b| {
        let mut out = Vec::with_capacity(payloads.len());
        b.iter(|| {
            out.clear();
            for p in &payloads {
                let rejected = normaliser.decode_into(&decoder, p, T0, &mut out);
                debug_assert!(rejected.is_empty());
            }
            out.len()
        })
    });
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("batch_array_payload", |b| {
        let mut out = Vec::with_capacity(payloads.len());
        b.iter(|| {
            out.clear();
            normaliser.decode_into(&decoder, &batch, T0, &mut out);
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, engine, reload, json_decode);
criterion_main!(benches);

//! Per rule kind: readings per second through one evaluator (one worker), and the state
//! each (sensor, rule) holds.
//!
//! `cargo bench --bench kinds` — figures are recorded in BENCHMARKS.md. Targets: ≥ 1 M
//! readings/s per worker for every kind; ≤ 512 B per (sensor, rule) for a 24 h window over
//! 5-minute data.
//!
//! Workload: 10,000 sensors, each reporting every 5 minutes a slowly varying value with
//! noise, in event-time order, one rule of the kind under test. State is measured with a
//! counting allocator after a day of data (the whole heap the evaluator holds, hash tables
//! included, divided by the sensors), and as a checkpoint writes it (serialised bytes per
//! state, and the time to take a full and an incremental checkpoint).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidewatch_ingest::{Quality, Quantity, Reading, Registry, SensorKey, StationKey};
use tidewatch_rules::eval::Evaluator;
use tidewatch_rules::{compile, RuleSource};

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SENSORS: u32 = 10_000;
const STEP: i64 = 5 * 60_000;
const T0: i64 = 1_764_000_000_000;

const KINDS: &[(&str, &str)] = &[
    ("threshold", "kind = \"threshold\"\nfor = \"10m\"\nlevels = [{ severity = \"yellow\", above = 12.0 }]"),
    ("rate", "kind = \"rate\"\nwindow = \"1h\"\nlevels = [{ severity = \"yellow\", above = 0.5 }]"),
    (
        "window_24h",
        "kind = \"window\"\nwindow = \"24h\"\naggregate = \"sum\"\nlevels = [{ severity = \"yellow\", above = 3000 }]",
    ),
    ("missing", "kind = \"missing\"\nexpected = \"5m\"\nlevels = [{ severity = \"yellow\", above = 3 }]"),
    (
        "anomaly_zscore",
        "kind = \"anomaly\"\nmethod = \"zscore\"\nsamples = 48\nlevels = [{ severity = \"yellow\", above = 5 }]",
    ),
    ("anomaly_mad", "kind = \"anomaly\"\nmethod = \"mad\"\nsamples = 48\nlevels = [{ severity = \"yellow\", above = 5 }]"),
    (
        "anomaly_ewma_hourly",
        "kind = \"anomaly\"\nmethod = \"ewma\"\nseasonal = \"hour_of_day\"\nlevels = [{ severity = \"yellow\", above = 5 }]",
    ),
    ("forecast", "kind = \"forecast\"\nwindow = \"2h\"\nlead = \"2h\"\nlevels = [{ severity = \"yellow\", above = 14.0 }]"),
    ("quality", "kind = \"quality\"\nflatline = \"6h\"\nmax_rate = 5\nlevels = [{ severity = \"blue\", above = 0 }]"),
];

fn registry() -> Registry {
    let mut toml = String::new();
    for i in 0..SENSORS {
        toml += &format!(
            "[[station]]\nid = \"S{i}\"\nname = \"S{i}\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"330100\"\n"
        );
    }
    Registry::from_toml_str(&toml).unwrap()
}

/// `rounds` readings per sensor, every 5 minutes, round by round (event-time order).
fn readings(rounds: i64) -> Vec<Vec<Reading>> {
    (0..rounds)
        .map(|round| {
            (0..SENSORS)
                .map(|s| {
                    let noise = ((s as i64 * 7919 + round * 104_729) % 101) as f64 / 500.0;
                    let value = 10.0 + (round as f64 / 40.0 + s as f64).sin() + noise;
                    Reading {
                        sensor: SensorKey::new(StationKey(s), Quantity::WaterLevel),
                        quality: Quality::Good,
                        time: T0 + round * STEP,
                        value,
                    }
                })
                .collect()
        })
        .collect()
}

fn run(evaluator: &mut Evaluator, rounds: &[Vec<Reading>]) -> usize {
    let mut transitions = 0;
    for round in rounds {
        evaluator.on_batch(round, &mut |_| transitions += 1, &mut |_, _| panic!("in-order data is never late"));
        evaluator.advance(round[0].time, &mut |_| transitions += 1);
    }
    transitions
}

fn kinds(c: &mut Criterion) {
    let registry = registry();
    let day = readings(288);
    let mut group = c.benchmark_group("kinds");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(day.iter().map(Vec::len).sum::<usize>() as u64));
    for (name, body) in KINDS {
        let text = format!("[[rule]]\nid = \"r\"\nselect = {{ quantity = \"water_level\" }}\n{body}\n");
        let rules = Arc::new(compile(&[RuleSource { name: format!("{name}.toml"), text }], &registry).unwrap());

        // State after a day of data, per sensor.
        let before = ALLOCATED.load(Ordering::Relaxed);
        let mut evaluator = Evaluator::new(rules.clone());
        run(&mut evaluator, &day);
        let held = ALLOCATED.load(Ordering::Relaxed) - before;
        eprintln!(
            "state {name}: {} B per (sensor, rule) after 24 h of 5-minute data ({} sensors with state)",
            held / SENSORS as isize,
            evaluator.keys_with_state()
        );
        // What a checkpoint writes: a full one, then an incremental one after another round
        // (every sensor reported, so every state changed).
        let started = std::time::Instant::now();
        let full = evaluator.checkpoint(true);
        let full_ms = started.elapsed().as_secs_f64() * 1000.0;
        run(&mut evaluator, &readings(289)[288..]);
        let started = std::time::Instant::now();
        let incremental = evaluator.checkpoint(false);
        let incremental_ms = started.elapsed().as_secs_f64() * 1000.0;
        let bytes: usize = full.rows.iter().filter_map(|r| r.state.as_ref()).map(Vec::len).sum();
        eprintln!(
            "checkpoint {name}: {} rows, {} B of state per row (postcard), full {full_ms:.1} ms, \
             incremental after a round {incremental_ms:.1} ms ({} rows)",
            full.rows.len(),
            bytes / full.rows.len().max(1),
            incremental.rows.len()
        );
        drop(evaluator);

        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut evaluator = Evaluator::new(rules.clone());
                run(&mut evaluator, &day)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, kinds);
criterion_main!(benches);

//! The alert manager under a regional flood: a burst of 10,000 alert events.
//!
//! `cargo bench --bench alerting` — figures are recorded in BENCHMARKS.md.
//!
//! 10,000 gauges fire at once. Each event is routed to the duty team (a roster with a team
//! for the region and a webhook channel), so every change writes an alert row, a history
//! entry and an outbox row, in one SQLite transaction per batch (WAL, on disk). Measured:
//! how long the engine side takes to hand the burst on (it must never block the dataflow),
//! and how long until every alert and its notification is durably stored. The group wait is
//! an hour so the dispatcher stays out of the measurement. Twice: SQLite `synchronous =
//! NORMAL` (the default) and `FULL` (`[state] sync = "full"`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidewatch_alerting::{Alerting, AlertingSettings, Duty, Notice, Observer, Store};
use tidewatch_ingest::{Quantity, Registry, SensorKey, StationKey};
use tidewatch_rules::{compile, AlertEvent, RuleSource, Severity, Transition};

const BURST: u32 = 10_000;

#[derive(Default)]
struct Count(AtomicUsize);

impl Observer for Count {
    fn notice(&self, _: &Notice) {}
    fn open_counts(&self, counts: [usize; 4]) {
        self.0.store(counts.iter().sum(), Ordering::SeqCst);
    }
    fn suppressed(&self, _: i64, _: &str) {}
    fn delivered(&self, _: &str, _: usize) {}
    fn failed(&self, _: &str, _: &str) {}
}

const DUTY: &str = r#"
[channel.hook]
kind = "webhook"
url = "http://127.0.0.1:9/never"
[[member]]
id = "zhang"
name = "张伟"
[[team]]
id = "hangzhou"
name = "杭州市防汛值班"
regions = ["330100"]
channels = ["hook"]
  [[team.shift]]
  start = "00:00"
  end = "00:00"
  members = ["zhang"]
"#;

fn burst(c: &mut Criterion) {
    let mut toml = String::new();
    for i in 0..BURST {
        toml += &format!(
            "[[station]]\nid = \"S{i}\"\nname = \"S{i}\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"330102\"\nattributes = {{ warning_level = 10.0 }}\n"
        );
    }
    let registry = Arc::new(Registry::from_toml_str(&toml).unwrap());
    let rules = Arc::new(
        compile(
            &[RuleSource {
                name: "r.toml".into(),
                text: "[[rule]]\nid='level'\nkind='threshold'\nselect={quantity='water_level'}\nlevels=[{severity='yellow',above='station.warning_level'}]\n".into(),
            }],
            &registry,
        )
        .unwrap(),
    );
    let duty = Arc::new(Duty::from_toml_str(DUTY).unwrap());
    let events: Vec<AlertEvent> = (0..BURST)
        .map(|i| AlertEvent {
            rule: "level".into(),
            key: SensorKey::new(StationKey(i), Quantity::WaterLevel),
            transition: Transition::Fire,
            severity: Severity::Yellow,
            previous: None,
            event_time: 1_764_000_000_000,
            value: 10.5,
            threshold: 10.0,
            since: 1_764_000_000_000,
            evidence: Default::default(),
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let mut group = c.benchmark_group("alerting");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(u64::from(BURST)));
    let mut hand_on = Vec::new();
    for (name, full_sync) in
        [("burst_10k_stored_with_outbox_sqlite", false), ("burst_10k_stored_with_outbox_sqlite_full_sync", true)]
    {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("alerts.db").display());
                    let count = Arc::new(Count::default());
                    let alerting = runtime.block_on(async {
                        let store = Store::open_with(&url, full_sync).await.unwrap();
                        let settings = AlertingSettings { group_wait_ms: 3_600_000, ..AlertingSettings::default() };
                        Alerting::start(store, duty.clone(), registry.clone(), rules.clone(), settings, count.clone())
                            .await
                            .unwrap()
                    });
                    let start = Instant::now();
                    for e in &events {
                        alerting.events.send(e.clone());
                    }
                    hand_on.push(start.elapsed());
                    while count.0.load(Ordering::SeqCst) < BURST as usize {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    total += start.elapsed();
                    runtime.block_on(alerting.finish());
                }
                total
            })
        });
    }
    group.finish();
    hand_on.sort();
    if let Some(median) = hand_on.get(hand_on.len() / 2) {
        println!("handing 10,000 events to the manager (engine side): median {median:?} over {} bursts", hand_on.len());
    }
}

criterion_group!(benches, burst);
criterion_main!(benches);

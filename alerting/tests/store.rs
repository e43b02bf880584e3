//! The alert manager over a real database: the same workflow on embedded SQLite and on
//! PostgreSQL (`TIDEWATCH_TEST_POSTGRES`, which `scripts/test.sh` sets to a throwaway
//! server), including a restart that restores open alerts and their timers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidewatch_alerting::store::{AlertQuery, StateFilter};
use tidewatch_alerting::{Alerting, AlertingSettings, Duty, Happening, NewSilence, Notice, Observer, Store};
use tidewatch_ingest::{Quantity, Registry, SensorKey, StationKey};
use tidewatch_rules::{compile, AlertEvent, RuleSet, RuleSource, Severity, Transition};

#[derive(Default)]
struct Seen {
    notices: Mutex<Vec<Notice>>,
    open: AtomicUsize,
}

impl Observer for Seen {
    fn notice(&self, notice: &Notice) {
        self.notices.lock().unwrap().push(notice.clone());
    }
    fn open_counts(&self, counts: [usize; 4]) {
        self.open.store(counts.iter().sum(), Ordering::SeqCst);
    }
    fn suppressed(&self, _: i64, _: &str) {}
    fn delivered(&self, _: &str, _: usize) {}
    fn failed(&self, _: &str, _: &str) {}
}

fn world() -> (Arc<Registry>, Arc<RuleSet>) {
    let registry = Registry::from_toml_str(
        "[[station]]\nid='QT-LX'\nname='兰溪'\ndomain='water'\nlocation=[119.46,29.21]\nregion='330182'\nattributes={warning_level=28.0}\n\
         [[station]]\nid='QT-JH'\nname='金华'\ndomain='water'\nlocation=[119.65,29.08]\nregion='330702'\nattributes={warning_level=35.0}",
    )
    .unwrap();
    let rules = compile(
        &[RuleSource {
            name: "r.toml".into(),
            text: "[[rule]]\nid='wl'\nkind='threshold'\nselect={quantity='water_level'}\nlevels=[{severity='yellow',above='station.warning_level'},{severity='red',above=40}]\n".into(),
        }],
        &registry,
    )
    .unwrap();
    (Arc::new(registry), Arc::new(rules))
}

const DUTY: &str = r#"
[channel.hook]
kind = "webhook"
url = "http://127.0.0.1:9/never"
[[member]]
id = "zhang"
name = "张伟"
[[team]]
id = "jinhua"
name = "金华"
regions = ["330700"]
channels = ["hook"]
  [[team.shift]]
  start = "00:00"
  end = "00:00"
  members = ["zhang"]
"#;

fn event(station: u32, transition: Transition, severity: Severity, value: f64) -> AlertEvent {
    AlertEvent {
        rule: "wl".into(),
        key: SensorKey::new(StationKey(station), Quantity::WaterLevel),
        transition,
        severity,
        previous: None,
        event_time: 1_764_000_000_000,
        value,
        threshold: 28.0,
        since: 1_763_999_000_000,
        evidence: Default::default(),
    }
}

async fn start(url: &str, seen: Arc<Seen>) -> Alerting {
    let (registry, rules) = world();
    let store = Store::open(url).await.unwrap();
    // A long group wait: nothing leaves the outbox while the test looks at it.
    let settings = AlertingSettings { group_wait_ms: 3_600_000, ..AlertingSettings::default() };
    Alerting::start(store, Arc::new(Duty::from_toml_str(DUTY).unwrap()), registry, rules, settings, seen).await.unwrap()
}

async fn until(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..200 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn workflow(url: &str) {
    let seen = Arc::new(Seen::default());
    let alerting = start(url, seen.clone()).await;
    alerting.events.send(event(0, Transition::Fire, Severity::Yellow, 28.4));
    alerting.events.send(event(1, Transition::Fire, Severity::Yellow, 35.2));
    alerting.events.send(event(1, Transition::Escalate, Severity::Red, 40.3));
    until("two open alerts", || seen.open.load(Ordering::SeqCst) == 2).await;

    let handle = alerting.handle.clone();
    let store = handle.store.clone();
    let open = store.alerts(&AlertQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(open.len(), 2);
    let (red, yellow) = (&open[0], &open[1]);
    assert_eq!((red.subject.station.as_str(), red.severity), ("QT-JH", Severity::Red), "most severe first");
    assert_eq!(red.team.as_deref(), Some("jinhua"), "routed by region");
    assert_eq!(yellow.team, None, "no team covers 330182 (Hangzhou) and there is no default");
    let happenings: Vec<Happening> = red.history.iter().map(|h| h.happening).collect();
    assert_eq!(happenings, [Happening::Fire, Happening::Escalate]);
    let in_jinhua = AlertQuery { region: Some("330700".into()), limit: 10, ..Default::default() };
    assert_eq!(store.alerts(&in_jinhua).await.unwrap().len(), 1);
    let pending = store.pending(i64::MAX, 100).await.unwrap();
    assert_eq!(pending.len(), 2, "fire and escalate of the routed alert wait in the outbox");
    assert_eq!(pending[0].recipients, ["zhang"]);

    let acked = handle.acknowledge(red.id, "张伟".into(), Some("on my way".into())).await.unwrap();
    assert_eq!(acked.acknowledged.unwrap().by, "张伟");
    assert!(handle.acknowledge(red.id, "李娜".into(), None).await.is_err());
    let silence = handle
        .silence(NewSilence {
            station: None,
            rule: Some("w*".into()),
            region: Some("330000".into()),
            starts_at: None,
            ends_at: "2999-01-01T00:00:00Z".into(),
            created_by: "李娜".into(),
            comment: "drill".into(),
        })
        .await
        .unwrap();
    assert!(handle.silence(NewSilence { rule: None, region: None, ..silence_spec() }).await.is_err());
    assert_eq!(handle.silences(0).await.unwrap().len(), 1);
    alerting.finish().await;

    // After a restart: the same open alerts, a replayed fire changes nothing, ids continue.
    let seen = Arc::new(Seen::default());
    let alerting = start(url, seen.clone()).await;
    until("restored counts", || seen.open.load(Ordering::SeqCst) == 2).await;
    alerting.events.send(event(0, Transition::Fire, Severity::Yellow, 28.4));
    alerting.events.send(event(0, Transition::Resolve, Severity::Yellow, 27.0));
    until("the resolution", || seen.open.load(Ordering::SeqCst) == 1).await;
    assert_eq!(seen.notices.lock().unwrap().len(), 1, "the replayed fire is not news");
    let handle = alerting.handle.clone();
    assert_eq!(handle.silences(0).await.unwrap().len(), 1, "silences are durable");
    handle.unsilence(silence.id).await.unwrap();
    assert!(handle.silences(0).await.unwrap().is_empty());
    let resolved = handle
        .store
        .alerts(&AlertQuery { state: Some(StateFilter::All), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(resolved.len(), 2);
    alerting.events.send(event(0, Transition::Fire, Severity::Yellow, 28.9));
    until("a new episode", || seen.open.load(Ordering::SeqCst) == 2).await;
    let open = handle.store.alerts(&AlertQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert!(open.iter().all(|a| a.id <= 3), "{open:?}");
    assert!(open.iter().any(|a| a.id == 3), "numbering continues after the restart");
    alerting.finish().await;
}

fn silence_spec() -> NewSilence {
    NewSilence {
        station: None,
        rule: Some("wl".into()),
        region: None,
        starts_at: None,
        ends_at: "2999-01-01T00:00:00Z".into(),
        created_by: "x".into(),
        comment: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_is_durable_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    workflow(&format!("sqlite://{}", dir.path().join("alerts.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_is_durable_on_postgres() {
    let Ok(url) = std::env::var("TIDEWATCH_TEST_POSTGRES") else {
        eprintln!("TIDEWATCH_TEST_POSTGRES is not set: scripts/test.sh starts a PostgreSQL and sets it; not run");
        return;
    };
    // A database of its own, so runs never see each other's alerts.
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&url).await.unwrap();
    let name = format!("tidewatch_test_{}_{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
    workflow(&format!("{base}/{name}")).await;
}

/// A barrier answers with the sequence number where it stood among the events: the events
/// sent after it — even those stored in the same batch — are numbered from it on, and a
/// replay after a restart finds them with `transitions_since`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_marks_where_it_stood_among_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("alerts.db").display())).await.unwrap();
    let (registry, rules) = world();
    let seen = Arc::new(Seen::default());
    let alerting = Alerting::start(
        store.clone(),
        Arc::new(Duty::default()),
        registry,
        rules,
        AlertingSettings::default(),
        seen.clone(),
    )
    .await
    .unwrap();
    // All in one go, so the manager takes them as one batch.
    alerting.events.send(event(0, Transition::Fire, Severity::Yellow, 29.0));
    let barrier = alerting.events.barrier();
    let mut after = event(1, Transition::Fire, Severity::Yellow, 36.0);
    after.event_time += 60_000;
    alerting.events.send(after);
    let seq = barrier.await.unwrap();
    let mut since = Vec::new();
    for _ in 0..50 {
        since = store.transitions_since(seq).await.unwrap();
        if !since.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(since, vec![("wl".to_owned(), "QT-JH".to_owned(), "water_level".to_owned(), 1_764_000_060_000)]);
    alerting.finish().await;
}

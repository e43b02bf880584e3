//! `tidewatch demo`: everything on one machine with nothing to install.
//!
//! The demo uses the example stations and rules compiled into the binary, the embedded
//! broker, and two simulators: river and rain gauges sending JSON through a flood, and air
//! and water-quality data loggers sending HJ 212 through a pollution episode. They replay at
//! speed: the simulated clock starts
//! six hours ago and runs one simulated minute per `--speed` of real time (0.5 s by
//! default, 120×) until it catches up with the wall clock, then runs in real time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use tidewatch_connectors::envelope::now_ms;
use tidewatch_ingest::Registry;
use tidewatch_simulators::{EnvironmentScenario, FloodScenario};

use crate::runtime::AppState;

pub const STATIONS: &str = include_str!("../config/stations.toml");
pub const RULES: &[(&str, &str)] = &[
    ("config/rules/flood.toml", include_str!("../config/rules/flood.toml")),
    ("config/rules/environment.toml", include_str!("../config/rules/environment.toml")),
    ("config/rules/models.toml", include_str!("../config/rules/models.toml")),
];

const MIN: i64 = 60_000;

#[derive(Clone, Debug)]
pub struct SimulatorOptions {
    /// Real time per simulated minute.
    pub speed: Duration,
    /// How far back the simulated clock starts.
    pub start_back: Duration,
    /// Gauges publish JSON under `<prefix>/json/`, data loggers HJ 212 under `<prefix>/hj212/`.
    pub topic_prefix: String,
    /// Print a status line this often.
    pub status_every: Option<Duration>,
}

pub async fn simulate(
    host: String,
    port: u16,
    login: Option<(String, String)>,
    registry: Arc<Registry>,
    options: SimulatorOptions,
    state: Arc<AppState>,
) {
    let mut mqtt = MqttOptions::new("tidewatch-simulator", host, port);
    mqtt.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(1 << 20, 1 << 20);
    if let Some((user, password)) = login {
        mqtt.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt, 1024);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let start = (now_ms() - options.start_back.as_millis() as i64) / MIN * MIN;
    let scenario = FloodScenario::new(&registry, start, &format!("{}/json", options.topic_prefix));
    let environment = EnvironmentScenario::new(&registry, start, &format!("{}/hj212", options.topic_prefix));
    if let Some(every) = options.status_every {
        tokio::spawn(status(state.clone(), every));
    }
    let mut tick = tokio::time::interval(options.speed);
    let mut minute = 0i64;
    loop {
        tick.tick().await;
        let sim_time = start + minute * MIN;
        if sim_time > now_ms() {
            continue; // caught up with the wall clock: readings from the future are refused
        }
        for message in scenario.messages_at(minute).into_iter().chain(environment.messages_at(minute)) {
            if let Err(e) = client.publish(message.topic, QoS::AtLeastOnce, false, message.payload).await {
                tracing::warn!(error = %e, "simulator could not publish");
            }
        }
        state.sim_clock.store(sim_time, Ordering::Relaxed);
        minute += 1;
    }
}

async fn status(state: Arc<AppState>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let counts = state.open_counts();
        let open: Vec<String> = tidewatch_rules::Severity::ALL
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let sim = state.sim_clock.load(Ordering::Relaxed);
        println!(
            "── simulated time {} · {} readings · {} dead letters · open alerts: {} ──",
            if sim == i64::MIN { "-".into() } else { tidewatch_alerting::render::local_time(sim) },
            state.readings_total.load(Ordering::Relaxed),
            state.dead_letters_total.load(Ordering::Relaxed),
            if open.is_empty() { "none".into() } else { open.join(", ") },
        );
    }
}

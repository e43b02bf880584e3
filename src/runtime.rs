//! Wiring: connectors → ingest → rules engine → alerting, and the HTTP API beside them.
//!
//! ```text
//!  MqttSource ─envelopes─▶ ingest task ─batches─▶ reading log ─▶ Engine (timely workers)
//!      ▲                      │  acks once logged and handed on          │
//!      └──────────────────────┘                                          ▼
//!                       dead letters ◀── late ──── output thread ──▶ alert manager (store, outbox,
//!                                                        │               notifiers, console, alerts.jsonl)
//!                                   checkpoint parts ────┴──▶ checkpoint writer (state.db)
//! ```
//!
//! With `state.dir` set, start-up restores the last checkpoint's rule state and replays the
//! reading log from it before any source is read (see [`crate::durable`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tidewatch_alerting::notify::ChannelKind;
use tidewatch_alerting::{render, Alerting, AlertingHandle, AlertingSettings, Duty, EventSender, Notice, Store};
use tidewatch_connectors::envelope::now_ms;
use tidewatch_connectors::sink::SinkCounts;
use tidewatch_connectors::{Envelope, Health};
use tidewatch_ingest::device_auth::DeviceAuth;
use tidewatch_ingest::reassembly::{Incomplete, Limits as ReassemblyLimits, Offered, Protocol, Reassembler};
use tidewatch_ingest::Decoder;
use tidewatch_ingest::{time::to_rfc3339, DeadLetter, Limits, Normaliser, Registry, Rejection};
use tidewatch_rules::{Engine, EngineConfig, EngineInput, EngineOutput, RuleSet, SourceId, Watermark};
use tokio::sync::mpsc;

use crate::config::{Config, EngineTiming, SyncMode};
use crate::dead_letters::{DeadLetterFile, Limits as DeadLetterLimits};
use crate::durable::{CheckpointJob, Durable, Parts, Recent};
use crate::metrics::{ChannelLabels, Metrics, ReasonLabels, SeverityLabels, SourceLabels, TransitionLabels};
use crate::routes::Router;
use crate::sinks::Sinks;

/// Everything a run needs, loaded and checked.
pub struct Settings {
    pub config: Config,
    pub timing: EngineTiming,
    pub registry: Arc<Registry>,
    pub rules: Arc<RuleSet>,
    /// What `rules` were compiled from: a reload compares the files with it.
    pub rule_sources: Vec<tidewatch_rules::RuleSource>,
}

/// Extra behaviour of a run.
#[derive(Default)]
pub struct RunOptions {
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    /// Run the built-in flood simulator against the broker.
    pub simulate: Option<crate::demo::SimulatorOptions>,
    /// Stop when every source has ended (a replay): the input is then complete, and every
    /// pending timer is decided before the process stops.
    pub until_sources_end: bool,
    /// Show the files' progress on the terminal.
    pub progress: bool,
}

/// A source as the HTTP API and metrics see it.
pub struct SourceInfo {
    pub name: &'static str,
    pub kind: &'static str,
    pub health: Arc<dyn Health>,
}

/// State the HTTP API and status reports read.
pub struct AppState {
    pub alerting: AlertingHandle,
    pub metrics: Arc<Metrics>,
    pub watermark: Arc<Watermark>,
    pub sources: Vec<SourceInfo>,
    pub sinks: Vec<(String, &'static str, Arc<SinkCounts>)>,
    /// What the HTTP server's limits refused.
    pub http: Arc<crate::http_server::HttpCounts>,
    /// The API is served over TLS (session cookies are then `Secure`).
    pub https: bool,
    pub readings_total: AtomicU64,
    pub dead_letters_total: AtomicU64,
    /// Newest simulated time published (demo only), ms.
    pub sim_clock: AtomicI64,
    /// Wakes the watermark ticker at once (the input was declared complete).
    pub watermark_moved: tokio::sync::Notify,
    /// Reads need no login.
    pub open_reads: bool,
    /// Password logins checked recently.
    pub logins: crate::auth::Logins,
    /// Addresses that got passwords wrong lately.
    pub login_throttle: crate::login_throttle::LoginThrottle,
    /// Longest silence the API accepts (ms).
    pub max_silence_ms: i64,
    /// Every alert notice as JSON, for `/api/events` (bounded: a reader that falls behind is
    /// told to read the list again).
    pub alert_events: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Set when the process is stopping: the HTTP server stops, and event streams end so
    /// that their connections can close.
    pub stopping: tokio::sync::watch::Sender<bool>,
    pub registry: Arc<Registry>,
    /// The rules in force and the last reload (`GET /api/rules`).
    pub rules: Mutex<crate::reload::RulesInForce>,
    /// Asks the reloader to reload now (`None`: the rules are built in).
    pub reload: Option<mpsc::Sender<crate::reload::Request>>,
}

impl AppState {
    /// Refreshes gauges computed from other state, before a scrape.
    pub fn refresh_gauges(&self) {
        let w = self.watermark.get();
        if w != i64::MIN {
            self.metrics.watermark_seconds.set(w as f64 / 1000.0);
            self.metrics.watermark_lag_seconds.set((now_ms() - w) as f64 / 1000.0);
        }
        let mqtt_up = self.sources.iter().any(|s| s.kind == "mqtt" && s.health.up());
        self.metrics.mqtt_connected.set(i64::from(mqtt_up));
        for s in &self.sources {
            self.metrics.source_up.get_or_create(&SourceLabels { source: s.name.into() }).set(i64::from(s.health.up()));
        }
        let http = [
            ("refused", self.http.refused.load(Ordering::Relaxed)),
            ("idle_closed", self.http.idle_closed.load(Ordering::Relaxed)),
        ];
        for (outcome, n) in http {
            let labels = crate::metrics::OutcomeLabels { outcome: outcome.into() };
            self.metrics.http_connections_closed.get_or_create(&labels).inner().store(n, Ordering::Relaxed);
        }
        for (name, _, counts) in &self.sinks {
            for (outcome, n) in
                [("delivered", &counts.delivered), ("failed", &counts.failed), ("dropped", &counts.dropped)]
            {
                let labels = crate::metrics::SinkLabels { sink: name.clone(), outcome: outcome.into() };
                self.metrics
                    .sink_records
                    .get_or_create(&labels)
                    .inner()
                    .store(n.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        for (kind, count) in tidewatch_ingest::conformance::counts() {
            let counter = self.metrics.nonconforming.get_or_create(&crate::metrics::KindLabels { kind: kind.into() });
            counter.inner().store(count, Ordering::Relaxed);
        }
    }

    /// Open alerts per colour (blue … red), as last reported to `/metrics`.
    pub fn open_counts(&self) -> [usize; 4] {
        tidewatch_rules::Severity::ALL.map(|s| {
            let gauge = self.metrics.alerts_open.get_or_create(&SeverityLabels { severity: s.name().into() });
            gauge.get().max(0) as usize
        })
    }
}

/// What the alert manager reports: printed, appended to the alerts file, counted.
struct RunObserver {
    metrics: Arc<Metrics>,
    sinks: Arc<Sinks>,
    console: bool,
    ansi: bool,
    file: Mutex<JsonLines>,
    events: tokio::sync::broadcast::Sender<Arc<str>>,
}

impl tidewatch_alerting::Observer for RunObserver {
    fn notice(&self, notice: &Notice) {
        let labels =
            TransitionLabels { severity: notice.severity.name().into(), transition: notice.transition.name().into() };
        self.metrics.alert_transitions.get_or_create(&labels).inc();
        self.sinks.alert(notice);
        if self.console {
            println!("{}", render::console_line(notice, self.ansi));
        }
        self.file.lock().unwrap_or_else(|e| e.into_inner()).write(notice);
        if self.events.receiver_count() > 0 {
            if let Ok(json) = serde_json::to_string(notice) {
                let _ = self.events.send(json.into());
            }
        }
    }

    /// After each stored batch: one flush for the batch's notices.
    fn open_counts(&self, counts: [usize; 4]) {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).flush();
        for (severity, count) in tidewatch_rules::Severity::ALL.iter().zip(counts) {
            self.metrics
                .alerts_open
                .get_or_create(&SeverityLabels { severity: severity.name().into() })
                .set(count as i64);
        }
    }

    fn suppressed(&self, alert_id: i64, reason: &str) {
        tracing::info!(alert_id, reason, "notification held back");
        self.metrics.notifications_suppressed.inc();
    }

    fn delivered(&self, channel: &str, notifications: usize) {
        let labels = ChannelLabels { channel: channel.into(), outcome: "delivered".into() };
        self.metrics.notifications.get_or_create(&labels).inc_by(notifications as u64);
        self.metrics.notification_messages.get_or_create(&labels).inc();
    }

    fn failed(&self, channel: &str, _error: &str) {
        let labels = ChannelLabels { channel: channel.into(), outcome: "failed".into() };
        self.metrics.notification_messages.get_or_create(&labels).inc();
    }
}

/// Appends JSON lines to a file; `None` writes nothing. Each line is serialised whole before
/// it is handed to the writer, so a reader of the file never sees half a line.
struct JsonLines(Option<BufWriter<File>>, Vec<u8>);

impl JsonLines {
    fn open(path: Option<&Path>) -> anyhow::Result<JsonLines> {
        let Some(path) = path else {
            return Ok(JsonLines(None, Vec::new()));
        };
        let (file, _) = crate::json_lines::open_for_append(path)?;
        Ok(JsonLines(Some(BufWriter::new(file)), Vec::with_capacity(1024)))
    }

    fn write(&mut self, value: &impl serde::Serialize) {
        let JsonLines(Some(w), line) = self else { return };
        line.clear();
        let ok = serde_json::to_writer(&mut *line, value).is_ok() && {
            line.push(b'\n');
            w.write_all(line).is_ok()
        };
        if !ok {
            tracing::error!("cannot append to an output file; is the disk full?");
        }
    }

    fn flush(&mut self) {
        if let Some(w) = self.0.as_mut() {
            if let Err(e) = w.flush() {
                tracing::error!(error = %e, "cannot flush an output file");
            }
        }
    }
}

/// Dead letters: counted, logged at debug, kept in a bounded file (sampled per source and
/// reason, rotated; see [`crate::dead_letters`]).
struct DeadLetters {
    file: Mutex<DeadLetterFile>,
    state: Arc<AppState>,
    sinks: Arc<Sinks>,
}

impl DeadLetters {
    fn push(&self, letter: DeadLetter) {
        let reason = ReasonLabels { reason: letter.reason.kind().to_owned() };
        self.state.metrics.dead_letters.get_or_create(&reason).inc();
        self.state.dead_letters_total.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(topic = %letter.topic, reason = %letter.message, "dead letter");
        self.sinks.dead_letter(&letter);
        let written = self.file.lock().unwrap_or_else(|e| e.into_inner()).write(&letter, now_ms());
        if !written {
            self.state.metrics.dead_letters_unwritten.get_or_create(&reason).inc();
        }
    }

    fn flush(&self) {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

/// MQTT alert-topic channels pointed at the embedded broker without a login of their own log
/// in as Tidewatch: the embedded broker refuses anonymous clients, and its generated
/// password is not something to copy into the duty file.
fn log_in_to_embedded(duty: &mut Duty, listen: std::net::SocketAddr, password: &str) {
    for (name, channel) in &mut duty.file.channel {
        let Some((host, port)) = channel.broker.as_deref().and_then(crate::config::parse_host_port) else { continue };
        let same_host = host == listen.ip().to_string()
            || (host == "localhost" && listen.ip().is_loopback())
            || (listen.ip().is_unspecified() && (host == "localhost" || host.starts_with("127.")));
        if channel.kind == ChannelKind::Mqtt && port == listen.port() && same_host && channel.username.is_none() {
            tracing::info!(channel = %name, "MQTT channel logs in to the embedded broker as \"tidewatch\"");
            channel.username = Some("tidewatch".to_owned());
            channel.password = Some(password.to_owned());
        }
    }
}

pub async fn run(settings: Settings, options: RunOptions) -> anyhow::Result<()> {
    let Settings { config, timing, registry, rules, rule_sources } = settings;

    let watermark = Arc::new(Watermark::new(timing.lateness_ms, timing.idle_ms));
    let full_sync = config.state.sync == SyncMode::Full;
    let (durable, recovered) = match &config.state.dir {
        Some(dir) => {
            let (durable, recovered) = Durable::open(dir, full_sync, &rules, &registry)
                .await
                .with_context(|| format!("state.dir {}", dir.display()))?;
            (Some(Arc::new(durable)), Some(recovered))
        }
        None => (None, None),
    };
    let restore = recovered.as_ref().map(|r| r.restore.clone()).unwrap_or_default();
    if let Some(r) = &recovered {
        tracing::info!(
            states = r.restore.rows.len(),
            held = r.restore.held.len(),
            found = r.found,
            "rule state restored from the last checkpoint"
        );
    }
    let engine = Engine::start_from(rules.clone(), EngineConfig { workers: config.engine.workers }, restore)?;

    // Every source feeds one channel; the ingest task decodes by source and topic.
    let (envelopes_tx, envelopes) = mpsc::channel::<Envelope>(8192);
    let source_configs = config.sources();
    let mut sources = Vec::new();
    let mut decodings = Vec::new();
    let mut running = Vec::new();
    let mut broker = None;
    let mut embedded = None;
    let mut files = Vec::new();
    for source in &source_configs {
        let started = crate::sources::start(source, envelopes_tx.clone()).await?;
        let name = started.running.name;
        sources.push(IngestSource { name, id: watermark.register(name), finite: source.finite(), ended: false });
        decodings.push((name, source.decoding()?));
        broker = broker.or(started.broker);
        embedded = embedded.or(started.embedded);
        files.extend(started.file.map(|status| (name, status)));
        running.push(started.running);
    }
    let router = Router::new(decodings)?;
    // The sources hold the only senders: the ingest task ends when they stop.
    drop(envelopes_tx);
    let sinks = Arc::new(Sinks::start(&config.sink, registry.clone())?);

    // Alerting: the store, the duty roster, the manager and the dispatcher.
    let store_url = &config.alerting.store;
    let store = Store::open_with(store_url, full_sync)
        .await
        .with_context(|| format!("alerting.store {}", tidewatch_alerting::secrets::redact(store_url)))?;
    // A replay has its own store and no API users to speak of.
    if !options.until_sources_end {
        first_admin(&store).await?;
    }
    if let (Some(durable), Some(r)) = (&durable, &recovered) {
        if !r.found {
            let next = store.next_ids().await.context("reading the alert store's ids")?;
            durable.first_checkpoint(next.event).await.context("writing the first checkpoint")?;
        }
    }
    let mut duty = match &config.alerting.duty {
        Some(path) => Duty::load(path)
            .map_err(|problems| anyhow::anyhow!("duty roster rejected:\n  {}", problems.join("\n  ")))?,
        None => {
            // A replay notifies nobody unless asked to (`--notify`): nothing to warn about.
            if !options.until_sources_end {
                tracing::warn!("no alerting.duty roster configured: alerts are stored and shown, nobody is notified");
            }
            Duty::default()
        }
    };
    if let Some((listen, password)) = &embedded {
        log_in_to_embedded(&mut duty, *listen, password);
    }
    let metrics = Arc::new(Metrics::new());
    let (alert_events, _) = tokio::sync::broadcast::channel(1024);
    // Rule files are watched and reloaded unless they are built in (the demo), or this is a
    // replay (one rule set from start to end, or it would not be a backtest).
    let reload = crate::reload::reloadable(&config.rules) && !options.until_sources_end;
    let rule_files: Vec<std::path::PathBuf> = if reload { config.rules.clone() } else { Vec::new() };
    let reload_requests = (!rule_files.is_empty()).then(|| mpsc::channel::<crate::reload::Request>(8));
    // What the engine's workers did at a reload, back to the reloader.
    let (reloaded_tx, reloaded_rx) = mpsc::unbounded_channel();
    let observer = Arc::new(RunObserver {
        metrics: metrics.clone(),
        sinks: sinks.clone(),
        console: config.output.console,
        ansi: std::io::IsTerminal::is_terminal(&std::io::stdout()),
        file: Mutex::new(JsonLines::open(config.output.alerts_file.as_deref())?),
        events: alert_events.clone(),
    });
    let alerting_settings = AlertingSettings {
        language: config.alerting.language,
        console_url: config.alerting.console_url.clone(),
        group_wait_ms: timing.group_wait_ms,
        max_retry_ms: timing.max_retry_ms,
        // The log replay below emits again what was stored after the checkpoint.
        replayed_from_event: recovered.as_ref().filter(|r| r.found).map(|r| r.event_seq),
    };
    let alerting = Alerting::start(store, Arc::new(duty), registry.clone(), rules.clone(), alerting_settings, observer)
        .await
        .context("starting alerting")?;

    let state = Arc::new(AppState {
        alerting: alerting.handle.clone(),
        metrics,
        watermark: watermark.clone(),
        sources: running.iter().map(|r| SourceInfo { name: r.name, kind: r.kind, health: r.health.clone() }).collect(),
        sinks: sinks.counts(),
        http: Default::default(),
        https: config.http.tls.is_some(),
        readings_total: AtomicU64::new(0),
        dead_letters_total: AtomicU64::new(0),
        sim_clock: AtomicI64::new(i64::MIN),
        watermark_moved: tokio::sync::Notify::new(),
        open_reads: config.http.open_reads,
        logins: Default::default(),
        login_throttle: Default::default(),
        max_silence_ms: timing.max_silence_ms,
        alert_events,
        stopping: tokio::sync::watch::channel(false).0,
        registry: registry.clone(),
        rules: Mutex::new(crate::reload::RulesInForce::new(&rule_files, &rules, now_ms())),
        reload: reload_requests.as_ref().map(|(tx, _)| tx.clone()),
    });
    let dead = Arc::new(DeadLetters {
        file: Mutex::new(DeadLetterFile::open(
            config.output.dead_letter_file.as_deref(),
            DeadLetterLimits {
                max_bytes: config.output.dead_letter_max_mb.max(1) * 1024 * 1024,
                files: config.output.dead_letter_files.max(1),
                rate: config.output.dead_letter_rate.max(1),
            },
        )?),
        state: state.clone(),
        sinks: sinks.clone(),
    });

    // HTTP API.
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {} (set http.listen or --http)", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let limits = crate::http_server::HttpLimits {
        max_connections: config.http.max_connections,
        max_per_address: config.http.max_connections_per_address,
        header_timeout: Duration::from_millis(timing.http_header_ms.max(100) as u64),
        idle_timeout: Duration::from_millis(timing.http_idle_ms.max(100) as u64),
        request_timeout: Duration::from_millis(timing.http_request_ms.max(100) as u64),
    };
    let tls = match &config.http.tls {
        Some(t) => Some(crate::http_server::tls_acceptor(&t.cert, &t.key)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let http = tokio::spawn(crate::http_server::serve(
        listener,
        crate::http::router(state.clone()),
        tls,
        limits,
        state.http.clone(),
        {
            let mut stopping = state.stopping.subscribe();
            async move {
                let _ = stopping.wait_for(|stopping| *stopping).await;
            }
        },
    ));
    tracing::info!(%http_addr, "HTTP API at {scheme}://{http_addr}/api/alerts, console at /console (also /healthz, /metrics)");

    // Rules whose state was discarded cannot resolve their open alerts: say so and close them.
    if let Some(r) = &recovered {
        resolve_discarded(&alerting.handle, &r.discarded).await;
    }

    // Checkpoints: the engine's parts are gathered by the output thread and written here.
    let (jobs_tx, jobs) = mpsc::unbounded_channel();
    let writer = durable.as_ref().map(|d| d.writer(registry.clone(), state.metrics.clone(), jobs));
    let checkpoints = durable.is_some().then(|| (engine.input().workers(), jobs_tx));

    // Engine output: alert events to the alert manager, late readings to dead letters.
    let output_thread = std::thread::Builder::new().name("alerts-out".into()).spawn({
        let output = engine.output().clone();
        let events = alerting.events.clone();
        let dead = dead.clone();
        let registry = registry.clone();
        let versions = RuleVersions::new(rules.clone(), engine.input().workers(), reloaded_tx);
        move || deliver(output, events, &registry, &dead, checkpoints, versions)
    })?;

    // Before any source is read: what the log holds past the checkpoint, as it came.
    let mut recent = Recent::default();
    if let (Some(durable), Some(r)) = (&durable, recovered.as_ref().filter(|r| r.found)) {
        let started = std::time::Instant::now();
        let input = engine.input();
        let (replayed, tail) = tokio::task::block_in_place(|| durable.replay(&registry, r.position, &input))
            .context("replaying the reading log")?;
        state.metrics.readings_replayed.inc_by(replayed.readings);
        state.readings_total.fetch_add(replayed.readings, Ordering::Relaxed);
        if replayed.unknown > 0 {
            tracing::warn!(
                readings = replayed.unknown,
                "logged readings of stations or quantities no longer known were skipped"
            );
        }
        tracing::info!(
            readings = replayed.readings,
            from = r.position,
            to = replayed.end,
            ms = started.elapsed().as_millis() as u64,
            "reading log replayed"
        );
        recent = tail;
    }

    let all_ended = Arc::new(tokio::sync::Notify::new());
    let ingest = tokio::spawn(ingest(
        envelopes,
        router,
        Normaliser::new(registry.clone(), Limits { max_future_ms: timing.max_future_ms }),
        engine.input(),
        watermark.clone(),
        sources,
        state.clone(),
        dead.clone(),
        durable.clone().map(|d| (d, Duration::from_millis(timing.checkpoint_ms.max(100) as u64), recent)),
        DeviceAuth::new(registry.clone(), listener_passwords(&source_configs)),
        sinks.clone(),
        options.until_sources_end.then(|| all_ended.clone()),
    ));
    let progress = (options.progress && !files.is_empty()).then(|| tokio::spawn(crate::replay::progress(files)));

    let ticker = tokio::spawn({
        let watermark = watermark.clone();
        let dead = dead.clone();
        let input = engine.input();
        let state = state.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = state.watermark_moved.notified() => {}
                }
                // Idle sources stop holding event time back; a quiet network moves it with
                // the wall clock, so `for` timers and missing-data rules still fire.
                watermark.tick(now_ms());
                input.repeat_watermark(watermark.get());
                dead.flush();
            }
        }
    });

    let reloader = reload_requests.map(|(_, requests)| {
        let reloader = crate::reload::Reloader {
            files: rule_files.clone(),
            registry: registry.clone(),
            rules: rules.clone(),
            input: engine.input(),
            durable: durable.clone(),
            state: state.clone(),
            engine_reports: reloaded_rx,
        };
        tokio::spawn(reloader.run(rule_sources, requests))
    });

    let simulator = match (options.simulate, broker) {
        (Some(sim), Some((host, port, login))) => {
            Some(tokio::spawn(crate::demo::simulate(host, port, login, registry.clone(), sim, state.clone())))
        }
        _ => None,
    };

    wait_for_stop(options.duration, all_ended.notified()).await;
    tracing::info!("stopping: draining in-flight readings");
    // Whatever happens below (a far end that never answers, a stuck store), the process
    // ends within a bounded time: what is not done by then is redone by the next run
    // (unacknowledged messages, the outbox, the reading log).
    let limit = Duration::from_millis(timing.shutdown_ms.max(1000) as u64);
    std::thread::Builder::new().name("shutdown-watchdog".into()).spawn(move || {
        std::thread::sleep(limit);
        tracing::error!(seconds = limit.as_secs(), "shutdown did not finish in time; exiting now");
        std::process::exit(3);
    })?;

    if let Some(sim) = simulator {
        sim.abort();
    }
    // Stop taking messages; what is not yet acknowledged stays with the broker, and devices
    // on TCP send again what was not answered.
    for source in running {
        source.stop().await;
    }
    let _ = ingest.await;
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await;
    }
    // The ticker holds an engine input too: without it and the ingest task's, the engine's
    // input is closed, and finishing evaluates what is in flight.
    ticker.abort();
    let _ = ticker.await;
    if let Some(reloader) = reloader {
        reloader.abort();
        let _ = reloader.await;
    }
    let engine_done = tokio::task::spawn_blocking(move || engine.finish());
    let _ = engine_done.await;
    let _ = tokio::task::spawn_blocking(move || output_thread.join()).await;
    // The last checkpoint needs the alert manager to confirm what came before it.
    if let Some(writer) = writer {
        let _ = writer.await;
    }
    // Every alert event is out of the engine: store them and send what is waiting.
    alerting.finish().await;
    dead.flush();
    sinks.close(Duration::from_secs(5)).await;
    // The server stops taking connections, and event streams end, so it is not held open.
    state.stopping.send_replace(true);
    let _ = http.await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_stop(duration: Option<Duration>, ended: impl std::future::Future<Output = ()>) {
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = timer => {}
        _ = ended => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[allow(clippy::too_many_arguments)]
async fn ingest(
    mut envelopes: mpsc::Receiver<Envelope>,
    mut router: Router,
    normaliser: Normaliser,
    input: EngineInput,
    watermark: Arc<Watermark>,
    mut sources: Vec<IngestSource>,
    state: Arc<AppState>,
    dead: Arc<DeadLetters>,
    durable: Option<(Arc<Durable>, Duration, Recent)>,
    auth: DeviceAuth,
    sinks: Arc<Sinks>,
    all_ended: Option<Arc<tokio::sync::Notify>>,
) {
    // Envelopes taken per batch at most.
    let mut take = 1024;
    // When a replay's first envelope arrived.
    let mut first_envelope: Option<std::time::Instant> = None;
    // Envelopes of the batch whose device was refused: no protocol answer for them.
    let mut refused: Vec<bool> = Vec::with_capacity(1024);
    let (durable, checkpoint_every, mut recent) = match durable {
        Some((d, every, recent)) => (Some(d), every, recent),
        None => (None, Duration::from_secs(3600), Recent::default()),
    };
    let mut checkpoint_tick = tokio::time::interval(checkpoint_every);
    checkpoint_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    checkpoint_tick.tick().await;
    // Split HJ 212 packets and multi-packet SL 651 frames wait here for their sets.
    let mut reassembler = Reassembler::new(ReassemblyLimits::default());
    let mut gave_up: Vec<Incomplete> = Vec::new();
    let mut expire_tick = tokio::time::interval(Duration::from_secs(1));
    expire_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<Envelope> = Vec::with_capacity(1024);
    let mut readings = Vec::with_capacity(4096);
    // Readings of routes with `reorder = true`: evaluated once the watermark passes them.
    let mut held = Vec::new();
    // Per batch: payloads per source, readings per route, newest event time per source.
    let mut payloads: Vec<(&'static str, u64)> = Vec::new();
    // (source, route, metric label, count): the label is built once per pair, not per message.
    let mut per_route: Vec<(&'static str, String, String, u64)> = Vec::new();
    let mut newest: Vec<(&'static str, i64)> = Vec::new();
    loop {
        let received = tokio::select! {
            n = envelopes.recv_many(&mut batch, take) => n,
            _ = expire_tick.tick(), if reassembler.waiting() > 0 => {
                for set in reassembler.expire(now_ms()) {
                    dead.push(incomplete_letter(&set));
                }
                dead.flush();
                continue;
            }
            _ = checkpoint_tick.tick(), if durable.is_some() => {
                if let Some(d) = &durable {
                    let request = || d.request(&input);
                    let asked = if input.may_block() { tokio::task::block_in_place(request) } else { request() };
                    if asked.is_err() {
                        tracing::error!("rules engine stopped; not acknowledging further messages");
                        return;
                    }
                }
                continue;
            }
        };
        if received == 0 {
            break;
        }
        if all_ended.is_some() && first_envelope.is_none() {
            first_envelope = Some(std::time::Instant::now());
        }
        if batch.len() < 64 {
            // A small batch under a steady stream: let the sources run once more, so that
            // the per-batch costs (engine hand-off, worker wake-ups, metrics) are shared by
            // more readings. Costs microseconds when nothing else is runnable.
            tokio::task::yield_now().await;
            while batch.len() < 1024 {
                match envelopes.try_recv() {
                    Ok(envelope) => batch.push(envelope),
                    Err(_) => break,
                }
            }
        }
        let dead_before = state.dead_letters_total.load(Ordering::Relaxed);
        refused.clear();
        refused.resize(batch.len(), false);
        for (index, envelope) in batch.iter().enumerate() {
            // The payload is kept with the first few of its refusals; one payload refused
            // record by record does not copy itself into every letter.
            let refusals = std::cell::Cell::new(0u32);
            let keep = |reason| {
                let n = refusals.get();
                refusals.set(n + 1);
                let payload: &[u8] = if n < PAYLOAD_COPIES { &envelope.payload } else { b"" };
                DeadLetter::new(envelope.received_at, envelope.source, &envelope.topic, payload, reason)
            };
            if envelope.last {
                if let Some(source) = sources.iter_mut().find(|s| s.name == envelope.source) {
                    source.ended = true;
                    watermark.finish(source.id);
                    tracing::info!(source = source.name, "source ended");
                }
                if envelope.payload.is_empty() {
                    continue;
                }
            }
            add(&mut payloads, envelope.source, 1);
            if let Some((bytes, limit)) = envelope.oversize {
                dead.push(keep(Rejection::TooLarge { bytes, limit }));
                continue;
            }
            if let Some(why) = &envelope.framing_error {
                dead.push(keep(Rejection::Undecodable { message: format!("{}: {why}", envelope.source) }));
                continue;
            }
            let Some(routed) = router.route_envelope(envelope.source, &envelope.topic) else {
                dead.push(keep(Rejection::Unrouted { topic: envelope.topic.clone() }));
                continue;
            };
            let (route, decoder, reorder) = (routed.name, routed.decoder, routed.reorder);
            let into = if reorder { &mut held } else { &mut readings };
            let before = into.len();
            let protocol = match decoder {
                Decoder::Hj212(_) => Some(Protocol::Hj212),
                Decoder::Sl651(_) => Some(Protocol::Sl651),
                _ => None,
            };
            if let Some(p) = protocol.filter(|_| auth.enabled()) {
                // A TCP envelope's topic is the peer's address.
                let peer = envelope.topic.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
                if let Err(reason) = auth.check(p, envelope.source, peer, &envelope.payload) {
                    dead.push(keep(reason));
                    refused[index] = true;
                    continue;
                }
            }
            let offered = match protocol {
                Some(p) => reassembler.offer(p, &envelope.payload, envelope.received_at, &mut gave_up),
                None => Offered::Whole,
            };
            for set in gave_up.drain(..) {
                dead.push(incomplete_letter(&set));
            }
            let payload: &[u8] = match &offered {
                Offered::Whole => &envelope.payload,
                // Every packet of it waits for its set: nothing to decode yet.
                Offered::Replaced(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
                Offered::Replaced(bytes) => bytes,
            };
            if routed.lines {
                for reason in normaliser.decode_lines_into(decoder, payload, envelope.received_at, into) {
                    dead.push(keep(reason));
                }
            } else {
                for reason in normaliser.decode_into(decoder, payload, envelope.received_at, into) {
                    dead.push(keep(reason));
                }
            }
            let accepted = &into[before..];
            if let Some(time) = accepted.iter().map(|r| r.time).max() {
                match newest.iter_mut().find(|(s, _)| *s == envelope.source) {
                    Some((_, t)) => *t = (*t).max(time),
                    None => newest.push((envelope.source, time)),
                }
            }
            let n = accepted.len() as u64;
            match per_route.iter_mut().find(|(s, r, _, _)| *s == envelope.source && r == route) {
                Some((_, _, _, count)) => *count += n,
                None => {
                    let label = if route == envelope.source {
                        route.to_owned()
                    } else {
                        format!("{}/{route}", envelope.source)
                    };
                    per_route.push((envelope.source, route.to_owned(), label, n));
                }
            }
        }
        if state.dead_letters_total.load(Ordering::Relaxed) != dead_before {
            dead.flush();
        }
        let metrics = &state.metrics;
        for (source, n) in payloads.drain(..) {
            metrics.payloads_in.get_or_create(&SourceLabels { source: source.to_owned() }).inc_by(n);
        }
        for (_, _, label, n) in per_route.iter_mut() {
            metrics.readings_in.get_or_create(&SourceLabels { source: label.clone() }).inc_by(*n);
            *n = 0;
        }
        let repeats = recent.drop_repeats(&mut readings) + recent.drop_repeats(&mut held);
        if repeats > 0 {
            state.metrics.readings_duplicate.inc_by(repeats as u64);
        }
        state.readings_total.fetch_add((readings.len() + held.len()) as u64, Ordering::Relaxed);
        if sinks.wants_readings() {
            sinks.readings(&readings);
            sinks.readings(&held);
            sinks.flush();
        }
        // Logged before they are acknowledged: a restart replays what the last checkpoint
        // does not cover. A log that cannot be written stops acknowledging (the sources
        // keep or resend the rest).
        if let Some(d) = &durable {
            let logged = d.append(&readings, false).and_then(|()| d.append(&held, true));
            if let Err(e) = logged {
                tracing::error!(error = %e, "cannot write the reading log; not acknowledging further messages");
                return;
            }
        }
        tracing::trace!(envelopes = batch.len(), readings = readings.len(), "handing a batch to the engine");
        // Envelopes of many readings (recorded files) come fewer to a batch: a batch stays
        // within a few MB instead of reallocating (and page-faulting) tens of MB each time.
        take = if readings.len() > 65_536 { (take / 2).max(8) } else { (take * 2).min(1024) };
        let handed = std::mem::replace(&mut readings, Vec::with_capacity(4096));
        let handed_held = std::mem::take(&mut held);
        let send = || input.send(handed).and_then(|()| input.send_held(handed_held));
        // A full engine channel blocks here: back-pressure reaches the sources, which hold
        // (broker) or resend (devices) what we have not acknowledged.
        let sent = if input.may_block() { tokio::task::block_in_place(send) } else { send() };
        if sent.is_err() {
            tracing::error!("rules engine stopped; not acknowledging further messages");
            return;
        }
        let now = now_ms();
        for (source, time) in newest.drain(..) {
            if let Some(s) = sources.iter().find(|s| s.name == source) {
                watermark.observe(s.id, time, now);
            }
        }
        // Behind the batch, in the same channels: the engine never promises a time before
        // it has taken the readings sent before that promise.
        input.advance(watermark.get());
        // Acknowledge only now that the readings are handed on: MQTT acks in arrival order,
        // protocol answers back on their connections.
        for (envelope, refused) in batch.drain(..).zip(&refused) {
            // A device that did not prove who it is gets no answer.
            if *refused && envelope.ack.is_reply() {
                continue;
            }
            envelope.ack.send().await;
        }
        // A replay is over when every source has ended: the input is complete, and every
        // timer up to the newest reading is due now.
        if let Some(ended) = &all_ended {
            let first = first_envelope.unwrap_or_else(std::time::Instant::now);
            if sources.iter().all(|s| s.finite && s.ended) {
                let readings = state.readings_total.load(Ordering::Relaxed);
                let seconds = first.elapsed().as_secs_f64();
                tracing::info!(
                    readings,
                    seconds = format!("{seconds:.3}"),
                    per_second = format!("{:.0}", readings as f64 / seconds.max(1e-9)),
                    dead_letters = state.dead_letters_total.load(Ordering::Relaxed),
                    "replay finished: every reading handed to the engine"
                );
                input.advance(watermark.complete());
                ended.notify_one();
                break;
            }
        }
    }
    // The sources have stopped: checkpoint everything handed over, and keep pending timers
    // pending (the next run picks them up) rather than firing them early.
    if let Some(d) = &durable {
        d.settle(Duration::from_secs(10)).await;
        input.keep_pending_on_close();
        let request = || d.request(&input);
        if tokio::task::block_in_place(request).is_err() {
            tracing::error!("rules engine stopped before the last checkpoint");
        }
    }
}

/// A source as the ingest task tracks it.
struct IngestSource {
    name: &'static str,
    id: SourceId,
    /// It ends by itself (a file).
    finite: bool,
    ended: bool,
}

/// The listeners' own device passwords (for stations without one in the registry).
fn listener_passwords(sources: &[crate::sources::SourceConfig]) -> std::collections::HashMap<String, String> {
    use crate::sources::SourceConfig;
    sources
        .iter()
        .filter_map(|s| match s {
            SourceConfig::Hj212Tcp(l) | SourceConfig::Sl651Tcp(l) => Some((l.name.clone(), l.password.clone()?)),
            _ => None,
        })
        .collect()
}

/// The first start on an alert store makes an admin: with the password in
/// `TIDEWATCH_ADMIN_PASSWORD`, or a generated one printed once (on the terminal, not in
/// the log).
async fn first_admin(store: &Store) -> anyhow::Result<()> {
    if store.user_count().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match std::env::var("TIDEWATCH_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (tidewatch_alerting::users::random_secret(""), true),
    };
    store.put_user("admin", tidewatch_alerting::users::Role::Admin, Some(&password), now_ms()).await?;
    if generated {
        eprintln!(
            "\nCreated user \"admin\" with password {password}\n(shown once; add users and tokens with `tidewatch users`)\n"
        );
    }
    tracing::info!("created the first user, admin");
    Ok(())
}

/// Resolves the open alerts of rules whose state a restart discarded: nothing else could.
async fn resolve_discarded(alerting: &AlertingHandle, rules: &[String]) {
    for rule in rules {
        let query =
            tidewatch_alerting::store::AlertQuery { rule: Some(rule.clone()), limit: 100_000, ..Default::default() };
        let open = match alerting.store.alerts(&query).await {
            Ok(open) => open,
            Err(e) => {
                tracing::error!(error = %e, rule, "cannot read the open alerts of a changed rule");
                continue;
            }
        };
        let note = format!(
            "rule {rule} changed (or was removed) between runs: its state was discarded, and the alert fires again if its condition still holds"
        );
        tracing::warn!(
            rule,
            alerts = open.len(),
            "rule changed between runs: its state is discarded and its open alerts resolved"
        );
        for alert in open {
            if let Err(e) = alerting.resolve(alert.id, "tidewatch".into(), Some(note.clone())).await {
                tracing::warn!(error = %e, alert = alert.id, "cannot resolve an alert of a changed rule");
            }
        }
    }
}

/// Dead letters of one payload that carry a copy of it; the rest say only why.
const PAYLOAD_COPIES: u32 = 3;

/// A set of split packets given up: a dead letter with the parts it had.
fn incomplete_letter(set: &Incomplete) -> DeadLetter {
    let source = match set.protocol {
        Protocol::Hj212 => "hj212",
        Protocol::Sl651 => "sl651",
    };
    DeadLetter::new(now_ms(), source, &set.station, &set.parts, Rejection::Incomplete { message: set.message() })
}

fn add(counts: &mut Vec<(&'static str, u64)>, key: &'static str, n: u64) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, c)) => *c += n,
        None => counts.push((key, n)),
    }
}

/// What the engine's output thread keeps of rule reloads: the rules each worker evaluates
/// with (its checkpoint parts are named by them), those the alert manager knows, and the
/// tally of a reload under way.
struct RuleVersions {
    workers: Vec<Arc<RuleSet>>,
    manager: Arc<RuleSet>,
    taken: usize,
    report: tidewatch_rules::eval::Reloaded,
    /// (rule set, what every worker did) back to the reloader.
    reports: mpsc::UnboundedSender<(Arc<RuleSet>, tidewatch_rules::eval::Reloaded)>,
}

impl RuleVersions {
    fn new(
        rules: Arc<RuleSet>,
        workers: usize,
        reports: mpsc::UnboundedSender<(Arc<RuleSet>, tidewatch_rules::eval::Reloaded)>,
    ) -> RuleVersions {
        RuleVersions {
            workers: vec![rules.clone(); workers],
            manager: rules,
            taken: 0,
            report: Default::default(),
            reports,
        }
    }

    /// `worker` has taken `rules`.
    fn taken(
        &mut self,
        worker: usize,
        done: tidewatch_rules::eval::Reloaded,
        rules: Arc<RuleSet>,
        alerts: &EventSender,
    ) {
        // The first worker to take new rules may emit their events next: the manager
        // learns them first.
        if !Arc::ptr_eq(&self.manager, &rules) {
            alerts.rules(rules.clone());
            self.manager = rules.clone();
            (self.taken, self.report) = (0, Default::default());
        }
        self.workers[worker] = rules;
        self.taken += 1;
        self.report += done;
        if self.taken == self.workers.len() {
            // Nobody listens when the rules are not reloaded from files.
            let _ = self.reports.send((self.manager.clone(), self.report));
        }
    }
}

fn deliver(
    output: crossbeam_channel::Receiver<EngineOutput>,
    alerts: EventSender,
    registry: &Registry,
    dead: &DeadLetters,
    checkpoints: Option<(usize, mpsc::UnboundedSender<CheckpointJob>)>,
    mut versions: RuleVersions,
) {
    let mut parts = Parts::default();
    for out in output.iter() {
        match out {
            EngineOutput::Checkpoint { position, part, worker } => {
                let Some((workers, jobs)) = &checkpoints else { continue };
                if let Some(job) = parts.add(position, *part, &versions.workers[worker], *workers, &alerts) {
                    let _ = jobs.send(job);
                }
            }
            EngineOutput::Reloaded { worker, done, rules } => versions.taken(worker, done, rules, &alerts),
            EngineOutput::Alert(event) => {
                tracing::trace!(rule = %event.rule, key = %event.key, "alert event out of the engine");
                if !alerts.send(event) {
                    tracing::error!("the alert manager has stopped; an alert event is lost");
                }
            }
            EngineOutput::Late { reading, decided_until } => {
                let station = &registry.station(reading.sensor.station).id;
                let quantity = reading.sensor.quantity;
                let payload = serde_json::json!({"station": station, "quantity": quantity.name(), "value": reading.value, "time": reading.time});
                let reason = Rejection::Late {
                    station: station.clone(),
                    quantity,
                    time: to_rfc3339(reading.time),
                    decided_until: to_rfc3339(decided_until),
                };
                dead.push(DeadLetter::new(now_ms(), "engine", "", payload.to_string().as_bytes(), reason));
                if output.is_empty() {
                    dead.flush();
                }
            }
        }
    }
}

//! The alert manager: one task that owns the board of open alerts.
//!
//! ```text
//!  engine ─AlertEvent─▶ (unbounded) ─┐
//!  HTTP API ─Command──▶ (bounded) ───┼─▶ manager: lifecycle → routing → silences/inhibition
//!  1 s tick: escalations ────────────┘        │ one transaction per batch:
//!                                             ▼ alerts, history, outbox rows
//!                                          store ──▶ dispatcher (grouping, rate limits, retries)
//! ```
//!
//! The engine's events arrive on an unbounded channel, so a burst of alerts never blocks the
//! dataflow; they are applied in batches, each batch one transaction. Changes are committed
//! before anybody hears of them: people's actions are answered, and notifications sent, only
//! once stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tidewatch_ingest::{time::to_rfc3339, Registry};
use tidewatch_rules::{AlertEvent, RuleSet};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::duty::{Duty, Team};
use crate::lifecycle::{ActionError, Alert, AlertBoard, AlertState, Happening, HistoryEntry, Notice, Update};
use crate::message::Language;
use crate::policy::Silence;
use crate::store::{Changes, NextIds, OutboxRow, Store, StoreError, StoredAlert};

/// How notifications are composed and paced.
#[derive(Clone, Debug)]
pub struct AlertingSettings {
    pub language: Language,
    /// Base URL of the console, for links in messages.
    pub console_url: Option<String>,
    /// Notices of one rule and region within this time go out as one message (ms).
    pub group_wait_ms: i64,
    /// Longest wait between retries of a failed notification (ms).
    pub max_retry_ms: i64,
    /// After a restart that replays readings: engine transitions stored from this alert-event
    /// sequence number on may come again, and those already stored are dropped.
    pub replayed_from_event: Option<i64>,
}

impl Default for AlertingSettings {
    fn default() -> Self {
        AlertingSettings {
            language: Language::Zh,
            console_url: None,
            group_wait_ms: 10_000,
            max_retry_ms: 300_000,
            replayed_from_event: None,
        }
    }
}

/// What the manager reports as it goes (the binary logs, prints and counts it).
pub trait Observer: Send + Sync + 'static {
    /// Something happened to an alert (reported once its batch has been written).
    fn notice(&self, notice: &Notice);
    /// Open alerts per colour, after each batch: the place to flush what `notice` wrote.
    fn open_counts(&self, counts: [usize; 4]);
    /// A notification was held back.
    fn suppressed(&self, alert_id: i64, reason: &str);
    /// A message went out on a channel, carrying `notifications` outbox rows.
    fn delivered(&self, channel: &str, notifications: usize);
    /// A message failed on a channel (it will be retried).
    fn failed(&self, channel: &str, error: &str);
}

/// A silence as people ask for it.
#[derive(Clone, Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub station: Option<String>,
    /// Rule id; `*` matches any run of characters.
    pub rule: Option<String>,
    /// Region code (`330700` includes its counties).
    pub region: Option<String>,
    /// RFC 3339; default now.
    pub starts_at: Option<String>,
    /// RFC 3339.
    pub ends_at: String,
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error("{0}")]
    Invalid(String),
    #[error("no silence {0}")]
    NoSuchSilence(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the alert manager has stopped")]
    Stopped,
}

enum Command {
    Acknowledge { id: i64, by: String, note: Option<String>, reply: oneshot::Sender<Result<Alert, CommandError>> },
    Resolve { id: i64, by: String, note: Option<String>, reply: oneshot::Sender<Result<Alert, CommandError>> },
    Silence { new: NewSilence, reply: oneshot::Sender<Result<Silence, CommandError>> },
    Unsilence { id: i64, reply: oneshot::Sender<Result<(), CommandError>> },
}

/// What the engine side hands the manager, in order.
enum Input {
    Event(AlertEvent),
    /// Answered with the next alert-event sequence number once everything sent before is
    /// stored.
    Barrier(oneshot::Sender<i64>),
    /// The rules were reloaded: events from here on may come from the new ones.
    Rules(Arc<RuleSet>),
}

/// Hands the engine's events to the manager; never blocks. The manager stops once every
/// clone is dropped and what they sent is stored.
#[derive(Clone)]
pub struct EventSender(mpsc::UnboundedSender<Input>);

impl EventSender {
    /// False once the manager has stopped.
    pub fn send(&self, event: AlertEvent) -> bool {
        self.0.send(Input::Event(event)).is_ok()
    }

    /// The rules were reloaded: call before sending the first event of the new rules.
    pub fn rules(&self, rules: Arc<RuleSet>) -> bool {
        self.0.send(Input::Rules(rules)).is_ok()
    }

    /// Resolves once every event sent before this call is stored, with the sequence number
    /// the first event sent after it gets (a checkpoint records it: transitions from it on
    /// may be replayed after a crash). Dropped if the manager has stopped.
    pub fn barrier(&self) -> oneshot::Receiver<i64> {
        let (tx, rx) = oneshot::channel();
        let _ = self.0.send(Input::Barrier(tx));
        rx
    }
}

/// How people (the HTTP API) talk to the manager.
#[derive(Clone)]
pub struct AlertingHandle {
    commands: mpsc::Sender<Command>,
    pub store: Store,
    pub duty: Arc<Duty>,
}

impl AlertingHandle {
    pub async fn acknowledge(&self, id: i64, by: String, note: Option<String>) -> Result<Alert, CommandError> {
        self.ask(|reply| Command::Acknowledge { id, by, note, reply }).await
    }

    pub async fn resolve(&self, id: i64, by: String, note: Option<String>) -> Result<Alert, CommandError> {
        self.ask(|reply| Command::Resolve { id, by, note, reply }).await
    }

    pub async fn silence(&self, new: NewSilence) -> Result<Silence, CommandError> {
        self.ask(|reply| Command::Silence { new, reply }).await
    }

    pub async fn unsilence(&self, id: i64) -> Result<(), CommandError> {
        self.ask(|reply| Command::Unsilence { id, reply }).await
    }

    /// Silences in force or to come: the API's and the duty file's maintenance windows.
    pub async fn silences(&self, now: i64) -> Result<Vec<Silence>, StoreError> {
        let mut all: Vec<Silence> = self.duty.maintenance.iter().filter(|s| s.ends_ms > now).cloned().collect();
        all.extend(self.store.silences(now).await?);
        Ok(all)
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, CommandError>>) -> Command,
    ) -> Result<T, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| CommandError::Stopped)?;
        answer.await.map_err(|_| CommandError::Stopped)?
    }
}

/// The running manager and dispatcher.
pub struct Alerting {
    pub handle: AlertingHandle,
    pub events: EventSender,
    manager: tokio::task::JoinHandle<()>,
    dispatcher: tokio::task::JoinHandle<()>,
    stop_dispatcher: tokio::sync::watch::Sender<bool>,
}

impl Alerting {
    /// Restores open alerts from the store and starts the manager and the dispatcher.
    pub async fn start(
        store: Store,
        duty: Arc<Duty>,
        registry: Arc<Registry>,
        rules: Arc<RuleSet>,
        settings: AlertingSettings,
        observer: Arc<dyn Observer>,
    ) -> Result<Alerting, crate::StartError> {
        let ids = store.next_ids().await?;
        let mut board = AlertBoard::new(registry, rules, ids.alert);
        let open = store.open_alerts().await?;
        let escalations = open.iter().filter_map(|s| Some((s.alert.id, s.next_escalation_at?))).collect();
        let restored = open.len();
        board.restore(open.into_iter().map(|s| s.alert));
        if let Some(seq) = settings.replayed_from_event {
            let stored = store.transitions_since(seq).await?;
            tracing::info!(
                transitions = stored.len(),
                "transitions stored since the checkpoint: a replay will not repeat them"
            );
            board.expect_replay(stored);
        }
        if restored > 0 {
            tracing::info!(open = restored, "open alerts restored from the store");
        }
        let now = now_ms();
        let mut silences = duty.maintenance.clone();
        silences.extend(store.silences(now).await?);
        let wake = Arc::new(Notify::new());
        let dispatcher = crate::dispatch::Dispatcher::new(
            store.clone(),
            duty.clone(),
            settings.clone(),
            observer.clone(),
            wake.clone(),
        )?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands_tx, commands) = mpsc::channel(64);
        let manager = Manager {
            board,
            store: store.clone(),
            duty: duty.clone(),
            settings,
            silences,
            escalations,
            ids,
            observer,
            notices: Vec::new(),
            wake,
        };
        manager.observer.open_counts(manager.board.counts());
        let (stop_dispatcher, stopped) = tokio::sync::watch::channel(false);
        Ok(Alerting {
            handle: AlertingHandle { commands: commands_tx, store, duty },
            events: EventSender(events_tx),
            manager: tokio::spawn(manager.run(events, commands)),
            dispatcher: tokio::spawn(dispatcher.run(stopped)),
            stop_dispatcher,
        })
    }

    /// Waits until every engine event handed on so far is stored (clones of `events` must
    /// be dropped first), then lets the dispatcher send what is waiting and stops it.
    pub async fn finish(self) {
        let Alerting { handle, events, manager, dispatcher, stop_dispatcher } = self;
        drop((handle, events));
        let _ = manager.await;
        let _ = stop_dispatcher.send(true);
        let _ = dispatcher.await;
    }
}

struct Manager {
    board: AlertBoard,
    store: Store,
    duty: Arc<Duty>,
    settings: AlertingSettings,
    silences: Vec<Silence>,
    /// Open, unacknowledged alerts → wall-clock time they climb the roster.
    escalations: HashMap<i64, i64>,
    ids: NextIds,
    observer: Arc<dyn Observer>,
    /// Notices of the batch being written, reported once it is.
    notices: Vec<Notice>,
    wake: Arc<Notify>,
}

impl Manager {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Input>, mut commands: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(4096);
        let mut barriers = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut commands_open = true;
        loop {
            let mut changes = Changes::default();
            tokio::select! {
                biased;
                command = commands.recv(), if commands_open => match command {
                    Some(command) => {
                        self.command(command).await;
                        continue;
                    }
                    None => commands_open = false,
                },
                n = events.recv_many(&mut batch, 4096) => {
                    if n == 0 {
                        break;
                    }
                    let now = now_ms();
                    for input in batch.drain(..) {
                        match input {
                            Input::Event(event) => {
                                if let Some(update) = self.board.apply(&event, now) {
                                    self.record(update, now, &mut changes);
                                }
                            }
                            // The sequence number where the barrier stands: events after
                            // it in this batch are numbered after it.
                            Input::Barrier(reply) => barriers.push((reply, self.ids.event)),
                            Input::Rules(rules) => self.board.set_rules(rules),
                        }
                    }
                }
                _ = tick.tick() => self.escalate(now_ms(), &mut changes),
            }
            match self.commit(&changes).await {
                Ok(()) => {
                    for (reply, seq) in barriers.drain(..) {
                        let _ = reply.send(seq);
                    }
                }
                Err(e) => {
                    // Keep going: the alert is still open in memory and the next change of
                    // it is written whole. What this batch would have notified is lost; say
                    // so. A checkpoint waiting on this batch is not written.
                    tracing::error!(error = %e, "alert changes not stored; their notifications are lost");
                    barriers.clear();
                }
            }
        }
        tracing::debug!("alert manager stopped");
    }

    async fn commit(&mut self, changes: &Changes) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tries = 0;
        tracing::trace!(outbox = changes.outbox.len(), "committing alert changes");
        let stored = loop {
            match self.store.commit(changes).await {
                Ok(()) => break Ok(()),
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %e, tries, "storing alert changes failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(e) => break Err(e),
            }
        };
        // The console and the alerts file show what happened even if storing it failed.
        for notice in self.notices.drain(..) {
            self.observer.notice(&notice);
        }
        self.observer.open_counts(self.board.counts());
        tracing::trace!(ok = stored.is_ok(), "alert changes committed");
        if stored.is_ok() && !changes.outbox.is_empty() {
            self.wake.notify_one();
        }
        stored
    }

    async fn command(&mut self, command: Command) {
        let now = now_ms();
        match command {
            Command::Acknowledge { id, by, note, reply } => {
                let result = self.board.acknowledge(id, &by, note.as_deref(), now);
                let result = self.person(result, now).await;
                let _ = reply.send(result);
            }
            Command::Resolve { id, by, note, reply } => {
                let result = self.board.resolve(id, &by, note.as_deref(), now);
                let result = self.person(result, now).await;
                let _ = reply.send(result);
            }
            Command::Silence { new, reply } => {
                let _ = reply.send(self.add_silence(new, now).await);
            }
            Command::Unsilence { id, reply } => {
                let _ = reply.send(self.end_silence(id, now).await);
            }
        }
    }

    async fn add_silence(&mut self, new: NewSilence, now: i64) -> Result<Silence, CommandError> {
        let silence = self.new_silence(new, now)?;
        let changes = Changes { silences: vec![silence.clone()], ..Changes::default() };
        self.commit(&changes).await?;
        self.silences.push(silence.clone());
        Ok(silence)
    }

    async fn end_silence(&mut self, id: i64, now: i64) -> Result<(), CommandError> {
        let i = self
            .silences
            .iter()
            .position(|s| s.id == id && s.source == "api")
            .ok_or(CommandError::NoSuchSilence(id))?;
        let changes = Changes { deleted_silences: vec![(id, now)], ..Changes::default() };
        self.commit(&changes).await?;
        self.silences.remove(i);
        Ok(())
    }

    /// Stores a person's action and answers with the alert as it now is.
    async fn person(&mut self, result: Result<Update, ActionError>, now: i64) -> Result<Alert, CommandError> {
        let update = result?;
        let alert = update.alert.clone();
        let mut changes = Changes::default();
        self.record(update, now, &mut changes);
        self.commit(&changes).await?;
        Ok(alert)
    }

    fn new_silence(&mut self, new: NewSilence, now: i64) -> Result<Silence, CommandError> {
        let invalid = |m: String| Err(CommandError::Invalid(m));
        if new.created_by.trim().is_empty() {
            return invalid("created_by must not be empty".into());
        }
        if new.station.is_none() && new.rule.is_none() && new.region.is_none() {
            return invalid("name a station, rule or region to silence".into());
        }
        let time = |field: &str, t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.timestamp_millis())
                .map_err(|e| CommandError::Invalid(format!("{field} {t:?} is not an RFC 3339 time: {e}")))
        };
        let starts_ms = match &new.starts_at {
            Some(t) => time("starts_at", t)?,
            None => now,
        };
        let ends_ms = time("ends_at", &new.ends_at)?;
        if ends_ms <= starts_ms.max(now) {
            return invalid("ends_at must be in the future and after starts_at".into());
        }
        let id = self.ids.silence;
        self.ids.silence += 1;
        Ok(Silence {
            id,
            station: new.station,
            rule: new.rule,
            region: new.region,
            starts_at: to_rfc3339(starts_ms),
            ends_at: to_rfc3339(ends_ms),
            created_by: new.created_by,
            comment: new.comment,
            source: "api".into(),
            starts_ms,
            ends_ms,
        })
    }

    /// Unacknowledged alerts whose time is up climb one level (repeating at the top).
    fn escalate(&mut self, now: i64, changes: &mut Changes) {
        let due: Vec<i64> = self.escalations.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect();
        for id in due {
            let Some(alert) = self.board.get(id).filter(|a| a.state == AlertState::Firing) else {
                self.escalations.remove(&id);
                continue;
            };
            let wait = self.duty.ack_within_ms(alert.severity);
            if self.silences.iter().any(|s| s.silences(alert, now)) {
                // Silenced alerts do not climb; they are looked at again later.
                self.escalations.insert(id, now.saturating_add(wait));
                continue;
            }
            let level = (alert.escalation_level + 1).min(self.duty.max_level(self.team(alert)));
            if let Some(update) = self.board.remind(id, level, now) {
                self.record(update, now, changes);
            }
        }
    }

    fn team(&self, alert: &Alert) -> Option<&Team> {
        match &alert.team {
            Some(id) => self.duty.team(id),
            None => self.duty.team_for(&alert.subject.region, &alert.subject.domain),
        }
    }

    /// Turns an update into rows: the alert, its history entry and its notifications.
    fn record(&mut self, update: Update, now: i64, changes: &mut Changes) {
        let Update { mut alert, entry, notice } = update;
        let happening = entry.happening;
        if alert.team.is_none() {
            if let Some(team) = self.duty.team_for(&alert.subject.region, &alert.subject.domain) {
                let id = team.id.clone();
                self.board.set_team(alert.id, &id);
                alert.team = Some(id);
            }
        }
        let wait = self.duty.ack_within_ms(alert.severity);
        let has_team = alert.team.is_some();
        match happening {
            // Without a duty team there is nobody to escalate to.
            Happening::Fire | Happening::Reminder if has_team => {
                self.escalations.insert(alert.id, now.saturating_add(wait));
            }
            Happening::Escalate if alert.state == AlertState::Firing && has_team => {
                // A more severe colour may not wait longer than its own limit.
                let at = self.escalations.entry(alert.id).or_insert(i64::MAX);
                *at = (*at).min(now.saturating_add(wait));
            }
            Happening::Acknowledge | Happening::Resolve | Happening::ManualResolve => {
                self.escalations.remove(&alert.id);
            }
            _ => {}
        }
        self.push_event(alert.id, entry, now, changes);

        match self.suppression(&alert, now) {
            Some(reason) => {
                self.observer.suppressed(alert.id, &reason);
                let held = HistoryEntry {
                    happening: Happening::Suppressed,
                    at: to_rfc3339(now),
                    severity: alert.severity,
                    event_time: None,
                    value: None,
                    threshold: None,
                    actor: None,
                    note: Some(format!("{} notification held back: {reason}", happening.name())),
                };
                self.push_event(alert.id, held, now, changes);
            }
            None => {
                let team = self.team(&alert);
                let group_key = format!("{}|{}", alert.rule, alert.subject.region);
                // A person's action is news at once; rule changes wait for their group.
                let due = match happening {
                    Happening::Acknowledge | Happening::ManualResolve => now,
                    _ => now + self.settings.group_wait_ms,
                };
                for delivery in self.duty.deliveries(team, &alert, happening, now) {
                    let id = self.ids.outbox;
                    self.ids.outbox += 1;
                    changes.outbox.push(OutboxRow {
                        id,
                        alert_id: alert.id,
                        channel: delivery.channel,
                        group_key: group_key.clone(),
                        recipients: delivery.members,
                        happening,
                        notice: notice.clone(),
                        created_at: now,
                        due_at: due,
                        attempts: 0,
                    });
                }
            }
        }
        let next_escalation_at = self.escalations.get(&alert.id).copied();
        changes.alerts.push(StoredAlert { alert, next_escalation_at, changed_at: now });
        self.notices.push(notice);
    }

    fn push_event(&mut self, alert_id: i64, entry: HistoryEntry, now: i64, changes: &mut Changes) {
        let seq = self.ids.event;
        self.ids.event += 1;
        changes.events.push((seq, alert_id, entry, now));
    }

    /// Why notifications about `alert` are held back at `now`, if they are.
    fn suppression(&self, alert: &Alert, now: i64) -> Option<String> {
        if let Some(s) = self.silences.iter().find(|s| s.silences(alert, now)) {
            let what = if s.source == "config" { "maintenance window" } else { "silence" };
            return Some(format!("{what} {} by {} until {} ({})", s.id, s.created_by, s.ends_at, s.comment));
        }
        self.duty
            .file
            .inhibit
            .iter()
            .find_map(|rule| rule.inhibitor(alert, self.board.open()))
            .map(|source| format!("inhibited by open alert {source}"))
    }
}

/// Milliseconds since the epoch, wall clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

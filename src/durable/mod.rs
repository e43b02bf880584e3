//! Crash safety: what lets a restart neither lose nor invent an alert transition.
//!
//! ```text
//!  ingest ── batch ──▶ reading log (write; fsync with sync = "full") ──▶ engine ──▶ ack to source
//!                                                                         │ every checkpoint_interval:
//!  state.db ◀── changed rule states ◀── checkpoint writer ◀── parts ──────┘ (behind the batches)
//!     │          + log position           waits until the alert store holds every
//!     │          + alert-event seq        transition before the checkpoint
//!  start-up: restore rule state → replay the log from the checkpoint's position → sources
//! ```
//!
//! A reading is acknowledged (MQTT PUBACK, protocol answer) once it is in the reading log,
//! before it is evaluated: the log, not the engine, is what makes it safe, so evaluation
//! never waits for a disk. A checkpoint records which log position its rule state covers;
//! after a crash the state is restored and the log replayed from there. Transitions the
//! replay emits again were stored after the checkpoint: the alert manager drops them by
//! their identity (rule, key, event time), so nobody is told twice.

pub mod log;
pub mod state;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustc_hash::FxHashSet;
use tidewatch_ingest::{Reading, Registry, SensorKey};
use tidewatch_rules::eval::{CheckpointPart, StateRow};
use tidewatch_rules::{EngineInput, EngineStopped, Restore, RuleSet};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{Metrics, OutcomeLabels};
use log::{LogError, ReadingLog, Replayed};
use state::{Checkpoint, StateStore};

/// Readings of the log's tail remembered to recognise a source's redelivery after a restart.
const RECENT: usize = 65_536;

/// The reading log and the checkpoints of one run.
pub struct Durable {
    dir: std::path::PathBuf,
    log: Arc<Mutex<ReadingLog>>,
    store: StateStore,
    /// A checkpoint was asked for and is not written yet: the next waits.
    in_flight: Arc<AtomicBool>,
    /// The last checkpoint was lost after the engine had cleared its changed marks: the
    /// next one takes every state.
    full_next: Arc<AtomicBool>,
    requested_at: Arc<Mutex<Option<Instant>>>,
}

/// What start-up found.
pub struct Recovered {
    /// Rule state for the engine.
    pub restore: Restore,
    /// Where the log replay starts.
    pub position: u64,
    /// Alert-event sequence number of the checkpoint (transitions from it on may repeat).
    pub event_seq: i64,
    /// Rules whose state was discarded (changed or gone since the checkpoint).
    pub discarded: Vec<String>,
    /// Whether a checkpoint was found at all.
    pub found: bool,
}

impl Durable {
    /// Opens `dir`'s checkpoint store and reading log and reads the last checkpoint.
    pub async fn open(
        dir: &Path,
        full_sync: bool,
        rules: &RuleSet,
        registry: &Arc<Registry>,
    ) -> anyhow::Result<(Durable, Recovered)> {
        let store = StateStore::open(dir, full_sync).await?;
        let loaded = store.load(rules, registry).await?;
        let log = ReadingLog::open(&dir.join("log"), registry.clone(), full_sync)?;
        let recovered = match loaded {
            Some(l) => {
                let (rows, bytes) = store.size().await?;
                tracing::info!(
                    written_at = %tidewatch_ingest::time::to_rfc3339(l.written_at),
                    rows,
                    bytes,
                    log_position = l.position,
                    "last checkpoint found"
                );
                if l.unknown > 0 {
                    tracing::warn!(
                        rows = l.unknown,
                        "rule states of stations or quantities no longer known were dropped"
                    );
                }
                Recovered {
                    restore: l.restore,
                    position: l.position,
                    event_seq: l.event_seq,
                    discarded: l.discarded,
                    found: true,
                }
            }
            None => Recovered {
                restore: Restore::default(),
                position: 0,
                event_seq: 0,
                discarded: Vec::new(),
                found: false,
            },
        };
        let durable = Durable {
            dir: dir.to_owned(),
            log: Arc::new(Mutex::new(log)),
            store,
            in_flight: Arc::new(AtomicBool::new(false)),
            full_next: Arc::new(AtomicBool::new(false)),
            requested_at: Arc::new(Mutex::new(None)),
        };
        Ok((durable, recovered))
    }

    /// The first start on this state directory: an empty checkpoint at the log's current
    /// position, with the alert store's next event sequence number, so that a crash before
    /// the first periodic checkpoint replays this run's log and nothing older.
    pub async fn first_checkpoint(&self, event_seq: i64) -> anyhow::Result<()> {
        let position = self.log.lock().unwrap_or_else(|e| e.into_inner()).position();
        let checkpoint =
            Checkpoint { position, event_seq, full: true, rows: Vec::new(), held: Vec::new(), rules: None };
        self.store.write(&checkpoint, tidewatch_connectors::envelope::now_ms()).await?;
        Ok(())
    }

    /// Hands the log from `from` on to the engine, as the batches were first handed over;
    /// returns what was replayed and the readings of the log's tail (to recognise a
    /// source delivering them again).
    pub fn replay(&self, registry: &Registry, from: u64, input: &EngineInput) -> Result<(Replayed, Recent), LogError> {
        let mut tail: std::collections::VecDeque<(SensorKey, i64)> = std::collections::VecDeque::new();
        let mut stopped = false;
        let mut each = |batch: &[Reading], held: bool, replay: bool| {
            for r in batch {
                if tail.len() == RECENT {
                    tail.pop_front();
                }
                tail.push_back((r.sensor, r.time));
            }
            if replay && !stopped {
                let sent = if held { input.send_held(batch.to_vec()) } else { input.send(batch.to_vec()) };
                stopped = sent.is_err();
            }
        };
        let replayed = log::replay_with_tail(&self.dir.join("log"), registry, from, &mut each)?;
        Ok((replayed, Recent { keys: tail.into_iter().collect(), until: Instant::now() + RECENT_FOR }))
    }

    /// Writes a batch before it is acknowledged.
    pub fn append(&self, readings: &[Reading], held: bool) -> Result<(), LogError> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).append(readings, held)
    }

    /// The rules were reloaded: the next checkpoint takes every state (their indices
    /// changed) and records the new rules.
    pub fn rules_reloaded(&self) {
        self.full_next.store(true, Ordering::Release);
    }

    /// Asks the engine for a checkpoint at the log's current position, unless one is in
    /// flight. Call from the task that appends, so the position and the channels agree.
    pub fn request(&self, input: &EngineInput) -> Result<bool, EngineStopped> {
        let mut requested_at = self.requested_at.lock().unwrap_or_else(|e| e.into_inner());
        if self.in_flight.swap(true, Ordering::AcqRel) {
            // One at a time; but a checkpoint that never completes must not stop the next
            // ones (which then take every state, as the lost one's changes are unknown).
            if requested_at.is_none_or(|at| at.elapsed() < STUCK) {
                return Ok(false);
            }
            tracing::warn!("a checkpoint did not complete within {STUCK:?}; taking a full one");
            self.full_next.store(true, Ordering::Release);
        }
        let position = self.log.lock().unwrap_or_else(|e| e.into_inner()).position();
        *requested_at = Some(Instant::now());
        drop(requested_at);
        input.checkpoint(position, self.full_next.swap(false, Ordering::AcqRel))?;
        Ok(true)
    }

    /// Waits (up to `within`) until no checkpoint is in flight.
    pub async fn settle(&self, within: std::time::Duration) {
        let deadline = Instant::now() + within;
        while self.in_flight.load(Ordering::Acquire) && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// The task that writes checkpoints as the engine's parts come in (through `jobs`),
    /// each once the alert store holds every transition before it.
    pub fn writer(
        &self,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        mut jobs: mpsc::UnboundedReceiver<CheckpointJob>,
    ) -> tokio::task::JoinHandle<()> {
        let (store, log) = (self.store.clone(), self.log.clone());
        let (in_flight, full_next, requested_at) =
            (self.in_flight.clone(), self.full_next.clone(), self.requested_at.clone());
        tokio::spawn(async move {
            while let Some(job) = jobs.recv().await {
                let outcome = match (job.since.await, job.stored.await) {
                    (Err(_), _) | (_, Err(_)) => {
                        Err("the alert manager stopped before storing the transitions before it".to_owned())
                    }
                    (Ok(event_seq), Ok(_)) => {
                        // Named by the rules the states were taken under (they may have
                        // been reloaded since); a full checkpoint records those rules.
                        let (rows, held) = Checkpoint::named(&job.rules, &registry, &job.rows, &job.held);
                        let rules =
                            job.full.then(|| job.rules.rules.iter().map(|r| (r.id.clone(), r.fingerprint())).collect());
                        let checkpoint =
                            Checkpoint { position: job.position, event_seq, full: job.full, rows, held, rules };
                        let now = tidewatch_connectors::envelope::now_ms();
                        store.write(&checkpoint, now).await.map(|()| checkpoint.rows.len()).map_err(|e| e.to_string())
                    }
                };
                match outcome {
                    Ok(rows) => {
                        metrics.checkpoints.get_or_create(&OutcomeLabels { outcome: "written".into() }).inc();
                        metrics.checkpoint_rows.inc_by(rows as u64);
                        let started = requested_at.lock().unwrap_or_else(|e| e.into_inner()).take();
                        if let Some(started) = started {
                            metrics.checkpoint_seconds.set(started.elapsed().as_secs_f64());
                        }
                        tracing::debug!(position = job.position, rows, full = job.full, "checkpoint written");
                        if let Err(e) = log.lock().unwrap_or_else(|e| e.into_inner()).release_before(job.position) {
                            tracing::warn!(error = %e, "cannot remove reading-log segments a checkpoint covers");
                        }
                    }
                    Err(e) => {
                        metrics.checkpoints.get_or_create(&OutcomeLabels { outcome: "failed".into() }).inc();
                        tracing::error!(error = %e, "checkpoint not written; the next one takes every rule state");
                        full_next.store(true, Ordering::Release);
                    }
                }
                in_flight.store(false, Ordering::Release);
            }
        })
    }
}

/// A checkpoint not written within this long is given up for the next one.
const STUCK: std::time::Duration = std::time::Duration::from_secs(60);

/// How long after a restart a redelivered reading is recognised.
const RECENT_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// The log's last readings, for a while after a restart: a source delivering one of them
/// again (a message logged but not acknowledged when the process died) is a duplicate.
pub struct Recent {
    keys: FxHashSet<(SensorKey, i64)>,
    until: Instant,
}

impl Recent {
    /// Drops the readings already in the log; returns how many.
    pub fn drop_repeats(&mut self, readings: &mut Vec<Reading>) -> usize {
        if self.keys.is_empty() {
            return 0;
        }
        if Instant::now() > self.until {
            self.keys = FxHashSet::default();
            return 0;
        }
        let before = readings.len();
        readings.retain(|r| !self.keys.remove(&(r.sensor, r.time)));
        before - readings.len()
    }
}

impl Default for Recent {
    fn default() -> Self {
        Recent { keys: FxHashSet::default(), until: Instant::now() }
    }
}

/// One checkpoint's parts, complete, on the way to the writer.
pub struct CheckpointJob {
    pub position: u64,
    pub full: bool,
    pub rows: Vec<StateRow>,
    pub held: Vec<Reading>,
    /// The rules the states were taken under (their indices name the rules).
    pub rules: Arc<RuleSet>,
    /// The alert store's next event sequence number when the first worker's part came:
    /// transitions from it on may be emitted again by a replay from this checkpoint.
    pub since: oneshot::Receiver<i64>,
    /// Resolves once the alert store holds every transition before the checkpoint.
    pub stored: oneshot::Receiver<i64>,
}

/// Gathers the engine's checkpoint parts until every worker's is in.
#[derive(Default)]
pub struct Parts {
    position: u64,
    parts: Vec<CheckpointPart>,
    /// The alert store's event sequence as of the first part: from the first part on, a
    /// worker that passed its part emits transitions the checkpoint does not cover, which a
    /// replay from it may emit again.
    since: Option<oneshot::Receiver<i64>>,
}

impl Parts {
    /// Adds a worker's part (barriers go through `alerts`, behind the events before it);
    /// returns the whole checkpoint once `workers` parts are in.
    pub fn add(
        &mut self,
        position: u64,
        part: CheckpointPart,
        rules: &Arc<RuleSet>,
        workers: usize,
        alerts: &tidewatch_alerting::EventSender,
    ) -> Option<CheckpointJob> {
        if self.parts.is_empty() || self.position != position {
            self.parts.clear();
            self.position = position;
            self.since = Some(alerts.barrier());
        }
        self.parts.push(part);
        if self.parts.len() < workers {
            return None;
        }
        let parts = std::mem::take(&mut self.parts);
        let full = parts.iter().all(|p| p.full);
        let mut rows = Vec::new();
        let mut held = Vec::new();
        for p in parts {
            rows.extend(p.rows);
            held.extend(p.held);
        }
        // Every worker's events before its part are with the alert manager.
        let stored = alerts.barrier();
        // Every worker takes a checkpoint at the same place in its input, and so does a
        // reload: all parts of one checkpoint were taken under the same rules.
        Some(CheckpointJob { position, full, rows, held, rules: rules.clone(), since: self.since.take()?, stored })
    }
}

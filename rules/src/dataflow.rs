//! The timely dataflow that evaluates rules.
//!
//! ```text
//!  EngineInput ─per-worker channel─▶ [worker input] ─▶ [rules operator] ─▶ output channel
//!   (partitions by station,            readings and         evaluates on arrival;
//!    carries the watermark)            watermark, in order   fires timers as the frontier moves
//! ```
//!
//! [`EngineInput::send`] partitions a batch by station, so each worker owns its stations'
//! state and receives their readings in the order the source delivered them: per-sensor
//! order, which decides everything, is never lost between workers. The rules operator
//! evaluates every reading **on arrival** (see [`crate::eval`]); timely's frontier is the
//! watermark, and only moves timers of silent sensors.
//!
//! The watermark travels in the same channels as the readings ([`EngineInput::advance`]),
//! so a worker never promises a time before it has taken every batch sent before that
//! promise: the frontier cannot overtake a batch still in a channel. Timely timestamps are
//! watermarks: a batch enters at its worker's current input time, whatever its readings'
//! event times; a reading is late only if its own sensor has already decided past it.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tidewatch_ingest::Reading;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::InputHandle;

use crate::compile::RuleSet;
use crate::eval::{CheckpointPart, Evaluator, Reloaded, StateRow};
use crate::event::AlertEvent;

/// What comes out of the engine.
#[derive(Clone, Debug)]
pub enum EngineOutput {
    Alert(AlertEvent),
    /// A reading older than what its sensor's state had already decided.
    Late {
        reading: Reading,
        /// The event time its sensor had been decided up to.
        decided_until: i64,
    },
    /// One worker's share of the checkpoint asked for by [`EngineInput::checkpoint`]: its
    /// state after every reading sent before the request, behind every alert event those
    /// readings caused.
    Checkpoint {
        /// The caller's position (e.g. in a reading log) the checkpoint was asked at.
        position: u64,
        worker: usize,
        part: Box<CheckpointPart>,
    },
    /// One worker took the rule set [`EngineInput::reload`] sent, behind every reading sent
    /// before it (its resolves, if any, came out just before this).
    Reloaded {
        worker: usize,
        done: Reloaded,
        rules: Arc<RuleSet>,
    },
}

/// How the engine runs.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub workers: usize,
}

/// Rule state to start from: a checkpoint's rows (rule indices of the rule set the engine
/// runs) and held readings. Each goes to the worker owning its station.
#[derive(Clone, Debug, Default)]
pub struct Restore {
    pub rows: Vec<StateRow>,
    pub held: Vec<Reading>,
}

/// What a worker's channel carries.
enum Feed {
    Readings(Batch),
    Checkpoint(u64, bool),
    Rules(Arc<RuleSet>),
    /// Every reading with an earlier event time has been sent.
    Watermark(i64),
}

/// What a worker's timely input carries, in channel order.
#[derive(Clone)]
enum Item {
    Readings(Batch),
    /// Take a checkpoint (all states when the flag is set) at this position.
    Checkpoint(u64, bool),
    /// Evaluate with these rules from here on.
    Rules(Arc<RuleSet>),
}

/// Readings as they travel to a worker.
#[derive(Clone)]
struct Batch {
    /// From a feed that may deliver a sensor out of order: held until the watermark.
    held: bool,
    readings: Vec<Reading>,
}

/// Feeds readings and the watermark to the engine. Cheap to clone; the engine finishes
/// once every clone is dropped (remaining readings are evaluated, pending timers up to the
/// newest event time fire).
#[derive(Clone)]
pub struct EngineInput {
    shared: Arc<InputShared>,
}

struct InputShared {
    channels: Vec<Sender<Feed>>,
    /// Each worker's thread, to wake it when its channel has something.
    threads: Vec<Thread>,
    /// Newest event time sent; pending timers fire up to it when the input closes.
    newest: Arc<AtomicI64>,
    watermark: AtomicI64,
    /// Whether closing the input fires pending timers up to `newest` (the end of a recorded
    /// feed) or leaves them pending (a shutdown whose state is checkpointed).
    fire_on_close: Arc<AtomicBool>,
}

impl EngineInput {
    /// Hands a batch to the engine; blocks while a worker is a full channel behind, which is
    /// how back-pressure reaches the connectors. Errors only if the engine has stopped.
    pub fn send(&self, batch: Vec<Reading>) -> Result<(), EngineStopped> {
        self.send_batch(batch, false)
    }

    /// Hands over readings of a feed that may deliver a sensor's readings out of order
    /// (`reorder = true`): they are evaluated once the watermark has passed them, in event-
    /// time order, so disorder within the allowed lateness changes nothing — but their
    /// alerts wait for the watermark.
    pub fn send_held(&self, batch: Vec<Reading>) -> Result<(), EngineStopped> {
        self.send_batch(batch, true)
    }

    fn send_batch(&self, batch: Vec<Reading>, held: bool) -> Result<(), EngineStopped> {
        let shared = &self.shared;
        let Some(newest) = batch.iter().map(|r| r.time).max() else {
            return Ok(());
        };
        shared.newest.fetch_max(newest, Ordering::Relaxed);
        let workers = shared.channels.len();
        if workers == 1 {
            shared.channels[0].send(Feed::Readings(Batch { held, readings: batch })).map_err(|_| EngineStopped)?;
            self.wake(0);
            return Ok(());
        }
        let mut parts: Vec<Vec<Reading>> = (0..workers).map(|_| Vec::new()).collect();
        for reading in batch {
            parts[(reading.sensor.station.route_hash() % workers as u64) as usize].push(reading);
        }
        for (worker, part) in parts.into_iter().enumerate() {
            if !part.is_empty() {
                shared.channels[worker]
                    .send(Feed::Readings(Batch { held, readings: part }))
                    .map_err(|_| EngineStopped)?;
                self.wake(worker);
            }
        }
        Ok(())
    }

    /// True when a worker's channel is full, so that [`EngineInput::send`] may block: an
    /// async caller then hands the send to a blocking section (costly, so only then).
    pub fn may_block(&self) -> bool {
        self.shared.channels.iter().any(|c| c.is_full())
    }

    /// Every reading with an event time before `watermark` has been sent: timers of silent
    /// sensors due before it may fire. Never blocks: a worker whose channel is full hears of
    /// a later watermark instead (the runtime repeats it every second with
    /// [`EngineInput::repeat_watermark`]). A watermark less than a second (event time) past
    /// the last one sent waits for a later call.
    pub fn advance(&self, watermark: i64) {
        self.broadcast(watermark, false)
    }

    /// Sends the watermark again to every worker, in case a full channel refused it.
    pub fn repeat_watermark(&self, watermark: i64) {
        self.broadcast(watermark, true)
    }

    fn broadcast(&self, watermark: i64, repeat: bool) {
        let shared = &self.shared;
        if watermark == i64::MIN {
            return;
        }
        // Each broadcast wakes every worker. Timers of quiet sensors need the watermark
        // only to the second, so a step of less than one second of event time waits for
        // the next batch (or the runtime's repeat each second of wall-clock time).
        let before = shared.watermark.load(Ordering::Relaxed);
        if !repeat && before != i64::MIN && watermark < before.saturating_add(WATERMARK_STEP_MS) {
            return;
        }
        shared.watermark.fetch_max(watermark, Ordering::Relaxed);
        for (worker, channel) in shared.channels.iter().enumerate() {
            if channel.try_send(Feed::Watermark(watermark)).is_ok() {
                self.wake(worker);
            }
        }
    }

    /// Asks every worker for its state once it has evaluated everything sent so far: the
    /// parts come out as [`EngineOutput::Checkpoint`] with `position`, each behind the
    /// alert events of the readings before it. `full`: every state, not only those changed
    /// since the last checkpoint (after a checkpoint was lost). Blocks like
    /// [`EngineInput::send`] while a channel is full.
    pub fn checkpoint(&self, position: u64, full: bool) -> Result<(), EngineStopped> {
        for (worker, channel) in self.shared.channels.iter().enumerate() {
            channel.send(Feed::Checkpoint(position, full)).map_err(|_| EngineStopped)?;
            self.wake(worker);
        }
        Ok(())
    }

    /// Every worker evaluates with `rules` from here on, behind every reading sent so far
    /// (see [`Evaluator::reload`]); each says so with [`EngineOutput::Reloaded`]. A
    /// checkpoint asked for after this one names states by the new rules. Blocks like
    /// [`EngineInput::send`] while a channel is full.
    pub fn reload(&self, rules: Arc<RuleSet>) -> Result<(), EngineStopped> {
        for (worker, channel) in self.shared.channels.iter().enumerate() {
            channel.send(Feed::Rules(rules.clone())).map_err(|_| EngineStopped)?;
            self.wake(worker);
        }
        Ok(())
    }

    /// How many workers take part in a checkpoint.
    pub fn workers(&self) -> usize {
        self.shared.channels.len()
    }

    /// Closing the input leaves timers pending instead of firing them up to the newest
    /// event time: for a shutdown whose rule state is checkpointed and picked up again.
    pub fn keep_pending_on_close(&self) {
        self.shared.fire_on_close.store(false, Ordering::Relaxed);
    }

    fn wake(&self, worker: usize) {
        self.shared.threads[worker].unpark();
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the rules engine has stopped")]
pub struct EngineStopped;

#[derive(Debug, thiserror::Error)]
#[error("cannot start the rules engine's workers: {0}")]
pub struct EngineStartError(String);

/// A running engine.
pub struct Engine {
    input: Option<EngineInput>,
    output: Receiver<EngineOutput>,
    guards: Option<timely::communication::WorkerGuards<()>>,
}

/// The smallest watermark step worth waking every worker for (event-time ms).
const WATERMARK_STEP_MS: i64 = 1000;

/// Batches waiting in each worker's channel before senders block.
const CHANNEL_BATCHES: usize = 1024;

impl Engine {
    pub fn start(rules: Arc<RuleSet>, config: EngineConfig) -> Result<Engine, EngineStartError> {
        Engine::start_from(rules, config, Restore::default())
    }

    /// Starts with the rule state of a checkpoint.
    pub fn start_from(rules: Arc<RuleSet>, config: EngineConfig, restore: Restore) -> Result<Engine, EngineStartError> {
        let workers = config.workers.max(1);
        let mut parts: Vec<Restore> = (0..workers).map(|_| Restore::default()).collect();
        let owner = |station: tidewatch_ingest::StationKey| (station.route_hash() % workers as u64) as usize;
        for row in restore.rows {
            parts[owner(row.key.station)].rows.push(row);
        }
        for reading in restore.held {
            parts[owner(reading.sensor.station)].held.push(reading);
        }
        let parts = Arc::new(Mutex::new(parts.into_iter().map(Some).collect::<Vec<_>>()));
        let fire_on_close = Arc::new(AtomicBool::new(true));
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| crossbeam_channel::bounded::<Feed>(CHANNEL_BATCHES)).unzip();
        let receivers = Arc::new(Mutex::new(receivers.into_iter().map(Some).collect::<Vec<_>>()));
        let threads = Arc::new(Mutex::new(vec![None; workers]));
        let newest = Arc::new(AtomicI64::new(i64::MIN));
        let (out_tx, out_rx) = crossbeam_channel::unbounded::<EngineOutput>();
        let started = Arc::new(AtomicUsize::new(0));
        // No idle spinning: readings arrive with a wake-up (`EngineInput` unparks the
        // worker), and a spinning worker takes a core from the connectors and the broker.
        let mut timely_config = timely::Config::process(workers);
        timely_config.worker = timely_config.worker.idle_spin(Duration::ZERO);
        let guards = timely::execute(timely_config, {
            let (threads, newest, started) = (threads.clone(), newest.clone(), started.clone());
            let fire_on_close = fire_on_close.clone();
            move |worker| {
                let index = worker.index();
                let feed = receivers.lock().unwrap_or_else(|e| e.into_inner())[index].take();
                let Some(feed) = feed else { return };
                let restore = parts.lock().unwrap_or_else(|e| e.into_inner())[index].take().unwrap_or_default();
                threads.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(std::thread::current());
                started.fetch_add(1, Ordering::Release);
                let shared = WorkerShared { newest: newest.clone(), fire_on_close: fire_on_close.clone() };
                run_worker(worker, rules.clone(), restore, feed, out_tx.clone(), shared)
            }
        })
        .map_err(EngineStartError)?;
        // Senders must be able to wake every worker before the first batch.
        while started.load(Ordering::Acquire) < workers {
            std::thread::yield_now();
        }
        let threads = std::mem::take(&mut *threads.lock().unwrap_or_else(|e| e.into_inner()));
        let threads = threads.into_iter().map(|t| t.expect("every worker has started")).collect();
        let shared =
            InputShared { channels: senders, threads, newest, watermark: AtomicI64::new(i64::MIN), fire_on_close };
        Ok(Engine { input: Some(EngineInput { shared: Arc::new(shared) }), output: out_rx, guards: Some(guards) })
    }

    /// A handle to feed readings with.
    pub fn input(&self) -> EngineInput {
        self.input.clone().expect("input is only taken by finish")
    }

    /// Alert events and late readings, as they happen.
    pub fn output(&self) -> &Receiver<EngineOutput> {
        &self.output
    }

    /// Stops accepting input and waits until every worker has finished. Input clones held
    /// elsewhere must be dropped first, or this waits for them.
    pub fn finish(mut self) -> Receiver<EngineOutput> {
        self.input = None;
        if let Some(guards) = self.guards.take() {
            drop(guards.join());
        }
        self.output.clone()
    }
}

/// How long an idle worker parks before looking at its channel again (senders wake it).
const PARK: Duration = Duration::from_millis(100);

/// What every worker reads of the engine's shared state.
struct WorkerShared {
    newest: Arc<AtomicI64>,
    fire_on_close: Arc<AtomicBool>,
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    rules: Arc<RuleSet>,
    restore: Restore,
    feed: Receiver<Feed>,
    output: Sender<EngineOutput>,
    shared: WorkerShared,
) {
    let mut input = InputHandle::<i64, timely::container::CapacityContainerBuilder<Vec<Item>>>::new();
    let index = worker.index();
    worker.dataflow::<i64, _, _>(|scope| {
        let mut evaluator = Evaluator::new(rules);
        let refused = evaluator.restore(&restore.rows, &restore.held);
        if refused > 0 {
            tracing::warn!(
                worker = index,
                refused,
                "rule states in the checkpoint could not be read; those keys start afresh"
            );
        }
        drop(restore);
        let mut complete = i64::MIN;
        input.to_stream(scope).sink(Pipeline, "Rules", move |(input, frontier)| {
            // The receiver only goes away when the process is shutting down.
            let mut emit = |event| drop(output.send(EngineOutput::Alert(event)));
            let mut late = |reading: &Reading, decided_until| {
                drop(output.send(EngineOutput::Late { reading: *reading, decided_until }));
            };
            input.for_each(|_time, data| {
                for item in data.iter() {
                    match item {
                        Item::Readings(batch) if batch.held => evaluator.hold(&batch.readings),
                        Item::Readings(batch) => evaluator.on_batch(&batch.readings, &mut emit, &mut late),
                        &Item::Checkpoint(position, full) => {
                            let part = Box::new(evaluator.checkpoint(full));
                            drop(output.send(EngineOutput::Checkpoint { position, worker: index, part }));
                        }
                        Item::Rules(rules) => {
                            let done = evaluator.reload(rules.clone(), &mut emit);
                            drop(output.send(EngineOutput::Reloaded { worker: index, done, rules: rules.clone() }));
                        }
                    }
                }
            });
            // Timers of silent sensors fire as the watermark passes them. An empty frontier
            // means the input has closed: everything up to the newest event time is decided
            // (unless the state is kept for a restart).
            let now_complete = match frontier.frontier().first() {
                Some(&t) => t,
                None if shared.fire_on_close.load(Ordering::Relaxed) => {
                    shared.newest.load(Ordering::Relaxed).saturating_add(1)
                }
                None => complete,
            };
            if now_complete > complete {
                complete = now_complete;
                evaluator.release_held(complete, &mut emit, &mut late);
                evaluator.advance(complete, &mut emit);
            }
        });
    });

    let mut open = true;
    while open {
        loop {
            match feed.try_recv() {
                Ok(Feed::Readings(batch)) => input.send(Item::Readings(batch)),
                Ok(Feed::Checkpoint(position, full)) => input.send(Item::Checkpoint(position, full)),
                Ok(Feed::Rules(rules)) => input.send(Item::Rules(rules)),
                Ok(Feed::Watermark(w)) => {
                    if w > *input.time() {
                        input.advance_to(w);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        // Batches go to the operator now, not when the input's container would be full.
        input.flush();
        if open {
            worker.step_or_park(Some(PARK));
        }
    }
    drop(input);
    while worker.step_or_park(Some(Duration::from_millis(1))) {}
}

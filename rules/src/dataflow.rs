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

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tidewatch_ingest::Reading;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::InputHandle;

use crate::compile::RuleSet;
use crate::eval::Evaluator;
use crate::event::AlertEvent;

/// What comes out of the engine.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineOutput {
    Alert(AlertEvent),
    /// A reading older than what its sensor's state had already decided.
    Late {
        reading: Reading,
        /// The event time its sensor had been decided up to.
        decided_until: i64,
    },
}

/// How the engine runs.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub workers: usize,
}

/// What a worker's channel carries.
enum Feed {
    Readings(Batch),
    /// Every reading with an earlier event time has been sent.
    Watermark(i64),
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
        let workers = config.workers.max(1);
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
            move |worker| {
                let index = worker.index();
                let feed = receivers.lock().unwrap_or_else(|e| e.into_inner())[index].take();
                let Some(feed) = feed else { return };
                threads.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(std::thread::current());
                started.fetch_add(1, Ordering::Release);
                run_worker(worker, rules.clone(), feed, out_tx.clone(), newest.clone())
            }
        })
        .map_err(EngineStartError)?;
        // Senders must be able to wake every worker before the first batch.
        while started.load(Ordering::Acquire) < workers {
            std::thread::yield_now();
        }
        let threads = std::mem::take(&mut *threads.lock().unwrap_or_else(|e| e.into_inner()));
        let threads = threads.into_iter().map(|t| t.expect("every worker has started")).collect();
        let shared = InputShared { channels: senders, threads, newest, watermark: AtomicI64::new(i64::MIN) };
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

fn run_worker(
    worker: &mut timely::worker::Worker,
    rules: Arc<RuleSet>,
    feed: Receiver<Feed>,
    output: Sender<EngineOutput>,
    newest: Arc<AtomicI64>,
) {
    let mut input = InputHandle::<i64, timely::container::CapacityContainerBuilder<Vec<Batch>>>::new();
    worker.dataflow::<i64, _, _>(|scope| {
        let mut evaluator = Evaluator::new(rules);
        let mut complete = i64::MIN;
        input.to_stream(scope).sink(Pipeline, "Rules", move |(input, frontier)| {
            // The receiver only goes away when the process is shutting down.
            let mut emit = |event| drop(output.send(EngineOutput::Alert(event)));
            let mut late = |reading: &Reading, decided_until| {
                drop(output.send(EngineOutput::Late { reading: *reading, decided_until }));
            };
            input.for_each(|_time, data| {
                for batch in data.iter() {
                    if batch.held {
                        evaluator.hold(&batch.readings);
                    } else {
                        evaluator.on_batch(&batch.readings, &mut emit, &mut late);
                    }
                }
            });
            // Timers of silent sensors fire as the watermark passes them. An empty frontier
            // means the input has closed: everything up to the newest event time is decided.
            let now_complete = match frontier.frontier().first() {
                Some(&t) => t,
                None => newest.load(Ordering::Relaxed).saturating_add(1),
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
                Ok(Feed::Readings(batch)) => input.send(batch),
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

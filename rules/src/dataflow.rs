//! The timely dataflow that evaluates rules.
//!
//! ```text
//!  channel ─▶ [worker input] ─exchange by sensor─▶ [rules operator] ─▶ [sink] ─▶ channel
//! ```
//!
//! Each worker thread takes batches from one shared channel and introduces them into its
//! input at the time it last promised (its input's current time, never later than the
//! watermark), then advances its input to the shared watermark. Timely timestamps are event
//! times: a batch's timestamp is a lower bound of its readings' event times, and the frontier
//! is the watermark. A reading older than the time its worker already promised is late: it
//! is handed back as [`EngineOutput::Late`], never silently dropped.
//!
//! The rules operator buffers readings until the frontier passes them, sorts them by event
//! time and hands them to the [`Evaluator`]: so arrival order within the allowed lateness
//! does not change the alerts, and a replay gives the same alerts as the live system.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tidewatch_ingest::Reading;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::InputHandle;

use crate::compile::RuleSet;
use crate::eval::Evaluator;
use crate::event::AlertEvent;
use crate::watermark::Watermark;

/// What comes out of the engine.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineOutput {
    Alert(AlertEvent),
    /// A reading that arrived after its worker's frontier had passed its event time.
    Late {
        reading: Reading,
        watermark: i64,
    },
}

/// How the engine runs.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub workers: usize,
}

/// Feeds readings to the engine. Cheap to clone; the engine finishes once every clone is
/// dropped (remaining readings are evaluated, pending timers up to the newest event time fire).
#[derive(Clone)]
pub struct EngineInput {
    sender: Sender<Vec<Reading>>,
}

impl EngineInput {
    /// Hands a batch to the engine; blocks while the engine is a full channel behind, which
    /// is how back-pressure reaches the connectors. Errors only if the engine has stopped.
    pub fn send(&self, batch: Vec<Reading>) -> Result<(), EngineStopped> {
        if batch.is_empty() {
            return Ok(());
        }
        self.sender.send(batch).map_err(|_| EngineStopped)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the rules engine has stopped")]
pub struct EngineStopped;

/// A running engine.
pub struct Engine {
    input: Option<EngineInput>,
    output: Receiver<EngineOutput>,
    guards: Option<timely::communication::WorkerGuards<()>>,
}

/// Batches waiting in the input channel before senders block.
const CHANNEL_BATCHES: usize = 1024;

impl Engine {
    pub fn start(rules: Arc<RuleSet>, watermark: Arc<Watermark>, config: EngineConfig) -> Result<Engine, String> {
        let (in_tx, in_rx) = crossbeam_channel::bounded::<Vec<Reading>>(CHANNEL_BATCHES);
        let (out_tx, out_rx) = crossbeam_channel::unbounded::<EngineOutput>();
        let timely_config = timely::Config::process(config.workers.max(1));
        let guards = timely::execute(timely_config, move |worker| {
            run_worker(worker, rules.clone(), watermark.clone(), in_rx.clone(), out_tx.clone())
        })?;
        Ok(Engine { input: Some(EngineInput { sender: in_tx }), output: out_rx, guards: Some(guards) })
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

fn run_worker(
    worker: &mut timely::worker::Worker,
    rules: Arc<RuleSet>,
    watermark: Arc<Watermark>,
    batches: Receiver<Vec<Reading>>,
    output: Sender<EngineOutput>,
) {
    let mut input = InputHandle::<i64, timely::container::CapacityContainerBuilder<Vec<Reading>>>::new();
    let alerts = output.clone();
    let newest_seen = Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN));
    let newest_for_operator = newest_seen.clone();
    worker.dataflow::<i64, _, _>(|scope| {
        input
            .to_stream(scope)
            .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<AlertEvent>>, _, _, _>(
                Exchange::new(|r: &Reading| r.sensor.route_hash()),
                "Rules",
                move |_initial, _info| {
                    let mut evaluator = Evaluator::new(rules);
                    let mut pending: Vec<Reading> = Vec::new();
                    let mut ready: Vec<Reading> = Vec::new();
                    let mut cap: Option<Capability<i64>> = None;
                    let mut newest = i64::MIN;
                    move |(input, frontier), output| {
                        input.for_each(|time, data| {
                            if let Some(retained) = time.retain_least(output.output_index()) {
                                if cap.as_ref().is_none_or(|c| retained.time() < c.time()) {
                                    cap = Some(retained);
                                }
                            }
                            newest = data.iter().fold(newest, |m, r| m.max(r.time));
                            pending.append(data);
                        });
                        let Some(held) = cap.as_mut() else { return };
                        // Everything before `complete` has arrived. An empty frontier means
                        // the input has closed: evaluate all, with timers up to the newest
                        // event time seen by this worker or any other.
                        let complete = match frontier.frontier().first() {
                            Some(&t) => t,
                            None => newest
                                .max(newest_for_operator.load(std::sync::atomic::Ordering::Relaxed))
                                .saturating_add(1),
                        };
                        if complete <= *held.time() {
                            return;
                        }
                        pending.sort_by_key(|r| r.time);
                        let split = pending.partition_point(|r| r.time < complete);
                        ready.extend(pending.drain(..split));
                        let mut session = output.session(&*held);
                        evaluator.advance(&ready, complete, &mut |event| session.give(event));
                        drop(session);
                        ready.clear();
                        // Keep a capability only while something may still be emitted:
                        // readings not yet complete, or timers waiting for the watermark.
                        let idle = pending.is_empty() && !evaluator.has_timers();
                        if frontier.frontier().is_empty() || idle {
                            cap = None;
                        } else {
                            held.downgrade(&complete);
                        }
                    }
                },
            )
            .sink(Pipeline, "AlertsOut", move |(input, _frontier)| {
                input.for_each(|_time, data| {
                    for event in data.drain(..) {
                        // The receiver only goes away when the process is shutting down.
                        let _ = alerts.send(EngineOutput::Alert(event));
                    }
                });
            });
    });

    let mut buffer: Vec<Reading> = Vec::new();
    loop {
        // Wait briefly for input, but keep stepping so exchanged data from other workers
        // and frontier changes are processed.
        let first = match batches.recv_timeout(Duration::from_millis(1)) {
            Ok(batch) => Some(batch),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for mut batch in first.into_iter().chain(std::iter::from_fn(|| batches.try_recv().ok()).take(64)) {
            let promised = *input.time();
            batch.retain(|r| {
                if r.time < promised {
                    let _ = output.send(EngineOutput::Late { reading: *r, watermark: promised });
                    false
                } else {
                    true
                }
            });
            if let Some(max) = batch.iter().map(|r| r.time).max() {
                newest_seen.fetch_max(max, std::sync::atomic::Ordering::Relaxed);
            }
            buffer.append(&mut batch);
            if buffer.len() >= 4096 {
                input.send_batch(&mut buffer);
                buffer.clear();
            }
        }
        if !buffer.is_empty() {
            input.send_batch(&mut buffer);
            buffer.clear();
        }
        let w = watermark.get();
        if w > *input.time() {
            input.advance_to(w);
        }
        worker.step();
    }
    // Input closed: share this worker's newest time, close, and run to completion.
    newest_seen.fetch_max(watermark.newest_event(), std::sync::atomic::Ordering::Relaxed);
    drop(input);
    while worker.step() {}
}

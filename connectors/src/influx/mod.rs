//! InfluxDB v2 writes (influxdb2): points batched by size and time, retried with back-off,
//! held in bounded memory while the database is away.
//!
//! [`InfluxSink::push`] renders a point into the open batch at once (the point is not
//! kept); a batch is sealed at `batch_points` or by the writer's interval, and the writer
//! sends sealed batches oldest first. While the database refuses or is unreachable the
//! batches wait, up to `max_points` in all; a point that finds the buffer full is dropped and
//! counted. A batch the database rejects as malformed (HTTP 400) is not retried: it is
//! counted as failed and logged.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use influxdb2::api::write::TimestampPrecision;
use influxdb2::models::{DataPoint, WriteDataPoint};
use influxdb2::RequestError;

use crate::sink::SinkCounts;

#[derive(Clone, Debug)]
pub struct InfluxSinkConfig {
    pub name: String,
    /// e.g. `http://127.0.0.1:8086` (InfluxDB) or `http://127.0.0.1:8428` (VictoriaMetrics).
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub token: String,
    pub batch_points: usize,
    pub flush_interval: Duration,
    /// Points held at most while the database is slow or away.
    pub max_points: usize,
    pub max_backoff: Duration,
    pub timeout: Duration,
}

#[derive(Default)]
struct Buffer {
    /// Sealed batches, oldest first: (line protocol, points).
    sealed: VecDeque<(Vec<u8>, usize)>,
    open: Vec<u8>,
    open_points: usize,
    points: usize,
    closed: bool,
}

impl Buffer {
    fn seal(&mut self) {
        if self.open_points > 0 {
            let batch = std::mem::take(&mut self.open);
            self.sealed.push_back((batch, std::mem::take(&mut self.open_points)));
        }
    }
}

struct Shared {
    buffer: Mutex<Buffer>,
    wake: tokio::sync::Notify,
    counts: Arc<SinkCounts>,
}

/// A running InfluxDB sink. Dropping it does not write what is buffered: call
/// [`InfluxSink::close`].
pub struct InfluxSink {
    shared: Arc<Shared>,
    config: InfluxSinkConfig,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub counts: Arc<SinkCounts>,
}

impl InfluxSink {
    pub fn start(config: InfluxSinkConfig) -> Result<InfluxSink, String> {
        let client = influxdb2::ClientBuilder::new(&config.url, &config.org, &config.token)
            .build()
            .map_err(|e| format!("sink {:?}: {e}", config.name))?;
        let counts = Arc::new(SinkCounts::default());
        let shared =
            Arc::new(Shared { buffer: Mutex::default(), wake: tokio::sync::Notify::new(), counts: counts.clone() });
        let task = tokio::spawn(write(client, config.clone(), shared.clone()));
        Ok(InfluxSink { shared, config, task: Mutex::new(Some(task)), counts })
    }

    /// Adds points to the open batch; a point over the bound is dropped and counted.
    pub fn push(&self, points: impl IntoIterator<Item = DataPoint>) {
        let mut full = false;
        {
            let mut b = self.shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
            for point in points {
                if b.points >= self.config.max_points {
                    self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let before = b.open.len();
                if point.write_data_point_to(&mut b.open).is_err() {
                    b.open.truncate(before);
                    self.counts.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                b.open_points += 1;
                b.points += 1;
                if b.open_points >= self.config.batch_points {
                    b.seal();
                    full = true;
                }
            }
        }
        if full {
            self.shared.wake.notify_one();
        }
    }

    /// Points waiting to be written.
    pub fn pending(&self) -> usize {
        self.shared.buffer.lock().unwrap_or_else(|e| e.into_inner()).points
    }

    /// Writes what is buffered (for at most `timeout`), then stops; what is left then is
    /// counted as dropped.
    pub async fn close(&self, timeout: Duration) {
        {
            let mut b = self.shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
            b.seal();
            b.closed = true;
        }
        self.shared.wake.notify_one();
        let Some(mut task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        if tokio::time::timeout(timeout, &mut task).await.is_err() {
            task.abort();
            let left = self.shared.buffer.lock().unwrap_or_else(|e| e.into_inner()).points;
            self.counts.dropped.fetch_add(left as u64, Ordering::Relaxed);
            tracing::warn!(sink = %self.config.name, points = left, "InfluxDB sink: points not written at shutdown");
        }
    }
}

async fn write(client: influxdb2::Client, config: InfluxSinkConfig, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let next = {
            let mut b = shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
            if b.sealed.is_empty() {
                b.seal();
            }
            match b.sealed.front() {
                Some((lines, points)) => Some((lines.clone(), *points)),
                None if b.closed => return,
                None => None,
            }
        };
        let Some((lines, points)) = next else {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(config.flush_interval) => {}
            }
            continue;
        };
        let sent = tokio::time::timeout(
            config.timeout,
            client.write_line_protocol_with_precision(
                &config.org,
                &config.bucket,
                lines,
                TimestampPrecision::Milliseconds,
            ),
        )
        .await;
        let outcome = match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(RequestError::Http { status, text })) if status.as_u16() == 400 => {
                tracing::error!(sink = %config.name, %status, text = %text.chars().take(300).collect::<String>(), points, "InfluxDB rejected a batch; not retried");
                shared.counts.failed.fetch_add(points as u64, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        };
        match outcome {
            Ok(()) => {
                let mut b = shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
                b.sealed.pop_front();
                b.points -= points;
                drop(b);
                shared.counts.delivered.fetch_add(points as u64, Ordering::Relaxed);
                backoff = Duration::from_millis(200);
            }
            Err(e) => {
                tracing::warn!(sink = %config.name, error = %e, retry_in = ?backoff, "InfluxDB write failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

//! Accepting connections and cutting their byte streams into frames.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{Framing, StreamProtocol};
use crate::envelope::{now_ms, Ack, Envelope};
use crate::limits::ConnectionLimits;

/// One listener, as configured.
#[derive(Clone, Debug)]
pub struct TcpListenerConfig {
    /// Name used as the envelopes' source.
    pub name: &'static str,
    pub listen: SocketAddr,
    /// A connection that completes no frame for this long is closed, whatever it trickles.
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections open at once from one address; more are closed likewise.
    pub max_per_address: usize,
    /// Bytes buffered per connection without a complete frame before they are dropped as
    /// garbage (a device can not make the platform buffer without bound).
    pub max_buffer: usize,
}

/// Counters for health checks and metrics.
#[derive(Debug, Default)]
pub struct TcpStatus {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    pub idle_closed: AtomicU64,
    pub frames: AtomicU64,
    pub garbage_bytes: AtomicU64,
    /// Connections closed at once: over `max_connections` or `max_per_address`.
    pub refused: AtomicU64,
}

impl crate::source::Health for TcpStatus {
    fn up(&self) -> bool {
        true
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "open": self.open.load(Ordering::Relaxed),
            "accepted": self.accepted.load(Ordering::Relaxed),
            "idle_closed": self.idle_closed.load(Ordering::Relaxed),
            "frames": self.frames.load(Ordering::Relaxed),
            "garbage_bytes": self.garbage_bytes.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
        })
    }
}

/// A running listener.
pub struct TcpSource {
    pub local_addr: SocketAddr,
    pub status: Arc<TcpStatus>,
    task: tokio::task::JoinHandle<()>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl TcpSource {
    /// Stops accepting and closes every connection after the frames already read. Answers
    /// for frames not yet handed on are not sent: the devices send those frames again.
    pub fn stop(&self) {
        self.task.abort();
        let _ = self.shutdown.send(true);
    }
}

/// Binds and starts accepting; frames go to `tx`.
pub async fn start(
    config: TcpListenerConfig,
    protocol: Arc<dyn StreamProtocol>,
    tx: mpsc::Sender<Envelope>,
) -> std::io::Result<TcpSource> {
    let listener = TcpListener::bind(config.listen).await?;
    let local_addr = listener.local_addr()?;
    let status = Arc::new(TcpStatus::default());
    let limits = ConnectionLimits::new(config.max_connections, config.max_per_address);
    let (shutdown, stopping) = tokio::sync::watch::channel(false);
    let task = tokio::spawn({
        let status = status.clone();
        async move {
            loop {
                // Accept first, then decide: a full listener answers at once (closes) rather
                // than leaving devices waiting in the kernel's queue.
                let (stream, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(listener = config.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(slot) = limits.take(peer.ip()) else {
                    status.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(listener = config.name, %peer, "connection refused: over the connection limits");
                    drop(stream);
                    continue;
                };
                status.accepted.fetch_add(1, Ordering::Relaxed);
                status.open.fetch_add(1, Ordering::Relaxed);
                let (config, protocol, tx, status) = (config.clone(), protocol.clone(), tx.clone(), status.clone());
                let stopping = stopping.clone();
                tokio::spawn(async move {
                    connection(stream, peer, &config, &*protocol, tx, &status, stopping).await;
                    status.open.fetch_sub(1, Ordering::Relaxed);
                    drop(slot);
                });
            }
        }
    });
    Ok(TcpSource { local_addr, status, task, shutdown })
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    config: &TcpListenerConfig,
    protocol: &dyn StreamProtocol,
    tx: mpsc::Sender<Envelope>,
    status: &TcpStatus,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (reply_tx, mut reply_rx) = mpsc::unbounded_channel::<Bytes>();
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = reply_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let topic = peer.to_string();
    let mut buf = BytesMut::with_capacity(4096);
    let send = |payload: Bytes, ack: Ack, framing_error: Option<String>| Envelope {
        source: config.name,
        topic: topic.clone(),
        payload,
        received_at: now_ms(),
        ack,
        framing_error,
        oversize: None,
        last: false,
    };
    // Only a complete frame moves the deadline: a trickle of bytes cannot hold a connection.
    let mut deadline = tokio::time::Instant::now() + config.idle_timeout;
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, reader.read_buf(&mut buf)) => read,
            _ = stopping.changed() => break,
        };
        let n = match read {
            Err(_) => {
                status.idle_closed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(listener = config.name, %peer, "closing idle connection");
                break;
            }
            Ok(Err(e)) => {
                tracing::debug!(listener = config.name, %peer, error = %e, "connection error");
                break;
            }
            Ok(Ok(n)) => n,
        };
        loop {
            match protocol.scan(&buf) {
                Framing::Frame(len) => {
                    let frame = buf.split_to(len).freeze();
                    status.frames.fetch_add(1, Ordering::Relaxed);
                    deadline = tokio::time::Instant::now() + config.idle_timeout;
                    let ack = match protocol.answer(&frame) {
                        Some(answer) => Ack::Reply { to: reply_tx.clone(), bytes: Bytes::from(answer) },
                        None => Ack::None,
                    };
                    if tx.send(send(frame, ack, None)).await.is_err() {
                        return;
                    }
                }
                Framing::Garbage(len) => {
                    let junk = buf.split_to(len.min(buf.len())).freeze();
                    status.garbage_bytes.fetch_add(junk.len() as u64, Ordering::Relaxed);
                    let why = format!("{} bytes between frames that start no frame", junk.len());
                    if tx.send(send(junk, Ack::None, Some(why))).await.is_err() {
                        return;
                    }
                }
                Framing::Incomplete => break,
            }
        }
        if buf.len() > config.max_buffer {
            let junk = buf.split().freeze();
            status.garbage_bytes.fetch_add(junk.len() as u64, Ordering::Relaxed);
            let why = format!("{} bytes without a complete frame (limit {})", junk.len(), config.max_buffer);
            if tx.send(send(junk, Ack::None, Some(why))).await.is_err() {
                return;
            }
        }
        if n == 0 {
            break; // peer closed
        }
    }
    if !buf.is_empty() {
        let junk = buf.split().freeze();
        let why = format!("connection closed with {} bytes of an incomplete frame", junk.len());
        let _ = tx.send(send(junk, Ack::None, Some(why))).await;
    }
    // Answers still queued for this connection are written before it closes.
    drop(reply_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer_task).await;
}

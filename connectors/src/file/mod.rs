//! Recorded files replayed as a source: JSON lines, or CSV with a header.
//!
//! The file is cut into envelopes of whole lines (at most `chunk_lines` lines, 64 KiB);
//! for CSV each envelope starts with the header line, so every envelope decodes alone. At
//! full speed that is one envelope per chunk; with a `speed`, one per line, each sent when
//! its event time (`time_of`, supplied by the caller, who knows the format) is due:
//! `speed = 60` replays an hour in a minute. The last envelope has `last` set.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::envelope::{now_ms, Ack, Envelope};
use crate::source::{Health, Running};

/// Reads a line's event time (ms), for paced replay.
pub type TimeOf = Arc<dyn Fn(&[u8]) -> Option<i64> + Send + Sync>;

#[derive(Clone)]
pub struct FileSourceConfig {
    pub name: &'static str,
    pub path: PathBuf,
    /// The first line names the columns and starts every envelope.
    pub header: bool,
    /// Event time per wall-clock time; `None` is as fast as the engine takes it.
    pub speed: Option<f64>,
    pub time_of: Option<TimeOf>,
    pub chunk_lines: usize,
}

/// Progress, for health checks and progress bars.
#[derive(Debug, Default)]
pub struct FileStatus {
    pub bytes_total: AtomicU64,
    pub bytes_read: AtomicU64,
    pub lines: AtomicU64,
    pub finished: AtomicBool,
    pub reading: AtomicBool,
}

impl Health for FileStatus {
    fn up(&self) -> bool {
        self.reading.load(Ordering::Relaxed) || self.finished.load(Ordering::Relaxed)
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "bytes_total": self.bytes_total.load(Ordering::Relaxed),
            "bytes_read": self.bytes_read.load(Ordering::Relaxed),
            "lines": self.lines.load(Ordering::Relaxed),
            "finished": self.finished.load(Ordering::Relaxed),
        })
    }
}

const CHUNK_BYTES: usize = 64 * 1024;
/// A line longer than this is refused (`too_large`): a file without line breaks cannot make
/// the reader hold it whole.
const MAX_LINE: usize = 4 << 20;

/// Opens the file (an error says which and why) and starts replaying it into `tx`.
pub fn start(config: FileSourceConfig, tx: mpsc::Sender<Envelope>) -> Result<(Running, Arc<FileStatus>), String> {
    let file = std::fs::File::open(&config.path)
        .map_err(|e| format!("file source {:?}: cannot open {}: {e}", config.name, config.path.display()))?;
    let status = Arc::new(FileStatus::default());
    status.bytes_total.store(file.metadata().map(|m| m.len()).unwrap_or(0), Ordering::Relaxed);
    status.reading.store(true, Ordering::Relaxed);
    let name = config.name;
    let task = tokio::task::spawn_blocking({
        let status = status.clone();
        move || {
            if let Err(e) = replay(&config, file, &tx, &status) {
                tracing::error!(source = config.name, path = %config.path.display(), error = %e, "file source stopped");
            }
            status.reading.store(false, Ordering::Relaxed);
            status.finished.store(true, Ordering::Relaxed);
            let _ = tx.blocking_send(envelope(&config, Bytes::new(), true));
        }
    });
    Ok((Running::task(name, "file", status.clone(), task.abort_handle()), status))
}

fn envelope(config: &FileSourceConfig, payload: Bytes, last: bool) -> Envelope {
    Envelope {
        source: config.name,
        topic: config.path.display().to_string(),
        payload,
        received_at: now_ms(),
        ack: Ack::None,
        framing_error: None,
        oversize: None,
        last,
    }
}

/// Reads the file in blocks and sends whole lines.
fn replay(
    config: &FileSourceConfig,
    mut file: std::fs::File,
    tx: &mpsc::Sender<Envelope>,
    status: &FileStatus,
) -> std::io::Result<()> {
    const BLOCK: usize = 1 << 20;
    // Unconsumed bytes of the file: `block[pos..]`; read into the spare room after them.
    let mut block: Vec<u8> = vec![0; BLOCK];
    let (mut pos, mut filled) = (0usize, 0usize);
    let mut header: Option<Bytes> = None;
    let mut chunk = BytesMut::with_capacity(CHUNK_BYTES + 4096);
    let mut lines_in_chunk = 0;
    let paced = config.speed.filter(|s| *s > 0.0).zip(config.time_of.clone());
    let chunk_lines = if paced.is_some() { 1 } else { config.chunk_lines.max(1) };
    let mut first: Option<(i64, Instant)> = None;
    let mut eof = false;
    // Inside a line longer than MAX_LINE, already refused.
    let mut skipping = false;
    let send = |chunk: &mut BytesMut, lines: &mut usize| -> bool {
        *lines = 0;
        let payload = chunk.split().freeze();
        tx.blocking_send(envelope(config, payload, false)).is_ok()
    };
    while !(eof && pos == filled) {
        if !eof {
            // Keep the partial line, make room, read on.
            block.copy_within(pos..filled, 0);
            filled -= pos;
            pos = 0;
            if filled >= MAX_LINE {
                // One line this long is no reading: keep its start as a dead letter and
                // skip to the next line.
                let mut letter = envelope(config, Bytes::copy_from_slice(&block[..4096]), false);
                letter.oversize = Some((filled, MAX_LINE));
                if tx.blocking_send(letter).is_err() {
                    return Ok(());
                }
                skipping = true;
                filled = 0;
            }
            if block.len() - filled < BLOCK / 2 {
                block.resize(block.len() * 2, 0);
            }
            let n = file.read(&mut block[filled..])?;
            filled += n;
            status.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
            eof = n == 0;
        }
        // Unpaced JSON lines: whole runs of lines are copied at once (the decoder skips blank
        // lines and trailing `\r`); a chunk ends at a line break.
        if paced.is_none() && !config.header && !skipping {
            while pos < filled {
                let room = CHUNK_BYTES.saturating_sub(chunk.len()).max(1);
                let window = &block[pos..filled.min(pos + room)];
                let Some(last) = memchr::memrchr(b'\n', window) else { break };
                let lines = memchr::memchr_iter(b'\n', &window[..=last]).count();
                chunk.extend_from_slice(&window[..=last]);
                status.lines.fetch_add(lines as u64, Ordering::Relaxed);
                pos += last + 1;
                lines_in_chunk += lines;
                if chunk.len() >= CHUNK_BYTES / 2 && !send(&mut chunk, &mut lines_in_chunk) {
                    return Ok(());
                }
            }
        }
        loop {
            let rest = &block[pos..filled];
            let end = match memchr::memchr(b'\n', rest) {
                Some(end) => end,
                None if eof && !rest.is_empty() => rest.len(),
                None => break,
            };
            let text = trim_line(&rest[..end]);
            pos += (end + 1).min(rest.len());
            if std::mem::take(&mut skipping) {
                continue; // the end of the line too long to take
            }
            if text.is_empty() {
                continue;
            }
            if config.header && header.is_none() {
                header = Some(Bytes::copy_from_slice(text));
                continue;
            }
            status.lines.fetch_add(1, Ordering::Relaxed);
            if let Some((speed, time_of)) = &paced {
                if let Some(t) = time_of(text) {
                    let (t0, started) = *first.get_or_insert((t, Instant::now()));
                    let due = started + Duration::from_secs_f64(((t - t0).max(0) as f64 / 1000.0) / speed);
                    let wait = due.saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        std::thread::sleep(wait);
                    }
                }
            }
            if lines_in_chunk == 0 {
                if let Some(h) = &header {
                    chunk.extend_from_slice(h);
                    chunk.extend_from_slice(b"\n");
                }
            }
            chunk.extend_from_slice(text);
            chunk.extend_from_slice(b"\n");
            lines_in_chunk += 1;
            if (lines_in_chunk >= chunk_lines || chunk.len() >= CHUNK_BYTES) && !send(&mut chunk, &mut lines_in_chunk) {
                return Ok(());
            }
        }
    }
    if lines_in_chunk > 0 {
        send(&mut chunk, &mut lines_in_chunk);
    }
    Ok(())
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(path: PathBuf, header: bool) -> Vec<Envelope> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async {
            let (tx, mut rx) = mpsc::channel(16);
            let config = FileSourceConfig { name: "f", path, header, speed: None, time_of: None, chunk_lines: 3 };
            let (_running, status) = start(config, tx).unwrap();
            let mut out = Vec::new();
            while let Some(e) = rx.recv().await {
                let last = e.last;
                out.push(e);
                if last {
                    break;
                }
            }
            assert!(status.finished.load(Ordering::Relaxed));
            out
        })
    }

    #[test]
    fn lines_come_in_chunks_each_starting_with_the_header_and_the_last_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "a,b\r\n1,2\n\n3,4\n5,6\n7,8").unwrap();
        let out = collect(path, true);
        let payloads: Vec<&[u8]> = out.iter().map(|e| &e.payload[..]).collect();
        assert_eq!(payloads, [&b"a,b\n1,2\n3,4\n5,6\n"[..], b"a,b\n7,8\n", b""]);
        assert!(out.last().unwrap().last && !out[0].last);
    }

    #[test]
    fn json_lines_come_whole_in_chunks_and_every_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let lines: Vec<String> = (0..20_000).map(|i| format!("{{\"n\":{i}}}")).collect();
        let mut text = lines.join("\n\n");
        text.push_str("\r\n{\"n\":\"last, no line break\"}");
        std::fs::write(&path, &text).unwrap();
        let out = collect(path, false);
        assert!(out.len() > 3, "chunked: {} envelopes", out.len());
        let mut got = Vec::new();
        for e in &out {
            assert!(e.payload.is_empty() || e.payload.ends_with(b"\n"), "whole lines only");
            let text = std::str::from_utf8(&e.payload).unwrap();
            got.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned));
        }
        let mut expected = lines.clone();
        expected.push("{\"n\":\"last, no line break\"}".to_owned());
        assert_eq!(got, expected);
    }

    #[test]
    fn a_line_too_long_to_hold_is_refused_and_the_next_lines_still_come() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut text = b"first\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE + (3 << 20)));
        text.extend_from_slice(b"\nsecond\n");
        std::fs::write(&path, text).unwrap();
        let out = collect(path, false);
        let oversize: Vec<_> = out.iter().filter_map(|e| e.oversize).collect();
        assert!(!oversize.is_empty() && oversize.iter().all(|(n, limit)| *n >= *limit), "{oversize:?}");
        let lines: Vec<u8> = out.iter().filter(|e| e.oversize.is_none()).flat_map(|e| e.payload.to_vec()).collect();
        assert_eq!(lines, b"first\nsecond\n");
    }
}

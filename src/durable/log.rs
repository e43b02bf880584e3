//! The reading log: every batch of readings, written before its messages are acknowledged.
//!
//! A restart restores the rule state of the last checkpoint and replays the log from the
//! position that checkpoint names, so a reading acknowledged to its source is never lost with
//! the process. Segments are files named by the log position they start at; a checkpoint
//! lets the segments wholly before it go.
//!
//! ```text
//!  segment  = "TWLOG\x01" u32 header-length header-json   (station ids of the registry)
//!             record*
//!  record   = u32 body-length  u32 crc32(body)  body
//!  body     = 1 | 2 (readings | held readings)  u32 count  reading*
//!           | 3 (quantity name)  u16 id  u8 length  name
//!  reading  = u32 station  u16 quantity-id  u8 quality  u8 0  i64 time  f64 value   (24 bytes, LE)
//! ```
//!
//! Station numbers index the header's list and quantity ids the segment's quantity records,
//! so a log written before the registry or the interned quantities changed replays by name.
//! A record cut short by a crash (or failing its checksum) ends the log: it was never
//! acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use tidewatch_ingest::{Quality, Quantity, Reading, Registry, SensorKey};

const MAGIC: &[u8; 6] = b"TWLOG\x01";
const READINGS: u8 = 1;
const HELD: u8 = 2;
const QUANTITY: u8 = 3;
const READING_BYTES: usize = 24;
/// A segment is closed once it holds this much.
const SEGMENT_BYTES: u64 = 64 << 20;
/// A record longer than this is corrupt (a batch is at most a few thousand readings).
const MAX_RECORD: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
#[error("reading log {path}: {what}: {source}")]
pub struct LogError {
    path: PathBuf,
    what: &'static str,
    #[source]
    source: std::io::Error,
}

trait Doing<T> {
    fn doing(self, path: &Path, what: &'static str) -> Result<T, LogError>;
}

impl<T> Doing<T> for std::io::Result<T> {
    fn doing(self, path: &Path, what: &'static str) -> Result<T, LogError> {
        self.map_err(|source| LogError { path: path.to_owned(), what, source })
    }
}

/// Appends batches; one per process, owned by the ingest task.
pub struct ReadingLog {
    dir: PathBuf,
    registry: Arc<Registry>,
    /// Fsync every append (power-loss safe) rather than leave it to the OS (crash safe).
    sync: bool,
    file: File,
    path: PathBuf,
    /// Position of the segment's first byte, and bytes written to it.
    base: u64,
    len: u64,
    /// This segment's quantity ids.
    quantities: FxHashMap<Quantity, u16>,
    buf: Vec<u8>,
}

/// What reading the log back found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replayed {
    pub records: u64,
    pub readings: u64,
    /// Readings of stations no longer in the registry (or quantities no longer known).
    pub unknown: u64,
    /// Where the log ends: the next segment starts here.
    pub end: u64,
    /// A torn or corrupt record cut the log short (at `end`).
    pub torn: bool,
}

impl ReadingLog {
    /// Opens the log in `dir`, cutting off a torn tail, and starts a new segment at its end.
    pub fn open(dir: &Path, registry: Arc<Registry>, sync: bool) -> Result<ReadingLog, LogError> {
        std::fs::create_dir_all(dir).doing(dir, "creating the directory")?;
        let end = repair(dir)?;
        let (file, path, len) = new_segment(dir, &registry, end, sync)?;
        Ok(ReadingLog {
            dir: dir.to_owned(),
            registry,
            sync,
            file,
            path,
            base: end,
            len,
            quantities: FxHashMap::default(),
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// The position after the last record written: what a checkpoint taken now covers.
    pub fn position(&self) -> u64 {
        self.base + self.len
    }

    /// Writes a batch (handed to the OS, or to the disk with `sync`) before it is acknowledged.
    pub fn append(&mut self, readings: &[Reading], held: bool) -> Result<(), LogError> {
        if readings.is_empty() {
            return Ok(());
        }
        if self.len >= SEGMENT_BYTES {
            self.start_segment(self.position())?;
        }
        self.buf.clear();
        for r in readings {
            if !self.quantities.contains_key(&r.sensor.quantity) {
                let id = self.quantities.len() as u16;
                self.quantities.insert(r.sensor.quantity, id);
                let name = r.sensor.quantity.name().as_bytes();
                let name = &name[..name.len().min(255)];
                let mut body = vec![QUANTITY];
                body.extend_from_slice(&id.to_le_bytes());
                body.push(name.len() as u8);
                body.extend_from_slice(name);
                frame(&mut self.buf, &body);
            }
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 8]);
        self.buf.push(if held { HELD } else { READINGS });
        self.buf.extend_from_slice(&(readings.len() as u32).to_le_bytes());
        for r in readings {
            self.buf.extend_from_slice(&r.sensor.station.0.to_le_bytes());
            self.buf.extend_from_slice(&self.quantities[&r.sensor.quantity].to_le_bytes());
            self.buf.push(quality_code(r.quality));
            self.buf.push(0);
            self.buf.extend_from_slice(&r.time.to_le_bytes());
            self.buf.extend_from_slice(&r.value.to_le_bytes());
        }
        let body_len = self.buf.len() - start - 8;
        let crc = crc32fast::hash(&self.buf[start + 8..]);
        self.buf[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all(&self.buf).doing(&self.path, "appending")?;
        if self.sync {
            self.file.sync_data().doing(&self.path, "syncing")?;
        }
        self.len += self.buf.len() as u64;
        Ok(())
    }

    /// Deletes the segments that end at or before `position` (a checkpoint covers them).
    pub fn release_before(&mut self, position: u64) -> Result<usize, LogError> {
        let segments = segments(&self.dir)?;
        let mut removed = 0;
        for pair in segments.windows(2) {
            let (base, path) = &pair[0];
            let next_base = pair[1].0;
            if next_base <= position && *base != self.base {
                std::fs::remove_file(path).doing(path, "removing a segment a checkpoint covers")?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn start_segment(&mut self, base: u64) -> Result<(), LogError> {
        (self.file, self.path, self.len) = new_segment(&self.dir, &self.registry, base, self.sync)?;
        self.base = base;
        self.quantities.clear();
        Ok(())
    }
}

/// Creates the segment starting at `base`: (file, path, bytes written).
fn new_segment(dir: &Path, registry: &Registry, base: u64, sync: bool) -> Result<(File, PathBuf, u64), LogError> {
    let path = dir.join(format!("{base:020}.seg"));
    let mut file = OpenOptions::new().create_new(true).append(true).open(&path).doing(&path, "creating a segment")?;
    let ids: Vec<&str> = registry.stations().iter().map(|s| s.id.as_str()).collect();
    let header = serde_json::to_vec(&serde_json::json!({ "stations": ids })).unwrap_or_default();
    let mut head = Vec::with_capacity(header.len() + 10);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&(header.len() as u32).to_le_bytes());
    head.extend_from_slice(&header);
    file.write_all(&head).doing(&path, "writing a segment header")?;
    if sync {
        file.sync_all().doing(&path, "syncing a segment header")?;
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok((file, path, head.len() as u64))
}

fn frame(buf: &mut Vec<u8>, body: &[u8]) {
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    buf.extend_from_slice(body);
}

fn quality_code(q: Quality) -> u8 {
    match q {
        Quality::Good => 0,
        Quality::Maintenance => 1,
        Quality::Fault => 2,
        Quality::OverRange => 3,
    }
}

fn quality_of(code: u8) -> Option<Quality> {
    Some(match code {
        0 => Quality::Good,
        1 => Quality::Maintenance,
        2 => Quality::Fault,
        3 => Quality::OverRange,
        _ => return None,
    })
}

/// Segment files by base position, oldest first.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir).doing(dir, "listing")? {
        let path = entry.doing(dir, "listing")?.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(base) = base {
            out.push((base, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Cuts a torn tail off the last segment; returns where the log ends.
fn repair(dir: &Path) -> Result<u64, LogError> {
    let segments = segments(dir)?;
    let Some((base, path)) = segments.last() else { return Ok(0) };
    let registry = Registry::default();
    let scan = scan_segment(path, *base, u64::MAX, &registry, &mut |_, _, _| {})?;
    let file_len = std::fs::metadata(path).doing(path, "reading the size of")?.len();
    if scan.end == *base {
        // Not even a whole header: the segment was being created.
        std::fs::remove_file(path).doing(path, "removing a segment cut short in its header")?;
        return Ok(*base);
    }
    if scan.torn || file_len > scan.end - base {
        let good = scan.end - base;
        tracing::warn!(segment = %path.display(), kept_bytes = good, "the reading log ends in a torn record (a crash mid-write); cut off");
        let file = OpenOptions::new().write(true).open(path).doing(path, "opening to cut a torn tail")?;
        file.set_len(good).doing(path, "cutting a torn tail")?;
    }
    Ok(scan.end)
}

/// Reads every record from `from` on, handing each batch (mapped onto `registry`) to `each`
/// with its held flag.
#[cfg(test)]
pub fn replay(
    dir: &Path,
    registry: &Registry,
    from: u64,
    each: &mut dyn FnMut(&[Reading], bool),
) -> Result<Replayed, LogError> {
    replay_with_tail(dir, registry, from, &mut |batch, held, replay| {
        if replay {
            each(batch, held)
        }
    })
}

/// As [`replay`], also handing over (flagged `false`) the records before `from` in the
/// segment holding `from` and in the one before it: the log's tail, for recognising
/// redeliveries even when a checkpoint was taken at the very end of the log.
pub fn replay_with_tail(
    dir: &Path,
    registry: &Registry,
    from: u64,
    each: &mut dyn FnMut(&[Reading], bool, bool),
) -> Result<Replayed, LogError> {
    let mut total = Replayed { end: from, ..Replayed::default() };
    let segments = segments(dir)?;
    let first = segments.iter().enumerate().position(|(i, _)| segments.get(i + 1).map_or(u64::MAX, |s| s.0) > from);
    let first = first.map_or(segments.len(), |i| i.saturating_sub(1));
    for (base, path) in &segments[first..] {
        let scan = scan_segment(path, *base, from, registry, each)?;
        total.records += scan.records;
        total.readings += scan.readings;
        total.unknown += scan.unknown;
        total.end = scan.end;
        if scan.torn {
            total.torn = true;
            break;
        }
    }
    Ok(total)
}

fn scan_segment(
    path: &Path,
    base: u64,
    from: u64,
    registry: &Registry,
    each: &mut dyn FnMut(&[Reading], bool, bool),
) -> Result<Replayed, LogError> {
    let file = File::open(path).doing(path, "opening a segment")?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut out = Replayed { end: base, ..Replayed::default() };
    let mut head = [0u8; 10];
    if reader.read_exact(&mut head).is_err() || &head[..6] != MAGIC {
        out.torn = true;
        return Ok(out);
    }
    let header_len = u32::from_le_bytes(head[6..10].try_into().unwrap_or_default()) as usize;
    let mut header = vec![0; header_len.min(MAX_RECORD)];
    if header_len > MAX_RECORD || reader.read_exact(&mut header).is_err() {
        out.torn = true;
        return Ok(out);
    }
    #[derive(serde::Deserialize)]
    struct Header {
        stations: Vec<String>,
    }
    let Ok(header) = serde_json::from_slice::<Header>(&header) else {
        out.torn = true;
        return Ok(out);
    };
    let stations: Vec<_> = header.stations.iter().map(|id| registry.key_of(id)).collect();
    let mut quantities: Vec<Option<Quantity>> = Vec::new();
    let mut position = base + 10 + header_len as u64;
    out.end = position;
    let mut body = Vec::new();
    let mut batch = Vec::new();
    loop {
        let mut frame_head = [0u8; 8];
        match reader.read_exact(&mut frame_head) {
            Ok(()) => {}
            // The end (a few bytes of a cut header are found by the length check in `repair`).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).doing(path, "reading"),
        }
        let len = u32::from_le_bytes(frame_head[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(frame_head[4..].try_into().unwrap_or_default());
        if len == 0 || len > MAX_RECORD {
            out.torn = true;
            break;
        }
        body.resize(len, 0);
        if reader.read_exact(&mut body).is_err() || crc32fast::hash(&body) != crc {
            out.torn = true;
            break;
        }
        let record_at = position;
        position += 8 + len as u64;
        match body[0] {
            QUANTITY if len >= 4 => {
                let id = u16::from_le_bytes([body[1], body[2]]) as usize;
                let name_len = body[3] as usize;
                let name = body.get(4..4 + name_len).and_then(|n| std::str::from_utf8(n).ok());
                if quantities.len() <= id {
                    quantities.resize(id + 1, None);
                }
                quantities[id] = name.and_then(|n| n.parse().ok());
            }
            kind @ (READINGS | HELD) if len >= 5 => {
                let count = u32::from_le_bytes(body[1..5].try_into().unwrap_or_default()) as usize;
                if len != 5 + count * READING_BYTES {
                    out.torn = true;
                    break;
                }
                out.records += 1;
                batch.clear();
                for chunk in body[5..].chunks_exact(READING_BYTES) {
                    let station = u32::from_le_bytes(chunk[0..4].try_into().unwrap_or_default()) as usize;
                    let quantity = u16::from_le_bytes([chunk[4], chunk[5]]) as usize;
                    let sensor = stations
                        .get(station)
                        .copied()
                        .flatten()
                        .zip(quantities.get(quantity).copied().flatten())
                        .map(|(s, q)| SensorKey::new(s, q));
                    let (Some(sensor), Some(quality)) = (sensor, quality_of(chunk[6])) else {
                        out.unknown += 1;
                        continue;
                    };
                    batch.push(Reading {
                        sensor,
                        quality,
                        time: i64::from_le_bytes(chunk[8..16].try_into().unwrap_or_default()),
                        value: f64::from_le_bytes(chunk[16..24].try_into().unwrap_or_default()),
                    });
                }
                let replay = record_at >= from;
                if replay {
                    out.readings += batch.len() as u64;
                }
                each(&batch, kind == HELD, replay);
            }
            _ => {
                out.torn = true;
                break;
            }
        }
        out.end = position;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

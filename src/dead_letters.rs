//! The dead-letter file, bounded: hostile or broken input cannot fill the disk.
//!
//! Every dead letter is counted (`tidewatch_dead_letters_total{reason}`); it is *written*
//! unless its (source, reason) already wrote `rate` letters this second — a flood of one
//! kind is sampled, and what was not written is counted
//! (`tidewatch_dead_letters_unwritten_total{reason}`). The file rotates at `max_bytes`
//! (`dead_letters.jsonl` → `.1` → `.2` …), keeping `files` files in all. A letter keeps at
//! most [`DeadLetter::MAX_PAYLOAD`] bytes of its payload.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use tidewatch_ingest::DeadLetter;

/// How much the file may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bytes: u64,
    /// Files kept, the one being written included.
    pub files: u32,
    /// Letters written per second per (source, reason); more are counted, not written.
    pub rate: u32,
}

pub struct DeadLetterFile {
    path: Option<PathBuf>,
    out: Option<BufWriter<File>>,
    written: u64,
    limits: Limits,
    /// (source, reason) → (second, letters written in it).
    buckets: FxHashMap<(String, &'static str), (i64, u32)>,
    line: Vec<u8>,
}

impl DeadLetterFile {
    pub fn open(path: Option<&Path>, limits: Limits) -> anyhow::Result<DeadLetterFile> {
        let mut file = DeadLetterFile {
            path: path.map(Path::to_owned),
            out: None,
            written: 0,
            limits,
            buckets: FxHashMap::default(),
            line: Vec::with_capacity(8192),
        };
        file.reopen()?;
        Ok(file)
    }

    fn reopen(&mut self) -> anyhow::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let (file, written) = crate::json_lines::open_for_append(path)?;
        self.written = written;
        self.out = Some(BufWriter::new(file));
        Ok(())
    }

    /// Writes the letter unless its kind is over its rate (`now` in ms); false if it was
    /// only counted.
    pub fn write(&mut self, letter: &DeadLetter, now: i64) -> bool {
        if self.path.is_none() {
            return true;
        }
        let second = now.div_euclid(1000);
        let key = (letter.source.clone(), letter.reason.kind());
        let bucket = self.buckets.entry(key).or_insert((second, 0));
        if bucket.0 != second {
            *bucket = (second, 0);
        }
        if bucket.1 >= self.limits.rate {
            return false;
        }
        bucket.1 += 1;
        self.line.clear();
        if serde_json::to_writer(&mut self.line, letter).is_err() {
            return false;
        }
        self.line.push(b'\n');
        if self.written + self.line.len() as u64 > self.limits.max_bytes {
            self.rotate();
        }
        let Some(out) = self.out.as_mut() else { return false };
        if let Err(e) = out.write_all(&self.line) {
            tracing::error!(error = %e, "cannot append to the dead-letter file; is the disk full?");
            return false;
        }
        self.written += self.line.len() as u64;
        true
    }

    pub fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            if let Err(e) = out.flush() {
                tracing::error!(error = %e, "cannot flush the dead-letter file");
            }
        }
    }

    /// `file` → `file.1` → … → `file.{files-1}`; the oldest goes.
    fn rotate(&mut self) {
        self.flush();
        self.out = None;
        let Some(path) = self.path.clone() else { return };
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
        let keep = self.limits.files.max(1) - 1;
        if keep == 0 {
            let _ = std::fs::remove_file(&path);
        } else {
            let _ = std::fs::remove_file(numbered(keep));
            for n in (1..keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            let _ = std::fs::rename(&path, numbered(1));
        }
        if let Err(e) = self.reopen() {
            tracing::error!(error = %e, "cannot reopen the dead-letter file after rotating it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_ingest::Rejection;

    fn letter(source: &str, payload: &[u8]) -> DeadLetter {
        DeadLetter::new(0, source, "t", payload, Rejection::Undecodable { message: "x".into() })
    }

    #[test]
    fn a_flood_of_one_kind_is_sampled_per_second_and_the_file_rotates_within_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let mut file = DeadLetterFile::open(Some(&path), Limits { max_bytes: 20_000, files: 3, rate: 10 }).unwrap();
        let payload = vec![b'x'; 1000];
        let written = (0..1000).filter(|_| file.write(&letter("mqtt", &payload), 5_000)).count();
        assert_eq!(written, 10, "ten a second of one source and reason");
        assert!(file.write(&letter("hj212-loggers", &payload), 5_000), "another source has its own rate");
        // The next seconds write on; the file rotates, and only `files` files remain.
        for second in 6..40 {
            for _ in 0..10 {
                file.write(&letter("mqtt", &payload), second * 1000);
            }
        }
        file.flush();
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["dead.jsonl", "dead.jsonl.1", "dead.jsonl.2"]);
        for name in names {
            let size = std::fs::metadata(dir.path().join(&name)).unwrap().len();
            assert!(size <= 20_000, "{name}: {size} bytes");
        }
    }
}

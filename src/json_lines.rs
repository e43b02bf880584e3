//! Opening JSON-lines files for appending: the alerts file, the dead-letter file and the
//! `jsonl` sink.
//!
//! A line is complete when its `\n` is written. A process killed in the middle of a write
//! leaves an unterminated tail; appending after it would glue the next line onto it and make
//! one unreadable line in the middle of the file. So a file is opened with its torn tail cut
//! off (the reading it held is delivered again: sources acknowledge only after the hand-off),
//! and writers hand whole lines to the file, never a line in pieces.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::Context;

/// Opens `path` for appending (creating it and its folder), with any torn last line cut off;
/// returns the file and its length.
pub fn open_for_append(path: &Path) -> anyhow::Result<(File, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let cut = cut_torn_tail(&mut file).with_context(|| format!("cannot read the end of {}", path.display()))?;
    if cut > 0 {
        tracing::warn!(
            file = %path.display(),
            bytes = cut,
            "the last line was cut short (the process stopped mid-write); it is removed"
        );
    }
    let len = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?.len();
    Ok((file, len))
}

/// Truncates `file` after its last `\n`; returns how many bytes went.
fn cut_torn_tail(file: &mut File) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep < len {
                file.set_len(keep)?;
            }
            return Ok(len - keep);
        }
        end = start;
    }
    if len > 0 {
        file.set_len(0)?;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn reopened(contents: &[u8]) -> (Vec<u8>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        let (mut file, len) = open_for_append(&path).unwrap();
        file.write_all(b"{\"next\":1}\n").unwrap();
        (std::fs::read(&path).unwrap(), len)
    }

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        let (text, len) = reopened(b"{\"a\":1}\n{\"b\":2}\n{\"c\":");
        assert_eq!(text, b"{\"a\":1}\n{\"b\":2}\n{\"next\":1}\n");
        assert_eq!(len, 16);
    }

    #[test]
    fn complete_and_empty_files_are_left_alone() {
        assert_eq!(reopened(b"{\"a\":1}\n").0, b"{\"a\":1}\n{\"next\":1}\n");
        assert_eq!(reopened(b"").0, b"{\"next\":1}\n");
        // No newline at all: the whole file is one torn line.
        assert_eq!(reopened(b"{\"a\":").0, b"{\"next\":1}\n");
    }

    #[test]
    fn a_tail_longer_than_one_chunk_is_found() {
        let mut contents = b"{\"a\":1}\n".to_vec();
        contents.extend(std::iter::repeat_n(b'x', 200_000));
        assert_eq!(reopened(&contents).0, b"{\"a\":1}\n{\"next\":1}\n");
    }

    #[test]
    fn the_folder_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.jsonl");
        let (_, len) = open_for_append(&path).unwrap();
        assert_eq!(len, 0);
        assert!(path.exists());
    }
}

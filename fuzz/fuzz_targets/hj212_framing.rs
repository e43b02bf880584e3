//! Feeding a stream in pieces, the framer accounts for every byte exactly once (in a frame
//! or as garbage), never claims more bytes than it has, and never stalls on a buffer that
//! cannot become a frame (bounded by the largest frame).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tidewatch_ingest::framing::{scan_hj212, Scan};

fuzz_target!(|input: (u8, Vec<u8>)| {
    let (chunk, stream) = input;
    let chunk = usize::from(chunk.max(1));
    let mut buf: Vec<u8> = Vec::new();
    let mut consumed = 0usize;
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match scan_hj212(&buf) {
                Scan::Frame(n) | Scan::Garbage(n) => {
                    assert!(n > 0 && n <= buf.len());
                    consumed += n;
                    buf.drain(..n);
                }
                Scan::Incomplete => break,
            }
        }
        assert!(buf.len() <= 4096 + 32, "waiting on {} bytes that cannot be a frame", buf.len());
    }
    assert_eq!(consumed + buf.len(), stream.len());
});

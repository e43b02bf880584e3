//! Checks shared by the fuzz targets.

use tidewatch_ingest::framing::Scan;

/// Feeds `stream` to `scan` in pieces of `chunk` bytes, as a socket would: every byte ends up
/// exactly once in a frame or as garbage, no scan claims more bytes than it has, and the
/// buffer never stalls on more bytes than the largest frame.
pub fn check_framer(scan: fn(&[u8]) -> Scan, chunk: u8, stream: &[u8]) {
    let chunk = usize::from(chunk.max(1));
    let mut buf: Vec<u8> = Vec::new();
    let mut consumed = 0usize;
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match scan(&buf) {
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
}

//! Finding frames in a byte stream (TCP), for protocols that are not message-based.
//!
//! A stream carries frames in arbitrary pieces: a read may hold half a frame, several
//! frames, or garbage between them. [`Scan`] says what the start of a buffer holds.

/// What the start of a buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// A whole frame of this many bytes.
    Frame(usize),
    /// This many bytes that cannot start a frame: skip them (and keep them as a dead letter).
    Garbage(usize),
    /// Not enough bytes yet to tell.
    Incomplete,
}

/// HJ 212: `##` + 4-digit length + data + 4 hex CRC + `\r\n` (tolerating a missing `\r\n`
/// when the next packet follows at once).
pub fn scan_hj212(buf: &[u8]) -> Scan {
    let Some(mut start) = buf.windows(2).position(|w| w == b"##") else {
        // Keep a trailing '#': it may be the first half of the next header.
        let keep = usize::from(buf.last() == Some(&b'#'));
        return if buf.len() > keep { Scan::Garbage(buf.len() - keep) } else { Scan::Incomplete };
    };
    // In a run of '#', the frame starts at the last pair.
    while buf.get(start + 2) == Some(&b'#') {
        start += 1;
    }
    if start > 0 {
        return Scan::Garbage(start);
    }
    if buf.len() < 6 {
        return Scan::Incomplete;
    }
    let digits = &buf[2..6];
    // A bad header skips to the next "##" (not byte by byte: a flood of junk is one
    // stretch, not one dead letter per byte), so a frame starting there is not lost.
    if !digits.iter().all(u8::is_ascii_digit) {
        return match buf[1..].windows(2).position(|w| w == b"##") {
            Some(next) => Scan::Garbage(next + 1),
            None => Scan::Garbage(buf.len() - usize::from(buf.last() == Some(&b'#'))),
        };
    }
    // Any length the four digits can state (deployed loggers exceed the standard's 1,024):
    // at most 10,016 bytes a frame, within every listener's buffer.
    let len = digits.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    let total = 6 + len + 4;
    if buf.len() < total + 2 {
        // The line end (or the next packet's "##") decides where this frame ends.
        return match buf.get(total..) {
            Some(rest) if !rest.is_empty() && !b"\r\n".starts_with(rest) => Scan::Frame(total),
            _ => Scan::Incomplete,
        };
    }
    if &buf[total..total + 2] == b"\r\n" {
        Scan::Frame(total + 2)
    } else {
        Scan::Frame(total)
    }
}

/// SL 651 HEX mode: `7E7E`, 13-byte header with the body length, STX or SYN (+3 bytes),
/// body, ETX/ETB, 2-byte CRC.
pub fn scan_sl651(buf: &[u8]) -> Scan {
    let Some(mut start) = buf.windows(2).position(|w| w == [0x7E, 0x7E]) else {
        let keep = usize::from(buf.last() == Some(&0x7E));
        return if buf.len() > keep { Scan::Garbage(buf.len() - keep) } else { Scan::Incomplete };
    };
    while buf.get(start + 2) == Some(&0x7E) {
        start += 1;
    }
    if start > 0 {
        return Scan::Garbage(start);
    }
    if buf.len() < 14 {
        return Scan::Incomplete;
    }
    if !matches!(buf[11] >> 4, 0 | 8) {
        return Scan::Garbage(1);
    }
    let len = usize::from(u16::from_be_bytes([buf[11], buf[12]]) & 0x0FFF);
    let total = match buf[13] {
        0x02 => 14 + len + 3,
        0x16 => 17 + len + 3,
        _ => return Scan::Garbage(1),
    };
    if buf.len() < total {
        Scan::Incomplete
    } else {
        Scan::Frame(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hj(data: &str) -> Vec<u8> {
        crate::hj212::encode(data).into_bytes()
    }

    /// Splits a stream with `scan`, feeding it in pieces of `chunk` bytes as a socket would.
    fn frames(scan: fn(&[u8]) -> Scan, stream: &[u8], chunk: usize) -> (Vec<Vec<u8>>, usize) {
        let mut buf = Vec::new();
        let (mut frames, mut garbage) = (Vec::new(), 0);
        for piece in stream.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match scan(&buf) {
                    Scan::Frame(n) => frames.push(buf.drain(..n).collect()),
                    Scan::Garbage(n) => {
                        garbage += n;
                        buf.drain(..n);
                    }
                    Scan::Incomplete => break,
                }
            }
        }
        (frames, garbage + buf.len())
    }

    #[test]
    fn hj212_frames_survive_any_split_with_garbage_between() {
        let a = hj("QN=1;ST=22;CN=2011;PW=1;MN=A;Flag=4;CP=&&a34004-Rtd=1&&");
        let b = hj("QN=2;ST=22;CN=2011;PW=1;MN=B;Flag=5;CP=&&a34004-Rtd=2&&");
        let mut stream = b"noise".to_vec();
        stream.extend_from_slice(&a);
        stream.extend_from_slice(b"#x##99xx");
        stream.extend_from_slice(&b);
        for chunk in [1, 2, 3, 7, 64, 1000] {
            let (got, garbage) = frames(scan_hj212, &stream, chunk);
            assert_eq!(got, [a.clone(), b.clone()], "chunk {chunk}");
            assert_eq!(garbage, 5 + 8, "chunk {chunk}");
        }
    }

    #[test]
    fn hj212_any_four_digit_length_is_a_frame_to_wait_for() {
        // Longer than the standard's 1,024 bytes, as deployed loggers send: the framer waits
        // for it (the listener's buffer bounds the wait).
        assert_eq!(scan_hj212(b"##9999"), Scan::Incomplete);
        // Junk skips to the next "##", not byte by byte.
        assert_eq!(scan_hj212(b"##x##x##x"), Scan::Garbage(3));
        assert_eq!(scan_hj212(b"##abcdefgh#"), Scan::Garbage(10));
        // Without \r\n, the next packet's header ends the frame.
        let a = hj("QN=1;ST=22;CN=2011;PW=1;MN=A;Flag=4;CP=&&&&");
        let bare = &a[..a.len() - 2];
        let mut two = bare.to_vec();
        two.extend_from_slice(&a);
        assert_eq!(scan_hj212(&two), Scan::Frame(bare.len()));
    }

    #[test]
    fn sl651_frames_in_pieces() {
        let frame = crate::sl651::encode_uplink(5, "0011223344", 0x03E8, 0x32, &[0, 1, 0x17, 7, 0x18, 0x11, 0, 0x16]);
        let mut stream = vec![0x00, 0x7E];
        stream.extend_from_slice(&frame);
        stream.extend_from_slice(&frame);
        for chunk in [1, 5, 13, 14, 100] {
            let (got, garbage) = frames(scan_sl651, &stream, chunk);
            assert_eq!(got, [frame.clone(), frame.clone()], "chunk {chunk}");
            assert_eq!(garbage, 2);
        }
    }

    proptest! {
        /// Whatever arrives, scanning consumes every byte exactly once and never stalls on a
        /// buffer that cannot become a frame.
        #[test]
        fn scanning_accounts_for_every_byte(stream in proptest::collection::vec(any::<u8>(), 0..400), chunk in 1usize..50, sl651 in any::<bool>()) {
            let scan = if sl651 { scan_sl651 } else { scan_hj212 };
            let (got, rest) = frames(scan, &stream, chunk);
            prop_assert_eq!(got.iter().map(Vec::len).sum::<usize>() + rest, stream.len());
        }
    }
}

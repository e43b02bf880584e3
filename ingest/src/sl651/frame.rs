//! Frame and CRC of one SL 651 HEX-mode message.

use crate::hj212::crc16_modbus;

const STX: u8 = 0x02;
const SYN: u8 = 0x16;
const ETX: u8 = 0x03;
const ETB: u8 = 0x17;
const HEADER: usize = 13;

/// Why a frame was refused; offsets are byte positions in the frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Sl651Error {
    #[error("frame does not start with 7E7E")]
    NoHeader,
    #[error("frame is {0} bytes, shorter than header, start, end and CRC (17)")]
    TooShort(usize),
    #[error("direction nibble {0:X} at byte 11: 0 is uplink, 8 is downlink")]
    BadDirection(u8),
    #[error("not an uplink frame (direction 8): only station reports are decoded")]
    Downlink,
    #[error("body length {declared} does not fit: {available} bytes follow the header")]
    LengthMismatch { declared: usize, available: usize },
    #[error("start byte {0:02X} at byte 13: expected 02 (STX) or 16 (SYN)")]
    BadStart(u8),
    #[error("packet {seq} of {total} of a multi-packet frame, on its own (its set is put together before decoding; one that cannot complete is kept whole)")]
    MultiPacket { total: u16, seq: u16 },
    #[error("end byte {0:02X}: expected 03 (ETX) or 17 (ETB)")]
    BadEnd(u8),
    #[error("CRC mismatch: frame says {found:04X}, CRC-16/MODBUS of the frame gives {expected:04X}")]
    CrcMismatch { found: u16, expected: u16 },
    #[error("{0} bytes after the CRC")]
    TrailingBytes(usize),
    #[error("{what} at byte {offset}: {why}")]
    Body { what: &'static str, offset: usize, why: String },
}

/// A checked uplink frame, borrowing its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub centre: u8,
    /// Station address as its 10 BCD digits (hex digits where a station uses them).
    pub station: String,
    pub password: u16,
    pub function: u8,
    /// From serial number to the last element.
    pub body: &'a [u8],
    /// Offset of `body` in the frame, for error positions.
    pub body_offset: usize,
    /// For a multi-packet frame (SYN): (packets in all, this one's number from 1).
    pub packet: Option<(u16, u16)>,
}

impl<'a> Frame<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, Sl651Error> {
        if !bytes.starts_with(&[0x7E, 0x7E]) {
            return Err(Sl651Error::NoHeader);
        }
        if bytes.len() < HEADER + 4 {
            return Err(Sl651Error::TooShort(bytes.len()));
        }
        let direction = bytes[11] >> 4;
        match direction {
            0 => {}
            8 => return Err(Sl651Error::Downlink),
            d => return Err(Sl651Error::BadDirection(d)),
        }
        let declared = usize::from(u16::from_be_bytes([bytes[11], bytes[12]]) & 0x0FFF);
        let (body_offset, packet) = match bytes[13] {
            STX => (HEADER + 1, None),
            SYN => {
                if bytes.len() < HEADER + 4 + 3 {
                    return Err(Sl651Error::TooShort(bytes.len()));
                }
                let packed = u32::from_be_bytes([0, bytes[14], bytes[15], bytes[16]]);
                (HEADER + 4, Some(((packed >> 12) as u16, (packed & 0xFFF) as u16)))
            }
            other => return Err(Sl651Error::BadStart(other)),
        };
        let available = bytes.len().saturating_sub(body_offset + 3);
        if declared > available {
            return Err(Sl651Error::LengthMismatch { declared, available });
        }
        let end_at = body_offset + declared;
        match bytes[end_at] {
            ETX | ETB => {}
            other => return Err(Sl651Error::BadEnd(other)),
        }
        let crc_at = end_at + 1;
        let found = u16::from_be_bytes([bytes[crc_at], bytes[crc_at + 1]]);
        let expected = crc16_modbus(&bytes[..crc_at]);
        if found != expected {
            return Err(Sl651Error::CrcMismatch { found, expected });
        }
        if bytes.len() > crc_at + 2 {
            return Err(Sl651Error::TrailingBytes(bytes.len() - crc_at - 2));
        }
        Ok(Frame {
            centre: bytes[2],
            station: hex_digits(&bytes[3..8]),
            password: u16::from_be_bytes([bytes[8], bytes[9]]),
            function: bytes[10],
            body: &bytes[body_offset..end_at],
            body_offset,
            packet,
        })
    }
}

/// Bytes as their hex digits, which for BCD are the decimal digits.
pub(crate) fn hex_digits(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// An uplink frame with STX, ETX and CRC around `body`.
///
/// # Panics
/// If `station` is not 10 hex digits or `body` is longer than 4095 bytes.
pub fn encode_uplink(centre: u8, station: &str, password: u16, function: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() <= 0x0FFF, "SL 651 body too long");
    let address: Vec<u8> =
        (0..5).map(|i| u8::from_str_radix(&station[2 * i..2 * i + 2], 16).expect("hex station address")).collect();
    let mut out = vec![0x7E, 0x7E, centre];
    out.extend_from_slice(&address);
    out.extend_from_slice(&password.to_be_bytes());
    out.push(function);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.push(STX);
    out.extend_from_slice(body);
    out.push(ETX);
    let crc = crc16_modbus(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// One packet of a multi-packet uplink frame: SYN with the count and this packet's number
/// (from 1), then `body`, then ETB (ETX for the last).
pub fn encode_uplink_packet(
    centre: u8,
    station: &str,
    password: u16,
    function: u8,
    (total, number): (u16, u16),
    body: &[u8],
) -> Vec<u8> {
    let mut out = encode_uplink(centre, station, password, function, body);
    out.truncate(out.len() - 2 - 1 - body.len() - 1);
    out.push(SYN);
    let packed = (u32::from(total & 0xFFF) << 12) | u32::from(number & 0xFFF);
    out.extend_from_slice(&packed.to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out.push(if number == total { ETX } else { ETB });
    let crc = crc16_modbus(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The centre's confirmation of a report (downlink, ending EOT: "received, you may hang
/// up"), so the station does not send it again: the report's serial number and the centre's
/// time (`sent`: YYMMDDhhmmss as BCD).
pub fn encode_confirmation(report: &Frame<'_>, sent: [u8; 6]) -> Vec<u8> {
    let address: Vec<u8> = (0..5)
        .map(|i| u8::from_str_radix(report.station.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0))
        .collect();
    let mut out = vec![0x7E, 0x7E];
    out.extend_from_slice(&address);
    out.push(report.centre);
    out.extend_from_slice(&report.password.to_be_bytes());
    out.push(report.function);
    let body: Vec<u8> = report.body.iter().take(2).copied().chain(sent).collect();
    out.extend_from_slice(&(0x8000u16 | body.len() as u16).to_be_bytes());
    out.push(STX);
    out.extend_from_slice(&body);
    out.push(0x04); // EOT
    let crc = crc16_modbus(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

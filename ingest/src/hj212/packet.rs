//! Frame, CRC and fields of one HJ 212 packet.

use std::fmt;

use super::crc::{crc16_hj212, crc16_modbus};

/// Which check a packet passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrcKind {
    /// The standard's CRC16, high byte first.
    Standard,
    /// CRC-16/MODBUS written low byte first, as some deployed loggers send.
    ModbusLowFirst,
}

/// Why a packet was refused; positions are byte offsets in the packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Hj212Error {
    #[error("packet does not start with \"##\"")]
    NoHeader,
    #[error("packet is {0} bytes, too short for header, length and CRC")]
    TooShort(usize),
    #[error("length field {0:?} is not four decimal digits")]
    BadLength(String),
    #[error("length field says {declared} bytes but {available} follow before the CRC")]
    LengthMismatch { declared: usize, available: usize },
    #[error("CRC field {0:?} is not four hex digits")]
    BadCrcField(String),
    #[error("CRC mismatch: packet says {found}, data segment gives {expected} (HJ 212 CRC16) or {modbus_low_first} (CRC-16/MODBUS low byte first)")]
    CrcMismatch { found: String, expected: String, modbus_low_first: String },
    #[error("{0} bytes after the CRC (expected only \"\\r\\n\")")]
    TrailingBytes(usize),
    #[error("data segment is not UTF-8")]
    NotUtf8,
    #[error("field {0:?} at byte {1} is not `NAME=value`")]
    BadField(String, usize),
    #[error("missing field {0}")]
    MissingField(&'static str),
    #[error("field {name}={value:?} is not valid: {why}")]
    BadValue { name: &'static str, value: String, why: &'static str },
    #[error("CP is not enclosed in && ... &&")]
    BadCp,
    #[error("protocol version {0} (Flag bits) is not known: 1 is HJ 212-2017, 2 is HJ 212-2025")]
    UnknownVersion(u8),
}

/// One `code-Field=value` item of the CP, with the index of its `;`-separated group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpItem<'a> {
    pub group: usize,
    /// Pollutant or parameter code (`a34004`, `w01018`, `011`, ...), or the whole name for
    /// items without a suffix (`DataTime`, `RtdInterval`).
    pub code: &'a str,
    /// The suffix after the last `-` (`Rtd`, `Avg`, `Flag`, ...), empty if none.
    pub field: &'a str,
    pub value: &'a str,
}

/// A checked packet, borrowing from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub crc: CrcKind,
    /// The data segment is longer than the standard's 1,024 bytes (deployed loggers send
    /// up to what the 4-digit length field can state): accepted, and counted.
    pub oversize: bool,
    /// Request number `YYYYMMDDhhmmsszzz`; absent in 2005-style packets.
    pub qn: Option<&'a str>,
    pub st: Option<&'a str>,
    pub cn: &'a str,
    pub pw: Option<&'a str>,
    /// Device (data logger) id: the station id.
    pub mn: &'a str,
    /// Flag: bits 7..2 protocol version, bit 1 D (split packet), bit 0 A (answer wanted).
    pub flag: Option<u8>,
    pub pnum: Option<u32>,
    pub pno: Option<u32>,
    /// Text between `CP=&&` and `&&`.
    pub cp: &'a str,
}

/// The standard's limit on the data segment; longer ones are accepted and counted.
pub const MAX_DATA: usize = 1024;

impl<'a> Packet<'a> {
    /// Parses one packet; a trailing `\r\n` is allowed and nothing else.
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, Hj212Error> {
        if !bytes.starts_with(b"##") {
            return Err(Hj212Error::NoHeader);
        }
        if bytes.len() < 6 {
            return Err(Hj212Error::TooShort(bytes.len()));
        }
        let len_field = &bytes[2..6];
        if !len_field.iter().all(u8::is_ascii_digit) {
            return Err(Hj212Error::BadLength(String::from_utf8_lossy(len_field).into_owned()));
        }
        let declared: usize = len_field.iter().fold(0, |n, d| n * 10 + usize::from(d - b'0'));
        let available = bytes.len() - 6;
        if available < declared + 4 {
            return Err(Hj212Error::LengthMismatch { declared, available: available.saturating_sub(4) });
        }
        let data = &bytes[6..6 + declared];
        let crc_field = &bytes[6 + declared..6 + declared + 4];
        let rest = &bytes[6 + declared + 4..];
        if !rest.is_empty() && rest != b"\r\n" && rest != b"\n" {
            return Err(Hj212Error::TrailingBytes(rest.len()));
        }
        let crc_text = std::str::from_utf8(crc_field).ok().filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(found) = crc_text.and_then(|s| u16::from_str_radix(s, 16).ok()) else {
            return Err(Hj212Error::BadCrcField(String::from_utf8_lossy(crc_field).into_owned()));
        };
        // Most packets use the standard's CRC: try it first, Modbus only when it fails.
        let crc = if found == crc16_hj212(data) {
            CrcKind::Standard
        } else if found == crc16_modbus(data).swap_bytes() {
            CrcKind::ModbusLowFirst
        } else {
            return Err(Hj212Error::CrcMismatch {
                found: crc_text.unwrap_or_default().to_owned(),
                expected: format!("{:04X}", crc16_hj212(data)),
                modbus_low_first: format!("{:04X}", crc16_modbus(data).swap_bytes()),
            });
        };
        let data = std::str::from_utf8(data).map_err(|_| Hj212Error::NotUtf8)?;
        let mut packet = Self::fields(data)?;
        packet.crc = crc;
        packet.oversize = declared > MAX_DATA;
        Ok(packet)
    }

    fn fields(data: &'a str) -> Result<Packet<'a>, Hj212Error> {
        let cp_start = data.find("CP=&&").ok_or(Hj212Error::BadCp)?;
        let cp_body = &data[cp_start + 5..];
        let cp_end = cp_body.rfind("&&").ok_or(Hj212Error::BadCp)?;
        if !cp_body[cp_end + 2..].is_empty() {
            return Err(Hj212Error::BadCp);
        }
        let cp = &cp_body[..cp_end];
        let (mut qn, mut st, mut cn, mut pw, mut mn, mut flag, mut pnum, mut pno) =
            (None, None, None, None, None, None, None, None);
        let mut offset = 0;
        for field in data[..cp_start].split(';') {
            if !field.is_empty() {
                let (name, value) =
                    field.split_once('=').ok_or_else(|| Hj212Error::BadField(field.to_owned(), offset))?;
                match name {
                    "QN" => qn = Some(value),
                    "ST" => st = Some(value),
                    "CN" => cn = Some(value),
                    "PW" => pw = Some(value),
                    "MN" => mn = Some(value),
                    "Flag" => flag = Some(number(value, "Flag")?),
                    "PNUM" => pnum = Some(number(value, "PNUM")?),
                    "PNO" => pno = Some(number(value, "PNO")?),
                    // Unknown header fields are tolerated: loggers add their own.
                    _ => {}
                }
            }
            offset += field.len() + 1;
        }
        let flag = flag.map(|f: u32| f as u8);
        if let Some(version) = flag.map(|f| f >> 2) {
            if version > 2 {
                return Err(Hj212Error::UnknownVersion(version));
            }
        }
        Ok(Packet {
            crc: CrcKind::Standard,
            oversize: false,
            qn,
            st,
            cn: cn.ok_or(Hj212Error::MissingField("CN"))?,
            pw,
            mn: mn.ok_or(Hj212Error::MissingField("MN"))?,
            flag,
            pnum,
            pno,
            cp,
        })
    }

    /// The logger asks for an answer (Flag bit A).
    pub fn wants_answer(&self) -> bool {
        self.flag.is_some_and(|f| f & 1 == 1)
    }

    /// The packet is one part of a split message (Flag bit D, or PNUM/PNO present).
    pub fn is_split(&self) -> bool {
        self.flag.is_some_and(|f| f & 2 == 2) || self.pnum.is_some_and(|n| n > 1)
    }

    /// 2017 (1), 2025 (2), or 2005-style without Flag (0).
    pub fn version(&self) -> u8 {
        self.flag.map_or(0, |f| f >> 2)
    }

    /// The CP's items in order. An item that is not `name=value` is an error.
    pub fn items(&self) -> impl Iterator<Item = Result<CpItem<'a>, Hj212Error>> + 'a {
        let cp: &'a str = self.cp;
        cp.split(';').enumerate().flat_map(|(group, g)| {
            g.split(',').filter(|i| !i.is_empty()).map(move |item| {
                let (name, value) = item.split_once('=').ok_or_else(|| Hj212Error::BadField(item.to_owned(), 0))?;
                let (code, field) = match name.rsplit_once('-') {
                    Some((code, field)) => (code, field),
                    None => (name, ""),
                };
                Ok(CpItem { group, code, field, value })
            })
        })
    }
}

fn number(value: &str, name: &'static str) -> Result<u32, Hj212Error> {
    value.parse().map_err(|_| Hj212Error::BadValue { name, value: value.to_owned(), why: "not a decimal number" })
}

impl fmt::Display for Packet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HJ 212 CN={} MN={}", self.cn, self.mn)
    }
}

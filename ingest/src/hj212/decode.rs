//! HJ 212 data packets to raw readings.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::codes::{code_info, is_ambient};
use super::packet::{CrcKind, Hj212Error, Packet};
use crate::dead_letter::Rejection;
use crate::json::RawReading;
use crate::quantity::Quantity;
use crate::reading::Quality;

/// Decodes HJ 212 payloads (one packet, or several separated by line breaks).
#[derive(Clone, Debug)]
pub struct Hj212Decoder {
    /// Zone of `DataTime` and `QN` (Asia/Shanghai for Chinese loggers).
    pub zone: Tz,
}

impl Default for Hj212Decoder {
    fn default() -> Self {
        Hj212Decoder { zone: chrono_tz::Asia::Shanghai }
    }
}

fn undecodable(message: impl Into<String>) -> Rejection {
    Rejection::Undecodable { message: message.into() }
}

/// Data commands and the field holding their value.
fn value_field(cn: &str) -> Option<&'static str> {
    match cn {
        "2011" => Some("Rtd"),
        "2051" | "2061" | "2031" => Some("Avg"),
        _ => None,
    }
}

/// Data flags: only N is a trustworthy measurement.
fn quality(flag: &str) -> Quality {
    match flag {
        "N" => Quality::Good,
        "F" | "M" | "S" | "C" => Quality::Maintenance,
        "T" => Quality::OverRange,
        _ => Quality::Fault,
    }
}

impl Hj212Decoder {
    pub fn decode<'a>(&self, payload: &'a [u8], emit: &mut dyn FnMut(Result<RawReading<'a>, Rejection>)) {
        let mut any = false;
        for line in payload.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            any = true;
            match Packet::parse(line) {
                Ok(packet) => {
                    // Accepted deviations, counted once per packet decoded.
                    if packet.oversize {
                        crate::conformance::HJ212_OVERSIZE.fetch_add(1, Ordering::Relaxed);
                    }
                    if packet.crc == CrcKind::ModbusLowFirst {
                        crate::conformance::HJ212_MODBUS_CRC.fetch_add(1, Ordering::Relaxed);
                    }
                    self.readings(&packet, emit)
                }
                Err(e) => emit(Err(undecodable(format!("HJ 212: {e}")))),
            }
        }
        if !any {
            emit(Err(undecodable("HJ 212: empty payload")));
        }
    }

    /// Readings of one checked packet; commands that carry no data give none.
    pub fn readings<'a>(&self, packet: &Packet<'a>, emit: &mut dyn FnMut(Result<RawReading<'a>, Rejection>)) {
        let Some(field) = value_field(packet.cn) else {
            return;
        };
        if packet.is_split() {
            emit(Err(undecodable(format!(
                "HJ 212: split packet {} of {} from {} on its own (sets are put together before decoding)",
                packet.pno.unwrap_or(0),
                packet.pnum.unwrap_or(0),
                packet.mn
            ))));
            return;
        }
        let ambient = is_ambient(packet.st);
        let mut time = None;
        // (code, value, flag): a `-Flag` item usually follows its value in the same group.
        let mut values: Vec<(&'a str, &'a str, &'a str)> = Vec::with_capacity(16);
        // Flags written before their value (some loggers do), matched up at the end.
        let mut early_flags: Vec<(&'a str, &'a str)> = Vec::new();
        for item in packet.items() {
            match item {
                Ok(i) if i.code == "DataTime" && i.field.is_empty() => match self.local_time(i.value) {
                    Ok(t) => time = Some(t),
                    Err(e) => {
                        emit(Err(undecodable(format!("HJ 212 from {}: {e}", packet.mn))));
                        return;
                    }
                },
                Ok(i) if i.field == field => values.push((i.code, i.value, "N")),
                Ok(i) if i.field == "Flag" => {
                    let owner = match values.last_mut() {
                        Some(last) if last.0 == i.code => Some(last),
                        _ => values.iter_mut().find(|v| v.0 == i.code),
                    };
                    match owner {
                        Some(v) => v.2 = i.value,
                        None => early_flags.push((i.code, i.value)),
                    }
                }
                Ok(_) => {}
                Err(e) => emit(Err(undecodable(format!("HJ 212 from {}: {e}", packet.mn)))),
            }
        }
        // Without DataTime, the request number (QN) says when the packet was made.
        if time.is_none() {
            time = packet.qn.and_then(|qn| self.local_time(qn).ok());
        }
        for (code, _, flag) in values.iter_mut() {
            if let Some((_, f)) = early_flags.iter().find(|(c, _)| c == code) {
                *flag = f;
            }
        }
        for (code, text, flag) in values {
            // Codes outside the table are kept as raw quantities, in the unit sent.
            let (quantity, unit) = match code_info(code) {
                Some(info) => (info.quantity, Some(if ambient { info.ambient_unit } else { info.source_unit })),
                None => match Quantity::raw(&format!("hj212:{code}")) {
                    Ok(q) => (q, None),
                    Err(e) => {
                        emit(Err(Rejection::UnknownQuantity { quantity: e.0 }));
                        continue;
                    }
                },
            };
            let Ok(value) = text.parse::<f64>() else {
                emit(Err(undecodable(format!("HJ 212 from {}: {code}-{field}={text:?} is not a number", packet.mn))));
                continue;
            };
            emit(Ok(RawReading {
                station: Cow::Borrowed(packet.mn),
                quantity,
                value,
                unit: unit.map(Cow::Borrowed),
                time,
                quality: quality(flag),
            }));
        }
    }

    /// `YYYYMMDDhhmmss`, optionally followed by milliseconds, in the decoder's zone.
    fn local_time(&self, text: &str) -> Result<i64, Hj212Error> {
        let bad = || Hj212Error::BadValue { name: "DataTime", value: text.to_owned(), why: "not YYYYMMDDhhmmss[zzz]" };
        if !(text.len() == 14 || text.len() == 17) || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // Digits are checked above; read the fields directly (format-string parsing
        // dominated decoding time).
        let b = text.as_bytes();
        let num = |range: std::ops::Range<usize>| b[range].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        let date = NaiveDate::from_ymd_opt(num(0..4) as i32, num(4..6), num(6..8)).ok_or_else(bad)?;
        let naive = date.and_hms_opt(num(8..10), num(10..12), num(12..14)).ok_or_else(bad)?;
        let ms = if text.len() == 17 { i64::from(num(14..17)) } else { 0 };
        let local = self.zone.from_local_datetime(&naive).earliest().ok_or_else(bad)?;
        Ok(local.timestamp_millis() + ms)
    }
}

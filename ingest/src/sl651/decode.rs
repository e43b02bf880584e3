//! SL 651 reports to raw readings.

use std::borrow::Cow;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::element::{element_info, ElementInfo};
use super::frame::{Frame, Sl651Error};
use crate::dead_letter::Rejection;
use crate::json::RawReading;
use crate::quantity::Quantity;
use crate::reading::Quality;

const FIVE_MIN: i64 = 5 * 60_000;

/// Decodes SL 651 HEX-mode payloads: raw bytes, or hex text (one frame per line, optionally
/// after a label and a space, as captures are usually kept).
#[derive(Clone, Debug)]
pub struct Sl651Decoder {
    /// Zone of the stations' clocks.
    pub zone: Tz,
}

impl Default for Sl651Decoder {
    fn default() -> Self {
        Sl651Decoder { zone: chrono_tz::Asia::Shanghai }
    }
}

fn undecodable(station: &str, e: impl std::fmt::Display) -> Rejection {
    let from = if station.is_empty() { String::new() } else { format!(" from {station}") };
    Rejection::Undecodable { message: format!("SL 651{from}: {e}") }
}

impl Sl651Decoder {
    /// Decodes a payload; binary frames are used as they are, hex text is converted first.
    pub fn decode<'a>(&self, payload: &'a [u8], emit: &mut dyn FnMut(Result<RawReading<'a>, Rejection>)) {
        if payload.starts_with(&[0x7E, 0x7E]) {
            return self.decode_frame(payload, emit);
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            return emit(Err(undecodable("", "payload is neither a 7E7E frame nor hex text")));
        };
        let mut any = false;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            any = true;
            let hex = line.rsplit(' ').next().unwrap_or(line);
            match decode_hex(hex) {
                Ok(bytes) => {
                    // Readings borrow nothing from the frame but the station id, which is
                    // owned: decode from the temporary buffer and pass them on.
                    self.decode_frame(&bytes, &mut |r| emit(r.map(RawReading::into_owned)));
                }
                Err(why) => emit(Err(undecodable("", why))),
            }
        }
        if !any {
            emit(Err(undecodable("", "empty payload")));
        }
    }

    /// Decodes one binary frame.
    pub fn decode_frame<'b>(&self, bytes: &'b [u8], emit: &mut dyn FnMut(Result<RawReading<'b>, Rejection>)) {
        let frame = match Frame::parse(bytes) {
            Ok(f) => f,
            Err(e) => return emit(Err(undecodable("", e))),
        };
        if let Some((total, seq)) = frame.packet.filter(|&(total, _)| total > 1) {
            return emit(Err(undecodable(&frame.station, super::Sl651Error::MultiPacket { total, seq })));
        }
        if let Err(e) = self.report(&frame, emit) {
            emit(Err(undecodable(&frame.station, e)));
        }
    }

    /// The readings of a report. Keep-alive (2F) and non-report functions carry none.
    fn report<'b>(
        &self,
        frame: &Frame<'b>,
        emit: &mut dyn FnMut(Result<RawReading<'b>, Rejection>),
    ) -> Result<(), Sl651Error> {
        if !matches!(frame.function, 0x30..=0x34) {
            return Ok(());
        }
        let body = frame.body;
        let err =
            |what: &'static str, at: usize, why: String| Sl651Error::Body { what, offset: frame.body_offset + at, why };
        // serial (2) + send time (6) + F1F1 + station (5) + class (1)
        if body.len() < 16 || body[8..10] != [0xF1, 0xF1] {
            return Err(err(
                "station identifier",
                8,
                "expected F1F1 and a 5-byte address after serial number and send time".into(),
            ));
        }
        let mut at = 16;
        let mut time: Option<i64> = None;
        while at < body.len() {
            let id = body[at];
            if id == 0xF0 {
                if body.get(at + 1) != Some(&0xF0) || at + 7 > body.len() {
                    return Err(err("observation time", at, "expected F0F0 and 5 BCD bytes YYMMDDhhmm".into()));
                }
                time = Some(self.bcd_time(&body[at + 2..at + 7]).map_err(|why| err("observation time", at + 2, why))?);
                at += 7;
                continue;
            }
            let Some(&format) = body.get(at + 1) else {
                return Err(err("element", at, format!("identifier {id:02X} without its length byte")));
            };
            // Time-step code (TT, 04 18 DDHHMM): in a uniform-interval report (31) the one
            // element after it carries a value per step until the end of the body.
            if id == 0x04 {
                let step =
                    body.get(at + 2..at + 5).ok_or_else(|| err("time step", at, "needs 3 BCD bytes DDHHMM".into()))?;
                let d: Vec<u32> = step
                    .iter()
                    .map(|&b| bcd_byte(b))
                    .collect::<Result<_, _>>()
                    .map_err(|why| err("time step", at + 2, why))?;
                let step_ms = ((i64::from(d[0]) * 24 + i64::from(d[1])) * 60 + i64::from(d[2])) * 60_000;
                at += 5;
                if frame.function == 0x31 {
                    let Some(t) = time else {
                        return Err(err("time step", at, "before any observation time (F0F0)".into()));
                    };
                    return self.series(frame, &body[at..], frame.body_offset + at, t, step_ms, emit);
                }
                continue;
            }
            let len = usize::from(format >> 3);
            let decimals = i32::from(format & 0x07);
            let data = body
                .get(at + 2..at + 2 + len)
                .ok_or_else(|| err("element", at, format!("{id:02X} needs {len} data bytes")))?;
            let element_at = at;
            at += 2 + len;
            // Elements without a quantity are kept as raw ones, decoded as BCD like any element.
            let info = match element_info(id) {
                Some(info) => info,
                None => match Quantity::raw(&format!("sl651:{id:02X}")) {
                    Ok(quantity) => ElementInfo { quantity, unit: "", name: "raw element" },
                    Err(e) => {
                        emit(Err(Rejection::UnknownQuantity { quantity: e.0 }));
                        continue;
                    }
                },
            };
            let Some(t) = time else {
                return Err(err("element", element_at, format!("{} before any observation time (F0F0)", info.name)));
            };
            let reading = |value: f64, time: i64| element_reading(frame, &info, value, time);
            match id {
                // Twelve one-byte values, 0.1 mm, FF = no value.
                0xF4 => {
                    for (k, &b) in data.iter().enumerate().take(12) {
                        if b != 0xFF {
                            emit(Ok(reading(f64::from(b) / 10.0, t + k as i64 * FIVE_MIN)));
                        }
                    }
                }
                // Twelve two-byte values, 0.01 m, FFFF = no value.
                0xF5 => {
                    for (k, pair) in data.chunks_exact(2).enumerate().take(12) {
                        let v = u16::from_be_bytes([pair[0], pair[1]]);
                        if v != 0xFFFF {
                            emit(Ok(reading(f64::from(v) / 100.0, t + k as i64 * FIVE_MIN)));
                        }
                    }
                }
                _ => match bcd_value(data, decimals) {
                    Ok(Some(v)) => emit(Ok(reading(v, t))),
                    Ok(None) => {} // all FF: the station has no value for this element
                    Err(why) => emit(Err(undecodable(&frame.station, err(info.name, element_at + 2, why)))),
                },
            }
        }
        Ok(())
    }

    /// A uniform-interval series: one element identifier, then values every `step_ms`.
    fn series<'b>(
        &self,
        frame: &Frame<'b>,
        rest: &[u8],
        offset: usize,
        start: i64,
        step_ms: i64,
        emit: &mut dyn FnMut(Result<RawReading<'b>, Rejection>),
    ) -> Result<(), Sl651Error> {
        let err =
            |at: usize, why: String| Sl651Error::Body { what: "uniform-interval series", offset: offset + at, why };
        let (&id, &format) = match rest {
            [id, format, ..] => (id, format),
            _ => return Err(err(0, "no element after the time step".into())),
        };
        let len = usize::from(format >> 3);
        if len == 0 || step_ms <= 0 {
            return Err(err(0, format!("element {id:02X} of {len} bytes every {step_ms} ms")));
        }
        let Some(info) = element_info(id) else {
            emit(Err(Rejection::UnknownQuantity { quantity: format!("sl651:{id:02X}") }));
            return Ok(());
        };
        let values = &rest[2..];
        if !values.len().is_multiple_of(len) {
            return Err(err(2, format!("{} bytes of values is not a whole number of {len}-byte values", values.len())));
        }
        for (k, data) in values.chunks_exact(len).enumerate() {
            match bcd_value(data, i32::from(format & 0x07)) {
                Ok(Some(value)) => emit(Ok(element_reading(frame, &info, value, start + k as i64 * step_ms))),
                Ok(None) => {}
                Err(why) => emit(Err(undecodable(&frame.station, err(2 + k * len, why)))),
            }
        }
        Ok(())
    }

    fn bcd_time(&self, bytes: &[u8]) -> Result<i64, String> {
        let d: Vec<u32> = bytes.iter().map(|&b| bcd_byte(b)).collect::<Result<_, _>>()?;
        let date = NaiveDate::from_ymd_opt(2000 + d[0] as i32, d[1], d[2])
            .ok_or_else(|| format!("no such date 20{:02}-{:02}-{:02}", d[0], d[1], d[2]))?;
        let naive = date.and_hms_opt(d[3], d[4], 0).ok_or_else(|| format!("no such time {:02}:{:02}", d[3], d[4]))?;
        let local = self.zone.from_local_datetime(&naive).earliest().ok_or("time skipped by a clock change")?;
        Ok(local.timestamp_millis())
    }
}

/// One reading of an element: the frame's station, the element's quantity and unit.
fn element_reading<'b>(frame: &Frame<'_>, info: &ElementInfo, value: f64, time: i64) -> RawReading<'b> {
    RawReading {
        station: Cow::Owned(frame.station.clone()),
        quantity: info.quantity,
        value,
        unit: Some(Cow::Borrowed(info.unit)),
        time: Some(time),
        quality: Quality::Good,
    }
}

fn bcd_byte(b: u8) -> Result<u32, String> {
    let (hi, lo) = (b >> 4, b & 0x0F);
    if hi > 9 || lo > 9 {
        return Err(format!("{b:02X} is not BCD"));
    }
    Ok(u32::from(hi) * 10 + u32::from(lo))
}

/// A BCD number with `decimals` places; a leading FF byte means negative; all FF means no
/// value (`None`).
pub(crate) fn bcd_value(data: &[u8], decimals: i32) -> Result<Option<f64>, String> {
    if data.is_empty() {
        return Err("element has no data bytes".into());
    }
    if data.iter().all(|&b| b == 0xFF) {
        return Ok(None);
    }
    let (negative, digits) = if data[0] == 0xFF { (true, &data[1..]) } else { (false, data) };
    // 9 bytes are 18 digits, which fit a u64; no SL 651 element is half that long.
    if digits.len() > 9 {
        return Err(format!("{} BCD bytes is longer than any SL 651 value", digits.len()));
    }
    let mut n: u64 = 0;
    for &b in digits {
        n = n * 100 + u64::from(bcd_byte(b)?);
    }
    let v = n as f64 / 10f64.powi(decimals);
    Ok(Some(if negative { -v } else { v }))
}

pub(crate) fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return Err(format!("hex text has an odd number of digits ({})", text.len()));
    }
    (0..text.len() / 2)
        .map(|i| {
            u8::from_str_radix(text.get(2 * i..2 * i + 2).unwrap_or("zz"), 16).map_err(|_| {
                format!("{:?} at character {} is not hex", text.get(2 * i..2 * i + 2).unwrap_or(""), 2 * i)
            })
        })
        .collect()
}

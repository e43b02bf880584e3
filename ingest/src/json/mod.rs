//! Plain JSON with a per-route field mapping.
//!
//! A route says which fields hold the station id, quantity, value, unit and time; the
//! document is one object or an array of objects. Decoding borrows strings from the payload
//! and skips unmapped fields without building a `serde_json::Value`.

mod csv;
mod visitor;

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use crate::dead_letter::Rejection;
use crate::quantity::Quantity;
use crate::time::TimeFormat;

/// Where each part of a reading is found in a JSON record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonMapping {
    /// Field with the station id (string or number).
    pub station: String,
    /// Field with the quantity name (`water_level`, ...). Ignored when `fixed_quantity` is set.
    pub quantity: String,
    /// Every record on this route measures this quantity.
    pub fixed_quantity: Option<Quantity>,
    /// Field with the value (number, or number as a string).
    pub value: String,
    /// Field with the unit; a record without it is in `fixed_unit`, else the canonical unit.
    pub unit: String,
    /// Unit of every record on this route that does not name its own.
    pub fixed_unit: Option<String>,
    /// Field with the event time; a record without it is stamped with the receive time.
    pub time: String,
    /// How the time is written.
    pub time_format: TimeFormat,
    /// Zone for `time_format = "local"` (IANA name).
    pub time_zone: String,
}

impl Default for JsonMapping {
    fn default() -> Self {
        JsonMapping {
            station: "station".into(),
            quantity: "quantity".into(),
            fixed_quantity: None,
            value: "value".into(),
            unit: "unit".into(),
            fixed_unit: None,
            time: "time".into(),
            time_format: TimeFormat::Auto,
            time_zone: "Asia/Shanghai".into(),
        }
    }
}

/// A mapping checked and ready to decode with.
#[derive(Clone, Debug)]
pub struct JsonDecoder {
    mapping: JsonMapping,
    zone: chrono_tz::Tz,
}

/// A mapping that cannot work.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MappingError {
    #[error("time_zone {0:?} is not an IANA time zone name")]
    BadZone(String),
    #[error("fields {0:?} and {1:?} are mapped to the same JSON field {2:?}")]
    SameField(&'static str, &'static str, String),
}

impl JsonMapping {
    pub fn into_decoder(self) -> Result<JsonDecoder, MappingError> {
        let zone = self.time_zone.parse().map_err(|_| MappingError::BadZone(self.time_zone.clone()))?;
        let fields = [("station", &self.station), ("value", &self.value), ("time", &self.time), ("unit", &self.unit)];
        for (i, (a, fa)) in fields.iter().enumerate() {
            for (b, fb) in &fields[i + 1..] {
                if fa == fb {
                    return Err(MappingError::SameField(a, b, fa.to_string()));
                }
            }
        }
        Ok(JsonDecoder { mapping: self, zone })
    }
}

/// A reading as the payload states it: station by id, value in the payload's unit.
#[derive(Clone, Debug, PartialEq)]
pub struct RawReading<'a> {
    pub station: Cow<'a, str>,
    pub quantity: Quantity,
    pub value: f64,
    pub unit: Option<Cow<'a, str>>,
    /// Event time in ms, if the payload has one.
    pub time: Option<i64>,
    pub quality: crate::reading::Quality,
}

impl RawReading<'_> {
    /// The same reading, owning its strings.
    pub fn into_owned(self) -> RawReading<'static> {
        RawReading {
            station: Cow::Owned(self.station.into_owned()),
            quantity: self.quantity,
            value: self.value,
            unit: self.unit.map(|u| Cow::Owned(u.into_owned())),
            time: self.time,
            quality: self.quality,
        }
    }
}

impl JsonDecoder {
    /// Decodes every record of `payload`, calling `emit` once per record with the reading
    /// or the reason it was refused. A payload that is not JSON at all gives one rejection.
    pub fn decode<'a>(&'a self, payload: &'a [u8], emit: &mut dyn FnMut(Result<RawReading<'a>, Rejection>)) {
        visitor::decode(&self.mapping, self.zone, payload, emit)
    }

    /// As [`JsonDecoder::decode`], for a payload already checked to be UTF-8.
    pub fn decode_str<'a>(&'a self, payload: &'a str, emit: &mut dyn FnMut(Result<RawReading<'a>, Rejection>)) {
        visitor::decode_str(&self.mapping, self.zone, payload, emit)
    }

    /// Decodes CSV: a header line naming the columns, then one record per line; the
    /// mapping names columns as it names JSON fields. Empty cells are absent fields.
    pub fn decode_csv<'a>(&'a self, payload: &'a [u8], emit: &mut dyn FnMut(Result<RawReading<'a>, Rejection>)) {
        csv::decode(&self.mapping, self.zone, payload, emit)
    }
}

#[cfg(test)]
mod tests;

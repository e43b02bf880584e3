//! Resolved SenML records to raw readings.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resolve::resolve;
use crate::dead_letter::Rejection;
use crate::json::RawReading;
use crate::quantity::Quantity;
use crate::reading::Quality;

/// How a route turns SenML names and units into stations and quantities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SenmlMapping {
    /// Measurement names (the part of a name after its last `:` or `/`) and their
    /// quantities, in addition to quantity names themselves.
    pub names: BTreeMap<String, Quantity>,
    /// Units that say the quantity when the name is a station alone.
    pub units: BTreeMap<String, Quantity>,
}

impl Default for SenmlMapping {
    fn default() -> Self {
        use Quantity::*;
        let names = [
            ("temp", AirTemperature),
            ("temperature", AirTemperature),
            ("humidity", Humidity),
            ("voltage", SupplyVoltage),
            ("level", WaterLevel),
            ("rain", Rainfall),
            ("pm2.5", Pm25),
        ];
        let units = [("Cel", AirTemperature), ("%RH", Humidity)];
        SenmlMapping {
            names: names.into_iter().map(|(n, q)| (n.to_owned(), q)).collect(),
            units: units.into_iter().map(|(n, q)| (n.to_owned(), q)).collect(),
        }
    }
}

/// Decodes SenML JSON packs into readings.
#[derive(Clone, Debug, Default)]
pub struct SenmlDecoder {
    pub mapping: SenmlMapping,
}

impl SenmlDecoder {
    /// `received_at` (ms) anchors relative times, as "now" does in RFC 8428.
    pub fn decode<'a>(
        &self,
        payload: &'a [u8],
        received_at: i64,
        emit: &mut dyn FnMut(Result<RawReading<'a>, Rejection>),
    ) {
        let records = match resolve(payload, received_at as f64 / 1000.0) {
            Ok(r) => r,
            Err(e) => return emit(Err(Rejection::Undecodable { message: format!("SenML: {e}") })),
        };
        for record in records {
            let Some(value) = record.value else {
                emit(Err(Rejection::UnknownQuantity {
                    quantity: format!("senml:{} (not a numeric value)", record.name),
                }));
                continue;
            };
            let split = record.name.rfind([':', '/']);
            let by_name = split.and_then(|i| {
                let measurement = &record.name[i + 1..];
                let quantity = self.mapping.names.get(measurement).copied().or_else(|| measurement.parse().ok())?;
                Some((record.name[..i].to_owned(), quantity))
            });
            let by_unit = || Some((record.name.clone(), *self.mapping.units.get(record.unit.as_deref()?)?));
            // Otherwise a raw quantity: the measurement name, or for a bare station name its unit.
            let raw = || {
                let (station, what) = match split {
                    Some(i) => (record.name[..i].to_owned(), record.name[i + 1..].to_owned()),
                    None => (record.name.clone(), record.unit.clone()?),
                };
                Quantity::raw(&format!("senml:{what}")).ok().map(|q| (station, q))
            };
            let Some((station, quantity)) = by_name.or_else(by_unit).or_else(raw) else {
                emit(Err(Rejection::UnknownQuantity { quantity: format!("senml:{}", record.name) }));
                continue;
            };
            emit(Ok(RawReading {
                station: Cow::Owned(station),
                quantity,
                value,
                unit: record.unit.map(Cow::Owned),
                time: Some((record.time * 1000.0).round() as i64),
                quality: Quality::Good,
            }));
        }
    }
}

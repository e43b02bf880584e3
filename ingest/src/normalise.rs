//! From a decoder's raw readings to validated [`Reading`]s or [`Rejection`]s.

use std::sync::Arc;

use crate::dead_letter::Rejection;
use crate::json::{JsonDecoder, RawReading};
use crate::reading::{Reading, SensorKey};
use crate::station::Registry;
use crate::time::to_rfc3339;

/// A payload format and its route-specific settings.
#[derive(Clone, Debug)]
pub enum Decoder {
    Json(JsonDecoder),
    /// CSV with a header line, columns named by a JSON mapping.
    Csv(JsonDecoder),
    Hj212(crate::hj212::Hj212Decoder),
    Sl651(crate::sl651::Sl651Decoder),
    Senml(crate::senml::SenmlDecoder),
}

impl Decoder {
    /// Decodes one payload received at `received_at` (ms; SenML's "now" for relative times).
    pub fn decode<'a>(
        &'a self,
        payload: &'a [u8],
        received_at: i64,
        emit: &mut dyn FnMut(Result<RawReading<'a>, Rejection>),
    ) {
        match self {
            Decoder::Json(d) => d.decode(payload, emit),
            Decoder::Csv(d) => d.decode_csv(payload, emit),
            Decoder::Hj212(d) => d.decode(payload, emit),
            Decoder::Sl651(d) => d.decode(payload, emit),
            Decoder::Senml(d) => d.decode(payload, received_at, emit),
        }
    }
}

/// The reading's value in its quantity's canonical unit, checked to be finite and physical.
/// Needs no registry: `tidewatch decode` uses it on traffic from stations not yet registered.
pub fn canonical_value(raw: &RawReading<'_>) -> Result<f64, Rejection> {
    let quantity = raw.quantity;
    let conversion = match raw.unit.as_deref() {
        None => crate::UnitConversion::IDENTITY,
        Some(unit) => quantity.conversion_from(unit).ok_or_else(|| Rejection::UnknownUnit {
            quantity,
            unit: unit.to_owned(),
            canonical: quantity.canonical_unit(),
        })?,
    };
    if !raw.value.is_finite() {
        return Err(Rejection::NotFinite { station: raw.station.to_string(), quantity, value: raw.value.to_string() });
    }
    let value = conversion.apply(raw.value);
    let (min, max) = quantity.physical_range();
    if !(min..=max).contains(&value) {
        return Err(Rejection::OutOfRange { station: raw.station.to_string(), quantity, value, min, max });
    }
    Ok(value)
}

/// Validation limits that do not depend on the quantity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// A reading stamped further than this ahead of the receiving clock is refused: a device
    /// with a wrong clock must not drag the watermark into the future.
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_future_ms: 10 * 60 * 1000 }
    }
}

/// Resolves stations, converts units and validates values and times.
#[derive(Clone, Debug)]
pub struct Normaliser {
    registry: Arc<Registry>,
    limits: Limits,
}

impl Normaliser {
    pub fn new(registry: Arc<Registry>, limits: Limits) -> Self {
        Normaliser { registry, limits }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Checks one raw reading received at `received_at` (ms since the epoch).
    pub fn accept(&self, raw: RawReading<'_>, received_at: i64) -> Result<Reading, Rejection> {
        let station = self
            .registry
            .key_of(&raw.station)
            .ok_or_else(|| Rejection::UnknownStation { station: raw.station.to_string() })?;
        let quantity = raw.quantity;
        let value = canonical_value(&raw)?;
        if let Some((min, max)) = self.registry.station(station).plausible(quantity) {
            if !(min..=max).contains(&value) {
                return Err(Rejection::Implausible { station: raw.station.into_owned(), quantity, value, min, max });
            }
        }
        let time = raw.time.unwrap_or(received_at);
        if time > received_at.saturating_add(self.limits.max_future_ms) {
            return Err(Rejection::FromTheFuture {
                station: raw.station.into_owned(),
                quantity,
                time: to_rfc3339(time),
                max_future_s: self.limits.max_future_ms / 1000,
            });
        }
        Ok(Reading { sensor: SensorKey::new(station, quantity), quality: raw.quality, time, value })
    }

    /// Decodes a payload, appending accepted readings to `out`; returns what was refused
    /// (an empty `Vec`, which does not allocate, when everything was accepted).
    pub fn decode_into(
        &self,
        decoder: &Decoder,
        payload: &[u8],
        received_at: i64,
        out: &mut Vec<Reading>,
    ) -> Vec<Rejection> {
        let mut rejected = Vec::new();
        decoder.decode(payload, received_at, &mut |raw| match raw.and_then(|raw| self.accept(raw, received_at)) {
            Ok(reading) => out.push(reading),
            Err(reason) => rejected.push(reason),
        });
        rejected
    }

    /// JSON lines: each non-blank line of `payload` decoded alone (one refused line does not
    /// take its neighbours with it). The payload's UTF-8 is checked once, not per string.
    pub fn decode_lines_into(
        &self,
        decoder: &Decoder,
        payload: &[u8],
        received_at: i64,
        out: &mut Vec<Reading>,
    ) -> Vec<Rejection> {
        let (Decoder::Json(json), Ok(text)) = (decoder, std::str::from_utf8(payload)) else {
            let mut rejected = Vec::new();
            for line in payload.split(|&b| b == b'\n').filter(|l| !l.trim_ascii().is_empty()) {
                rejected.extend(self.decode_into(decoder, line, received_at, out));
            }
            return rejected;
        };
        let mut rejected = Vec::new();
        for line in text.split('\n').filter(|l| !l.trim_ascii().is_empty()) {
            json.decode_str(line, &mut |raw| match raw.and_then(|raw| self.accept(raw, received_at)) {
                Ok(reading) => out.push(reading),
                Err(reason) => rejected.push(reason),
            });
        }
        rejected
    }
}

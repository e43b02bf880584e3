//! SenML (RFC 8428) JSON: resolving records, and mapping them to readings.
//!
//! [`resolve`] applies the base fields (`bn`, `bt`, `bu`, `bv`, `bs`, `bver`) to every
//! record as RFC 8428 §4.6 says: name = bn + n, time = bt + t (a result below 2^28 is
//! relative to now), unit = u or bu, value = bv + v, sum = bs + s. Unknown fields are kept
//! unless their name ends in `_`, which is an error ("must understand").
//!
//! [`SenmlDecoder`] turns numeric records into readings: the station is the name before its
//! last `:` or `/` and the measurement after it is mapped to a quantity (`temperature` →
//! `air_temperature`, or any quantity name); a name without a known measurement is a station
//! whose quantity comes from the unit (`Cel` → `air_temperature`, `%RH` → `humidity`).

mod decode;
mod resolve;

pub use decode::{SenmlDecoder, SenmlMapping};
pub use resolve::{resolve, Resolved, SenmlError};

#[cfg(test)]
mod tests;

//! The one typed reading every protocol is normalised into.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::quantity::Quantity;
use crate::station::StationKey;

/// Milliseconds since the Unix epoch (UTC). Event time: when the device measured.
pub type EventTime = i64;

/// Identifies one sensor: what one station measures of one quantity.
///
/// Packed into a `u64` for hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SensorKey {
    pub station: StationKey,
    pub quantity: Quantity,
}

impl SensorKey {
    pub fn new(station: StationKey, quantity: Quantity) -> Self {
        SensorKey { station, quantity }
    }

    /// A well-mixed 64-bit hash of the sensor.
    #[inline]
    pub fn route_hash(self) -> u64 {
        mix64(((self.station.0 as u64) << 16) | self.quantity.index() as u64)
    }
}

impl StationKey {
    /// A well-mixed 64-bit hash, used to spread stations over workers: the engine keeps
    /// every quantity of a station on one worker.
    #[inline]
    pub fn route_hash(self) -> u64 {
        mix64(self.0 as u64)
    }
}

/// SplitMix64 finaliser: consecutive keys land far apart.
#[inline]
fn mix64(raw: u64) -> u64 {
    let mut z = raw.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How far a measurement can be trusted.
///
/// Devices flag their own data (HJ 212's N/F/M/S/D/C/T/B flags, SL 651 alarm bits). Only
/// `Good` is a trustworthy measurement; rules decide what to do with the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    #[default]
    Good,
    /// Maintenance, calibration or manual entry: a value, but not a measurement to alarm on.
    Maintenance,
    /// Instrument or communication fault reported by the device.
    Fault,
    /// Over the instrument's range: the true value is at least this large.
    OverRange,
}

/// One measurement of one quantity at one station, in the quantity's canonical unit.
///
/// `Copy` and at most 32 bytes: readings travel in batches without allocation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub sensor: SensorKey,
    pub quality: Quality,
    /// Event time, ms since the Unix epoch.
    pub time: EventTime,
    /// In [`Quantity::canonical_unit`].
    pub value: f64,
}

impl fmt::Display for SensorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}/{}", self.station.0, self.quantity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_stays_small_enough_to_batch_cheaply() {
        assert!(std::mem::size_of::<Reading>() <= 32);
    }

    #[test]
    fn route_hash_spreads_consecutive_stations() {
        let workers = 4u64;
        let mut counts = [0u32; 4];
        for s in 0..4000u32 {
            let key = SensorKey::new(StationKey(s), Quantity::WaterLevel);
            counts[(key.route_hash() % workers) as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven spread {counts:?}");
        }
    }
}

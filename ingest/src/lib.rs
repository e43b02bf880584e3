//! Turning device traffic into typed, validated [`Reading`]s.
//!
//! Every payload that reaches Tidewatch, whatever its protocol, leaves this crate as zero or
//! more [`Reading`]s (a station's measurement of one [`Quantity`], in that quantity's
//! canonical unit, at the device's own event time) or as a [`DeadLetter`] that says why it
//! was refused. Nothing is dropped silently and nothing panics.
//!
//! ```
//! use std::sync::Arc;
//! use tidewatch_ingest::{json::JsonMapping, Decoder, Normaliser, Registry, Limits};
//!
//! let registry = Registry::from_toml_str(r#"
//!     [[station]]
//!     id = "LX"
//!     name = "Lanxi"
//!     domain = "water"
//!     location = [119.46, 29.21]
//!     region = "330781"
//! "#).unwrap();
//! let decoder = Decoder::Json(JsonMapping::default().into_decoder().unwrap());
//! let normaliser = Normaliser::new(Arc::new(registry), Limits::default());
//! let mut readings = Vec::new();
//! let payload = br#"{"station":"LX","quantity":"water_level","value":312,"unit":"cm","time":1764000000000}"#;
//! let rejected = normaliser.decode_into(&decoder, payload, 1764000000000, &mut readings);
//! assert!(rejected.is_empty());
//! assert_eq!(readings[0].value, 3.12);
//! ```

pub mod conformance;
pub mod dead_letter;
pub mod device_auth;
pub mod framing;
pub mod hj212;
pub mod json;
pub mod normalise;
pub mod quantity;
pub mod reading;
pub mod reassembly;
pub mod senml;
pub mod sl651;
pub mod station;
pub mod time;
pub mod toml_all;

pub use dead_letter::{DeadLetter, Rejection};
pub use normalise::{canonical_value, Decoder, Limits, Normaliser};
pub use quantity::{Quantity, UnitConversion};
pub use reading::{Quality, Reading, SensorKey};
pub use station::{Domain, Registry, RegistryError, Station, StationKey};

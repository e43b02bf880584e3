//! SL 651-2014 hydrological telemetry, HEX/BCD mode: river, tide and reservoir stations and
//! rain gauges reporting to a central station.
//!
//! Uplink frame: `7E7E` | centre address (1 B) | station address (5 B BCD) | password (2 B) |
//! function code (1 B) | direction + body length (2 B: high nibble 0 uplink, 8 downlink) |
//! `02` STX (or `16` SYN + 3 B packet count and sequence) | body | `03` ETX (or `17` ETB) |
//! CRC-16/MODBUS over everything before it, high byte first.
//!
//! [`Frame::parse`] checks the frame; [`Sl651Decoder`] turns reports (30–34) into readings,
//! one per element, one per five-minute value of the F4/F5 hourly series, and one per step
//! of a uniform-interval report (31); [`encode_uplink`]
//! writes frames (for simulators and round-trip tests).

pub(crate) mod decode;
mod element;
mod frame;

pub use decode::Sl651Decoder;
pub use element::{element_info, ElementInfo};
pub use frame::{encode_confirmation, encode_uplink, encode_uplink_packet, Frame, Sl651Error};

#[cfg(test)]
mod tests;

//! Moving bytes in and out of Tidewatch; nothing here knows what a reading is.
//!
//! A source yields [`Envelope`]s: payload bytes with where and when they came from, and an
//! acknowledgement token. The caller acknowledges an envelope only after what it carried has
//! been safely handed on, so a crash or a broker restart never loses an acknowledged message.

pub mod envelope;
pub mod mqtt;
pub mod tcp;

pub use envelope::{AckToken, Envelope};

//! Moving bytes in and out of Tidewatch; nothing here knows what a reading is.
//!
//! Sources: [`mqtt`], [`kafka`], [`tcp`] (HJ 212 and SL 651 listeners), [`file`]. Sinks:
//! [`influx`], [`kafka`]; the alert topics are notifiers in `tidewatch-alerting`.
//!
//! A source yields [`Envelope`]s: payload bytes with where and when they came from, and an
//! acknowledgement token. The caller acknowledges an envelope only after what it carried has
//! been safely handed on, so a crash or a broker restart never loses an acknowledged message.

pub mod envelope;
pub mod file;
pub mod influx;
pub mod kafka;
pub mod limits;
pub mod mqtt;
pub mod sink;
pub mod source;
pub mod tcp;

pub use envelope::{Ack, Envelope};
pub use source::{Health, Running};

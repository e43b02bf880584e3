//! What happens to input Tidewatch cannot use: it is kept, with the reason, never dropped.

use serde::Serialize;

use crate::quantity::Quantity;

/// Why one input (a payload, or one record in it) was refused.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rejection {
    /// The payload is not valid for its route's format; `message` says where and why.
    #[error("undecodable: {message}")]
    Undecodable { message: String },
    /// Part of a message split over several packets whose set did not complete; the
    /// dead letter keeps the parts that came.
    #[error("incomplete: {message}")]
    Incomplete { message: String },
    /// A message larger than the source accepts; the dead letter keeps its start.
    #[error("message of {bytes} bytes is larger than the {limit} bytes accepted")]
    TooLarge { bytes: usize, limit: usize },
    /// No route's topic filter matches the topic the payload came on.
    #[error("no route for topic {topic:?}")]
    Unrouted { topic: String },
    #[error("unknown station {station:?}")]
    UnknownStation { station: String },
    /// A device that did not prove it is the station it reports as.
    #[error("station {station:?}: {why}")]
    Auth { station: String, why: String },
    #[error("unknown quantity {quantity:?}")]
    UnknownQuantity { quantity: String },
    #[error("unit {unit:?} is not a unit of {quantity} (canonical unit {canonical})")]
    UnknownUnit { quantity: Quantity, unit: String, canonical: &'static str },
    #[error("{station}/{quantity}: value {value} is not a finite number")]
    NotFinite { station: String, quantity: Quantity, value: String },
    #[error("{station}/{quantity}: value {value} is outside the physical range [{min}, {max}]")]
    OutOfRange { station: String, quantity: Quantity, value: f64, min: f64, max: f64 },
    #[error("{station}/{quantity}: value {value} is not plausible at this station ({})", plausible_range(*.min, *.max))]
    Implausible { station: String, quantity: Quantity, value: f64, min: f64, max: f64 },
    #[error("{station}/{quantity}: event time {time} is more than {max_future_s} s ahead of the clock")]
    FromTheFuture { station: String, quantity: Quantity, time: String, max_future_s: i64 },
    #[error("{station}/{quantity}: event time {time} is older than what this sensor's rules already decided (up to {decided_until}): an earlier reading, or a timer the watermark fired after the allowed lateness")]
    Late { station: String, quantity: Quantity, time: String, decided_until: String },
}

fn plausible_range(min: f64, max: f64) -> String {
    if min == f64::NEG_INFINITY {
        format!("at most {max}")
    } else {
        format!("expected {min} to {max}")
    }
}

impl Rejection {
    /// A short stable label, used as the `reason` label of the dead-letter metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Undecodable { .. } => "undecodable",
            Rejection::Incomplete { .. } => "incomplete",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::Unrouted { .. } => "unrouted",
            Rejection::UnknownStation { .. } => "unknown_station",
            Rejection::Auth { .. } => "auth",
            Rejection::UnknownQuantity { .. } => "unknown_quantity",
            Rejection::UnknownUnit { .. } => "unknown_unit",
            Rejection::NotFinite { .. } => "not_finite",
            Rejection::OutOfRange { .. } => "out_of_range",
            Rejection::Implausible { .. } => "implausible",
            Rejection::FromTheFuture { .. } => "from_the_future",
            Rejection::Late { .. } => "late",
        }
    }

    /// Every label [`Rejection::kind`] can return, so metrics can show zeros.
    pub const KINDS: &'static [&'static str] = &[
        "undecodable",
        "incomplete",
        "too_large",
        "unrouted",
        "unknown_station",
        "auth",
        "unknown_quantity",
        "unknown_unit",
        "not_finite",
        "out_of_range",
        "implausible",
        "from_the_future",
        "late",
    ];
}

/// A refused input with everything needed to find and replay it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    /// When Tidewatch received it (ms since the epoch).
    pub received_at: i64,
    /// The connector it came through, e.g. `mqtt`.
    pub source: String,
    /// Topic (or partition, or peer address) it came on.
    pub topic: String,
    pub reason: Rejection,
    /// Human-readable message (the reason's text), for people reading the file.
    pub message: String,
    /// The payload as text (lossy UTF-8), cut to [`DeadLetter::MAX_PAYLOAD`] bytes.
    pub payload: String,
}

impl DeadLetter {
    pub const MAX_PAYLOAD: usize = 4096;

    pub fn new(received_at: i64, source: &str, topic: &str, payload: &[u8], reason: Rejection) -> Self {
        let cut = &payload[..payload.len().min(Self::MAX_PAYLOAD)];
        DeadLetter {
            received_at,
            source: source.to_owned(),
            topic: topic.to_owned(),
            message: reason.to_string(),
            reason,
            payload: String::from_utf8_lossy(cut).into_owned(),
        }
    }
}

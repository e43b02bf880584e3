//! What the rules dataflow emits: changes of an alert's state.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tidewatch_ingest::SensorKey;

use crate::Severity;

/// How an alert's colour changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// A condition held long enough: a new alert.
    Fire,
    /// A more severe level's condition held long enough.
    Escalate,
    /// The level cleared (past its hysteresis band) but a lower one still holds.
    DeEscalate,
    /// Every level cleared.
    Resolve,
}

impl Transition {
    pub fn name(self) -> &'static str {
        match self {
            Transition::Fire => "fire",
            Transition::Escalate => "escalate",
            Transition::DeEscalate => "de_escalate",
            Transition::Resolve => "resolve",
        }
    }
}

/// One change of one alert, keyed by (rule id, sensor).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// The rule's stable id.
    pub rule: Arc<str>,
    /// Whose alert: the sensor the rule watched.
    pub key: SensorKey,
    pub transition: Transition,
    /// The level after the change; for `Resolve`, the level that cleared.
    pub severity: Severity,
    /// The level before the change (`None` for `Fire`).
    pub previous: Option<Severity>,
    /// Event time of the change (ms since the epoch): when the `for` duration was complete,
    /// or when the clearing reading was taken.
    pub event_time: i64,
    /// The measured value behind the change, in the quantity's canonical unit.
    pub value: f64,
    /// The threshold of `severity` for this sensor.
    pub threshold: f64,
    /// Evidence: since when the condition that caused the change has held.
    pub since: i64,
}

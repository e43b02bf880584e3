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
    /// What the rule kind computed, beyond value and threshold (empty for `threshold`).
    #[serde(default, skip_serializing_if = "Evidence::is_empty")]
    pub evidence: Evidence,
}

/// What a model rule saw when it changed an alert: what `value` measures and the figures
/// behind it (a rate's window, an anomaly's score and baseline, a forecast's predicted
/// crossing). Built only when a transition happens, so it may allocate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    /// What `value` and `threshold` are, when not the reading itself, e.g. `rise per hour over 1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<String>,
    /// The unit of `value` and `threshold` when not the reading's, e.g. `m/h`, `σ`, `intervals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Named figures, e.g. `baseline_mean`, `predicted_time_ms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<Fact>,
}

/// One named figure of an alert's evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fact {
    pub name: String,
    pub value: f64,
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        self.measure.is_none() && self.unit.is_none() && self.facts.is_empty()
    }

    pub fn measure(&mut self, what: impl Into<String>) -> &mut Self {
        self.measure = Some(what.into());
        self
    }

    pub fn fact(&mut self, name: &str, value: f64) -> &mut Self {
        self.facts.push(Fact { name: name.to_owned(), value });
        self
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.facts.iter().find(|f| f.name == name).map(|f| f.value)
    }
}

//! The board of open alerts.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use tidewatch_ingest::{time::to_rfc3339, Registry, SensorKey};
use tidewatch_rules::{AlertEvent, RuleSet, Severity, Transition};

use crate::render;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
}

/// One change in an alert's life.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub transition: Transition,
    pub severity: Severity,
    pub event_time: String,
    pub value: f64,
    pub threshold: f64,
}

/// What an alert is about: the station and the quantity watched.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Subject {
    pub station: String,
    pub station_name: String,
    pub region: String,
    pub quantity: &'static str,
    pub unit: &'static str,
}

/// An alert as duty staff see it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub id: u64,
    pub rule: Arc<str>,
    pub state: AlertState,
    pub severity: Severity,
    pub title: String,
    #[serde(flatten)]
    pub subject: Subject,
    pub value: f64,
    pub threshold: f64,
    /// Event time the alert fired (RFC 3339).
    pub fired_at: String,
    /// Event time of the latest change (RFC 3339).
    pub updated_at: String,
    pub labels: BTreeMap<String, String>,
    pub history: Vec<HistoryEntry>,
    #[serde(skip)]
    pub key: SensorKey,
    #[serde(skip)]
    pub updated_ms: i64,
}

/// What the board made of an event, for printing, files and notifiers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    pub alert_id: u64,
    pub rule: Arc<str>,
    pub transition: Transition,
    pub severity: Severity,
    pub previous: Option<Severity>,
    pub event_time: String,
    #[serde(flatten)]
    pub subject: Subject,
    pub value: f64,
    pub threshold: f64,
    /// `above` or `below`: which side of the threshold is the alarming one.
    pub direction: &'static str,
    /// Evidence: since when the causing condition held.
    pub since: String,
    pub title: String,
    #[serde(skip)]
    pub event_ms: i64,
}

/// Open alerts, one per (rule, sensor).
pub struct AlertBoard {
    registry: Arc<Registry>,
    rules: Arc<RuleSet>,
    open: BTreeMap<(Arc<str>, SensorKey), Alert>,
    next_id: u64,
}

impl AlertBoard {
    pub fn new(registry: Arc<Registry>, rules: Arc<RuleSet>) -> Self {
        AlertBoard { registry, rules, open: BTreeMap::new(), next_id: 1 }
    }

    /// Applies an event. A `Fire` for an alert that is already open (a replay after a
    /// restart) updates it instead of opening a second; a change for an alert that is not
    /// open opens it, so no event is lost.
    pub fn apply(&mut self, event: &AlertEvent) -> Notice {
        let station = self.registry.station(event.key.station);
        let quantity = event.key.quantity;
        let rule = self.rules.get(&event.rule);
        let title = render::title(rule.and_then(|r| r.spec.title.as_deref()), event, station);
        let entry = HistoryEntry {
            transition: event.transition,
            severity: event.severity,
            event_time: to_rfc3339(event.event_time),
            value: event.value,
            threshold: event.threshold,
        };
        let subject = Subject {
            station: station.id.clone(),
            station_name: station.name.clone(),
            region: station.region.clone(),
            quantity: quantity.name(),
            unit: quantity.canonical_unit(),
        };
        let map_key = (event.rule.clone(), event.key);
        let id = match self.open.get_mut(&map_key) {
            Some(alert) => {
                alert.severity = event.severity;
                alert.value = event.value;
                alert.threshold = event.threshold;
                alert.title = title.clone();
                alert.updated_at = entry.event_time.clone();
                alert.updated_ms = event.event_time;
                alert.history.push(entry);
                alert.id
            }
            None => {
                let id = self.next_id;
                self.next_id += 1;
                let alert = Alert {
                    id,
                    rule: event.rule.clone(),
                    state: AlertState::Firing,
                    severity: event.severity,
                    title: title.clone(),
                    subject: subject.clone(),
                    value: event.value,
                    threshold: event.threshold,
                    fired_at: entry.event_time.clone(),
                    updated_at: entry.event_time.clone(),
                    labels: rule.map(|r| r.spec.labels.clone()).unwrap_or_default(),
                    history: vec![entry],
                    key: event.key,
                    updated_ms: event.event_time,
                };
                self.open.insert(map_key.clone(), alert);
                id
            }
        };
        if event.transition == Transition::Resolve {
            self.open.remove(&map_key);
        }
        Notice {
            alert_id: id,
            rule: event.rule.clone(),
            transition: event.transition,
            severity: event.severity,
            previous: event.previous,
            event_time: to_rfc3339(event.event_time),
            subject,
            value: event.value,
            threshold: event.threshold,
            direction: match rule.map(|r| r.spec.direction) {
                Some(tidewatch_rules::file::Direction::Below) => "below",
                _ => "above",
            },
            since: to_rfc3339(event.since),
            title,
            event_ms: event.event_time,
        }
    }

    /// Open alerts, most severe first, then most recently changed.
    pub fn open_alerts(&self) -> Vec<&Alert> {
        let mut alerts: Vec<&Alert> = self.open.values().collect();
        alerts.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.updated_ms.cmp(&a.updated_ms)));
        alerts
    }

    /// Open alerts per severity.
    pub fn counts(&self) -> [usize; 4] {
        let mut counts = [0; 4];
        for a in self.open.values() {
            counts[a.severity as usize] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewatch_ingest::{Quantity, StationKey};
    use tidewatch_rules::{compile, RuleSource};

    fn board() -> AlertBoard {
        let registry = Registry::from_toml_str(
            "[[station]]\nid='QT-LX'\nname='兰溪'\ndomain='water'\nlocation=[119.46,29.21]\nregion='330781'\nattributes={warning_level=28.0}",
        )
        .unwrap();
        let rules = compile(
            &[RuleSource {
                name: "r.toml".into(),
                text: "[[rule]]\nid='wl'\ntitle='{station.name} {value} m above {threshold} m'\nkind='threshold'\nselect={quantity='water_level'}\nlevels=[{severity='yellow',above='station.warning_level'},{severity='red',above=30}]\n".into(),
            }],
            &registry,
        )
        .unwrap();
        AlertBoard::new(Arc::new(registry), Arc::new(rules))
    }

    fn event(transition: Transition, severity: Severity, value: f64) -> AlertEvent {
        AlertEvent {
            rule: "wl".into(),
            key: SensorKey::new(StationKey(0), Quantity::WaterLevel),
            transition,
            severity,
            previous: None,
            event_time: 1_764_000_000_000,
            value,
            threshold: 28.0,
            since: 1_764_000_000_000,
        }
    }

    #[test]
    fn one_open_alert_per_rule_and_sensor_with_full_history() {
        let mut b = board();
        let n = b.apply(&event(Transition::Fire, Severity::Yellow, 28.3));
        assert_eq!(n.title, "兰溪 28.30 m above 28.00 m");
        b.apply(&event(Transition::Fire, Severity::Yellow, 28.4)); // replayed
        b.apply(&event(Transition::Escalate, Severity::Red, 30.2));
        let open = b.open_alerts();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].severity, Severity::Red);
        assert_eq!(open[0].history.len(), 3);
        assert_eq!(b.counts(), [0, 0, 0, 1]);
        let resolved = b.apply(&event(Transition::Resolve, Severity::Red, 27.0));
        assert_eq!(resolved.alert_id, n.alert_id);
        assert!(b.open_alerts().is_empty());
        let again = b.apply(&event(Transition::Fire, Severity::Yellow, 28.5));
        assert_ne!(again.alert_id, n.alert_id, "a new episode is a new alert");
    }
}

//! The life of an alert: firing → acknowledged → resolved.
//!
//! [`AlertBoard`] holds the open alerts, exactly one per (rule, sensor), and turns the rules
//! engine's [`AlertEvent`]s and people's actions (acknowledge, resolve by hand) into
//! [`Update`]s: the alert after the change and the history entry that records it. It is
//! plain data and plain functions — no clock, no I/O — so the manager can store and route
//! what it returns, and tests can drive it step by step.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tidewatch_ingest::{time::to_rfc3339, Quantity, Registry, SensorKey};
use tidewatch_rules::{AlertEvent, RuleSet, Severity, Transition};
use utoipa::ToSchema;

use crate::render;

/// Where an alert is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds and nobody has taken it on yet: escalates when left alone.
    Firing,
    /// A duty officer has taken it on; severity changes are still recorded and notified.
    Acknowledged,
    /// The rule cleared, or somebody closed it by hand.
    Resolved,
}

impl AlertState {
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<AlertState> {
        [AlertState::Firing, AlertState::Acknowledged, AlertState::Resolved].into_iter().find(|v| v.name() == s)
    }
}

/// What happened to an alert: a history entry's and a notice's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Happening {
    /// The rule fired: a new alert.
    Fire,
    /// The rule moved to a more severe colour.
    Escalate,
    /// The rule moved to a less severe colour.
    DeEscalate,
    /// The rule cleared: resolved automatically.
    Resolve,
    /// Somebody acknowledged the alert.
    Acknowledge,
    /// Somebody resolved the alert by hand.
    ManualResolve,
    /// Nobody acknowledged in time: the alert went to the next level of the duty roster.
    Reminder,
    /// A notification was held back by a silence or an inhibition.
    Suppressed,
}

impl Happening {
    pub const ALL: [Happening; 8] = [
        Happening::Fire,
        Happening::Escalate,
        Happening::DeEscalate,
        Happening::Resolve,
        Happening::Acknowledge,
        Happening::ManualResolve,
        Happening::Reminder,
        Happening::Suppressed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Happening::Fire => "fire",
            Happening::Escalate => "escalate",
            Happening::DeEscalate => "de_escalate",
            Happening::Resolve => "resolve",
            Happening::Acknowledge => "acknowledge",
            Happening::ManualResolve => "manual_resolve",
            Happening::Reminder => "reminder",
            Happening::Suppressed => "suppressed",
        }
    }

    pub fn parse(s: &str) -> Option<Happening> {
        Happening::ALL.into_iter().find(|h| h.name() == s)
    }

    /// Whether the alert is closed by it.
    pub fn closes(self) -> bool {
        matches!(self, Happening::Resolve | Happening::ManualResolve)
    }
}

impl From<Transition> for Happening {
    fn from(t: Transition) -> Happening {
        match t {
            Transition::Fire => Happening::Fire,
            Transition::Escalate => Happening::Escalate,
            Transition::DeEscalate => Happening::DeEscalate,
            Transition::Resolve => Happening::Resolve,
        }
    }
}

/// One change in an alert's life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    pub happening: Happening,
    /// Wall-clock time it was recorded (RFC 3339).
    pub at: String,
    /// The colour after the change.
    pub severity: Severity,
    /// Event time of the change (RFC 3339): of the measurement behind it for changes the
    /// rules made, the action's own time for people's actions and reminders.
    pub event_time: Option<String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// Who did it, for people's actions.
    pub actor: Option<String>,
    pub note: Option<String>,
}

/// What an alert is about: the station and the quantity watched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Subject {
    pub station: String,
    pub station_name: String,
    /// GB/T 2260 division code of the station.
    pub region: String,
    /// water, environment, traffic or emergency.
    pub domain: String,
    pub quantity: String,
    pub unit: String,
}

/// Who acknowledged an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Acknowledgement {
    pub by: String,
    /// Wall-clock time (RFC 3339).
    pub at: String,
    pub note: Option<String>,
}

/// An alert as duty staff see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    pub id: i64,
    pub rule: String,
    pub state: AlertState,
    pub severity: Severity,
    pub title: String,
    #[serde(flatten)]
    pub subject: Subject,
    /// The latest measured value behind the alert.
    pub value: f64,
    /// The threshold of the current colour.
    pub threshold: f64,
    /// `above` or `below`: which side of the threshold is the alarming one.
    pub direction: String,
    /// Evidence: since when (event time, RFC 3339) the condition behind the latest change held.
    pub since: String,
    /// What a model rule computed (a rate, an anomaly score and its baseline, a forecast),
    /// as of the latest change; empty for thresholds.
    #[serde(default, skip_serializing_if = "tidewatch_rules::Evidence::is_empty")]
    pub evidence: tidewatch_rules::Evidence,
    /// Event time the alert fired (RFC 3339): the measurement's time, the same in a live
    /// run and a replay of the same data.
    pub fired_at: String,
    /// Event time of the latest change the rules made (RFC 3339).
    pub updated_at: String,
    /// Event time it was resolved (RFC 3339): of the measurement (or timer) that cleared it,
    /// or of the person's action when resolved by hand.
    pub resolved_at: Option<String>,
    /// Wall-clock time the fire was recorded (RFC 3339): when Tidewatch knew.
    #[serde(default)]
    pub fired_recorded_at: String,
    /// Wall-clock time the resolution was recorded (RFC 3339).
    #[serde(default)]
    pub resolved_recorded_at: Option<String>,
    pub acknowledged: Option<Acknowledgement>,
    /// 0: the officers on duty; 1, 2, …: how far up the roster it has gone unacknowledged.
    pub escalation_level: u32,
    /// The duty team it was routed to.
    pub team: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Its changes, oldest first (filled in by the store when read).
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Event time the alert fired, ms.
    #[serde(skip)]
    pub fired_ms: i64,
}

impl Alert {
    pub fn is_open(&self) -> bool {
        self.state != AlertState::Resolved
    }
}

/// What the board made of an event or an action: for printing, files and notifiers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notice {
    pub alert_id: i64,
    pub rule: String,
    pub transition: Happening,
    pub severity: Severity,
    pub previous: Option<Severity>,
    /// Event time of the measurement behind it, or the wall-clock time of an action (RFC 3339).
    pub event_time: String,
    #[serde(flatten)]
    pub subject: Subject,
    pub value: f64,
    pub threshold: f64,
    pub direction: String,
    /// Evidence: since when the causing condition held (RFC 3339).
    pub since: String,
    pub title: String,
    pub actor: Option<String>,
    pub note: Option<String>,
    pub escalation_level: u32,
    pub event_ms: i64,
    /// For a resolve: the rule's least severe colour, whose threshold (`threshold`) the value
    /// is now back within.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_within: Option<Severity>,
    /// The outbox row this notice goes out as: with the alert id, transition and event
    /// time, the notification's stable identity. The outbox may send a notification twice
    /// (a crash between the far end accepting it and the send being recorded); a consumer
    /// drops the repeat by this id. Set when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_id: Option<i64>,
}

/// An alert after a change, and the record of the change.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub alert: Alert,
    pub entry: HistoryEntry,
    pub notice: Notice,
}

/// Why a person's action was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("no open alert {0}")]
    NotOpen(i64),
    #[error("alert {id} is already acknowledged by {by}")]
    AlreadyAcknowledged { id: i64, by: String },
    #[error("{0} must not be empty")]
    Missing(&'static str),
}

/// The open alerts, one per (rule, sensor).
pub struct AlertBoard {
    registry: Arc<Registry>,
    rules: Arc<RuleSet>,
    /// The rules before the last reload: events still in flight from them (a worker that had
    /// not taken the new ones yet, the resolves of a removed rule) find their rule here.
    previous: Option<Arc<RuleSet>>,
    open: HashMap<(Arc<str>, SensorKey), Alert>,
    by_id: HashMap<i64, (Arc<str>, SensorKey)>,
    next_id: i64,
    /// After a restart: per (rule, key), the event time of the newest transition stored
    /// since the checkpoint the engine restarted from. The replay emits those again.
    replayed: HashMap<(Arc<str>, SensorKey), i64>,
}

impl AlertBoard {
    /// A board whose new alerts are numbered from `next_id`.
    pub fn new(registry: Arc<Registry>, rules: Arc<RuleSet>, next_id: i64) -> Self {
        AlertBoard {
            registry,
            rules,
            previous: None,
            open: HashMap::new(),
            by_id: HashMap::new(),
            next_id: next_id.max(1),
            replayed: HashMap::new(),
        }
    }

    /// The rules were reloaded.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.previous = Some(std::mem::replace(&mut self.rules, rules));
    }

    /// Transitions (rule, station id, quantity name, event time) stored after the checkpoint
    /// the engine restarts from: the replay of the reading log emits them again, and each
    /// key's events up to the newest stored one are dropped as repeats.
    pub fn expect_replay(&mut self, stored: impl IntoIterator<Item = (String, String, String, i64)>) {
        for (rule, station, quantity, event_ms) in stored {
            let (Some(station), Ok(quantity)) = (self.registry.key_of(&station), quantity.parse::<Quantity>()) else {
                continue;
            };
            let at =
                self.replayed.entry((Arc::from(rule.as_str()), SensorKey::new(station, quantity))).or_insert(event_ms);
            *at = (*at).max(event_ms);
        }
    }

    /// Puts back alerts that were open before a restart. Alerts whose station or quantity
    /// is no longer known stay in the store but cannot be matched by new events.
    pub fn restore(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        for alert in alerts.into_iter().filter(Alert::is_open) {
            let Some(station) = self.registry.key_of(&alert.subject.station) else {
                continue;
            };
            let Ok(quantity) = alert.subject.quantity.parse::<Quantity>() else {
                continue;
            };
            let key = (Arc::<str>::from(alert.rule.as_str()), SensorKey::new(station, quantity));
            self.next_id = self.next_id.max(alert.id + 1);
            self.by_id.insert(alert.id, key.clone());
            self.open.insert(key, alert);
        }
    }

    /// Applies a change the rules made at wall-clock time `now`.
    ///
    /// A `Fire` for an alert that is already open at the same colour is a replay (the engine
    /// starts afresh after a restart) and changes nothing: `None`. A change for an alert
    /// that is not open opens one, so no colour is lost; a `Resolve` for an alert that is
    /// not open (resolved by hand, say) is `None`.
    pub fn apply(&mut self, event: &AlertEvent, now: i64) -> Option<Update> {
        let map_key = (event.rule.clone(), event.key);
        if !self.replayed.is_empty() {
            if let Some(&stored) = self.replayed.get(&map_key) {
                if event.event_time <= stored {
                    tracing::debug!(rule = %event.rule, key = %event.key, event.event_time, "a replayed transition already stored");
                    return None;
                }
                self.replayed.remove(&map_key);
            }
        }
        let rule = self.rules.get(&event.rule).or_else(|| self.previous.as_ref()?.get(&event.rule));
        let station = self.registry.station(event.key.station);
        let mut happening = Happening::from(event.transition);
        let previous;
        let alert = match self.open.get_mut(&map_key) {
            Some(alert) => {
                if happening == Happening::Fire {
                    if alert.severity == event.severity {
                        return None;
                    }
                    happening =
                        if event.severity > alert.severity { Happening::Escalate } else { Happening::DeEscalate };
                }
                previous = Some(alert.severity);
                alert
            }
            None if happening == Happening::Resolve => return None,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                previous = None;
                happening = Happening::Fire;
                let quantity = event.key.quantity;
                let alert = Alert {
                    id,
                    rule: event.rule.to_string(),
                    state: AlertState::Firing,
                    severity: event.severity,
                    title: String::new(),
                    subject: Subject {
                        station: station.id.clone(),
                        station_name: station.name.clone(),
                        region: station.region.clone(),
                        // A quality rule's alert is about the instrument: maintenance staff's.
                        domain: match rule.map(|r| &r.spec.kind) {
                            Some(tidewatch_rules::eval::KindSpec::Quality(_)) => "maintenance".to_owned(),
                            _ => station.domain.name().to_owned(),
                        },
                        quantity: quantity.name().to_owned(),
                        // A model rule's value is its measure: a rate in m/h, a score in σ.
                        unit: event.evidence.unit.clone().unwrap_or_else(|| quantity.canonical_unit().to_owned()),
                    },
                    value: event.value,
                    threshold: event.threshold,
                    direction: match rule.map(|r| r.spec.direction) {
                        Some(tidewatch_rules::file::Direction::Below) => "below",
                        _ => "above",
                    }
                    .to_owned(),
                    since: String::new(),
                    evidence: Default::default(),
                    fired_at: to_rfc3339(event.event_time),
                    updated_at: String::new(),
                    resolved_at: None,
                    fired_recorded_at: to_rfc3339(now),
                    resolved_recorded_at: None,
                    acknowledged: None,
                    escalation_level: 0,
                    team: None,
                    labels: rule.map(|r| r.spec.labels.clone()).unwrap_or_default(),
                    history: Vec::new(),
                    fired_ms: event.event_time,
                };
                self.by_id.insert(id, map_key.clone());
                self.open.entry(map_key.clone()).or_insert(alert)
            }
        };
        alert.severity = event.severity;
        alert.value = event.value;
        alert.threshold = event.threshold;
        // Only now: a replay returned above without formatting anything.
        alert.title = render::title(rule.and_then(|r| r.spec.title.as_deref()), event, station);
        alert.since = to_rfc3339(event.since);
        alert.evidence = event.evidence.clone();
        alert.updated_at = to_rfc3339(event.event_time);
        if happening == Happening::Resolve {
            alert.state = AlertState::Resolved;
            alert.resolved_at = Some(to_rfc3339(event.event_time));
            alert.resolved_recorded_at = Some(to_rfc3339(now));
        }
        let entry = HistoryEntry {
            happening,
            at: to_rfc3339(now),
            severity: event.severity,
            event_time: Some(to_rfc3339(event.event_time)),
            value: Some(event.value),
            threshold: Some(event.threshold),
            actor: None,
            note: None,
        };
        let mut notice = notice(alert, happening, previous, event.event_time, None, None);
        if happening == Happening::Resolve {
            notice.back_within = rule.and_then(|r| r.severities.first().copied());
        }
        let snapshot = alert.clone();
        if happening == Happening::Resolve {
            self.close(&map_key);
        }
        Some(Update { alert: snapshot, entry, notice })
    }

    /// Somebody takes the alert on: it stops escalating.
    pub fn acknowledge(&mut self, id: i64, by: &str, note: Option<&str>, now: i64) -> Result<Update, ActionError> {
        if by.trim().is_empty() {
            return Err(ActionError::Missing("by"));
        }
        let alert = self.open_by_id(id)?;
        if let Some(ack) = &alert.acknowledged {
            return Err(ActionError::AlreadyAcknowledged { id, by: ack.by.clone() });
        }
        alert.state = AlertState::Acknowledged;
        alert.acknowledged =
            Some(Acknowledgement { by: by.to_owned(), at: to_rfc3339(now), note: note.map(str::to_owned) });
        Ok(person_update(alert, Happening::Acknowledge, Some(by), note, now))
    }

    /// Somebody closes the alert by hand. If the rule still holds, its next colour change
    /// opens a new alert.
    pub fn resolve(&mut self, id: i64, by: &str, note: Option<&str>, now: i64) -> Result<Update, ActionError> {
        if by.trim().is_empty() {
            return Err(ActionError::Missing("by"));
        }
        let alert = self.open_by_id(id)?;
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(to_rfc3339(now));
        alert.resolved_recorded_at = Some(to_rfc3339(now));
        let update = person_update(alert, Happening::ManualResolve, Some(by), note, now);
        if let Some(key) = self.by_id.get(&id).cloned() {
            self.close(&key);
        }
        Ok(update)
    }

    /// Nobody acknowledged in time: the alert goes one level up the roster.
    pub fn remind(&mut self, id: i64, level: u32, now: i64) -> Option<Update> {
        let alert = self.open_by_id(id).ok()?;
        alert.escalation_level = level;
        let note = format!("escalated to level {level}");
        let mut update = person_update(alert, Happening::Reminder, None, None, now);
        update.entry.note = Some(note);
        Some(update)
    }

    /// Records which duty team an alert went to.
    pub fn set_team(&mut self, id: i64, team: &str) {
        if let Ok(alert) = self.open_by_id(id) {
            alert.team = Some(team.to_owned());
        }
    }

    pub fn get(&self, id: i64) -> Option<&Alert> {
        self.by_id.get(&id).and_then(|k| self.open.get(k))
    }

    /// Open alerts, in no particular order.
    pub fn open(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// Open alerts per severity.
    pub fn counts(&self) -> [usize; 4] {
        let mut counts = [0; 4];
        for a in self.open.values() {
            counts[a.severity as usize] += 1;
        }
        counts
    }

    fn open_by_id(&mut self, id: i64) -> Result<&mut Alert, ActionError> {
        let key = self.by_id.get(&id).ok_or(ActionError::NotOpen(id))?;
        self.open.get_mut(key).ok_or(ActionError::NotOpen(id))
    }

    fn close(&mut self, key: &(Arc<str>, SensorKey)) {
        if let Some(alert) = self.open.remove(key) {
            self.by_id.remove(&alert.id);
        }
    }
}

/// A change that is not the rules': a person's action (`by`), or the manager's reminder.
fn person_update(alert: &Alert, happening: Happening, by: Option<&str>, note: Option<&str>, now: i64) -> Update {
    let entry = HistoryEntry {
        happening,
        at: to_rfc3339(now),
        severity: alert.severity,
        // A person's action happens at its wall-clock time: both times are that.
        event_time: Some(to_rfc3339(now)),
        value: None,
        threshold: None,
        actor: by.map(str::to_owned),
        note: note.map(str::to_owned),
    };
    let notice = notice(alert, happening, None, now, by, note);
    Update { alert: alert.clone(), entry, notice }
}

fn notice(
    alert: &Alert,
    transition: Happening,
    previous: Option<Severity>,
    at_ms: i64,
    actor: Option<&str>,
    note: Option<&str>,
) -> Notice {
    Notice {
        alert_id: alert.id,
        rule: alert.rule.clone(),
        transition,
        severity: alert.severity,
        previous,
        event_time: to_rfc3339(at_ms),
        subject: alert.subject.clone(),
        value: alert.value,
        threshold: alert.threshold,
        direction: alert.direction.clone(),
        since: alert.since.clone(),
        title: alert.title.clone(),
        actor: actor.map(str::to_owned),
        note: note.map(str::to_owned),
        escalation_level: alert.escalation_level,
        event_ms: at_ms,
        back_within: None,
        notification_id: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tidewatch_ingest::StationKey;
    use tidewatch_rules::{compile, RuleSource};

    pub(crate) fn board() -> AlertBoard {
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
        AlertBoard::new(Arc::new(registry), Arc::new(rules), 1)
    }

    pub(crate) fn event(transition: Transition, severity: Severity, value: f64) -> AlertEvent {
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
            evidence: Default::default(),
        }
    }

    const NOW: i64 = 1_764_000_100_000;

    #[test]
    fn one_open_alert_per_rule_and_sensor_and_replays_change_nothing() {
        let mut b = board();
        let fired = b.apply(&event(Transition::Fire, Severity::Yellow, 28.3), NOW).unwrap();
        assert_eq!(fired.notice.title, "兰溪 28.30 m above 28.00 m");
        assert_eq!(fired.entry.happening, Happening::Fire);
        assert_eq!(b.apply(&event(Transition::Fire, Severity::Yellow, 28.4), NOW), None, "a replay");
        let up = b.apply(&event(Transition::Escalate, Severity::Red, 30.2), NOW).unwrap();
        assert_eq!((up.alert.id, up.notice.previous), (fired.alert.id, Some(Severity::Yellow)));
        assert_eq!(b.counts(), [0, 0, 0, 1]);
        // After a restart the engine fires afresh at a lower colour: that is a de-escalation.
        let down = b.apply(&event(Transition::Fire, Severity::Yellow, 29.0), NOW).unwrap();
        assert_eq!(down.entry.happening, Happening::DeEscalate);
        let mut clear = event(Transition::Resolve, Severity::Yellow, 27.0);
        clear.event_time += 600_000;
        let resolved = b.apply(&clear, NOW).unwrap();
        assert_eq!((resolved.alert.id, resolved.alert.state), (fired.alert.id, AlertState::Resolved));
        // Event times as the data says (a replay reads the same), wall times beside them.
        assert_eq!(resolved.alert.fired_at, to_rfc3339(1_764_000_000_000));
        assert_eq!(resolved.alert.resolved_at.as_deref(), Some(&*to_rfc3339(1_764_000_600_000)));
        assert_eq!(resolved.alert.fired_recorded_at, to_rfc3339(NOW));
        assert_eq!(resolved.alert.resolved_recorded_at.as_deref(), Some(&*to_rfc3339(NOW)));
        assert_eq!(resolved.entry.event_time.as_deref(), Some(&*to_rfc3339(1_764_000_600_000)));
        assert_eq!(resolved.entry.at, to_rfc3339(NOW));
        assert_eq!(b.open().count(), 0);
        assert_eq!(b.apply(&event(Transition::Resolve, Severity::Yellow, 27.0), NOW), None);
        let again = b.apply(&event(Transition::Fire, Severity::Yellow, 28.5), NOW).unwrap();
        assert_ne!(again.alert.id, fired.alert.id, "a new episode is a new alert");
    }

    #[test]
    fn acknowledged_alerts_keep_their_colour_changes_and_can_be_resolved_by_hand() {
        let mut b = board();
        let id = b.apply(&event(Transition::Fire, Severity::Yellow, 28.3), NOW).unwrap().alert.id;
        assert_eq!(b.acknowledge(id, " ", None, NOW), Err(ActionError::Missing("by")));
        let ack = b.acknowledge(id, "张伟", Some("on my way"), NOW).unwrap();
        assert_eq!(ack.alert.state, AlertState::Acknowledged);
        assert_eq!(ack.entry.actor.as_deref(), Some("张伟"));
        assert_eq!(
            b.acknowledge(id, "李娜", None, NOW),
            Err(ActionError::AlreadyAcknowledged { id, by: "张伟".into() })
        );
        let up = b.apply(&event(Transition::Escalate, Severity::Red, 30.2), NOW).unwrap();
        assert_eq!(up.alert.state, AlertState::Acknowledged, "still taken on");
        let closed = b.resolve(id, "张伟", Some("gauge fouled"), NOW).unwrap();
        assert_eq!(closed.entry.happening, Happening::ManualResolve);
        assert_eq!(b.resolve(id, "张伟", None, NOW), Err(ActionError::NotOpen(id)));
        // The rule clearing later does not reopen it; its next colour change does.
        assert_eq!(b.apply(&event(Transition::Resolve, Severity::Red, 27.0), NOW), None);
        let reopened = b.apply(&event(Transition::DeEscalate, Severity::Yellow, 29.0), NOW).unwrap();
        assert_eq!(reopened.entry.happening, Happening::Fire);
        assert_ne!(reopened.alert.id, id);
    }

    #[test]
    fn restored_alerts_are_matched_by_new_events_and_ids_continue() {
        let mut b = board();
        let first = b.apply(&event(Transition::Fire, Severity::Yellow, 28.3), NOW).unwrap().alert;
        let mut after_restart = board();
        after_restart.restore([first.clone()]);
        assert_eq!(after_restart.apply(&event(Transition::Fire, Severity::Yellow, 28.3), NOW), None);
        let up = after_restart.apply(&event(Transition::Escalate, Severity::Red, 30.2), NOW).unwrap();
        assert_eq!(up.alert.id, first.id);
        let mut other = event(Transition::Fire, Severity::Yellow, 28.3);
        other.rule = "other".into();
        assert_eq!(after_restart.apply(&other, NOW).unwrap().alert.id, first.id + 1);
    }
}

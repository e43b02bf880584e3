//! What the process reports at `/metrics`, in Prometheus text format.
//!
//! Hot paths report per batch, not per reading: one counter add per MQTT batch.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub severity: String,
    pub transition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabels {
    pub severity: String,
}

pub struct Metrics {
    registry: Registry,
    pub readings_in: Family<SourceLabels, Counter>,
    pub payloads_in: Family<SourceLabels, Counter>,
    pub dead_letters: Family<ReasonLabels, Counter>,
    pub alert_transitions: Family<TransitionLabels, Counter>,
    pub alerts_open: Family<SeverityLabels, Gauge>,
    pub watermark_lag_seconds: Gauge<f64, AtomicU64>,
    pub watermark_seconds: Gauge<f64, AtomicU64>,
    pub mqtt_connected: Gauge,
    /// 1 while a source can take messages (connected, listening, reading), by source.
    pub source_up: Family<SourceLabels, Gauge>,
    /// Records each sink delivered, failed or dropped (over its bound).
    pub sink_records: Family<SinkLabels, Counter>,
    /// HTTP connections the server closed by its limits (refused at accept, idle).
    pub http_connections_closed: Family<OutcomeLabels, Counter>,
    /// Password checks: ok, failed, or throttled (not checked: the address must wait).
    pub http_logins: Family<OutcomeLabels, Counter>,
    pub notifications: Family<ChannelLabels, Counter>,
    pub notification_messages: Family<ChannelLabels, Counter>,
    pub notifications_suppressed: Counter,
    /// Alert events a slow console stream missed (it was told to read the list again).
    pub console_events_missed: Counter,
    pub outbox_pending: Gauge,
    /// Dead letters counted but not written (over their rate), by reason.
    pub dead_letters_unwritten: Family<ReasonLabels, Counter>,
    /// Readings a source delivered again after a restart (already in the reading log).
    pub readings_duplicate: Counter,
    /// Rule-state checkpoints, by outcome (written, failed).
    pub checkpoints: Family<OutcomeLabels, Counter>,
    /// Rule reloads by outcome (applied, unchanged, rejected).
    pub rule_reloads: Family<OutcomeLabels, Counter>,
    /// Rule states written by checkpoints.
    pub checkpoint_rows: Counter,
    pub checkpoint_seconds: Gauge<f64, AtomicU64>,
    /// Readings replayed from the reading log at start-up.
    pub readings_replayed: Counter,
    /// Protocol deviations accepted (`tidewatch_ingest::conformance`), set before a scrape.
    pub nonconforming: Family<KindLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tidewatch");
        let readings_in = Family::<SourceLabels, Counter>::default();
        let payloads_in = Family::<SourceLabels, Counter>::default();
        let dead_letters = Family::<ReasonLabels, Counter>::default();
        let alert_transitions = Family::<TransitionLabels, Counter>::default();
        let alerts_open = Family::<SeverityLabels, Gauge>::default();
        let watermark_lag_seconds = Gauge::<f64, AtomicU64>::default();
        let watermark_seconds = Gauge::<f64, AtomicU64>::default();
        let mqtt_connected = Gauge::default();
        let notifications = Family::<ChannelLabels, Counter>::default();
        let notification_messages = Family::<ChannelLabels, Counter>::default();
        let notifications_suppressed = Counter::default();
        let console_events_missed = Counter::default();
        let outbox_pending = Gauge::default();
        let readings_duplicate = Counter::default();
        let dead_letters_unwritten = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "dead_letters_unwritten",
            "Dead letters counted but not written to the file (over output.dead_letter_rate per source and reason)",
            dead_letters_unwritten.clone(),
        );
        let checkpoints = Family::<OutcomeLabels, Counter>::default();
        let rule_reloads = Family::<OutcomeLabels, Counter>::default();
        let checkpoint_rows = Counter::default();
        let checkpoint_seconds = Gauge::<f64, AtomicU64>::default();
        let readings_replayed = Counter::default();
        let nonconforming = Family::<KindLabels, Counter>::default();
        registry.register(
            "nonconforming",
            "Inputs that deviate from their protocol's standard but were accepted, by kind \
             (hj212_oversize: data segment over 1,024 bytes; hj212_modbus_crc: CRC-16/MODBUS)",
            nonconforming.clone(),
        );
        registry.register(
            "readings_duplicate",
            "Readings delivered again after a restart although already in the reading log (dropped)",
            readings_duplicate.clone(),
        );
        registry.register("checkpoints", "Rule-state checkpoints, by outcome", checkpoints.clone());
        registry.register("checkpoint_rows", "Rule states written by checkpoints", checkpoint_rows.clone());
        registry.register(
            "checkpoint_seconds",
            "How long the last checkpoint took, from request to commit",
            checkpoint_seconds.clone(),
        );
        registry.register(
            "readings_replayed",
            "Readings replayed from the reading log at start-up",
            readings_replayed.clone(),
        );
        registry.register(
            "notifications",
            "Notifications delivered, by channel (a message can carry several)",
            notifications.clone(),
        );
        registry.register(
            "notification_messages",
            "Messages sent to notification channels, by channel and outcome (delivered, failed)",
            notification_messages.clone(),
        );
        registry.register(
            "notifications_suppressed",
            "Notifications held back by silences, maintenance windows or inhibition",
            notifications_suppressed.clone(),
        );
        registry.register(
            "rule_reloads",
            "Rule reloads by outcome: applied, unchanged, rejected (the rules in force stayed)",
            rule_reloads.clone(),
        );
        registry.register(
            "console_events_missed",
            "Alert events a slow /api/events reader missed (it was sent `resync` instead)",
            console_events_missed.clone(),
        );
        registry.register("outbox_pending", "Notifications waiting in the outbox", outbox_pending.clone());
        registry.register("readings", "Readings accepted, by source", readings_in.clone());
        registry.register("payloads", "Payloads received, by source", payloads_in.clone());
        registry.register("dead_letters", "Rejected inputs, by reason", dead_letters.clone());
        registry.register("alert_transitions", "Alert transitions, by severity and kind", alert_transitions.clone());
        registry.register("alerts_open", "Open alerts, by severity", alerts_open.clone());
        registry.register(
            "watermark_lag_seconds",
            "Wall clock minus the event-time watermark",
            watermark_lag_seconds.clone(),
        );
        registry.register(
            "watermark_seconds",
            "The event-time watermark, seconds since the epoch",
            watermark_seconds.clone(),
        );
        registry.register("mqtt_connected", "1 while connected to the MQTT broker", mqtt_connected.clone());
        let source_up = Family::<SourceLabels, Gauge>::default();
        registry.register("source_up", "1 while a source can take messages, by source", source_up.clone());
        let http_connections_closed = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "http_connections_closed",
            "HTTP connections closed by the server's limits: refused (over http.max_connections or per address) or idle_closed",
            http_connections_closed.clone(),
        );
        let http_logins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "http_logins",
            "Password logins (HTTP Basic, console sessions) by outcome: ok, failed, throttled (too many failures from the address)",
            http_logins.clone(),
        );
        let sink_records = Family::<SinkLabels, Counter>::default();
        registry.register(
            "sink_records",
            "Records each sink delivered, failed (refused by the far end) or dropped (over its bound)",
            sink_records.clone(),
        );
        for reason in tidewatch_ingest::Rejection::KINDS {
            let _ = dead_letters.get_or_create(&ReasonLabels { reason: (*reason).to_owned() });
        }
        for severity in tidewatch_rules::Severity::ALL {
            let _ = alerts_open.get_or_create(&SeverityLabels { severity: severity.name().to_owned() });
        }
        Metrics {
            registry,
            readings_in,
            payloads_in,
            dead_letters,
            alert_transitions,
            alerts_open,
            watermark_lag_seconds,
            watermark_seconds,
            mqtt_connected,
            source_up,
            sink_records,
            http_connections_closed,
            http_logins,
            notifications,
            notification_messages,
            notifications_suppressed,
            console_events_missed,
            outbox_pending,
            readings_duplicate,
            dead_letters_unwritten,
            checkpoints,
            rule_reloads,
            checkpoint_rows,
            checkpoint_seconds,
            readings_replayed,
            nonconforming,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

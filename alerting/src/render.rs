//! Words and colours for people.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Asia::Shanghai;
use tidewatch_ingest::Station;
use tidewatch_rules::{AlertEvent, Severity};

use crate::lifecycle::{Happening, Notice};

/// Fills a rule's title template; without one, a plain default.
pub fn title(template: Option<&str>, event: &AlertEvent, station: &Station) -> String {
    let quantity = event.key.quantity;
    let Some(template) = template else {
        return format!("{} {} {}", station.name, quantity.name(), event.severity);
    };
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        match name {
            "station.name" => out.push_str(&station.name),
            "station.id" => out.push_str(&station.id),
            "station.region" => out.push_str(&station.region),
            "station.basin" => out.push_str(station.basin.as_deref().unwrap_or("")),
            "quantity" => out.push_str(quantity.name()),
            "unit" => out.push_str(quantity.canonical_unit()),
            "value" => write_number(&mut out, event.value),
            "threshold" => write_number(&mut out, event.threshold),
            "severity" => out.push_str(event.severity.name()),
            "rule" => out.push_str(&event.rule),
            other => {
                let _ = write!(out, "{{{other}}}");
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn write_number(out: &mut String, v: f64) {
    let _ = write!(out, "{v:.2}");
}

/// ANSI colour for a severity (orange as the 256-colour 208).
fn colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Blue => "\x1b[1;34m",
        Severity::Yellow => "\x1b[1;33m",
        Severity::Orange => "\x1b[1;38;5;208m",
        Severity::Red => "\x1b[1;31m",
    }
}

/// Event time as duty staff read it: local time in Asia/Shanghai.
pub fn local_time(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.with_timezone(&Shanghai).format("%Y-%m-%d %H:%M:%S").to_string(),
        None => format!("@{ms}"),
    }
}

/// One terminal line per transition, e.g.
/// `2026-11-25 14:20:00  ▲ ORANGE  escalate     兰溪 (QT-LX)  water_level 30.62 m > 30.50 m  [water.level.warning]`
pub fn console_line(n: &Notice, ansi: bool) -> String {
    let paint = |severity: Severity, text: String| {
        if ansi {
            format!("{}{text}\x1b[0m", colour(severity))
        } else {
            text
        }
    };
    let (arrow, what) = match n.transition {
        Happening::Fire => ("●", "fire"),
        Happening::Escalate => ("▲", "escalate"),
        Happening::DeEscalate => ("▼", "de-escalate"),
        Happening::Resolve => ("✓", "resolved"),
        Happening::ManualResolve => ("✓", "closed"),
        Happening::Acknowledge => ("✎", "ack"),
        Happening::Reminder => ("⏰", "reminder"),
        Happening::Suppressed => ("·", "suppressed"),
    };
    let severity = paint(n.severity, format!("{:<6}", n.severity.name().to_uppercase()));
    let (unit, value, threshold) = (&n.subject.unit, n.value, n.threshold);
    let (beyond, back) = if n.direction == "below" { ("<", "≥") } else { (">", "≤") };
    let reading = match (n.transition, n.previous) {
        (Happening::DeEscalate, Some(previous)) => {
            format!("{value:.2} {unit} (was {previous}; {} from {threshold:.2} {unit})", n.severity)
        }
        (Happening::Resolve, _) => format!("{value:.2} {unit} {back} {threshold:.2} {unit}"),
        (Happening::Acknowledge | Happening::ManualResolve, _) => {
            format!(
                "by {}{}",
                n.actor.as_deref().unwrap_or("?"),
                n.note.as_deref().map(|t| format!(": {t}")).unwrap_or_default()
            )
        }
        (Happening::Reminder, _) => format!("unacknowledged, escalated to level {}", n.escalation_level),
        _ => format!("{value:.2} {unit} {beyond} {threshold:.2} {unit}"),
    };
    format!(
        "{}  {arrow} {severity}  {what:<11}  {} ({})  {} {reading}  [{}]",
        local_time(n.event_ms),
        n.subject.station_name,
        n.subject.station,
        n.subject.quantity,
        n.rule,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lifecycle::{Notice, Subject};

    fn notice(transition: Happening, severity: Severity, previous: Option<Severity>) -> Notice {
        Notice {
            alert_id: 1,
            rule: "water.level.warning".into(),
            transition,
            severity,
            previous,
            event_time: String::new(),
            subject: Subject {
                station: "QT-LX".into(),
                station_name: "兰溪".into(),
                region: "330781".into(),
                domain: "water".into(),
                quantity: "water_level".into(),
                unit: "m".into(),
            },
            value: 30.64,
            threshold: 30.5,
            direction: "above".into(),
            since: String::new(),
            title: String::new(),
            actor: None,
            note: None,
            escalation_level: 0,
            event_ms: 1_764_000_000_000,
            back_within: None,
            notification_id: None,
        }
    }

    #[test]
    fn lines_say_what_changed_against_which_threshold() {
        let up = console_line(&notice(Happening::Escalate, Severity::Orange, Some(Severity::Yellow)), false);
        assert_eq!(up, "2025-11-25 00:00:00  ▲ ORANGE  escalate     兰溪 (QT-LX)  water_level 30.64 m > 30.50 m  [water.level.warning]");
        let down = console_line(&notice(Happening::DeEscalate, Severity::Orange, Some(Severity::Red)), false);
        assert!(down.contains("30.64 m (was red; orange from 30.50 m)"), "{down}");
        let mut low = Notice {
            direction: "below".into(),
            value: 4.16,
            threshold: 5.0,
            ..notice(Happening::Fire, Severity::Yellow, None)
        };
        low.subject.unit = "mg/L".into();
        assert!(console_line(&low, false).contains("4.16 mg/L < 5.00 mg/L"));
        let cleared = Notice { transition: Happening::Resolve, value: 5.33, ..low.clone() };
        assert!(console_line(&cleared, false).contains("5.33 mg/L ≥ 5.00 mg/L"));
        let coloured = console_line(&notice(Happening::Fire, Severity::Red, None), true);
        assert!(coloured.contains("\x1b[1;31mRED"), "{coloured}");
    }

    #[test]
    fn local_time_is_shanghai() {
        assert_eq!(local_time(1_764_000_000_000), "2025-11-25 00:00:00");
    }
}

//! What duty staff read: notification messages in Chinese or English.
//!
//! Every message names the station, the measured value against the threshold, the colour,
//! the rule, the event time (Beijing time), the region and a link to the alert in the
//! console. Several notices that go out together (one rule, one region) become one message
//! with a line each.

use std::fmt::Write;

use serde::Deserialize;
use tidewatch_rules::Severity;

use crate::lifecycle::{Happening, Notice};
use crate::render::local_time;

/// The language of notifications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    Zh,
    En,
}

/// One notification's text, in the forms the channels take.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// A one-line summary (e-mail subject, robot card title).
    pub title: String,
    /// Plain text (SMS, e-mail body).
    pub text: String,
    /// Markdown (DingTalk, WeCom).
    pub markdown: String,
}

/// At most this many notices are spelt out in one message; the rest are counted and the
/// console link leads to them (robots refuse very long messages).
const MAX_LINES: usize = 20;

/// Composes the message for notices that go out together (at least one).
pub fn compose(language: Language, notices: &[Notice], console_url: Option<&str>) -> Message {
    let Some(first) = notices.first() else {
        return Message { title: String::new(), text: String::new(), markdown: String::new() };
    };
    let link = |id: i64| console_url.map(|base| format!("{}/alerts/{id}", base.trim_end_matches('/')));
    if notices.len() == 1 {
        let n = first;
        let headline = headline(language, n);
        let mut details = Vec::new();
        let (rule, time, region, more) = match language {
            Language::Zh => ("规则", "时间", "区域", "详情"),
            Language::En => ("Rule", "Time", "Region", "Details"),
        };
        details.push(match language {
            Language::Zh => format!("{rule}：{}（{}）", n.rule, n.title),
            Language::En => format!("{rule}: {} ({})", n.rule, n.title),
        });
        let zone = if language == Language::Zh { "（北京时间）" } else { " (Beijing time)" };
        details.push(format!("{time}{}{}{zone}", colon(language), local_time(n.event_ms)));
        details.push(format!("{region}{}{}", colon(language), n.subject.region));
        if let Some(note) = &n.note {
            let label = if language == Language::Zh { "备注" } else { "Note" };
            details.push(format!("{label}{}{note}", colon(language)));
        }
        let url = link(n.alert_id);
        let mut text = format!("{headline}\n{}", details.join("\n"));
        let list: Vec<String> = details.iter().map(|d| format!("- {d}")).collect();
        let mut markdown = format!("### {headline}\n\n{}", list.join("\n"));
        if let Some(url) = url {
            let _ = write!(text, "\n{more}{}{url}", colon(language));
            let _ = write!(markdown, "\n\n[{more}]({url})");
        }
        reference(language, notices, &mut text, &mut markdown);
        return Message { title: headline, text, markdown };
    }

    let worst = notices.iter().map(|n| n.severity).max().unwrap_or(Severity::Blue);
    let region = &first.subject.region;
    // Usually one rule in one region (that is how notices are grouped); a digest of a
    // rate-limited channel can mix them.
    let one_group = notices.iter().all(|n| n.rule == first.rule && n.subject.region == *region);
    let count = notices.len();
    let title = match (language, one_group) {
        (Language::Zh, true) => {
            format!("【{}预警】{}：{count} 条告警变化（区域 {region}）", worst.chinese(), first.rule)
        }
        (Language::Zh, false) => format!("【{}预警】{count} 条告警变化", worst.chinese()),
        (Language::En, true) => {
            format!("[{} warning] {}: {count} alert changes (region {region})", worst.name().to_uppercase(), first.rule)
        }
        (Language::En, false) => format!("[{} warning] {count} alert changes", worst.name().to_uppercase()),
    };
    let mut text = title.clone();
    let mut markdown = format!("### {title}\n\n");
    for n in notices.iter().take(MAX_LINES) {
        let line = format!("{}  {}", local_time(n.event_ms), headline(language, n));
        let _ = write!(text, "\n{line}");
        match link(n.alert_id) {
            Some(url) => {
                let _ = writeln!(markdown, "- {line} [#{}]({url})", n.alert_id);
            }
            None => {
                let _ = writeln!(markdown, "- {line}");
            }
        }
    }
    if notices.len() > MAX_LINES {
        let rest = notices.len() - MAX_LINES;
        let line = match language {
            Language::Zh => format!("……另有 {rest} 条，请在控制台查看"),
            Language::En => format!("… and {rest} more in the console"),
        };
        let _ = write!(text, "\n{line}");
        let _ = writeln!(markdown, "- {line}");
    }
    if let Some(base) = console_url {
        let base = base.trim_end_matches('/');
        let url = if one_group {
            format!("{base}/alerts?rule={}&region={region}", first.rule)
        } else {
            format!("{base}/alerts")
        };
        let label = if language == Language::Zh { "控制台" } else { "Console" };
        let _ = write!(text, "\n{label}{}{url}", colon(language));
        let _ = write!(markdown, "\n[{label}]({url})");
    }
    // No trailing blank line (a channel appends its own lines after it).
    markdown.truncate(markdown.trim_end().len());
    reference(language, notices, &mut text, &mut markdown);
    Message { title, text, markdown }
}

/// The notifications' stable ids (outbox ids), last: a reader (or a robot's log) can tell a
/// repeat sent after a crash from a new notification.
fn reference(language: Language, notices: &[Notice], text: &mut String, markdown: &mut String) {
    let ids: Vec<String> = notices.iter().filter_map(|n| n.notification_id).map(|id| format!("N{id}")).collect();
    if ids.is_empty() {
        return;
    }
    let label = if language == Language::Zh { "编号" } else { "Ref" };
    let line = format!("{label}{}{}", colon(language), ids.join(","));
    let _ = write!(text, "\n{line}");
    let _ = write!(markdown, "\n\n{line}");
}

fn colon(language: Language) -> &'static str {
    match language {
        Language::Zh => "：",
        Language::En => ": ",
    }
}

/// One line that says what happened, e.g. `【橙色预警】兰溪（QT-LX）水位 30.62 m，高于阈值 30.50 m`.
pub fn headline(language: Language, n: &Notice) -> String {
    let s = &n.subject;
    let (v, t, unit) = (n.value, n.threshold, &s.unit);
    let below = n.direction == "below";
    match language {
        Language::Zh => {
            let quantity = quantity_zh(&s.quantity);
            let side = if below { "低于" } else { "高于" };
            let station = format!("{}（{}）", s.station_name, s.station);
            let colour = n.severity.chinese();
            match n.transition {
                Happening::Fire => {
                    format!("【{colour}预警】{station}{quantity} {v:.2} {unit}，{side}阈值 {t:.2} {unit}")
                }
                Happening::Escalate | Happening::DeEscalate => {
                    let (word, was) = match (n.transition, n.previous) {
                        (Happening::Escalate, Some(p)) => ("升级", format!("，原为{}预警", p.chinese())),
                        (Happening::Escalate, None) => ("升级", String::new()),
                        (_, Some(p)) => ("降级", format!("，原为{}预警", p.chinese())),
                        (_, None) => ("降级", String::new()),
                    };
                    format!("【{colour}预警·{word}】{station}{quantity} {v:.2} {unit}，{side}阈值 {t:.2} {unit}{was}")
                }
                Happening::Resolve => {
                    let back = if below { "高于" } else { "低于" };
                    match n.back_within {
                        Some(lowest) => format!(
                            "【预警解除】{station}{quantity} {v:.2} {unit}，{back}{}预警阈值 {t:.2} {unit}",
                            lowest.chinese()
                        ),
                        None => format!("【预警解除】{station}{quantity} {v:.2} {unit}，{back}阈值 {t:.2} {unit}"),
                    }
                }
                Happening::Acknowledge => {
                    format!("【已确认】{station}{quantity}{colour}预警，确认人：{}", n.actor.as_deref().unwrap_or("?"))
                }
                Happening::ManualResolve => {
                    format!(
                        "【已解除】{station}{quantity}{colour}预警，由 {} 手动解除",
                        n.actor.as_deref().unwrap_or("?")
                    )
                }
                Happening::Reminder => format!(
                    "【未确认·第 {} 级通知】{station}{quantity}{colour}预警 {v:.2} {unit}，{side}阈值 {t:.2} {unit}",
                    n.escalation_level
                ),
                Happening::Suppressed => format!("【已抑制】{station}{quantity}{colour}预警"),
            }
        }
        Language::En => {
            let quantity = s.quantity.replace('_', " ");
            let side = if below { "below" } else { "above" };
            let station = format!("{} ({})", s.station_name, s.station);
            let colour = n.severity.name().to_uppercase();
            match n.transition {
                Happening::Fire => format!("[{colour} warning] {station} {quantity} {v:.2} {unit}, {side} threshold {t:.2} {unit}"),
                Happening::Escalate | Happening::DeEscalate => {
                    let word = if n.transition == Happening::Escalate { "raised" } else { "lowered" };
                    let was = n.previous.map(|p| format!(", was {p}")).unwrap_or_default();
                    format!("[{colour} warning, {word}] {station} {quantity} {v:.2} {unit}, {side} threshold {t:.2} {unit}{was}")
                }
                Happening::Resolve => {
                    let back = if below { "above" } else { "below" };
                    match n.back_within {
                        Some(lowest) => format!("[Resolved] {station} {quantity} {v:.2} {unit}, {back} {lowest} {t:.2} {unit}"),
                        None => format!("[Resolved] {station} {quantity} {v:.2} {unit}, {back} threshold {t:.2} {unit}"),
                    }
                }
                Happening::Acknowledge => format!(
                    "[Acknowledged] {station} {quantity} {colour} warning, by {}",
                    n.actor.as_deref().unwrap_or("?")
                ),
                Happening::ManualResolve => format!(
                    "[Closed] {station} {quantity} {colour} warning, resolved by hand by {}",
                    n.actor.as_deref().unwrap_or("?")
                ),
                Happening::Reminder => format!(
                    "[Unacknowledged, level {}] {station} {quantity} {colour} warning {v:.2} {unit}, {side} threshold {t:.2} {unit}",
                    n.escalation_level
                ),
                Happening::Suppressed => format!("[Suppressed] {station} {quantity} {colour} warning"),
            }
        }
    }
}

/// Chinese names of the quantities duty staff see most; others keep their English name.
fn quantity_zh(name: &str) -> &str {
    match name {
        "water_level" => "水位",
        "relative_water_level" => "相对水位",
        "rainfall" => "降雨量",
        "rainfall_1h" => "1小时降雨量",
        "rainfall_5m" => "5分钟降雨量",
        "rainfall_total" => "累计降雨量",
        "flow" => "流量",
        "pm25" => "PM2.5",
        "pm10" => "PM10",
        "so2" => "二氧化硫",
        "no2" => "二氧化氮",
        "o3" => "臭氧",
        "co" => "一氧化碳",
        "dissolved_oxygen" => "溶解氧",
        "ph" => "pH",
        "cod" => "化学需氧量",
        "ammonia_nitrogen" => "氨氮",
        "total_phosphorus" => "总磷",
        "total_nitrogen" => "总氮",
        "gas" => "可燃气体浓度",
        "smoke" => "烟雾浓度",
        "vehicle_speed" => "车速",
        "traffic_volume" => "车流量",
        "occupancy" => "占有率",
        "air_temperature" => "气温",
        "water_temperature" => "水温",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Subject;

    pub(crate) fn notice(transition: Happening, severity: Severity) -> Notice {
        Notice {
            alert_id: 17,
            rule: "water.level.warning".into(),
            transition,
            severity,
            previous: Some(Severity::Yellow),
            event_time: "2025-11-24T16:00:00.000Z".into(),
            subject: Subject {
                station: "QT-LX".into(),
                station_name: "兰溪".into(),
                region: "330781".into(),
                domain: "water".into(),
                quantity: "water_level".into(),
                unit: "m".into(),
            },
            value: 30.62,
            threshold: 30.5,
            direction: "above".into(),
            since: "2025-11-24T15:50:00.000Z".into(),
            title: "兰溪 水位超保证".into(),
            actor: None,
            note: None,
            escalation_level: 0,
            event_ms: 1_764_000_000_000,
            back_within: None,
            notification_id: None,
        }
    }

    #[test]
    fn a_single_notice_names_station_value_threshold_colour_rule_time_region_and_link() {
        let n = notice(Happening::Escalate, Severity::Orange);
        let zh = compose(Language::Zh, std::slice::from_ref(&n), Some("http://console.example/"));
        assert_eq!(zh.title, "【橙色预警·升级】兰溪（QT-LX）水位 30.62 m，高于阈值 30.50 m，原为黄色预警");
        assert_eq!(
            zh.text,
            "【橙色预警·升级】兰溪（QT-LX）水位 30.62 m，高于阈值 30.50 m，原为黄色预警\n\
             规则：water.level.warning（兰溪 水位超保证）\n\
             时间：2025-11-25 00:00:00（北京时间）\n\
             区域：330781\n\
             详情：http://console.example/alerts/17"
        );
        assert!(zh.markdown.starts_with("### 【橙色预警·升级】"), "{}", zh.markdown);
        assert!(zh.markdown.ends_with("[详情](http://console.example/alerts/17)"), "{}", zh.markdown);
        let en = compose(Language::En, &[n], None);
        assert_eq!(
            en.text,
            "[ORANGE warning, raised] 兰溪 (QT-LX) water level 30.62 m, above threshold 30.50 m, was yellow\n\
             Rule: water.level.warning (兰溪 水位超保证)\n\
             Time: 2025-11-25 00:00:00 (Beijing time)\n\
             Region: 330781"
        );
    }

    #[test]
    fn notices_that_go_out_together_are_one_message_with_a_line_each() {
        let mut many: Vec<Notice> = (0..25).map(|_| notice(Happening::Fire, Severity::Yellow)).collect();
        many[3].severity = Severity::Red;
        let m = compose(Language::Zh, &many, Some("http://c"));
        assert_eq!(m.title, "【红色预警】water.level.warning：25 条告警变化（区域 330781）");
        assert_eq!(m.text.lines().count(), 1 + MAX_LINES + 1 + 1, "{}", m.text);
        assert!(m.text.contains("……另有 5 条"), "{}", m.text);
        assert!(m.markdown.contains("[#17](http://c/alerts/17)"));
    }

    #[test]
    fn a_resolve_quotes_the_level_the_value_is_now_within_and_no_blank_line_ends_a_message() {
        let n = Notice {
            value: 27.0,
            threshold: 28.0,
            back_within: Some(Severity::Yellow),
            ..notice(Happening::Resolve, Severity::Red)
        };
        assert_eq!(headline(Language::Zh, &n), "【预警解除】兰溪（QT-LX）水位 27.00 m，低于黄色预警阈值 28.00 m");
        assert_eq!(headline(Language::En, &n), "[Resolved] 兰溪 (QT-LX) water level 27.00 m, below yellow 28.00 m");
        let low = Notice { direction: "below".into(), value: 5.2, threshold: 5.0, ..n.clone() };
        assert!(
            headline(Language::En, &low).ends_with("5.20 m, above yellow 5.00 m"),
            "{}",
            headline(Language::En, &low)
        );
        // Without a console link, neither form ends in a blank line.
        for notices in [vec![n.clone()], vec![n.clone(), n]] {
            let m = compose(Language::Zh, &notices, None);
            assert!(!m.markdown.ends_with('\n') && !m.text.ends_with('\n'), "{:?}", m.markdown);
        }
    }

    #[test]
    fn every_message_ends_with_the_stable_ids_of_its_notifications() {
        let ids = [41, 42];
        let notices: Vec<Notice> = ids
            .iter()
            .map(|&id| Notice { notification_id: Some(id), ..notice(Happening::Fire, Severity::Yellow) })
            .collect();
        let one = compose(Language::En, &notices[..1], None);
        assert!(one.text.ends_with("\nRef: N41"), "{}", one.text);
        assert!(one.markdown.ends_with("\n\nRef: N41"), "{}", one.markdown);
        let both = compose(Language::Zh, &notices, Some("http://c"));
        assert!(both.text.ends_with("\n编号：N41,N42"), "{}", both.text);
        // A JSON channel carries the id in each notice.
        let json = serde_json::to_value(&notices[1]).unwrap();
        assert_eq!((json["notification_id"].as_i64(), json["alert_id"].as_i64()), (Some(42), Some(17)));
        assert_eq!(
            (json["transition"].as_str(), json["event_time"].as_str()),
            (Some("fire"), Some("2025-11-24T16:00:00.000Z"))
        );
    }
}

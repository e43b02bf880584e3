//! The duty roster (`config/duty.toml`): who is told what, over which channels.
//!
//! Teams cover region codes (province → city → county; the most specific team for a
//! station's region wins, falling back upward) and domains; shifts say which members are on
//! duty by weekday and time of day in the roster's time zone (Asia/Shanghai by default); a
//! team's `escalate_to` list is the chain an unacknowledged alert climbs; a default team
//! catches what no other team covers. The same file names the channels (robots, SMS
//! gateway, SMTP, webhooks, MQTT topics), maintenance windows and inhibitions.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;
use tidewatch_rules::duration::parse_duration;
use tidewatch_rules::Severity;

use crate::lifecycle::{Alert, Happening};
use crate::notify::ChannelConfig;
use crate::policy::{region_prefix, Inhibition, Silence};

/// The duty file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DutyFile {
    /// Zone of shift times (IANA name).
    #[serde(default = "shanghai")]
    pub time_zone: Tz,
    /// How long an alert may stay unacknowledged, per colour, before it climbs the roster.
    #[serde(default)]
    pub escalation: EscalationSection,
    /// Channels by name.
    #[serde(default)]
    pub channel: BTreeMap<String, ChannelConfig>,
    /// Channels that get every notification, whoever is on duty (e.g. an MQTT alert topic).
    #[serde(default)]
    pub broadcast: Vec<String>,
    #[serde(default)]
    pub member: Vec<Member>,
    #[serde(default)]
    pub team: Vec<Team>,
    /// Maintenance windows: silences that come with the configuration.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceWindow>,
    /// Alerts whose notifications other open alerts hold back.
    #[serde(default)]
    pub inhibit: Vec<Inhibition>,
}

fn shanghai() -> Tz {
    chrono_tz::Asia::Shanghai
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationSection {
    /// Per colour, e.g. `{ red = "10m", orange = "20m", yellow = "1h", blue = "4h" }`.
    pub ack_within: BTreeMap<Severity, String>,
}

impl Default for EscalationSection {
    fn default() -> Self {
        let ack_within =
            [(Severity::Blue, "4h"), (Severity::Yellow, "1h"), (Severity::Orange, "30m"), (Severity::Red, "15m")]
                .into_iter()
                .map(|(s, d)| (s, d.to_owned()))
                .collect();
        EscalationSection { ack_within }
    }
}

/// A person on the roster.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: String,
    pub name: String,
    /// Mobile number: SMS, and @-mentions in robot messages.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Personal channels (SMS, e-mail) by name.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// A duty team.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub id: String,
    pub name: String,
    /// Region codes it covers (`330781` a county, `330700` a city, `330000` the province).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Domains it covers (water, environment, traffic, emergency); empty: all.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Catches alerts no other team covers.
    #[serde(default)]
    pub default: bool,
    /// The team's group channels (DingTalk or WeCom robots, webhooks).
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub shift: Vec<Shift>,
    /// Escalation chain: level 1, level 2, … (member ids).
    #[serde(default)]
    pub escalate_to: Vec<String>,
}

/// Who is on duty when.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// `mon` … `sun`; empty: every day. An overnight shift belongs to the day it starts.
    #[serde(default)]
    pub days: Vec<String>,
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM`; at or before `start`: the shift runs past midnight.
    pub end: String,
    pub members: Vec<String>,
}

/// A silence written in the duty file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub station: Option<String>,
    pub rule: Option<String>,
    pub region: Option<String>,
    /// RFC 3339, e.g. `2026-12-01T08:00:00+08:00`.
    pub starts_at: String,
    pub ends_at: String,
    #[serde(default)]
    pub comment: String,
}

/// A checked roster, ready to route.
#[derive(Clone, Debug)]
pub struct Duty {
    pub file: DutyFile,
    ack_within_ms: [i64; 4],
    shifts: Vec<Vec<CheckedShift>>,
    /// Maintenance windows as silences (ids count down from -1).
    pub maintenance: Vec<Silence>,
}

#[derive(Clone, Debug)]
struct CheckedShift {
    days: [bool; 7],
    start: u32,
    end: u32,
}

impl CheckedShift {
    /// Whether minute-of-week `weekday, minute` falls in it.
    fn covers(&self, weekday: Weekday, minute: u32) -> bool {
        let today = weekday.num_days_from_monday() as usize;
        let yesterday = (today + 6) % 7;
        if self.start < self.end {
            self.days[today] && self.start <= minute && minute < self.end
        } else {
            (self.days[today] && minute >= self.start) || (self.days[yesterday] && minute < self.end)
        }
    }
}

/// One channel and the members a notification on it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub channel: String,
    pub members: Vec<String>,
}

impl Default for Duty {
    /// An empty roster: nobody to notify, the default escalation times.
    fn default() -> Self {
        Duty::from_toml_str("").expect("the empty roster is valid")
    }
}

impl Duty {
    /// Reads and checks a duty file; every problem at once.
    pub fn load(path: &Path) -> Result<Duty, Vec<String>> {
        let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
        let name = path.display().to_string();
        let mut file: DutyFile = tidewatch_ingest::toml_all::parse(&text, &name)?;
        let dir = path.parent().unwrap_or(Path::new(""));
        file.channel.values_mut().for_each(|channel| channel.resolve_paths(dir));
        Duty::check(file).map_err(|problems| problems.into_iter().map(|p| format!("{name}: {p}")).collect())
    }

    pub fn from_toml_str(text: &str) -> Result<Duty, Vec<String>> {
        let file: DutyFile = tidewatch_ingest::toml_all::parse(text, "<duty>")?;
        Duty::check(file)
    }

    /// Checks what serde cannot.
    pub fn check(file: DutyFile) -> Result<Duty, Vec<String>> {
        let mut problems = Vec::new();
        let mut ack_within_ms = [0; 4];
        for severity in Severity::ALL {
            let text = file.escalation.ack_within.get(&severity).map(String::as_str);
            ack_within_ms[severity as usize] = match text.map(parse_duration) {
                Some(Ok(ms)) if ms > 0 => ms,
                Some(Ok(_)) => {
                    problems.push(format!("escalation.ack_within.{severity} must be longer than 0"));
                    0
                }
                Some(Err(e)) => {
                    problems.push(format!("escalation.ack_within.{severity}: {e}"));
                    0
                }
                None => i64::MAX,
            };
        }
        let channel_known = |problems: &mut Vec<String>, whose: &str, name: &str| {
            if !file.channel.contains_key(name) {
                problems.push(format!("{whose}: no channel named {name:?}"));
            }
        };
        for (name, channel) in &file.channel {
            problems.extend(channel.check().into_iter().map(|p| format!("channel {name:?}: {p}")));
        }
        for name in &file.broadcast {
            channel_known(&mut problems, "broadcast", name);
        }
        for (i, m) in file.member.iter().enumerate() {
            if file.member[..i].iter().any(|o| o.id == m.id) {
                problems.push(format!("member {:?} is defined twice", m.id));
            }
            for c in &m.channels {
                channel_known(&mut problems, &format!("member {:?}", m.id), c);
            }
        }
        let member_known = |problems: &mut Vec<String>, whose: &str, id: &str| {
            if !file.member.iter().any(|m| m.id == id) {
                problems.push(format!("{whose}: no member {id:?}"));
            }
        };
        let mut shifts = Vec::new();
        for (i, team) in file.team.iter().enumerate() {
            let whose = format!("team {:?}", team.id);
            if file.team[..i].iter().any(|o| o.id == team.id) {
                problems.push(format!("{whose} is defined twice"));
            }
            for r in &team.regions {
                if r.len() != 6 || !r.bytes().all(|b| b.is_ascii_digit()) {
                    problems.push(format!("{whose}: region {r:?} is not a 6-digit division code"));
                }
            }
            for d in &team.domains {
                // `maintenance`: quality rules' alerts about instruments rather than the world.
                if d != "maintenance" && !tidewatch_ingest::Domain::ALL.iter().any(|k| k.name() == d) {
                    problems.push(format!(
                        "{whose}: unknown domain {d:?} (water, environment, traffic, emergency, maintenance)"
                    ));
                }
            }
            for c in &team.channels {
                channel_known(&mut problems, &whose, c);
            }
            for id in &team.escalate_to {
                member_known(&mut problems, &format!("{whose} escalate_to"), id);
            }
            let mut checked = Vec::new();
            for shift in &team.shift {
                for id in &shift.members {
                    member_known(&mut problems, &format!("{whose} shift"), id);
                }
                let mut days = [shift.days.is_empty(); 7];
                for d in &shift.days {
                    match d.parse::<Weekday>() {
                        Ok(w) => days[w.num_days_from_monday() as usize] = true,
                        Err(_) => problems.push(format!("{whose}: {d:?} is not a weekday (mon … sun)")),
                    }
                }
                let mut minute = |t: &str| match NaiveTime::parse_from_str(t, "%H:%M") {
                    Ok(t) => t.hour() * 60 + t.minute(),
                    Err(_) => {
                        problems.push(format!("{whose}: shift time {t:?} is not HH:MM"));
                        0
                    }
                };
                checked.push(CheckedShift { days, start: minute(&shift.start), end: minute(&shift.end) });
            }
            shifts.push(checked);
        }
        if file.team.iter().filter(|t| t.default).count() > 1 {
            problems.push("only one team can be the default".into());
        }
        let mut maintenance = Vec::new();
        for (i, w) in file.maintenance.iter().enumerate() {
            let whose = format!("maintenance[{i}]");
            let mut time = |t: &str| match DateTime::parse_from_rfc3339(t) {
                Ok(t) => t.timestamp_millis(),
                Err(e) => {
                    problems.push(format!("{whose}: {t:?} is not an RFC 3339 time ({e})"));
                    0
                }
            };
            let (starts_ms, ends_ms) = (time(&w.starts_at), time(&w.ends_at));
            if w.station.is_none() && w.rule.is_none() && w.region.is_none() {
                problems.push(format!("{whose}: name a station, rule or region"));
            }
            if ends_ms <= starts_ms {
                problems.push(format!("{whose}: ends_at must be after starts_at"));
            }
            maintenance.push(Silence {
                id: -(i as i64) - 1,
                station: w.station.clone(),
                rule: w.rule.clone(),
                region: w.region.clone(),
                starts_at: w.starts_at.clone(),
                ends_at: w.ends_at.clone(),
                created_by: "config".into(),
                comment: w.comment.clone(),
                source: "config".into(),
                starts_ms,
                ends_ms,
            });
        }
        if problems.is_empty() {
            Ok(Duty { file, ack_within_ms, shifts, maintenance })
        } else {
            Err(problems)
        }
    }

    /// How long an alert of this colour may stay unacknowledged.
    pub fn ack_within_ms(&self, severity: Severity) -> i64 {
        self.ack_within_ms[severity as usize]
    }

    pub fn team(&self, id: &str) -> Option<&Team> {
        self.file.team.iter().find(|t| t.id == id)
    }

    /// The team for a station's region and domain: the most specific region match among
    /// teams of that domain, else the default team.
    pub fn team_for(&self, region: &str, domain: &str) -> Option<&Team> {
        let mut best: Option<(&Team, usize)> = None;
        for team in &self.file.team {
            if !team.domains.is_empty() && !team.domains.iter().any(|d| d == domain) {
                continue;
            }
            for code in &team.regions {
                let prefix = region_prefix(code);
                if region.starts_with(prefix) && best.is_none_or(|(_, len)| prefix.len() > len) {
                    best = Some((team, prefix.len()));
                }
            }
        }
        best.map(|(t, _)| t).or_else(|| self.file.team.iter().find(|t| t.default))
    }

    /// Members of `team` on duty at `now` (ms).
    pub fn on_duty<'a>(&'a self, team: &'a Team, now: i64) -> Vec<&'a str> {
        let Some(index) = self.file.team.iter().position(|t| t.id == team.id) else {
            return Vec::new();
        };
        let local = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default().with_timezone(&self.file.time_zone);
        let minute = local.hour() * 60 + local.minute();
        let mut members: Vec<&str> = Vec::new();
        for (shift, checked) in team.shift.iter().zip(&self.shifts[index]) {
            if checked.covers(local.weekday(), minute) {
                for m in &shift.members {
                    if !members.contains(&m.as_str()) {
                        members.push(m);
                    }
                }
            }
        }
        members
    }

    /// The highest escalation level of a team.
    pub fn max_level(&self, team: Option<&Team>) -> u32 {
        team.map(|t| t.escalate_to.len() as u32).unwrap_or(0)
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.file.member.iter().find(|m| m.id == id)
    }

    /// Where a notification about `alert` goes at `now`: the team's group channels and
    /// the broadcast channels with everyone concerned, and each concerned member's personal
    /// channels. Those concerned: the members on duty and the escalation chain up to the
    /// alert's level. Channels that do not take this kind of notification are left out.
    pub fn deliveries(&self, team: Option<&Team>, alert: &Alert, happening: Happening, now: i64) -> Vec<Delivery> {
        let mut members: Vec<&str> = team.map(|t| self.on_duty(t, now)).unwrap_or_default();
        if let Some(team) = team {
            for id in team.escalate_to.iter().take(alert.escalation_level as usize) {
                if !members.contains(&id.as_str()) {
                    members.push(id);
                }
            }
        }
        let mut out: Vec<Delivery> = Vec::new();
        let mut add = |channel: &str, who: &[&str]| {
            let Some(config) = self.file.channel.get(channel) else {
                return;
            };
            if !config.takes(happening) {
                return;
            }
            let delivery = match out.iter_mut().find(|d| d.channel == channel) {
                Some(d) => d,
                None => {
                    out.push(Delivery { channel: channel.to_owned(), members: Vec::new() });
                    out.last_mut().expect("just pushed")
                }
            };
            for m in who {
                if !delivery.members.iter().any(|x| x == m) {
                    delivery.members.push((*m).to_owned());
                }
            }
        };
        for channel in team.map(|t| t.channels.as_slice()).unwrap_or_default().iter().chain(&self.file.broadcast) {
            add(channel, &members);
        }
        for id in &members {
            if let Some(member) = self.member(id) {
                for channel in &member.channels {
                    add(channel, &[id]);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const ROSTER: &str = r#"
        broadcast = ["alerts-topic"]

        [escalation]
        ack_within = { red = "10m", orange = "20m", yellow = "1h", blue = "4h" }

        [channel.flood-robot]
        kind = "dingtalk"
        url = "http://127.0.0.1:1/robot/send?access_token=t"
        secret = "SEC"
        [channel.sms]
        kind = "sms"
        url = "http://127.0.0.1:1/sms"
        notify_on = ["fire", "escalate", "reminder"]
        [channel.alerts-topic]
        kind = "mqtt"
        broker = "127.0.0.1:1883"
        topic = "tidewatch/alerts/{region}"

        [[member]]
        id = "zhang"
        name = "张伟"
        phone = "13800000001"
        channels = ["sms"]
        [[member]]
        id = "li"
        name = "李娜"
        phone = "13800000002"
        channels = ["sms"]
        [[member]]
        id = "chief"
        name = "王科长"
        phone = "13800000009"
        channels = ["sms"]

        [[team]]
        id = "jinhua-water"
        name = "金华市防汛值班"
        regions = ["330700"]
        domains = ["water"]
        channels = ["flood-robot"]
        escalate_to = ["chief"]
          [[team.shift]]
          days = ["mon", "tue", "wed", "thu", "fri"]
          start = "08:30"
          end = "17:30"
          members = ["zhang"]
          [[team.shift]]
          start = "17:30"
          end = "08:30"
          members = ["li"]

        [[team]]
        id = "lanxi-water"
        name = "兰溪市防汛值班"
        regions = ["330781"]
        domains = ["water"]
        channels = ["flood-robot"]

        [[team]]
        id = "province"
        name = "省值班室"
        default = true
    "#;

    fn alert(level: u32) -> Alert {
        let mut b = crate::lifecycle::tests::board();
        let mut a = b
            .apply(&crate::lifecycle::tests::event(tidewatch_rules::Transition::Fire, Severity::Red, 31.0), 0)
            .unwrap()
            .alert;
        a.escalation_level = level;
        a
    }

    /// 2026-11-25 (a Wednesday) at `hh:mm` Beijing time, in ms.
    fn wednesday(hh: u32, mm: u32) -> i64 {
        use chrono::TimeZone;
        shanghai().with_ymd_and_hms(2026, 11, 25, hh, mm, 0).unwrap().timestamp_millis()
    }

    #[test]
    fn the_most_specific_team_of_the_domain_wins_and_the_default_catches_the_rest() {
        let duty = Duty::from_toml_str(ROSTER).unwrap();
        assert_eq!(duty.team_for("330781", "water").unwrap().id, "lanxi-water");
        assert_eq!(duty.team_for("330702", "water").unwrap().id, "jinhua-water");
        assert_eq!(duty.team_for("330702", "environment").unwrap().id, "province");
        assert_eq!(duty.team_for("330102", "water").unwrap().id, "province");
    }

    #[test]
    fn shifts_follow_weekday_and_time_of_day_in_beijing_time_including_overnight() {
        let duty = Duty::from_toml_str(ROSTER).unwrap();
        let team = duty.team("jinhua-water").unwrap();
        assert_eq!(duty.on_duty(team, wednesday(9, 0)), ["zhang"]);
        assert_eq!(duty.on_duty(team, wednesday(17, 30)), ["li"]);
        assert_eq!(duty.on_duty(team, wednesday(3, 0)), ["li"], "Tuesday's night shift");
        let saturday_noon = wednesday(12, 0) + 3 * 86_400_000;
        assert!(duty.on_duty(team, saturday_noon).is_empty(), "nobody on Saturday daytime");
    }

    #[test]
    fn deliveries_reach_group_channels_broadcasts_and_personal_channels_up_the_chain() {
        let duty = Duty::from_toml_str(ROSTER).unwrap();
        let team = duty.team("jinhua-water");
        let got = duty.deliveries(team, &alert(0), Happening::Fire, wednesday(9, 0));
        let expect =
            |c: &str, m: &[&str]| Delivery { channel: c.into(), members: m.iter().map(|s| s.to_string()).collect() };
        assert_eq!(
            got,
            [expect("flood-robot", &["zhang"]), expect("alerts-topic", &["zhang"]), expect("sms", &["zhang"])]
        );
        let escalated = duty.deliveries(team, &alert(1), Happening::Reminder, wednesday(9, 0));
        assert_eq!(escalated[2], expect("sms", &["zhang", "chief"]));
        let resolved = duty.deliveries(team, &alert(1), Happening::Resolve, wednesday(9, 0));
        assert!(resolved.iter().all(|d| d.channel != "sms"), "SMS only takes fire, escalate and reminders");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems = Duty::from_toml_str(
            r#"
            [escalation]
            ack_within = { red = "soon" }
            [channel.x]
            kind = "dingtalk"
            [[member]]
            id = "a"
            name = "A"
            channels = ["nope"]
            [[team]]
            id = "t"
            name = "T"
            regions = ["33"]
            domains = ["weather"]
            escalate_to = ["ghost"]
              [[team.shift]]
              days = ["someday"]
              start = "8"
              end = "17:00"
              members = ["a"]
            [[maintenance]]
            starts_at = "2026-12-01T08:00:00+08:00"
            ends_at = "2026-12-01T07:00:00+08:00"
            "#,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 10, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("channel \"x\": kind dingtalk needs url")), "{problems:#?}");
    }

    #[test]
    fn transport_settings_belong_to_their_kinds() {
        let problems = Duty::from_toml_str(
            r#"
            [channel.topic]
            kind = "mqtt"
            broker = "127.0.0.1:1883"
            topic = "alerts"
            cert = "client.pem"
            username = "tidewatch"
            options = { "security.protocol" = "SSL" }
            [channel.hook]
            kind = "webhook"
            url = "https://example.cn/hook"
            ca = "ca.pem"
            "#,
        )
        .unwrap_err();
        for expected in [
            "channel \"topic\": cert client.pem:",
            "channel \"topic\": cert and key go together",
            "channel \"topic\": cert needs ca (TLS)",
            "channel \"topic\": username and password go together",
            "channel \"topic\": options is for kind kafka",
            "channel \"hook\": ca is for kind mqtt",
        ] {
            assert!(problems.iter().any(|p| p.starts_with(expected)), "{expected}: {problems:#?}");
        }
        assert_eq!(problems.len(), 6, "{problems:#?}");
    }
}

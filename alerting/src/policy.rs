//! Which notifications are held back: silences (and maintenance windows) and inhibitions.
//!
//! Both only hold back *notifications*: the alert itself still lives, is stored and shows
//! in the console, and the history records what was held back and why.

use serde::{Deserialize, Serialize};
use tidewatch_rules::Severity;
use utoipa::ToSchema;

use crate::lifecycle::Alert;

/// A time range in which matching alerts are not notified. Every given matcher must match;
/// at least one is required.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Silence {
    pub id: i64,
    /// Station id.
    pub station: Option<String>,
    /// Rule id; `*` matches any run of characters (`water.*`).
    pub rule: Option<String>,
    /// Region code: `330781` a county, `330700` its city, `330000` the province.
    pub region: Option<String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339.
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
    /// `api` (created over HTTP) or `config` (a maintenance window in the duty file).
    pub source: String,
    #[serde(skip)]
    pub starts_ms: i64,
    #[serde(skip)]
    pub ends_ms: i64,
}

impl Silence {
    pub fn is_active(&self, now: i64) -> bool {
        self.starts_ms <= now && now < self.ends_ms
    }

    /// Whether it silences `alert` at `now`.
    pub fn silences(&self, alert: &Alert, now: i64) -> bool {
        self.is_active(now)
            && self.station.as_deref().is_none_or(|s| s == alert.subject.station)
            && self.rule.as_deref().is_none_or(|r| glob_match(r, &alert.rule))
            && self.region.as_deref().is_none_or(|r| region_contains(r, &alert.subject.region))
    }
}

/// Which alerts a side of an inhibition means.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertMatcher {
    /// Rule id; `*` matches any run of characters.
    pub rule: Option<String>,
    pub quantity: Option<String>,
    /// At least this colour.
    pub min_severity: Option<Severity>,
    /// At most this colour.
    pub max_severity: Option<Severity>,
}

impl AlertMatcher {
    pub fn matches(&self, alert: &Alert) -> bool {
        self.rule.as_deref().is_none_or(|r| glob_match(r, &alert.rule))
            && self.quantity.as_deref().is_none_or(|q| q == alert.subject.quantity)
            && self.min_severity.is_none_or(|s| alert.severity >= s)
            && self.max_severity.is_none_or(|s| alert.severity <= s)
    }
}

/// What two alerts must share for one to inhibit the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Equal {
    /// The same station (a station fault inhibits its sensors' alerts).
    Station,
    /// The same station and quantity (a red alert inhibits a yellow one on the same gauge).
    Sensor,
    /// The same region code.
    Region,
}

/// While an open alert matching `source` exists, alerts matching `target` that share
/// `equal` with it are not notified.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inhibition {
    pub source: AlertMatcher,
    pub target: AlertMatcher,
    pub equal: Equal,
}

impl Inhibition {
    /// The open alert that inhibits `target`, if any.
    pub fn inhibitor<'a>(&self, target: &Alert, open: impl IntoIterator<Item = &'a Alert>) -> Option<i64> {
        if !self.target.matches(target) {
            return None;
        }
        open.into_iter()
            .find(|source| {
                source.id != target.id
                    && source.is_open()
                    && self.source.matches(source)
                    && match self.equal {
                        Equal::Station => source.subject.station == target.subject.station,
                        Equal::Sensor => {
                            source.subject.station == target.subject.station
                                && source.subject.quantity == target.subject.quantity
                        }
                        Equal::Region => source.subject.region == target.subject.region,
                    }
            })
            .map(|a| a.id)
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The significant prefix of a GB/T 2260 code: `330000` → `33`, `330700` → `3307`.
pub fn region_prefix(code: &str) -> &str {
    let mut code = code.trim();
    while code.len() > 2 && code.ends_with("00") {
        code = &code[..code.len() - 2];
    }
    code
}

/// Whether the division `outer` contains (or is) `region`.
pub fn region_contains(outer: &str, region: &str) -> bool {
    region.starts_with(region_prefix(outer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn globs_match_prefixes_suffixes_and_middles() {
        assert!(glob_match("water.*", "water.level.warning"));
        assert!(glob_match("*.missing", "rain.missing"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("*.missing", "missing"));
        assert!(!glob_match("ab*ba", "aba"), "the two ends must not overlap");
    }

    #[test]
    fn regions_fall_back_upward() {
        assert!(region_contains("330781", "330781"));
        assert!(region_contains("330700", "330781"));
        assert!(region_contains("330000", "330781"));
        assert!(!region_contains("330100", "330781"));
        assert_eq!(region_prefix("330000"), "33");
    }

    proptest! {
        #[test]
        fn a_pattern_without_stars_matches_only_itself(p in "[a-z.]{0,8}", t in "[a-z.]{0,8}") {
            prop_assert_eq!(glob_match(&p, &t), p == t);
        }

        #[test]
        fn a_star_between_two_halves_matches_their_concatenation_with_anything_between(
            a in "[a-z.]{0,5}", mid in "[a-z.*]{0,5}", b in "[a-z.]{0,5}"
        ) {
            let text = format!("{a}{}{b}", mid.replace('*', ""));
            let pattern = format!("{a}*{b}");
            prop_assert!(glob_match(&pattern, &text), "{} vs {}", pattern, text);
        }
    }
}

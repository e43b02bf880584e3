//! Parsing the time formats devices send.

use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// How a payload writes its event time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// Numbers: seconds if below 10^11, else milliseconds; strings: RFC 3339.
    #[default]
    Auto,
    EpochS,
    EpochMs,
    Rfc3339,
    /// `YYYY-MM-DD hh:mm:ss` (or with `T`) in the mapping's time zone.
    Local,
}

/// Why a time could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TimeError {
    #[error("time {0} is not a finite number of the expected form")]
    BadNumber(f64),
    #[error("time {0:?} is not in the expected format ({1})")]
    BadText(String, &'static str),
    #[error("time {0:?} does not exist in time zone {1} (skipped by a clock change)")]
    NonExistent(String, Tz),
}

/// Milliseconds since the epoch from a numeric time field.
pub fn from_number(n: f64, format: TimeFormat) -> Result<i64, TimeError> {
    if !n.is_finite() {
        return Err(TimeError::BadNumber(n));
    }
    let ms = match format {
        TimeFormat::EpochS => n * 1000.0,
        TimeFormat::EpochMs => n,
        TimeFormat::Auto if n.abs() < 1e11 => n * 1000.0,
        TimeFormat::Auto => n,
        TimeFormat::Rfc3339 | TimeFormat::Local => return Err(TimeError::BadNumber(n)),
    };
    if ms.abs() > 1e16 {
        return Err(TimeError::BadNumber(n));
    }
    Ok(ms.round() as i64)
}

/// Milliseconds since the epoch from a textual time field.
pub fn from_text(s: &str, format: TimeFormat, zone: Tz) -> Result<i64, TimeError> {
    match format {
        TimeFormat::Auto | TimeFormat::Rfc3339 => {
            DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis()).or_else(|e| {
                if format == TimeFormat::Auto {
                    if let Ok(n) = s.trim().parse::<f64>() {
                        return from_number(n, TimeFormat::Auto);
                    }
                }
                let _ = e;
                Err(TimeError::BadText(s.to_owned(), "RFC 3339"))
            })
        }
        TimeFormat::EpochS | TimeFormat::EpochMs => s
            .trim()
            .parse::<f64>()
            .map_err(|_| TimeError::BadText(s.to_owned(), "a number"))
            .and_then(|n| from_number(n, format)),
        TimeFormat::Local => {
            let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
                .map_err(|_| TimeError::BadText(s.to_owned(), "YYYY-MM-DD hh:mm:ss"))?;
            zone.from_local_datetime(&naive)
                .earliest()
                .map(|t| t.timestamp_millis())
                .ok_or_else(|| TimeError::NonExistent(s.to_owned(), zone))
        }
    }
}

/// RFC 3339 text for an event time, in UTC with milliseconds.
pub fn to_rfc3339(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => format!("@{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_numbers_distinguish_seconds_from_milliseconds() {
        assert_eq!(from_number(1_764_000_000.0, TimeFormat::Auto), Ok(1_764_000_000_000));
        assert_eq!(from_number(1_764_000_000_123.0, TimeFormat::Auto), Ok(1_764_000_000_123));
    }

    #[test]
    fn local_time_uses_the_configured_zone() {
        let ms = from_text("2025-11-25 08:00:00", TimeFormat::Local, chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(to_rfc3339(ms), "2025-11-25T00:00:00.000Z");
    }

    #[test]
    fn rfc3339_with_offset() {
        let ms = from_text("2025-11-25T08:00:00+08:00", TimeFormat::Auto, chrono_tz::UTC).unwrap();
        assert_eq!(to_rfc3339(ms), "2025-11-25T00:00:00.000Z");
    }

    #[test]
    fn garbage_time_is_an_error_not_a_panic() {
        assert!(from_text("yesterday", TimeFormat::Auto, chrono_tz::UTC).is_err());
        assert!(from_number(f64::NAN, TimeFormat::Auto).is_err());
        assert!(from_number(1e300, TimeFormat::Auto).is_err());
    }
}

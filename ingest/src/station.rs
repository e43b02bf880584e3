//! The station registry: which stations exist, where they are and what they are for.
//!
//! Loaded from a TOML file (`config/stations.toml`). Each station gets a dense
//! [`StationKey`]; readings carry the key, not the id string, so they stay `Copy`.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Index of a station in its [`Registry`]: dense, stable for a given registry file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StationKey(pub u32);

/// Which programme a station serves; used to select rules and route alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    Water,
    Environment,
    Traffic,
    Emergency,
}

impl Domain {
    pub const ALL: &'static [Domain] = &[Domain::Water, Domain::Environment, Domain::Traffic, Domain::Emergency];

    pub fn name(self) -> &'static str {
        match self {
            Domain::Water => "water",
            Domain::Environment => "environment",
            Domain::Traffic => "traffic",
            Domain::Emergency => "emergency",
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One monitoring station as written in the registry file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSpec {
    /// The id devices send (SL 651 station address, HJ 212 MN, or any string).
    pub id: String,
    /// Name duty staff know the station by.
    pub name: String,
    pub domain: Domain,
    /// `[longitude, latitude]` in WGS 84 degrees.
    pub location: [f64; 2],
    /// Administrative division code (GB/T 2260), e.g. `330781` for Lanxi: province
    /// `33`, city `3307`, county `330781`. Alerts are routed by its prefixes.
    pub region: String,
    /// River basin, e.g. `qiantang`.
    #[serde(default)]
    pub basin: Option<String>,
    /// Numeric facts rules may refer to as `station.<name>`, e.g. `warning_level` and
    /// `guarantee_level` (metres, same datum as the gauge).
    #[serde(default)]
    pub attributes: BTreeMap<String, f64>,
    /// What the station measures (e.g. `["water_level", "rainfall"]`), if declared: lets
    /// `tidewatch rules check` say how many of the stations a rule selects send its quantity.
    #[serde(default)]
    pub quantities: Vec<crate::Quantity>,
    /// Values this station can really report, per quantity: `{ water_level = [20.0, 40.0] }`.
    /// Others are dead letters with reason `implausible`. Without one, a water level may be
    /// at most [`PLAUSIBLE_WARNING_MULTIPLE`] × the station's `warning_level`.
    #[serde(default)]
    pub plausible: BTreeMap<String, [f64; 2]>,
    /// The device's password: HJ 212 `PW`, or SL 651's 2-byte password as 4 hex digits
    /// (`"03E8"`). A packet for this station with another is refused (reason `auth`).
    #[serde(default)]
    pub password: Option<String>,
    /// Addresses the station's device may connect from (TCP listeners); empty: any.
    #[serde(default)]
    pub allow_from: Vec<std::net::IpAddr>,
}

/// Without a `plausible` range, a water level above this multiple of the station's
/// `warning_level` is implausible (a decimal point lost, a unit mixed up).
pub const PLAUSIBLE_WARNING_MULTIPLE: f64 = 2.0;

/// A station with its key and location as a `geo::Point`.
#[derive(Clone, Debug, PartialEq)]
pub struct Station {
    pub key: StationKey,
    pub id: String,
    pub name: String,
    pub domain: Domain,
    pub location: geo::Point<f64>,
    pub region: String,
    pub basin: Option<String>,
    pub attributes: BTreeMap<String, f64>,
    /// What it measures, if declared (empty: not declared).
    pub quantities: Vec<crate::Quantity>,
    /// (quantity, min, max) of plausible values, declared or derived.
    pub plausible: Vec<(crate::Quantity, f64, f64)>,
    /// The device's password, if the registry gives one (never logged).
    pub password: Option<String>,
    /// Addresses its device may connect from; empty: any.
    pub allow_from: Vec<std::net::IpAddr>,
}

impl Station {
    pub fn attribute(&self, name: &str) -> Option<f64> {
        self.attributes.get(name).copied()
    }

    /// The range of values this station can plausibly report for `quantity`, if known.
    pub fn plausible(&self, quantity: crate::Quantity) -> Option<(f64, f64)> {
        self.plausible.iter().find(|(q, _, _)| *q == quantity).map(|&(_, min, max)| (min, max))
    }
}

/// Why a registry could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read station registry {path}")]
    Io { path: String, source: std::io::Error },
    #[error("station registry {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    station: Vec<StationSpec>,
}

/// All known stations, looked up by id or by key.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    stations: Vec<Station>,
    by_id: FxHashMap<Box<str>, StationKey>,
}

impl Registry {
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RegistryError::Io { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn from_toml_str(text: &str) -> Result<Registry, RegistryError> {
        Self::parse(text, "<inline>")
    }

    fn parse(text: &str, path: &str) -> Result<Registry, RegistryError> {
        let invalid = |message: String| RegistryError::Invalid { path: path.to_owned(), message };
        let file: RegistryFile = crate::toml_all::parse(text, path).map_err(|p| invalid(p.join("; ")))?;
        let mut problems = Vec::new();
        for spec in &file.station {
            let [lon, lat] = spec.location;
            if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
                problems
                    .push(format!("station {:?}: location {:?} is not [longitude, latitude]", spec.id, spec.location));
            }
            if spec.region.is_empty() || !spec.region.bytes().all(|b| b.is_ascii_digit()) {
                problems
                    .push(format!("station {:?}: region {:?} is not a division code of digits", spec.id, spec.region));
            }
            for (name, value) in &spec.attributes {
                if !value.is_finite() {
                    problems.push(format!("station {:?}: attribute {name} is {value}", spec.id));
                }
            }
            for (name, [min, max]) in &spec.plausible {
                if name.parse::<crate::Quantity>().is_err() {
                    problems.push(format!("station {:?}: plausible: {name:?} is not a quantity", spec.id));
                }
                if !(min.is_finite() && max.is_finite() && min < max) {
                    problems.push(format!("station {:?}: plausible {name} = [{min}, {max}] is not a range", spec.id));
                }
            }
        }
        let registry = Registry::from_specs(file.station).map_err(|e| invalid(e.to_string()))?;
        if problems.is_empty() {
            Ok(registry)
        } else {
            Err(invalid(problems.join("; ")))
        }
    }

    /// Builds a registry from specs; ids must be unique.
    pub fn from_specs(specs: Vec<StationSpec>) -> Result<Registry, DuplicateStation> {
        let mut registry = Registry::default();
        for spec in specs {
            let key = StationKey(registry.stations.len() as u32);
            if registry.by_id.insert(spec.id.clone().into_boxed_str(), key).is_some() {
                return Err(DuplicateStation(spec.id));
            }
            let mut plausible: Vec<(crate::Quantity, f64, f64)> =
                spec.plausible.iter().filter_map(|(name, &[min, max])| Some((name.parse().ok()?, min, max))).collect();
            let level = crate::Quantity::WaterLevel;
            if let Some(&warning) = spec.attributes.get("warning_level").filter(|w| **w > 0.0) {
                if !plausible.iter().any(|(q, _, _)| *q == level) {
                    plausible.push((level, f64::NEG_INFINITY, warning * PLAUSIBLE_WARNING_MULTIPLE));
                }
            }
            registry.stations.push(Station {
                key,
                id: spec.id,
                name: spec.name,
                domain: spec.domain,
                location: geo::Point::new(spec.location[0], spec.location[1]),
                region: spec.region,
                basin: spec.basin,
                attributes: spec.attributes,
                quantities: spec.quantities,
                plausible,
                password: spec.password,
                allow_from: spec.allow_from,
            });
        }
        Ok(registry)
    }

    #[inline]
    pub fn key_of(&self, id: &str) -> Option<StationKey> {
        self.by_id.get(id).copied()
    }

    #[inline]
    pub fn get(&self, key: StationKey) -> Option<&Station> {
        self.stations.get(key.0 as usize)
    }

    /// The station of a key that came from this registry.
    ///
    /// # Panics
    /// If the key is from another registry.
    pub fn station(&self, key: StationKey) -> &Station {
        &self.stations[key.0 as usize]
    }

    pub fn stations(&self) -> &[Station] {
        &self.stations
    }

    pub fn len(&self) -> usize {
        self.stations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stations.is_empty()
    }

    /// Every attribute name some station has, for validating `station.<name>` references.
    pub fn attribute_names(&self) -> std::collections::BTreeSet<&str> {
        self.stations.iter().flat_map(|s| s.attributes.keys().map(String::as_str)).collect()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("station id {0:?} appears more than once")]
pub struct DuplicateStation(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
        [[station]]
        id = "63201500"
        name = "兰溪"
        domain = "water"
        location = [119.46, 29.21]
        region = "330781"
        basin = "qiantang"
        attributes = { warning_level = 28.0, guarantee_level = 30.5 }

        [[station]]
        id = "AQ-01"
        name = "West Lake air"
        domain = "environment"
        location = [120.15, 30.25]
        region = "330106"
    "#;

    #[test]
    fn stations_get_dense_keys_and_attributes() {
        let r = Registry::from_toml_str(TWO).unwrap();
        let lx = r.key_of("63201500").unwrap();
        assert_eq!(lx, StationKey(0));
        assert_eq!(r.station(lx).attribute("warning_level"), Some(28.0));
        assert_eq!(r.station(lx).location.x(), 119.46);
        assert_eq!(r.key_of("AQ-01"), Some(StationKey(1)));
        assert_eq!(r.key_of("nope"), None);
    }

    /// A water level of 500 m at a gauge whose warning level is 28 m is a lost decimal point,
    /// not a flood: `implausible`. Declared ranges take precedence and cover any quantity.
    #[test]
    fn impossible_values_for_the_station_are_implausible_dead_letters() {
        use crate::{json::JsonMapping, Decoder, Limits, Normaliser};
        let text = TWO.replace("region = \"330106\"", "region = \"330106\"\nplausible = { pm25 = [0.0, 600.0] }");
        let registry = std::sync::Arc::new(Registry::from_toml_str(&text).unwrap());
        let lx = registry.station(StationKey(0));
        assert_eq!(lx.plausible(crate::Quantity::WaterLevel), Some((f64::NEG_INFINITY, 56.0)));
        let normaliser = Normaliser::new(registry, Limits::default());
        let decoder = Decoder::Json(JsonMapping::default().into_decoder().unwrap());
        let time = 1_764_000_000_000i64;
        let decode = |payload: String| {
            let mut out = Vec::new();
            let rejected = normaliser.decode_into(&decoder, payload.as_bytes(), time, &mut out);
            (out, rejected)
        };
        let json = |station: &str, quantity: &str, value: f64| {
            format!(r#"{{"station":"{station}","quantity":"{quantity}","value":{value},"time":{time}}}"#)
        };
        assert_eq!(decode(json("63201500", "water_level", 31.2)).0.len(), 1);
        let (ok, rejected) = decode(json("63201500", "water_level", 500.0));
        assert!(ok.is_empty());
        assert_eq!(rejected[0].kind(), "implausible");
        assert_eq!(
            rejected[0].to_string(),
            "63201500/water_level: value 500 is not plausible at this station (at most 56)"
        );
        let (_, rejected) = decode(json("AQ-01", "pm25", 900.0));
        assert_eq!(
            rejected[0].to_string(),
            "AQ-01/pm25: value 900 is not plausible at this station (expected 0 to 600)"
        );
        assert_eq!(decode(json("AQ-01", "pm25", 90.0)).0.len(), 1);
        let bad = TWO.replace("region = \"330106\"", "region = \"330106\"\nplausible = { pm99 = [1.0, 0.0] }");
        let err = Registry::from_toml_str(&bad).unwrap_err().to_string();
        assert!(err.contains("\"pm99\" is not a quantity") && err.contains("is not a range"), "{err}");
    }

    #[test]
    fn a_typo_in_the_registry_is_an_error_with_its_position() {
        let err = Registry::from_toml_str("[[station]]\nid='x'\nnmae='y'\n").unwrap_err().to_string();
        assert!(err.contains("nmae"), "{err}");
        assert!(err.contains("<inline>:3:1: unknown field `nmae`"), "{err}");
    }

    #[test]
    fn duplicate_ids_and_swapped_coordinates_are_refused() {
        let dup = format!("{TWO}\n[[station]]\nid = \"AQ-01\"\nname = \"x\"\ndomain = \"traffic\"\nlocation = [1.0, 2.0]\nregion = \"33\"\n");
        assert!(Registry::from_toml_str(&dup).unwrap_err().to_string().contains("more than once"));
        let swapped = TWO.replace("[120.15, 30.25]", "[30.25, 200.0]");
        assert!(Registry::from_toml_str(&swapped).unwrap_err().to_string().contains("longitude"));
    }
}

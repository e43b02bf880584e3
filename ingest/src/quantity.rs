//! What is measured, its canonical unit, its physical range, and unit conversion.
//!
//! Every reading is stored in its quantity's canonical unit so rules compare like with like:
//! a threshold of `28.5` on `water_level` always means metres, whatever the gauge sent.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! quantities {
    ($( $variant:ident = $name:literal, $unit:literal, $min:expr, $max:expr, $doc:literal; )*) => {
        /// A measured quantity. The name (`water_level`) is what configs and rule files use.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Quantity {
            $( #[doc = $doc] $variant, )*
            /// A quantity with no entry in Tidewatch's tables, kept under its protocol's name
            /// (`hj212:a21003`, `sl651:45`, `senml:current`) rather than dropped. It has no
            /// canonical unit and no physical range: values are kept as the device sent them.
            Raw(RawQuantity),
        }

        /// Dense indices of the known quantities.
        #[allow(dead_code)]
        enum KnownIndex { $($variant,)* Count }

        impl Quantity {
            /// Every known quantity, in declaration order (raw quantities are not listed).
            pub const ALL: &'static [Quantity] = &[$(Quantity::$variant),*];

            /// The name used in configuration, rule files and output.
            pub fn name(self) -> &'static str {
                match self { $(Quantity::$variant => $name,)* Quantity::Raw(r) => r.name() }
            }

            /// The unit every reading of this quantity is stored in (empty for raw ones).
            pub fn canonical_unit(self) -> &'static str {
                match self { $(Quantity::$variant => $unit,)* Quantity::Raw(_) => "" }
            }

            /// Values outside this closed range cannot be physical: they are dead letters.
            pub fn physical_range(self) -> (f64, f64) {
                match self { $(Quantity::$variant => ($min as f64, $max as f64),)* Quantity::Raw(_) => (f64::MIN, f64::MAX) }
            }

            /// A dense index: known quantities first (`0..ALL.len()`), then raw ones.
            #[inline]
            pub fn index(self) -> usize {
                match self { $(Quantity::$variant => KnownIndex::$variant as usize,)* Quantity::Raw(r) => KnownIndex::Count as usize + r.0 as usize }
            }
        }

        impl FromStr for Quantity {
            type Err = UnknownQuantity;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Quantity::$variant),)*
                    _ if RAW_PREFIXES.iter().any(|p| s.len() > p.len() && s.starts_with(p)) => Quantity::raw(s),
                    _ => Err(UnknownQuantity(s.to_owned())),
                }
            }
        }
    };
}

/// Protocols whose codes may be raw quantities: `hj212:<code>`, `sl651:<element hex>`,
/// `senml:<measurement or unit>`.
pub const RAW_PREFIXES: &[&str] = &["hj212:", "sl651:", "senml:"];

/// A raw quantity's interned name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawQuantity(u16);

/// Raw quantity names, interned for the life of the process (devices repeat a handful of
/// codes; the table is bounded so a device inventing names cannot grow it without limit).
struct Interner {
    names: Vec<&'static str>,
    ids: std::collections::HashMap<&'static str, u16>,
}

const MAX_RAW: usize = 4096;

fn interner() -> &'static std::sync::RwLock<Interner> {
    static RAW: std::sync::OnceLock<std::sync::RwLock<Interner>> = std::sync::OnceLock::new();
    RAW.get_or_init(|| std::sync::RwLock::new(Interner { names: Vec::new(), ids: Default::default() }))
}

impl RawQuantity {
    pub fn name(self) -> &'static str {
        let table = interner().read().unwrap_or_else(|e| e.into_inner());
        table.names.get(usize::from(self.0)).copied().unwrap_or("raw:?")
    }
}

impl Quantity {
    /// The raw quantity of this name (interned), or an error once the table is full.
    pub fn raw(name: &str) -> Result<Quantity, UnknownQuantity> {
        if let Some(&id) = interner().read().unwrap_or_else(|e| e.into_inner()).ids.get(name) {
            return Ok(Quantity::Raw(RawQuantity(id)));
        }
        let mut table = interner().write().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = table.ids.get(name) {
            return Ok(Quantity::Raw(RawQuantity(id)));
        }
        if table.names.len() >= MAX_RAW {
            return Err(UnknownQuantity(format!("{name} (more than {MAX_RAW} raw quantities)")));
        }
        let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        let id = table.names.len() as u16;
        table.names.push(name);
        table.ids.insert(name, id);
        Ok(Quantity::Raw(RawQuantity(id)))
    }

    pub fn is_raw(self) -> bool {
        matches!(self, Quantity::Raw(_))
    }
}

/// By name, so raw quantities mean the same in every process of a cluster.
impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

quantities! {
    WaterLevel = "water_level", "m", -500, 9000, "River, tide or reservoir water level (stage), metres above datum.";
    Rainfall = "rainfall", "mm", 0, 1000, "Rainfall accumulated since the gauge's previous report, millimetres.";
    Rainfall1h = "rainfall_1h", "mm", 0, 500, "Rainfall over the last hour as the gauge reports it (SL 651 element P1).";
    Rainfall5m = "rainfall_5m", "mm", 0, 200, "Rainfall in a five-minute period (SL 651 PN05 and the DRP series).";
    RainfallTotal = "rainfall_total", "mm", 0, 100000, "A gauge's running rainfall total (SL 651 PT).";
    RelativeWaterLevel = "relative_water_level", "m", -100, 100, "Water level relative to a reference (SL 651 DRZ series).";
    Flow = "flow", "m3/s", -1_000_000, 1_000_000, "Discharge, cubic metres per second (negative on flood tide).";
    Pm25 = "pm25", "ug/m3", 0, 5000, "PM2.5 mass concentration.";
    Pm10 = "pm10", "ug/m3", 0, 10000, "PM10 mass concentration.";
    So2 = "so2", "ug/m3", 0, 50000, "Sulphur dioxide.";
    No2 = "no2", "ug/m3", 0, 50000, "Nitrogen dioxide.";
    O3 = "o3", "ug/m3", 0, 10000, "Ozone.";
    Co = "co", "mg/m3", 0, 1000, "Carbon monoxide.";
    AirTemperature = "air_temperature", "degC", -80, 70, "Air temperature.";
    WaterTemperature = "water_temperature", "degC", -5, 60, "Water temperature.";
    Humidity = "humidity", "%", 0, 100, "Relative humidity.";
    WindSpeed = "wind_speed", "m/s", 0, 120, "Wind speed.";
    Ph = "ph", "pH", 0, 14, "pH.";
    DissolvedOxygen = "dissolved_oxygen", "mg/L", 0, 50, "Dissolved oxygen.";
    Cod = "cod", "mg/L", 0, 100000, "Chemical oxygen demand.";
    AmmoniaNitrogen = "ammonia_nitrogen", "mg/L", 0, 10000, "Ammonia nitrogen (NH3-N).";
    GasConcentration = "gas", "%LEL", 0, 100, "Combustible gas, percent of the lower explosive limit.";
    Smoke = "smoke", "%/m", 0, 100, "Smoke obscuration, percent per metre.";
    VehicleSpeed = "vehicle_speed", "km/h", 0, 400, "Mean vehicle speed at a traffic detector.";
    TrafficVolume = "traffic_volume", "veh/h", 0, 50000, "Vehicles per hour at a traffic detector.";
    Occupancy = "occupancy", "%", 0, 100, "Detector occupancy.";
    SupplyVoltage = "supply_voltage", "V", 0, 1000, "A station's supply (battery) voltage.";
    TotalPhosphorus = "total_phosphorus", "mg/L", 0, 10000, "Total phosphorus.";
    TotalNitrogen = "total_nitrogen", "mg/L", 0, 10000, "Total nitrogen.";
    PermanganateIndex = "permanganate_index", "mg/L", 0, 10000, "Permanganate index (CODMn).";
    Conductivity = "conductivity", "uS/cm", 0, 1_000_000, "Electrical conductivity.";
    Tsp = "tsp", "ug/m3", 0, 100000, "Total suspended particulates.";
    Nox = "nox", "ug/m3", 0, 100000, "Nitrogen oxides (as NO2).";
    AirPressure = "air_pressure", "kPa", 0, 120, "Atmospheric pressure.";
    WindDirection = "wind_direction", "deg", 0, 360, "Wind direction, degrees clockwise from north.";
    Oxygen = "oxygen", "%", 0, 100, "Oxygen content of flue gas.";
    FlueGasFlow = "flue_gas_flow", "m3/s", 0, 100000, "Flue gas flow.";
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A quantity name nobody knows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown quantity {0:?}")]
pub struct UnknownQuantity(pub String);

/// `canonical = raw * scale + offset`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitConversion {
    pub scale: f64,
    pub offset: f64,
}

impl UnitConversion {
    pub const IDENTITY: UnitConversion = UnitConversion { scale: 1.0, offset: 0.0 };

    #[inline]
    pub fn apply(self, raw: f64) -> f64 {
        raw * self.scale + self.offset
    }
}

const fn scale(scale: f64) -> Option<UnitConversion> {
    Some(UnitConversion { scale, offset: 0.0 })
}

impl Quantity {
    /// How to convert a value written in `unit` into this quantity's canonical unit;
    /// `None` when the unit is unknown or does not fit the quantity (e.g. `ug/m3` for a level).
    pub fn conversion_from(self, unit: &str) -> Option<UnitConversion> {
        use Quantity::*;
        let unit = unit.trim();
        if unit.is_empty() || unit == self.canonical_unit() {
            return Some(UnitConversion::IDENTITY);
        }
        match self {
            WaterLevel | RelativeWaterLevel => length_in_metres(unit),
            Rainfall | Rainfall1h | Rainfall5m | RainfallTotal => {
                length_in_metres(unit).and_then(|c| scale(c.scale * 1000.0))
            }
            Flow => match unit {
                "m³/s" | "m^3/s" | "cumecs" => scale(1.0),
                "L/s" | "l/s" => scale(0.001),
                "m3/h" | "m³/h" => scale(1.0 / 3600.0),
                _ => None,
            },
            Pm25 | Pm10 | So2 | No2 | O3 | Tsp | Nox => match unit {
                "µg/m3" | "μg/m3" | "µg/m³" | "μg/m³" | "ug/m³" => scale(1.0),
                "mg/m3" | "mg/m³" => scale(1000.0),
                _ => None,
            },
            Co => match unit {
                "mg/m³" => scale(1.0),
                "ug/m3" | "µg/m3" | "μg/m3" | "µg/m³" | "μg/m³" => scale(0.001),
                _ => None,
            },
            AirTemperature | WaterTemperature => match unit {
                "°C" | "C" | "℃" | "celsius" | "Cel" => scale(1.0),
                "K" => Some(UnitConversion { scale: 1.0, offset: -273.15 }),
                "°F" | "F" | "degF" => Some(UnitConversion { scale: 5.0 / 9.0, offset: -160.0 / 9.0 }),
                _ => None,
            },
            Humidity | Occupancy => match unit {
                "percent" | "%RH" => scale(1.0),
                "/" | "ratio" | "1" => scale(100.0),
                _ => None,
            },
            WindSpeed => match unit {
                "km/h" => scale(1.0 / 3.6),
                "kn" | "kt" => scale(1852.0 / 3600.0),
                _ => None,
            },
            VehicleSpeed => match unit {
                "m/s" => scale(3.6),
                "mph" => scale(1.609_344),
                _ => None,
            },
            Ph => match unit {
                "" | "1" => scale(1.0),
                _ => None,
            },
            DissolvedOxygen | Cod | AmmoniaNitrogen | TotalPhosphorus | TotalNitrogen | PermanganateIndex => match unit
            {
                "mg/l" => scale(1.0),
                "ug/L" | "µg/L" | "μg/L" | "ug/l" => scale(0.001),
                _ => None,
            },
            GasConcentration => match unit {
                "%lel" | "LEL%" => scale(1.0),
                _ => None,
            },
            Smoke => match unit {
                "%obs/m" => scale(1.0),
                _ => None,
            },
            TrafficVolume => match unit {
                "veh/min" => scale(60.0),
                _ => None,
            },
            SupplyVoltage => match unit {
                "mV" => scale(0.001),
                _ => None,
            },
            Conductivity => match unit {
                "µS/cm" | "μS/cm" => scale(1.0),
                "mS/cm" => scale(1000.0),
                "mS/m" => scale(10.0),
                _ => None,
            },
            AirPressure => match unit {
                "hPa" | "mbar" => scale(0.1),
                "Pa" => scale(0.001),
                _ => None,
            },
            WindDirection => match unit {
                "°" | "degree" => scale(1.0),
                _ => None,
            },
            Oxygen => match unit {
                "percent" => scale(1.0),
                _ => None,
            },
            FlueGasFlow if unit == "m³/s" => scale(1.0),
            FlueGasFlow => match unit {
                "m3/h" | "m³/h" => scale(1.0 / 3600.0),
                _ => None,
            },
            Raw(_) => Some(UnitConversion::IDENTITY),
        }
    }
}

fn length_in_metres(unit: &str) -> Option<UnitConversion> {
    match unit {
        "m" => scale(1.0),
        "cm" => scale(0.01),
        "mm" => scale(0.001),
        "km" => scale(1000.0),
        "ft" => scale(0.3048),
        "in" => scale(0.0254),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &q in Quantity::ALL {
            assert_eq!(q.name().parse::<Quantity>(), Ok(q));
            assert_eq!(q.conversion_from(q.canonical_unit()), Some(UnitConversion::IDENTITY));
        }
    }

    #[test]
    fn level_and_rain_convert_lengths() {
        let cm = Quantity::WaterLevel.conversion_from("cm").unwrap();
        assert!((cm.apply(312.0) - 3.12).abs() < 1e-12);
        let inch = Quantity::Rainfall.conversion_from("in").unwrap();
        assert!((inch.apply(1.0) - 25.4).abs() < 1e-9);
    }

    #[test]
    fn temperatures_convert_with_offsets() {
        let f = Quantity::AirTemperature.conversion_from("°F").unwrap();
        assert!((f.apply(212.0) - 100.0).abs() < 1e-9);
        let k = Quantity::WaterTemperature.conversion_from("K").unwrap();
        assert!((k.apply(273.15)).abs() < 1e-9);
    }

    #[test]
    fn raw_quantities_are_interned_by_protocol_name_and_serialise_by_name() {
        let q: Quantity = "hj212:a21003".parse().unwrap();
        assert_eq!(q, "hj212:a21003".parse().unwrap());
        assert_eq!(q.name(), "hj212:a21003");
        assert!(q.index() >= Quantity::ALL.len());
        assert_ne!(q, "hj212:w01003".parse::<Quantity>().unwrap());
        assert_eq!(serde_json::to_string(&q).unwrap(), "\"hj212:a21003\"");
        assert_eq!(serde_json::from_str::<Quantity>("\"hj212:a21003\"").unwrap(), q);
        assert!("a21003".parse::<Quantity>().is_err(), "only protocol-prefixed names are raw");
        assert!("hj212:".parse::<Quantity>().is_err());
        assert_eq!(q.conversion_from("mg/m3"), Some(UnitConversion::IDENTITY));
        assert_eq!(Quantity::Pm25.index(), 7);
    }

    #[test]
    fn a_unit_of_the_wrong_kind_is_refused() {
        assert_eq!(Quantity::WaterLevel.conversion_from("ug/m3"), None);
        assert_eq!(Quantity::Pm25.conversion_from("m"), None);
    }
}

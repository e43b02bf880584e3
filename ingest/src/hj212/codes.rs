//! Pollutant and parameter codes (HJ 212-2017 appendix B, with the 2005 codes) mapped to
//! quantities and the units loggers send them in.

use crate::quantity::Quantity;

/// What a code measures and in which unit it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    pub quantity: Quantity,
    /// Unit at pollution sources (the standard's table): concentrations in mg/m³.
    pub source_unit: &'static str,
    /// Unit at ambient quality stations (ST 21–27): air concentrations in µg/m³ (CO mg/m³),
    /// as environmental quality standards and the stations themselves report them.
    pub ambient_unit: &'static str,
}

const fn same(quantity: Quantity, unit: &'static str) -> CodeInfo {
    CodeInfo { quantity, source_unit: unit, ambient_unit: unit }
}

const fn air(quantity: Quantity) -> CodeInfo {
    CodeInfo { quantity, source_unit: "mg/m3", ambient_unit: "ug/m3" }
}

/// A code of up to 8 ASCII bytes as one integer, so the table below is an integer match
/// (a jump or binary search) rather than a chain of string comparisons per value.
const fn key(code: &[u8]) -> u64 {
    let mut k = 0u64;
    let mut i = 0;
    while i < code.len() && i < 8 {
        k = (k << 8) | code[i] as u64;
        i += 1;
    }
    k
}

macro_rules! code_table {
    ($( [$($code:literal),+] => $info:expr, )*) => {
        /// The code's meaning, by 2017 code, 2005 code, or the `O3` some devices send.
        pub fn code_info(code: &str) -> Option<CodeInfo> {
            use Quantity::*;
            if code.len() > 8 {
                return None;
            }
            let k = key(code.as_bytes());
            $( if $(k == const { key($code.as_bytes()) })||+ { return Some($info); } )*
            None
        }
    };
}

code_table! {
    ["w00000", "B01"] => same(Flow, "L/s"),
    ["w01001", "001"] => same(Ph, ""),
    ["w01009"] => same(DissolvedOxygen, "mg/L"),
    ["w01010"] => same(WaterTemperature, "degC"),
    ["w01014"] => same(Conductivity, "uS/cm"),
    ["w01018", "011"] => same(Cod, "mg/L"),
    ["w01019"] => same(PermanganateIndex, "mg/L"),
    ["w21001", "065"] => same(TotalNitrogen, "mg/L"),
    ["w21003", "060"] => same(AmmoniaNitrogen, "mg/L"),
    ["w21011", "101"] => same(TotalPhosphorus, "mg/L"),
    ["a00000", "B02"] => same(FlueGasFlow, "m3/s"),
    ["a01001"] => same(AirTemperature, "degC"),
    ["a01002"] => same(Humidity, "%"),
    ["a01006"] => same(AirPressure, "kPa"),
    ["a01007"] => same(WindSpeed, "m/s"),
    ["a01008"] => same(WindDirection, "deg"),
    ["a19001", "S01"] => same(Oxygen, "%"),
    ["a21002", "03"] => air(Nox),
    ["a21004"] => air(No2),
    ["a21005", "04"] => same(Co, "mg/m3"),
    ["a21026", "02"] => air(So2),
    ["a05024", "O3"] => air(O3),
    ["a34001"] => air(Tsp),
    ["a34002"] => air(Pm10),
    ["a34004"] => air(Pm25),
}

/// Ambient environmental quality stations report in ambient units.
pub fn is_ambient(st: Option<&str>) -> bool {
    matches!(st, Some("21" | "22" | "23" | "24" | "25" | "26" | "27"))
}

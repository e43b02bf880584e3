//! Element identifiers (the first byte of an element) and what they measure.

use crate::quantity::Quantity;

/// What an element measures, in which unit its decoded number is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElementInfo {
    pub quantity: Quantity,
    pub unit: &'static str,
    /// The standard's short name (PJ, Z, VT, ...).
    pub name: &'static str,
}

const fn info(quantity: Quantity, unit: &'static str, name: &'static str) -> Option<ElementInfo> {
    Some(ElementInfo { quantity, unit, name })
}

/// The meaning of an element identifier, for the elements Tidewatch maps to quantities.
pub fn element_info(id: u8) -> Option<ElementInfo> {
    use Quantity::*;
    match id {
        0x1A => info(Rainfall1h, "mm", "P1"),
        0x20 => info(Rainfall, "mm", "PJ"),
        0x22 => info(Rainfall5m, "mm", "PN05"),
        0x26 => info(RainfallTotal, "mm", "PT"),
        0x27 => info(Flow, "m3/s", "Q"),
        0x38 => info(SupplyVoltage, "V", "VT"),
        0x39 => info(WaterLevel, "m", "Z"),
        0x46 => info(Ph, "", "pH"),
        0x47 => info(DissolvedOxygen, "mg/L", "DO"),
        0x4C => info(AmmoniaNitrogen, "mg/L", "NH4N"),
        0x4D => info(TotalPhosphorus, "mg/L", "TP"),
        // The hourly series: twelve five-minute values each.
        0xF4 => info(Rainfall5m, "mm", "DRP"),
        0xF5 => info(RelativeWaterLevel, "m", "DRZ1"),
        _ => None,
    }
}

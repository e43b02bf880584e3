//! Protocol deviations that are accepted, counted for the whole process.
//!
//! Deployed devices do not always follow their standard to the letter. What can be decoded
//! safely is accepted, and counted here so that operators see which sites deviate
//! (`tidewatch_nonconforming_total{kind=...}` in `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

/// HJ 212 packets whose data segment is longer than the standard's 1,024 bytes.
pub static HJ212_OVERSIZE: AtomicU64 = AtomicU64::new(0);
/// HJ 212 packets checked with CRC-16/MODBUS (low byte first) instead of the standard's CRC.
pub static HJ212_MODBUS_CRC: AtomicU64 = AtomicU64::new(0);

/// Every counter with its metric label.
pub fn counts() -> [(&'static str, u64); 2] {
    [
        ("hj212_oversize", HJ212_OVERSIZE.load(Ordering::Relaxed)),
        ("hj212_modbus_crc", HJ212_MODBUS_CRC.load(Ordering::Relaxed)),
    ]
}

//! Writing HJ 212 packets: for simulators, round-trip tests and answers to loggers.

use super::crc::{crc16_hj212, crc16_modbus};
use super::packet::{CrcKind, Packet};

/// A packet around a data segment, with the standard's CRC and `\r\n`.
pub fn encode(data: &str) -> String {
    encode_with(data, CrcKind::Standard)
}

/// A packet with the given check (low-byte-first Modbus as some loggers send).
pub fn encode_with(data: &str, crc: CrcKind) -> String {
    let check = match crc {
        CrcKind::Standard => crc16_hj212(data.as_bytes()),
        CrcKind::ModbusLowFirst => crc16_modbus(data.as_bytes()).swap_bytes(),
    };
    format!("##{:04}{data}{check:04X}\r\n", data.len())
}

/// The data answer (`CN=9014`) a logger expects when its packet's Flag asks for one.
pub fn answer_9014(packet: &Packet<'_>) -> String {
    let qn = packet.qn.map(|q| format!("QN={q};")).unwrap_or_default();
    let pw = packet.pw.unwrap_or("");
    encode(&format!("{qn}ST=91;CN=9014;PW={pw};MN={};Flag=4;CP=&&&&", packet.mn))
}

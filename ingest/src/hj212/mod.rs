//! HJ 212-2017 (and 2005-style, and the known part of 2025): environmental monitoring data
//! transmission, as sent by data loggers of air and water quality stations and pollution
//! sources.
//!
//! A packet is `##` + four decimal digits giving the data segment's length in bytes + the
//! data segment + four hex digits of CRC + `\r\n`. The data segment is
//! `QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;[PNUM=..;PNO=..;]CP=&&...&&`.
//!
//! [`Packet::parse`] checks the frame and the CRC (the standard's own CRC16, or CRC-16/MODBUS
//! written low byte first as some deployed loggers send, recorded in [`Packet::crc`]) and
//! splits the fields; [`Hj212Decoder`] turns data packets into readings; [`encode`] writes
//! packets (for simulators, tests and the `9014` answer).

mod codes;
mod crc;
mod decode;
mod encode;
mod packet;

pub use codes::{code_info, CodeInfo};
pub use crc::{crc16_hj212, crc16_modbus};
pub use decode::Hj212Decoder;
pub use encode::{answer_9014, encode, encode_with};
pub use packet::{CpItem, CrcKind, Hj212Error, Packet};

#[cfg(test)]
mod tests;

//! The two checks HJ 212 packets arrive with.

/// The standard's CRC16 over the data segment: not CRC-16/MODBUS (the register is shifted
/// before the byte is mixed in). `crc16_hj212(b"123456789") == 0x2F80`.
///
/// Per byte the standard does `crc = (crc >> 8) ^ b` and eight shift-and-xor steps. As
/// `(crc >> 8) ^ b` fits in a byte, the step is `crc = T[(crc >> 8) ^ b]` with `T` the
/// table of the eight steps. `T` is XOR-linear, so four steps unroll into four independent
/// look-ups (`Tk` is "apply `T`, shift by 8" k times): slicing-by-4, about four times
/// faster than one dependent look-up per byte, which dominated decoding.
pub fn crc16_hj212(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let first = usize::from(((crc >> 8) as u8) ^ c[0]);
        crc = HJ[3][first] ^ HJ[2][usize::from(c[1])] ^ HJ[1][usize::from(c[2])] ^ HJ[0][usize::from(c[3])];
    }
    for &b in chunks.remainder() {
        crc = HJ[0][usize::from(((crc >> 8) as u8) ^ b)];
    }
    crc
}

/// CRC-16/MODBUS. `crc16_modbus(b"123456789") == 0x4B37`. Slicing-by-4, as for HJ 212.
pub fn crc16_modbus(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let lo = usize::from((crc as u8) ^ c[0]);
        let hi = usize::from(((crc >> 8) as u8) ^ c[1]);
        crc = MB[3][lo] ^ MB[2][hi] ^ MB[1][usize::from(c[2])] ^ MB[0][usize::from(c[3])];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ MB[0][usize::from((crc as u8) ^ b)];
    }
    crc
}

/// Eight reflected shift-and-xor steps with polynomial 0xA001, per byte value.
const fn base_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
            k += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// HJ[k][x]: the register after byte x and k further zero bytes (HJ 212's step).
const HJ: [[u16; 256]; 4] = {
    let t = base_table();
    let mut tables = [t; 4];
    let mut k = 1;
    while k < 4 {
        let mut x = 0;
        while x < 256 {
            tables[k][x] = t[(tables[k - 1][x] >> 8) as usize];
            x += 1;
        }
        k += 1;
    }
    tables
};

/// MB[k][x]: the standard slicing tables of the reflected CRC-16 (Modbus).
const MB: [[u16; 256]; 4] = {
    let t = base_table();
    let mut tables = [t; 4];
    let mut k = 1;
    while k < 4 {
        let mut x = 0;
        while x < 256 {
            let prev = tables[k - 1][x];
            tables[k][x] = (prev >> 8) ^ t[(prev & 0xFF) as usize];
            x += 1;
        }
        k += 1;
    }
    tables
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_from_the_standard_and_modbus() {
        assert_eq!(crc16_hj212(b"123456789"), 0x2F80);
        assert_eq!(crc16_modbus(b"123456789"), 0x4B37);
    }

    /// The algorithms exactly as PROTOCOLS.md states them, bit by bit.
    fn bitwise(data: &[u8], shift_first: bool) -> u16 {
        let mut crc: u16 = 0xFFFF;
        for &b in data {
            crc = if shift_first { (crc >> 8) ^ u16::from(b) } else { crc ^ u16::from(b) };
            for _ in 0..8 {
                let carry = crc & 1 != 0;
                crc >>= 1;
                if carry {
                    crc ^= 0xA001;
                }
            }
        }
        crc
    }

    proptest::proptest! {
        #[test]
        fn table_driven_equals_the_stated_algorithms(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            proptest::prop_assert_eq!(crc16_hj212(&data), bitwise(&data, true));
            proptest::prop_assert_eq!(crc16_modbus(&data), bitwise(&data, false));
        }
    }
}

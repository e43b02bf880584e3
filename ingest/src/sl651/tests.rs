//! SL 651 against real frames: `tests/data/sl651_regular_report_32.hex` (from
//! 64673a/SL651-2014 `samples/regular_report.hex`) and `tests/data/sl651_frames.txt` (from
//! the yu-xiaoyao/sl651-2014-server client examples). Expected values are decoded by hand
//! from the bytes, as written in each test.

use super::decode::bcd_value;
use super::*;
use crate::dead_letter::Rejection;
use crate::json::RawReading;
use crate::quantity::Quantity;
use proptest::prelude::*;

const REPORT_32: &str = include_str!("../../tests/data/sl651_regular_report_32.hex");
const FRAMES: &str = include_str!("../../tests/data/sl651_frames.txt");

fn frame_text(function: &str) -> &'static str {
    FRAMES.lines().find(|l| l.starts_with(function)).unwrap()
}

fn decode(payload: &[u8]) -> (Vec<RawReading<'static>>, Vec<Rejection>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    Sl651Decoder::default().decode(payload, &mut |r| match r {
        Ok(r) => ok.push(r.into_owned()),
        Err(e) => bad.push(e),
    });
    (ok, bad)
}

fn utc(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

/// (quantity, value, unit, time)
fn summary(readings: &[RawReading<'_>]) -> Vec<(Quantity, f64, String, i64)> {
    readings
        .iter()
        .map(|r| (r.quantity, r.value, r.unit.as_deref().unwrap_or("").to_owned(), r.time.unwrap()))
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

#[test]
fn the_worked_example_timed_report() {
    // 7E7E 01 0010100001 A000 32 002B 02 | 000C 200724172349 F1F1 0010100001 48
    // F0F0 2007241723 | 20 19 000130 | 22 19 000040 | 39 23 00000550 | 38 12 1268 | 03 8397
    let bytes = unhex(REPORT_32.trim());
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!((frame.centre, frame.station.as_str(), frame.password, frame.function), (1, "0010100001", 0xA000, 0x32));
    let (ok, bad) = decode(&bytes);
    assert!(bad.is_empty(), "{bad:?}");
    let t = utc("2020-07-24T09:23:00Z"); // 20-07-24 17:23 Beijing time
    assert_eq!(
        summary(&ok),
        [
            (Quantity::Rainfall, 13.0, "mm".into(), t),
            (Quantity::Rainfall5m, 4.0, "mm".into(), t),
            (Quantity::WaterLevel, 0.55, "m".into(), t),
            (Quantity::SupplyVoltage, 12.68, "V".into(), t),
        ]
    );
    assert!(ok.iter().all(|r| r.station == "0010100001"));
    // The same frame as hex text decodes the same.
    assert_eq!(decode(REPORT_32.as_bytes()).0, ok);
}

#[test]
fn a_timed_report_with_cumulative_rainfall() {
    // ... 32 002B 02 | 0034 170718110016 F1F1 0011223344 48 F0F0 1707181100 |
    // 20 19 000040 | 26 19 000040 | 39 23 00010490 | 38 12 1099 | 03 A421
    let (ok, bad) = decode(frame_text("32").as_bytes());
    assert!(bad.is_empty(), "{bad:?}");
    let t = utc("2017-07-18T03:00:00Z");
    assert_eq!(
        summary(&ok),
        [
            (Quantity::Rainfall, 4.0, "mm".into(), t),
            (Quantity::RainfallTotal, 4.0, "mm".into(), t),
            (Quantity::WaterLevel, 10.49, "m".into(), t),
            (Quantity::SupplyVoltage, 10.99, "V".into(), t),
        ]
    );
}

#[test]
fn an_hourly_report_expands_its_five_minute_series() {
    // 34: F0F0 1707181005 F460 05 00 00 00 14 FF FF FF FF FF 00 00 (0.1 mm, FF = none),
    // F0F0 1707181100 2619 000040, F0F0 1707181005 F5C0 000C 000C 001C 0031 0031 FFFF×5
    // 0031 0031 (0.01 m), F0F0 1707181100 3923 00010490 2019 000040 3812 1099.
    let (ok, bad) = decode(frame_text("34").as_bytes());
    assert!(bad.is_empty(), "{bad:?}");
    let start = utc("2017-07-18T02:05:00Z");
    let at = |k: i64| start + k * 5 * 60_000;
    let hour = utc("2017-07-18T03:00:00Z");
    let mm = || "mm".to_owned();
    let m = || "m".to_owned();
    use Quantity::*;
    assert_eq!(
        summary(&ok),
        [
            (Rainfall5m, 0.5, mm(), at(0)),
            (Rainfall5m, 0.0, mm(), at(1)),
            (Rainfall5m, 0.0, mm(), at(2)),
            (Rainfall5m, 0.0, mm(), at(3)),
            (Rainfall5m, 2.0, mm(), at(4)),
            (Rainfall5m, 0.0, mm(), at(10)),
            (Rainfall5m, 0.0, mm(), at(11)),
            (RainfallTotal, 4.0, mm(), hour),
            (RelativeWaterLevel, 0.12, m(), at(0)),
            (RelativeWaterLevel, 0.12, m(), at(1)),
            (RelativeWaterLevel, 0.28, m(), at(2)),
            (RelativeWaterLevel, 0.49, m(), at(3)),
            (RelativeWaterLevel, 0.49, m(), at(4)),
            (RelativeWaterLevel, 0.49, m(), at(10)),
            (RelativeWaterLevel, 0.49, m(), at(11)),
            (WaterLevel, 10.49, m(), hour),
            (Rainfall, 4.0, mm(), hour),
            (SupplyVoltage, 10.99, "V".into(), hour),
        ]
    );
    assert_eq!(at(11), hour, "the twelfth value is the hour's end");
}

#[test]
fn a_uniform_interval_report_gives_a_value_per_step() {
    // No real function-31 frame is available: this one is built from the layout in
    // SL 651-2014 (observation time, time-step code 04 18 DDHHMM, one element identifier,
    // then one value per step), so it checks the decoder against our reading of the
    // standard, not against a device.
    // Z (39 23: 4 bytes, 3 decimals) every 15 minutes from 10:00: 10.490, (missing), 10.520.
    let body = unhex(
        "0001170718110016F1F1001122334448F0F0170718100004180000153923000104 90FFFFFFFF00010520"
            .replace(' ', "")
            .as_str(),
    );
    let frame = encode_uplink(5, "0011223344", 0x03E8, 0x31, &body);
    let (ok, bad) = decode(&frame);
    assert!(bad.is_empty(), "{bad:?}");
    let t = utc("2017-07-18T02:00:00Z");
    let m = || "m".to_owned();
    assert_eq!(
        summary(&ok),
        [(Quantity::WaterLevel, 10.49, m(), t), (Quantity::WaterLevel, 10.52, m(), t + 2 * 15 * 60_000)]
    );
    // A timed report may carry the time-step code too; it is skipped there.
    let body = unhex("0001170718110016F1F1001122334448F0F017071811000418000005392300010490");
    let (ok, bad) = decode(&encode_uplink(5, "0011223344", 0x03E8, 0x32, &body));
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(ok.len(), 1);
}

#[test]
fn bcd_values_negatives_and_missing() {
    assert_eq!(bcd_value(&[0x00, 0x01, 0x30], 1), Ok(Some(13.0)));
    assert_eq!(bcd_value(&[0xFF, 0x01, 0x25], 2), Ok(Some(-1.25)));
    assert_eq!(bcd_value(&[0xFF, 0xFF, 0xFF], 3), Ok(None));
    assert!(bcd_value(&[0x1A], 0).unwrap_err().contains("not BCD"));
    // Found by the corrupt-body property test: a length byte claiming 31 data bytes.
    assert!(bcd_value(&[0x99; 31], 0).unwrap_err().contains("longer than any SL 651 value"));
}

#[test]
fn keep_alive_gives_nothing_and_unknown_elements_are_kept() {
    let station = "0011223344";
    // 2F link keep-alive: serial and send time only.
    let keep_alive = encode_uplink(5, station, 0x03E8, 0x2F, &unhex("0001170718110016"));
    assert_eq!(decode(&keep_alive), (vec![], vec![]));
    // A 33 (threshold-triggered) report with a water level and an element not mapped (45 ZT
    // status bits) and a missing value (all FF).
    let body = unhex("0002170718110016F1F1001122334448F0F017071811003923FFFFFFFF45200000000139230001234503");
    let body = &body[..body.len() - 1];
    let frame = encode_uplink(5, station, 0x03E8, 0x33, body);
    let (ok, bad) = decode(&frame);
    let t = utc("2017-07-18T03:00:00Z");
    let raw: Quantity = "sl651:45".parse().unwrap();
    assert_eq!(summary(&ok), [(raw, 1.0, "".into(), t), (Quantity::WaterLevel, 12.345, "m".into(), t)]);
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn broken_frames_are_refused_with_reasons() {
    let good = unhex(REPORT_32.trim());
    let mut crc = good.clone();
    let n = crc.len();
    crc[n - 1] ^= 1;
    // One packet of two (SYN): decoded alone, it says it is part of a set.
    let frame = Frame::parse(&good).unwrap();
    let multi = encode_uplink_packet(frame.centre, &frame.station, frame.password, frame.function, (2, 1), frame.body);
    let mut downlink = good.clone();
    downlink[11] |= 0x80;
    let mut end = good.clone();
    end[n - 3] = 0x05;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (crc, "CRC mismatch: frame says 8396, CRC-16/MODBUS of the frame gives 8397"),
        (multi, "packet 1 of 2 of a multi-packet frame, on its own"),
        (downlink, "not an uplink frame"),
        (end, "end byte 05"),
        (good[..20].to_vec(), "body length 43 does not fit"),
        (b"7E7E01zz".to_vec(), "\"zz\" at character 6 is not hex"),
        (b"7E7".to_vec(), "odd number of digits"),
    ];
    for (bytes, why) in cases {
        let (ok, bad) = decode(&bytes);
        assert!(ok.is_empty());
        assert!(bad.len() == 1 && bad[0].to_string().contains(why), "{why}: {bad:?}");
    }
}

proptest! {
    #[test]
    fn any_bytes_are_an_answer_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut frame = vec![0x7E, 0x7E];
        frame.extend_from_slice(&bytes);
        Sl651Decoder::default().decode(&frame, &mut |_| {});
        Sl651Decoder::default().decode(&bytes, &mut |_| {});
    }

    /// A corrupted body with a recomputed CRC (so it reaches the element parser) never panics.
    #[test]
    fn corrupt_bodies_with_valid_crc_never_panic(pos in 0usize..104, byte in any::<u8>()) {
        let bytes = unhex(frame_text("34").split(' ').nth(1).unwrap());
        let mut body = bytes[14..bytes.len() - 3].to_vec();
        let pos = pos % body.len();
        body[pos] = byte;
        let frame = encode_uplink(5, "0011223344", 0x03E8, 0x34, &body);
        Sl651Decoder::default().decode(&frame, &mut |_| {});
    }

    /// Levels written as BCD elements decode to the same value.
    #[test]
    fn encoded_levels_round_trip(mm in 0u32..99_999_999, negative in any::<bool>()) {
        let digits = format!("{mm:08}");
        let data = if negative { format!("FF{}", &digits[2..]) } else { digits.clone() };
        let body = format!("0001170718110016F1F1001122334448F0F017071811003923{data}");
        let frame = encode_uplink(5, "0011223344", 0x03E8, 0x32, &unhex(&body));
        let (ok, bad) = decode(&frame);
        prop_assert!(bad.is_empty(), "{:?}", bad);
        let expected = if negative { -((mm % 1_000_000) as f64) / 1000.0 } else { mm as f64 / 1000.0 };
        prop_assert!((ok[0].value - expected).abs() < 1e-9, "{} vs {}", ok[0].value, expected);
    }
}

//! HJ 212 against the public packets in `tests/data/hj212_public_packets.tsv` (copied from
//! `shared/data/hj212/public_packets.tsv`: the standard's example and the test files of the
//! open-source parsers flash520/hj212, guocay/hj212-protocol and chenqi92/alltobs-hj212).
//! Expected values are read off the packets by hand, not taken from the decoder.

use super::*;
use crate::dead_letter::Rejection;
use crate::json::RawReading;
use crate::quantity::Quantity;
use crate::reading::Quality;
use proptest::prelude::*;

const PACKETS: &str = include_str!("../../tests/data/hj212_public_packets.tsv");

fn packet(i: usize) -> &'static str {
    PACKETS.lines().nth(i).unwrap().split('\t').nth(1).unwrap()
}

fn decode(payload: &str) -> (Vec<RawReading<'_>>, Vec<Rejection>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    Hj212Decoder::default().decode(payload.as_bytes(), &mut |r| match r {
        Ok(r) => ok.push(r),
        Err(e) => bad.push(e),
    });
    (ok, bad)
}

/// (quantity, value, unit, quality)
fn summary<'a>(readings: &'a [RawReading<'a>]) -> Vec<(Quantity, f64, &'a str, Quality)> {
    readings.iter().map(|r| (r.quantity, r.value, r.unit.as_deref().unwrap_or(""), r.quality)).collect()
}

fn utc(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

#[test]
fn every_valid_public_packet_passes_the_standard_crc_and_every_bad_one_is_refused() {
    for line in PACKETS.lines() {
        let (label, text) = line.split_once('\t').unwrap();
        let parsed = Packet::parse(text.as_bytes());
        if label == "valid_hj212" {
            assert_eq!(parsed.map(|p| p.crc), Ok(CrcKind::Standard), "{text}");
        } else {
            assert!(matches!(parsed, Err(Hj212Error::CrcMismatch { .. })), "{text}: {parsed:?}");
        }
    }
}

#[test]
fn bad_crc_packets_name_the_expected_crc() {
    // Worked out with the standard's algorithm over each data segment.
    let expected = [(3, "1100", "2D00"), (4, "4980", "3C00"), (5, "f9c1", "7340"), (8, "2800", "D801")];
    for (i, found, want) in expected {
        let err = Packet::parse(packet(i).as_bytes()).unwrap_err();
        match &err {
            Hj212Error::CrcMismatch { found: f, expected: e, .. } => {
                assert_eq!((f.as_str(), e.as_str()), (found, want))
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains(&format!("data segment gives {want}")), "{err}");
    }
}

#[test]
fn the_standards_example_is_a_command_that_asks_for_an_answer() {
    let p = Packet::parse(packet(0).as_bytes()).unwrap();
    assert_eq!((p.qn, p.st, p.cn, p.pw), (Some("20160801085857223"), Some("32"), "1062", Some("100000")));
    assert_eq!(p.mn, "010000A8900016F000169DC0");
    assert_eq!((p.flag, p.version(), p.wants_answer()), (Some(5), 1, true));
    assert_eq!(p.cp, "RtdInterval=30");
    // A command, not data: no readings, no rejections.
    assert_eq!(decode(packet(0)), (vec![], vec![]));
    // The answer carries the same QN and a valid CRC.
    let answer = answer_9014(&p);
    let a = Packet::parse(answer.as_bytes()).unwrap();
    assert_eq!(
        (a.qn, a.st, a.cn, a.mn, a.flag, a.cp),
        (Some("20160801085857223"), Some("91"), "9014", p.mn, Some(4), "")
    );
}

#[test]
fn minute_averages_from_an_air_quality_station() {
    let (ok, bad) = decode(packet(1));
    assert!(bad.is_empty(), "{bad:?}");
    use Quantity::*;
    let good = Quality::Good;
    assert_eq!(
        summary(&ok),
        [
            (No2, 4.0, "ug/m3", good),
            (O3, 63.0, "ug/m3", good),
            (So2, 6.0, "ug/m3", good),
            (Co, 0.427, "mg/m3", good),
            (Pm25, 14.0, "ug/m3", good),
            (Pm10, 31.0, "ug/m3", good),
            (WindSpeed, 1.0, "m/s", good),
            (WindDirection, 11.0, "deg", good),
            (AirTemperature, 17.0, "degC", good),
            (Humidity, 85.0, "%", good),
            (AirPressure, 95.0, "kPa", good),
        ]
    );
    // DataTime=20220513162600 is Beijing time.
    assert!(ok.iter().all(|r| r.time == Some(utc("2022-05-13T08:26:00Z")) && r.station == "JLYP01_AIR01_0001"));
}

fn raw(code: &str) -> Quantity {
    code.parse().unwrap()
}

#[test]
fn codes_outside_the_table_are_kept_as_raw_quantities() {
    let (ok, bad) = decode(packet(2));
    assert!(bad.is_empty(), "{bad:?}");
    use Quantity::*;
    let good = Quality::Good;
    assert_eq!(
        summary(&ok),
        [
            (Co, 0.0, "mg/m3", good),
            (No2, 0.0, "ug/m3", good),
            (raw("hj212:a21007"), 0.033, "", good),
            (raw("hj212:a21006"), 0.036, "", good),
            (raw("hj212:a21001"), 25.4, "", good),
            (raw("hj212:a21003"), 101.94, "", good),
            (Nox, 49.2, "ug/m3", good),
        ]
    );
    assert!(ok.iter().all(|r| r.time == Some(utc("2019-10-12T05:37:10Z"))));
    // Nonstandard codes from parsers' tests: every item kept, none lost.
    let (ok, bad) = decode(packet(6));
    assert_eq!((ok.len(), bad.len()), (7, 0));
    assert_eq!((ok[0].quantity.name(), ok[0].value), ("hj212:a2106", 0.036));
    assert_eq!(decode(packet(7)).0.len(), 7);
}

#[test]
fn a_surface_water_station_on_hj212_2025() {
    let p = Packet::parse(packet(10).as_bytes()).unwrap();
    assert_eq!((p.flag, p.version()), (Some(8), 2));
    let (ok, bad) = decode(packet(10));
    use Quantity::*;
    let good = Quality::Good;
    assert_eq!(
        summary(&ok).into_iter().filter(|r| !r.0.is_raw()).collect::<Vec<_>>(),
        [
            (Ph, 8.33, "", good),
            (DissolvedOxygen, 10.15, "mg/L", good),
            (WaterTemperature, 9.7, "degC", good),
            (Conductivity, 1425.0, "uS/cm", good),
            (TotalPhosphorus, 0.0, "mg/L", good),
            (TotalNitrogen, 3.563168, "mg/L", good),
            (AmmoniaNitrogen, 0.09055002, "mg/L", good),
            (PermanganateIndex, 4.102818, "mg/L", good),
        ]
    );
    assert!(bad.is_empty(), "{bad:?}");
    let raws: Vec<(&str, f64)> =
        ok.iter().filter(|r| r.quantity.is_raw()).map(|r| (r.quantity.name(), r.value)).collect();
    assert_eq!(raws, [("hj212:w01003", 13.1), ("hj212:w01008", 0.0), ("hj212:w23002", 0.0)]);
    assert!(ok.iter().all(|r| r.time == Some(utc("2021-03-01T03:11:00Z"))));
}

#[test]
fn a_2005_style_packet_with_three_digit_codes_and_millisecond_datatime() {
    // The data segment of public packet 4 (refused there for its CRC), re-checked.
    let data = "ST=32;CN=2011;PW=123456;MN=LD130133000015;CP=&&DataTime=20160824003817;B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N;060-Rtd=1.803,060-Flag=N&&";
    let text = encode(data);
    let p = Packet::parse(text.as_bytes()).unwrap();
    assert_eq!((p.qn, p.flag, p.version()), (None, None, 0));
    let (ok, bad) = decode(&text);
    assert!(bad.is_empty(), "{bad:?}");
    use Quantity::*;
    let good = Quality::Good;
    assert_eq!(
        summary(&ok),
        [(Flow, 36.91, "L/s", good), (Cod, 231.0, "mg/L", good), (AmmoniaNitrogen, 1.803, "mg/L", good)]
    );
    assert!(ok.iter().all(|r| r.time == Some(utc("2016-08-23T16:38:17Z"))));
    // Public packet 9: a 17-digit DataTime (with milliseconds), no QN or Flag.
    let (ok, bad) = decode(packet(9));
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        summary(&ok),
        [(raw("hj212:ele01"), 1.0, "", Quality::Good), (raw("hj212:ele02"), 0.0, "", Quality::Good)]
    );
    assert!(ok.iter().all(|r| r.time == Some(utc("2021-03-04T16:38:17Z"))));
}

#[test]
fn data_flags_become_quality() {
    let data = "QN=20240101000000000;ST=31;CN=2011;PW=1;MN=S1;Flag=4;CP=&&DataTime=20240101000000;a34004-Rtd=1.5,a34004-Flag=D;a21026-Rtd=2,a21026-Flag=M;a21002-Rtd=3,a21002-Flag=T;a19001-Rtd=9.5&&";
    let text = encode(data);
    let (ok, bad) = decode(&text);
    assert!(bad.is_empty(), "{bad:?}");
    use Quantity::*;
    assert_eq!(
        summary(&ok),
        [
            (Pm25, 1.5, "mg/m3", Quality::Fault),
            (So2, 2.0, "mg/m3", Quality::Maintenance),
            (Nox, 3.0, "mg/m3", Quality::OverRange),
            (Oxygen, 9.5, "%", Quality::Good),
        ]
    );
}

#[test]
fn a_flag_written_before_its_value_still_applies() {
    let data = "QN=20240101000000000;ST=22;CN=2011;PW=1;MN=S1;Flag=4;CP=&&DataTime=20240101000000;a34004-Flag=D,a34004-Rtd=1.5;a34002-Rtd=3,a34002-Flag=N&&";
    let text = encode(data);
    let (ok, bad) = decode(&text);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        summary(&ok),
        [(Quantity::Pm25, 1.5, "ug/m3", Quality::Fault), (Quantity::Pm10, 3.0, "ug/m3", Quality::Good)]
    );
}

#[test]
fn modbus_checked_packets_are_recognised_and_recorded() {
    let data = "QN=20240101000000000;ST=22;CN=2011;PW=1;MN=S1;Flag=4;CP=&&DataTime=20240101000000;a34004-Rtd=35&&";
    let text = encode_with(data, CrcKind::ModbusLowFirst);
    assert_eq!(Packet::parse(text.as_bytes()).unwrap().crc, CrcKind::ModbusLowFirst);
    assert_eq!(decode(&text).0.len(), 1);
}

#[test]
fn split_packets_and_malformed_frames_are_refused_with_reasons() {
    let split = encode("QN=20240101000000000;ST=22;CN=2011;PW=1;MN=S1;Flag=7;PNUM=2;PNO=1;CP=&&a34004-Rtd=35&&");
    let (_, bad) = decode(&split);
    assert!(bad[0].to_string().contains("split packet 1 of 2"), "{bad:?}");
    let cases: &[(&str, &str)] = &[
        ("hello", "does not start with"),
        ("##12", "too short"),
        ("##00x1ABCD", "not four decimal digits"),
        ("##2000", "length field says 2000 bytes"),
        ("##0010abc", "length field says 10 bytes"),
        ("##0003abcZZZZ", "not four hex digits"),
    ];
    for (text, why) in cases {
        let (ok, bad) = decode(text);
        assert!(ok.is_empty());
        assert!(bad[0].to_string().contains(why), "{text}: {bad:?}");
    }
    let unknown_version = encode("QN=1;ST=22;CN=2011;PW=1;MN=S1;Flag=12;CP=&&&&");
    assert!(decode(&unknown_version).1[0].to_string().contains("protocol version 3"));
}

proptest! {
    #[test]
    fn any_bytes_are_an_answer_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut n = 0;
        Hj212Decoder::default().decode(&bytes, &mut |_| n += 1);
        prop_assert!(n >= 1 || bytes.split(|&b| b == b'\n').all(|l| l.iter().all(u8::is_ascii_whitespace)) || bytes.is_empty());
    }

    #[test]
    fn corrupting_a_valid_packet_never_panics(i in 0usize..11, pos in 0usize..440, byte in any::<u8>()) {
        let mut bytes = packet(i).as_bytes().to_vec();
        let pos = pos % bytes.len();
        bytes[pos] = byte;
        Hj212Decoder::default().decode(&bytes, &mut |_| {});
    }

    /// Encoded readings decode to the same codes, values and time.
    #[test]
    fn encode_decode_round_trip(
        pm25 in 0u32..100_000,
        co in 0u32..10_000,
        minute in 0u32..60,
        modbus in any::<bool>(),
    ) {
        let data = format!(
            "QN=20240101120000000;ST=22;CN=2011;PW=123456;MN=AQ1;Flag=4;CP=&&DataTime=202401011200{minute:02};a34004-Rtd={}.{:01},a34004-Flag=N;a21005-Rtd={}.{:03},a21005-Flag=N&&",
            pm25 / 10, pm25 % 10, co / 1000, co % 1000
        );
        let text = encode_with(&data, if modbus { CrcKind::ModbusLowFirst } else { CrcKind::Standard });
        let (ok, bad) = decode(&text);
        prop_assert!(bad.is_empty());
        prop_assert_eq!(ok.len(), 2);
        prop_assert!((ok[0].value - pm25 as f64 / 10.0).abs() < 1e-9);
        prop_assert!((ok[1].value - co as f64 / 1000.0).abs() < 1e-9);
        prop_assert_eq!(ok[0].time, Some(utc("2024-01-01T04:00:00Z") + minute as i64 * 1000));
    }
}

/// Deployed loggers send data segments of 1,025 and 1,623 bytes (the standard says at most
/// 1,024): decoded, marked and counted, with either CRC; over TCP the framer cuts them whole.
#[test]
fn packets_longer_than_the_standard_are_decoded_and_counted() {
    for target in [1025usize, 1623] {
        for crc in [CrcKind::Standard, CrcKind::ModbusLowFirst] {
            let head = "QN=20240101000000000;ST=22;CN=2011;PW=123456;MN=LONG01;Flag=5;CP=&&DataTime=20240101000000;";
            let tail = "a34004-Rtd=35.0,a34004-Flag=N&&";
            // Raw codes fill the segment; the first one's value takes leading zeros for the rest.
            let mut items = Vec::new();
            while head.len() + tail.len() + 15 * (items.len() + 1) <= target {
                items.push(format!("x{:05}-Rtd=1.0;", items.len()));
            }
            let gap = target - head.len() - tail.len() - 15 * items.len();
            items[0] = format!("x00000-Rtd={}1.0;", "0".repeat(gap));
            let data = format!("{head}{}{tail}", items.concat());
            assert_eq!(data.len(), target, "{data}");
            let text = encode_with(&data, crc);
            let packet = Packet::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{target} bytes, {crc:?}: {e}"));
            assert!(packet.oversize);
            assert_eq!(packet.crc, crc);
            let before = crate::conformance::HJ212_OVERSIZE.load(std::sync::atomic::Ordering::Relaxed);
            let (readings, refused) = decode(&text);
            assert!(crate::conformance::HJ212_OVERSIZE.load(std::sync::atomic::Ordering::Relaxed) > before);
            assert!(readings.iter().any(|r| r.value == 35.0), "{target}, {crc:?}: {refused:?}");
            let stream = [text.as_bytes(), text.as_bytes()].concat();
            assert_eq!(crate::framing::scan_hj212(&stream), crate::framing::Scan::Frame(text.len()));
        }
    }
}

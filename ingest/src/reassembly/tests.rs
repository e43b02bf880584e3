use proptest::prelude::*;

use super::*;
use crate::hj212::{encode, encode_with, CrcKind, Hj212Decoder};
use crate::json::RawReading;
use crate::sl651::{encode_uplink_packet, Sl651Decoder};

const PACKETS: &str = include_str!("../../tests/data/hj212_public_packets.tsv");
const FRAMES: &str = include_str!("../../tests/data/sl651_frames.txt");

/// The public 2051 packet (a minute report with several pollutants): header and CP items.
fn air_packet() -> (String, Vec<String>) {
    let line = PACKETS.lines().find(|l| l.contains("CN=2051")).unwrap().split('\t').nth(1).unwrap();
    let packet = Packet::parse(line.trim_end().as_bytes()).unwrap();
    let items: Vec<String> = packet.cp.split(';').map(str::to_owned).collect();
    (hj212_fields(&packet), items)
}

fn readings(decoded: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    Hj212Decoder::default().decode(decoded, &mut |r: Result<RawReading<'_>, _>| {
        out.push(match r {
            Ok(r) => format!("{} {} {:?} {:?}", r.quantity, r.value, r.time, r.quality),
            Err(e) => format!("refused: {e}"),
        })
    });
    out.sort();
    out
}

/// The packet split in `parts` packets, the CP items dealt out in order.
fn split(fields: &str, items: &[String], parts: usize, crc: CrcKind) -> Vec<String> {
    let flag = fields.split("Flag=").nth(1).and_then(|f| f.split(';').next()).unwrap().parse::<u8>().unwrap();
    let header = fields.replace(&format!("Flag={flag};"), &format!("Flag={};PNUM={parts};PNO={{}};", flag | 2));
    let per = items.len().div_ceil(parts);
    (0..parts)
        .map(|i| {
            let chunk = items.iter().skip(i * per).take(per).cloned().collect::<Vec<_>>().join(";");
            encode_with(&format!("{}CP=&&{chunk}&&", header.replace("{}", &(i + 1).to_string())), crc)
        })
        .collect()
}

#[test]
fn split_hj212_packets_in_any_order_decode_as_the_whole_packet() {
    let (fields, items) = air_packet();
    let whole = encode(&format!("{fields}CP=&&{}&&", items.join(";")));
    let expected = readings(whole.as_bytes());
    assert!(expected.len() >= 5 && expected.iter().all(|r| !r.starts_with("refused")), "{expected:#?}");
    let parts = split(&fields, &items, 3, CrcKind::ModbusLowFirst);
    let mut r = Reassembler::new(Limits::default());
    let mut gave_up = Vec::new();
    // An unsplit packet passes as it is; parts wait until the last one arrives.
    assert_eq!(r.offer(Protocol::Hj212, whole.as_bytes(), 0, &mut gave_up), Offered::Whole);
    assert_eq!(r.offer(Protocol::Hj212, parts[2].as_bytes(), 0, &mut gave_up), Offered::Replaced(Vec::new()));
    assert_eq!(r.offer(Protocol::Hj212, parts[0].as_bytes(), 1, &mut gave_up), Offered::Replaced(Vec::new()));
    assert_eq!(r.waiting(), 1);
    let Offered::Replaced(rebuilt) = r.offer(Protocol::Hj212, parts[1].as_bytes(), 2, &mut gave_up) else {
        panic!("a rebuilt packet")
    };
    assert_eq!(readings(&rebuilt), expected);
    assert!(gave_up.is_empty() && r.waiting() == 0);
}

#[test]
fn an_incomplete_set_is_given_up_with_the_parts_it_had() {
    let (fields, items) = air_packet();
    let parts = split(&fields, &items, 3, CrcKind::Standard);
    let mut r = Reassembler::new(Limits { max_wait_ms: 60_000, ..Limits::default() });
    let mut gave_up = Vec::new();
    // Two parts in one payload, the middle one never comes.
    let payload = format!("{}{}", parts[0], parts[2]);
    assert_eq!(r.offer(Protocol::Hj212, payload.as_bytes(), 0, &mut gave_up), Offered::Replaced(Vec::new()));
    assert!(r.expire(59_000).is_empty());
    let expired = r.expire(61_000);
    assert_eq!(expired.len(), 1);
    let lost = &expired[0];
    assert_eq!((lost.total, lost.had.clone(), lost.station.as_str()), (3, vec![1, 3], "JLYP01_AIR01_0001"));
    let kept = String::from_utf8(lost.parts.clone()).unwrap();
    assert!(kept.contains("PNO=1;") && kept.contains("PNO=3;") && !kept.contains("PNO=2;"), "{kept}");
    assert!(lost.message().contains("2 of 3 parts ([1, 3]) did not all arrive within 60 s"), "{}", lost.message());
    assert_eq!(r.waiting(), 0);
}

#[test]
fn memory_is_bounded_per_set_and_in_all() {
    let (fields, items) = air_packet();
    let mut r = Reassembler::new(Limits { max_wait_ms: 60_000, max_bytes: 600, max_sets: 2, max_sets_per_station: 2 });
    let mut gave_up = Vec::new();
    // Three messages (QNs) of one logger: the third crowds the oldest out.
    for (i, qn) in ["20220513162608370", "20220513162708370", "20220513162808370"].iter().enumerate() {
        let f = fields.replace("QN=20220513162608370", &format!("QN={qn}"));
        let parts = split(&f, &items, 4, CrcKind::Standard);
        r.offer(Protocol::Hj212, parts[0].as_bytes(), i as i64, &mut gave_up);
    }
    assert_eq!(r.waiting(), 2);
    assert_eq!(gave_up.len(), 1);
    assert!(gave_up[0].why.contains("gave way"), "{gave_up:?}");
    assert!(String::from_utf8_lossy(&gave_up[0].parts).contains("QN=20220513162608370"));
    // A set growing past its byte limit is given up.
    let f = fields.replace("QN=20220513162608370", "QN=20220513162908370");
    let parts = split(&f, &items, 4, CrcKind::Standard);
    for p in &parts[..3] {
        r.offer(Protocol::Hj212, p.as_bytes(), 10, &mut gave_up);
    }
    assert!(gave_up.iter().any(|g| g.why.contains("exceeded 600 bytes")), "{gave_up:?}");
    // One station cannot crowd out the others.
    let mut r = Reassembler::new(Limits { max_sets: 10, max_sets_per_station: 2, ..Limits::default() });
    let mut gave_up = Vec::new();
    let other = fields.replace("MN=JLYP01_AIR01_0001", "MN=OTHER");
    r.offer(Protocol::Hj212, split(&other, &items, 2, CrcKind::Standard)[0].as_bytes(), 0, &mut gave_up);
    for (i, qn) in ["20220513162608370", "20220513162708370", "20220513162808370"].iter().enumerate() {
        let f = fields.replace("QN=20220513162608370", &format!("QN={qn}"));
        r.offer(Protocol::Hj212, split(&f, &items, 2, CrcKind::Standard)[0].as_bytes(), 1 + i as i64, &mut gave_up);
    }
    assert_eq!(r.waiting(), 3);
    assert_eq!(gave_up.len(), 1);
    assert!(
        gave_up[0].why.contains("sets of this station") && gave_up[0].station == "JLYP01_AIR01_0001",
        "{gave_up:?}"
    );
}

#[test]
fn sl651_multi_packet_frames_are_put_back_together() {
    let hex = FRAMES.lines().find(|l| l.starts_with("34 ")).unwrap().split(' ').nth(1).unwrap();
    let bytes: Vec<u8> = (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    let frame = Frame::parse(&bytes).unwrap();
    let decode = |bytes: &[u8]| {
        let mut out = Vec::new();
        Sl651Decoder::default().decode(bytes, &mut |r| out.push(format!("{:?}", r.map(RawReading::into_owned))));
        out
    };
    let expected = decode(&bytes);
    assert!(expected.len() > 10, "{expected:#?}");
    let (head, tail) = frame.body.split_at(frame.body.len() / 2);
    let packets = [
        encode_uplink_packet(frame.centre, &frame.station, frame.password, frame.function, (2, 1), head),
        encode_uplink_packet(frame.centre, &frame.station, frame.password, frame.function, (2, 2), tail),
    ];
    // On its own, a packet is refused with a reason.
    assert!(decode(&packets[1])[0].contains("packet 2 of 2 of a multi-packet frame"), "{:?}", decode(&packets[1]));
    let mut r = Reassembler::new(Limits::default());
    let mut gave_up = Vec::new();
    assert_eq!(r.offer(Protocol::Sl651, &packets[1], 0, &mut gave_up), Offered::Replaced(Vec::new()));
    let Offered::Replaced(whole) = r.offer(Protocol::Sl651, &packets[0], 1, &mut gave_up) else { panic!() };
    assert_eq!(whole, bytes, "the original frame, byte for byte");
    assert_eq!(decode(&whole), expected);
    assert_eq!(r.offer(Protocol::Sl651, &bytes, 2, &mut gave_up), Offered::Whole);
    // As hex text (how some gateways publish over MQTT), with a label before each frame.
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    let text = format!("p2 {}\n", hex(&packets[1]));
    assert_eq!(r.offer(Protocol::Sl651, text.as_bytes(), 3, &mut gave_up), Offered::Replaced(Vec::new()));
    let text = format!("p1 {}\nwhole {}\n", hex(&packets[0]), hex(&bytes));
    let Offered::Replaced(lines) = r.offer(Protocol::Sl651, text.as_bytes(), 4, &mut gave_up) else { panic!() };
    let lines = String::from_utf8(lines).unwrap();
    // The completed set where its last packet was, then the whole frame as it came.
    assert_eq!(lines, format!("{}\nwhole {}\n", hex(&bytes), hex(&bytes)));
    let decoded = decode(lines.as_bytes());
    assert_eq!(decoded.len(), 2 * expected.len());
    assert!(gave_up.is_empty(), "{gave_up:?}");
}

proptest! {
    /// Any split of the CP into parts, any arrival order, any packets between: the readings
    /// of the unsplit packet, nothing given up.
    #[test]
    fn any_split_in_any_order_gives_the_readings_of_the_whole(
        parts in 2usize..6,
        order in prop::collection::vec(any::<prop::sample::Index>(), 6),
        modbus in prop::bool::ANY,
    ) {
        let (fields, items) = air_packet();
        let expected = readings(encode(&format!("{fields}CP=&&{}&&", items.join(";"))).as_bytes());
        let crc = if modbus { CrcKind::ModbusLowFirst } else { CrcKind::Standard };
        let mut pending = split(&fields, &items, parts, crc);
        let mut r = Reassembler::new(Limits::default());
        let mut gave_up = Vec::new();
        let mut decoded = Vec::new();
        let mut choices = order.iter();
        while !pending.is_empty() {
            let i = choices.next().map_or(0, |c| c.index(pending.len()));
            let part = pending.remove(i);
            match r.offer(Protocol::Hj212, part.as_bytes(), 0, &mut gave_up) {
                Offered::Replaced(bytes) => decoded.extend(bytes),
                Offered::Whole => prop_assert!(false, "a part passed whole"),
            }
        }
        prop_assert!(gave_up.is_empty());
        prop_assert_eq!(readings(&decoded), expected);
    }
}

use super::*;
use crate::normalise::{Decoder, Limits, Normaliser};
use crate::station::Registry;
use crate::time::TimeFormat;
use proptest::prelude::*;
use std::sync::Arc;

const NOW: i64 = 1_764_000_000_000;

fn registry() -> Arc<Registry> {
    Arc::new(
        Registry::from_toml_str(
            r#"
            [[station]]
            id = "LX"
            name = "Lanxi"
            domain = "water"
            location = [119.46, 29.21]
            region = "330781"
            [[station]]
            id = "63201500"
            name = "Tonglu"
            domain = "water"
            location = [119.68, 29.79]
            region = "330122"
            "#,
        )
        .unwrap(),
    )
}

fn run(mapping: JsonMapping, payload: &[u8]) -> (Vec<crate::Reading>, Vec<Rejection>) {
    let decoder = Decoder::Json(mapping.into_decoder().unwrap());
    let normaliser = Normaliser::new(registry(), Limits::default());
    let mut out = Vec::new();
    let rejected = normaliser.decode_into(&decoder, payload, NOW, &mut out);
    (out, rejected)
}

#[test]
fn single_object_with_unit_conversion_and_epoch_ms() {
    let (ok, bad) = run(
        JsonMapping::default(),
        br#"{"station":"LX","quantity":"water_level","value":2950,"unit":"cm","time":1763999990000,"extra":{"a":[1,2]}}"#,
    );
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(ok.len(), 1);
    assert!((ok[0].value - 29.5).abs() < 1e-9);
    assert_eq!(ok[0].time, 1_763_999_990_000);
}

#[test]
fn batch_array_with_custom_field_names_fixed_quantity_and_rfc3339() {
    let mapping = JsonMapping {
        station: "stcd".into(),
        value: "z".into(),
        time: "tm".into(),
        fixed_quantity: Some(Quantity::WaterLevel),
        ..JsonMapping::default()
    };
    let (ok, bad) = run(
        mapping,
        br#"[{"stcd":63201500,"z":"12.5","tm":"2025-11-24T15:59:00Z"},{"stcd":"LX","z":3.25,"tm":"2025-11-24T23:59:30+08:00"}]"#,
    );
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0].value, 12.5);
    assert_eq!(ok[0].time, 1_763_999_940_000);
    assert_eq!(ok[1].time, 1_763_999_970_000);
}

#[test]
fn local_time_in_the_mapping_zone() {
    let mapping = JsonMapping { time_format: TimeFormat::Local, ..JsonMapping::default() };
    let (ok, bad) = run(mapping, br#"{"station":"LX","quantity":"rainfall","value":1.5,"time":"2025-11-25 00:00:00"}"#);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(crate::time::to_rfc3339(ok[0].time), "2025-11-24T16:00:00.000Z");
}

#[test]
fn each_bad_record_says_what_and_where_and_the_good_ones_survive() {
    let (ok, bad) = run(
        JsonMapping::default(),
        br#"[{"station":"LX","quantity":"water_level","value":3.1},
            {"station":"LX","quantity":"water_level"},
            {"station":"NOPE","quantity":"water_level","value":1},
            {"station":"LX","quantity":"tide","value":1},
            {"station":"LX","quantity":"water_level","value":1,"unit":"ug/m3"},
            {"station":"LX","quantity":"rainfall","value":-5},
            {"station":"LX","quantity":"water_level","value":1,"time":9999999999999},
            17]"#,
    );
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].time, NOW, "a record without time is stamped on receipt");
    let kinds: Vec<_> = bad.iter().map(|r| r.kind()).collect();
    assert_eq!(
        kinds,
        [
            "undecodable",
            "unknown_station",
            "unknown_quantity",
            "unknown_unit",
            "out_of_range",
            "from_the_future",
            "undecodable"
        ]
    );
    assert_eq!(bad[0].to_string(), "undecodable: record 1: missing field \"value\" (value)");
    assert_eq!(bad[6].to_string(), "undecodable: record 7: expected an object, found a number");
}

#[test]
fn not_json_at_all_gives_one_rejection_with_position() {
    let (ok, bad) = run(JsonMapping::default(), b"{\"station\": \"LX\",\n \"value\": 1.0,, }");
    assert!(ok.is_empty());
    assert_eq!(bad.len(), 1);
    assert!(bad[0].to_string().contains("line 2 column"), "{}", bad[0]);
}

#[test]
fn a_mapping_with_a_bad_zone_or_clashing_fields_is_refused() {
    assert!(JsonMapping { time_zone: "Mars/Olympus".into(), ..Default::default() }.into_decoder().is_err());
    assert!(JsonMapping { value: "station".into(), ..Default::default() }.into_decoder().is_err());
}

#[test]
fn an_empty_batch_is_nothing_not_an_error() {
    // Found by the json_decode fuzz target, which expected an outcome for every payload.
    assert_eq!(run(JsonMapping::default(), b"[] "), (vec![], vec![]));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let (ok, bad) = run(JsonMapping::default(), &payload);
        let empty_batch = matches!(serde_json::from_slice::<serde_json::Value>(&payload), Ok(serde_json::Value::Array(a)) if a.is_empty());
        prop_assert!(ok.len() + bad.len() >= 1 || empty_batch);
    }

    #[test]
    fn encoded_records_decode_to_the_same_values(
        level in -100.0f64..9000.0,
        time in 1_000_000_000_000i64..1_764_000_000_000,
        batch in 1usize..5,
    ) {
        let record = serde_json::json!({"station": "LX", "quantity": "water_level", "value": level, "time": time});
        let doc = serde_json::Value::Array(vec![record; batch]);
        let (ok, bad) = run(JsonMapping::default(), doc.to_string().as_bytes());
        prop_assert!(bad.is_empty());
        prop_assert_eq!(ok.len(), batch);
        for r in ok {
            prop_assert_eq!(r.value, level);
            prop_assert_eq!(r.time, time);
        }
    }
}

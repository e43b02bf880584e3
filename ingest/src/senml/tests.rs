//! SenML against the RFC 8428 examples in `tests/data/senml/` (copied from
//! core-wg/senml-spec, the RFC's source) and their generated resolved forms.

use super::*;
use crate::quantity::Quantity;
use proptest::prelude::*;
use serde_json::Value;

fn example(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/senml/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn every_example_resolves_to_its_resolved_form() {
    for n in 1..=12 {
        let Ok(text) =
            std::fs::read(format!("{}/tests/data/senml/ex{n}.gen.resolved.json", env!("CARGO_MANIFEST_DIR")))
        else {
            continue;
        };
        let expected: Vec<Value> = serde_json::from_slice::<Vec<Value>>(&text).unwrap();
        // Relative times were resolved against the generator's clock: take it from the
        // resolved form (every expected time there is absolute).
        let now = expected[0]["t"].as_f64().unwrap();
        let resolved = resolve(&example(&format!("ex{n}.json")), now).unwrap();
        let mut got: Vec<Value> = resolved.iter().map(Resolved::to_json).collect();
        if n == 7 {
            // The generator left out the data-value record ("vd"); it must still resolve.
            let vd = got.pop().unwrap();
            assert_eq!(vd["n"], "urn:dev:ow:10e2073a01080063:nfv-reader");
            assert_eq!(vd["vd"], "aGkgCg");
        }
        assert_eq!(got.len(), expected.len(), "ex{n}");
        for (g, e) in got.iter().zip(&expected) {
            for key in ["n", "u", "vs", "vb", "l"] {
                assert_eq!(g.get(key), e.get(key), "ex{n} field {key}: {g} vs {e}");
            }
            for key in ["t", "v"] {
                match (g.get(key).and_then(Value::as_f64), e.get(key).and_then(Value::as_f64)) {
                    (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "ex{n} {key}: {a} vs {b}"),
                    (a, b) => assert_eq!(a, b, "ex{n} {key}"),
                }
            }
        }
    }
}

#[test]
fn example_13_has_sub_second_relative_offsets() {
    let r = resolve(&example("ex13.json"), 0.0).unwrap();
    assert_eq!(r.len(), 4);
    assert!((r[2].time - 1.3200784291e9).abs() < 1e-3);
    assert_eq!(r[2].unit.as_deref(), Some("/"));
}

#[test]
fn must_understand_fields_and_broken_packs_are_errors() {
    let err = |s: &str| resolve(s.as_bytes(), 0.0).unwrap_err().to_string();
    assert_eq!(
        err(r#"[{"n":"a","v":1,"foo_":2}]"#),
        "record 0: field \"foo_\" ends in '_' and must be understood, but is not known"
    );
    assert_eq!(err(r#"[{"n":"a"}]"#), "record 0: no value (v, vs, vb, vd) and no sum (s)");
    assert_eq!(err(r#"[{"n":"-a","v":1}]"#), "record 0: resolved name \"-a\" is not a valid SenML name");
    assert_eq!(err(r#"[{"n":"a","v":"1"}]"#), "record 0: field \"v\" must be a number");
    assert_eq!(err(r#"{"n":"a","v":1}"#), "a SenML pack is a JSON array of records");
    assert_eq!(err(r#"[{"bver":11,"n":"a","v":1}]"#), "record 0: bver 11 is newer than this resolver understands (10)");
    assert!(err("[").starts_with("not JSON"));
}

#[test]
fn readings_by_measurement_name_or_by_unit() {
    let decoder = SenmlDecoder::default();
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let now = 1_700_000_000_000;
    for ex in ["ex2.json", "ex6.json", "ex4.json"] {
        let payload = example(ex);
        decoder.decode(&payload, now, &mut |r| match r {
            Ok(r) => {
                ok.push((r.station.into_owned(), r.quantity, r.value, r.unit.map(|u| u.into_owned()), r.time.unwrap()))
            }
            Err(e) => bad.push(e),
        });
    }
    // ex2: voltage maps to a quantity; current has none and is kept as a raw one.
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(ok[0], ("urn:dev:ow:10e2073a01080063".into(), Quantity::SupplyVoltage, 120.1, Some("V".into()), now));
    let current: Quantity = "senml:current".parse().unwrap();
    assert_eq!(ok[1], ("urn:dev:ow:10e2073a01080063".into(), current, 1.2, Some("A".into()), now));
    // ex6: two stations, temperature and humidity each.
    let t = 1_320_078_429_000;
    assert_eq!(ok[2], ("2001:db8::2".into(), Quantity::AirTemperature, 25.2, Some("Cel".into()), t));
    assert_eq!(ok[5], ("2001:db8::1".into(), Quantity::Humidity, 67.0, Some("%RH".into()), t));
    // ex4: the name is the station, the unit says humidity; 12 readings 10 s apart at first.
    let humidity: Vec<_> =
        ok.iter().filter(|r| r.0 == "urn:dev:ow:10e2073a01080063" && r.1 == Quantity::Humidity).collect();
    assert_eq!(humidity.len(), 12);
    assert_eq!(humidity[1].4 - humidity[0].4, 10_000);
    assert!(Quantity::AirTemperature.conversion_from("Cel").is_some());
}

proptest! {
    #[test]
    fn any_bytes_are_an_answer_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = resolve(&bytes, 0.0);
    }

    /// A pack written with base fields resolves to the values and times it was written from.
    #[test]
    fn base_fields_round_trip(bt in 1.0e9f64..2.0e9, bv in -100.0f64..100.0, vs in proptest::collection::vec((-50.0f64..50.0, 0u32..1000), 1..10)) {
        let mut records = vec![serde_json::json!({"bn": "dev:", "bt": bt, "bv": bv, "bu": "m", "n": "level", "v": 0.0})];
        for (v, dt) in &vs {
            records.push(serde_json::json!({"n": "level", "v": v, "t": dt}));
        }
        let pack = serde_json::to_vec(&records).unwrap();
        let r = resolve(&pack, 0.0).unwrap();
        prop_assert_eq!(r.len(), vs.len() + 1);
        for (rec, (v, dt)) in r[1..].iter().zip(&vs) {
            prop_assert_eq!(rec.name.as_str(), "dev:level");
            prop_assert_eq!(rec.unit.as_deref(), Some("m"));
            prop_assert!((rec.value.unwrap() - (bv + v)).abs() < 1e-9);
            prop_assert!((rec.time - (bt + *dt as f64)).abs() < 1e-6);
        }
    }
}

//! The mapped-JSON decoder never panics, and every payload gives at least one outcome
//! (reading or rejection), except an empty batch array, which holds nothing to lose.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tidewatch_ingest::json::JsonMapping;

fuzz_target!(|data: &[u8]| {
    let decoder = JsonMapping::default().into_decoder().unwrap();
    let mut outcomes = 0;
    decoder.decode(data, &mut |_| outcomes += 1);
    let empty_batch =
        matches!(serde_json::from_slice::<serde_json::Value>(data), Ok(serde_json::Value::Array(a)) if a.is_empty());
    assert!(outcomes >= 1 || empty_batch);
});

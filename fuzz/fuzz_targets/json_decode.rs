//! The mapped-JSON decoder never panics and gives at least one outcome per payload.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tidewatch_ingest::json::JsonMapping;

fuzz_target!(|data: &[u8]| {
    let decoder = JsonMapping::default().into_decoder().unwrap();
    let mut outcomes = 0;
    decoder.decode(data, &mut |_| outcomes += 1);
    assert!(outcomes >= 1);
});

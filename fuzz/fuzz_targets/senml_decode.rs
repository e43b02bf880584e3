//! SenML resolution and mapping never panic; resolved names are valid SenML names.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tidewatch_ingest::senml::{resolve, SenmlDecoder};

fuzz_target!(|data: &[u8]| {
    if let Ok(records) = resolve(data, 1.7e9) {
        for r in records {
            assert!(!r.name.is_empty());
        }
    }
    SenmlDecoder::default().decode(data, 1_700_000_000_000, &mut |_| {});
});

//! Any bytes (as a binary frame, as hex text, and re-framed with a valid CRC so the body
//! parser is reached) give readings or reasons, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tidewatch_ingest::sl651::{encode_uplink, Frame, Sl651Decoder};

fuzz_target!(|data: &[u8]| {
    let decoder = Sl651Decoder::default();
    decoder.decode(data, &mut |r| {
        if let Ok(reading) = r {
            assert!(reading.value.is_finite());
        }
    });
    if data.len() <= 4095 {
        let framed = encode_uplink(1, "0011223344", 0x1234, 0x32, data);
        assert!(Frame::parse(&framed).is_ok(), "a frame we encode must parse");
        decoder.decode(&framed, &mut |_| {});
    }
});

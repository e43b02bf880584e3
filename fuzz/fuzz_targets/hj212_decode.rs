//! Any bytes given to the HJ 212 decoder give readings or reasons, never a panic; every
//! reading it gives is finite.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tidewatch_ingest::hj212::{Hj212Decoder, Packet};

fuzz_target!(|data: &[u8]| {
    let mut outcomes = 0;
    Hj212Decoder::default().decode(data, &mut |r| {
        outcomes += 1;
        if let Ok(reading) = r {
            assert!(reading.value.is_finite());
        }
    });
    if let Ok(packet) = Packet::parse(data) {
        for item in packet.items() {
            let _ = item;
        }
        let answer = tidewatch_ingest::hj212::answer_9014(&packet);
        assert!(Packet::parse(answer.as_bytes()).is_ok(), "our own answer must parse");
    }
    let _ = outcomes;
    // Random bytes rarely pass the CRC: also frame them with a valid one, so the field and
    // CP parsers are reached.
    if let Ok(text) = std::str::from_utf8(data) {
        if text.len() <= 1024 && !text.contains(['\r', '\n']) {
            let framed = tidewatch_ingest::hj212::encode(text);
            Hj212Decoder::default().decode(framed.as_bytes(), &mut |_| {});
        }
    }
});

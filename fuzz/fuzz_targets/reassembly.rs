//! Any sequence of payloads offered to the reassembler (split HJ 212 packets and SL 651
//! multi-packet frames among garbage) never panics, and what it holds stays within its
//! limits: every set it gives up on or completes leaves it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tidewatch_ingest::reassembly::{Limits, Offered, Protocol, Reassembler};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_wait_ms: 1_000, max_bytes: 4096, max_sets: 8, max_sets_per_station: 4 };
    let mut r = Reassembler::new(limits);
    let mut gave_up = Vec::new();
    // Payloads separated by 0xFF; the first byte of each picks the protocol.
    for (i, payload) in data.split(|&b| b == 0xFF).enumerate() {
        let Some((&which, payload)) = payload.split_first() else { continue };
        let protocol = if which % 2 == 0 { Protocol::Hj212 } else { Protocol::Sl651 };
        // Valid HJ 212 framing around the text, so split packets are reached.
        let framed;
        let payload = match (protocol, std::str::from_utf8(payload)) {
            (Protocol::Hj212, Ok(text)) if !text.contains(['\r', '\n']) && text.len() < 2048 => {
                framed = tidewatch_ingest::hj212::encode(text).into_bytes();
                &framed[..]
            }
            _ => payload,
        };
        match r.offer(protocol, payload, i as i64 * 100, &mut gave_up) {
            Offered::Whole | Offered::Replaced(_) => {}
        }
        assert!(r.waiting() <= limits.max_sets);
        gave_up.extend(r.expire(i as i64 * 100));
    }
});

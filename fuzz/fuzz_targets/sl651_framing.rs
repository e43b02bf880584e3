//! The sl651 stream framer accounts for every byte and never stalls (see `check_framer`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tidewatch_ingest::framing::scan_sl651;

fuzz_target!(|input: (u8, Vec<u8>)| tidewatch_fuzz::check_framer(scan_sl651, input.0, &input.1));

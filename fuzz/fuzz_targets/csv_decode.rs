//! The CSV decoder never panics; every data row of a payload whose header names the mapped
//! columns gives exactly one outcome (reading or rejection), and the `str` path of JSON
//! lines agrees with the byte path.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tidewatch_ingest::json::JsonMapping;

fuzz_target!(|data: &[u8]| {
    let decoder = JsonMapping::default().into_decoder().unwrap();
    let mut outcomes = 0usize;
    decoder.decode_csv(data, &mut |_| outcomes += 1);
    if let Ok(text) = std::str::from_utf8(data) {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        if let Some(header) = lines.next() {
            let columns: Vec<&str> = header.trim_start_matches('\u{feff}').split(',').map(str::trim).collect();
            if !header.contains('"') && columns.contains(&"station") && columns.contains(&"value") {
                assert_eq!(outcomes, lines.count());
            }
        }
        let mut by_bytes = Vec::new();
        decoder.decode(data, &mut |r| by_bytes.push(r.map(|r| r.into_owned()).map_err(|e| e.to_string())));
        let mut by_str = Vec::new();
        decoder.decode_str(text, &mut |r| by_str.push(r.map(|r| r.into_owned()).map_err(|e| e.to_string())));
        assert_eq!(by_bytes, by_str);
    }
});

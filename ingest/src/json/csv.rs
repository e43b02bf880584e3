//! CSV records with the JSON decoder's mapping: the header names the columns.
//!
//! Fields without quotes are borrowed from the payload; a quoted field (RFC 4180: `""` is a
//! quote) is unescaped into its own string. Every row is one record, refused alone.

use std::borrow::Cow;

use super::visitor::{Ctx, Record, Scalar};
use super::{JsonMapping, RawReading};
use crate::dead_letter::Rejection;

pub(super) fn decode<'a>(
    mapping: &'a JsonMapping,
    zone: chrono_tz::Tz,
    payload: &'a [u8],
    emit: &mut dyn FnMut(Result<RawReading<'a>, Rejection>),
) {
    let Ok(text) = std::str::from_utf8(payload) else {
        emit(Err(Rejection::Undecodable { message: "CSV: not UTF-8".into() }));
        return;
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else { return };
    let columns: Vec<Cow<str>> = split(header.trim_start_matches('\u{feff}'));
    let find = |name: &str| columns.iter().position(|c| c.trim() == name);
    let station = find(&mapping.station);
    let quantity = if mapping.fixed_quantity.is_some() { None } else { find(&mapping.quantity) };
    let value = find(&mapping.value);
    let unit = find(&mapping.unit);
    let time = find(&mapping.time);
    if station.is_none() || value.is_none() {
        let missing = if station.is_none() { &mapping.station } else { &mapping.value };
        emit(Err(Rejection::Undecodable { message: format!("CSV: no column {missing:?} in the header {header:?}") }));
        return;
    }
    let ctx = Ctx { mapping, zone };
    for (row, line) in lines.enumerate() {
        let cells = split(line);
        if cells.len() != columns.len() {
            emit(Err(Rejection::Undecodable {
                message: format!("CSV row {}: {} cells, the header has {}", row + 1, cells.len(), columns.len()),
            }));
            continue;
        }
        let mut cells: Vec<Option<Cow<'a, str>>> = cells.into_iter().map(Some).collect();
        let mut take = |index: Option<usize>| {
            let cell = index.and_then(|i| cells[i].take())?;
            (!cell.trim().is_empty()).then_some(Scalar::Str(cell))
        };
        let record = Record {
            station: take(station),
            quantity: take(quantity),
            value: take(value),
            unit: take(unit),
            time: take(time),
        };
        let reading = record.into_reading(&ctx, Some(row + 1)).map_err(|e| match e {
            Rejection::Undecodable { message } => Rejection::Undecodable { message: format!("CSV {message}") },
            other => other,
        });
        emit(reading);
    }
}

/// Cuts one line into cells.
fn split(line: &str) -> Vec<Cow<'_, str>> {
    if !line.contains('"') {
        return line.split(',').map(Cow::Borrowed).collect();
    }
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(Cow::Owned(std::mem::take(&mut cell))),
            (c, _) => cell.push(c),
        }
    }
    cells.push(Cow::Owned(cell));
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(mapping: &JsonMapping, payload: &str) -> Vec<Result<RawReading<'static>, String>> {
        let decoder = mapping.clone().into_decoder().unwrap();
        let mut out = Vec::new();
        decoder.decode_csv(payload.as_bytes(), &mut |r| out.push(r.map(|r| r.into_owned()).map_err(|e| e.to_string())));
        out
    }

    #[test]
    fn rows_decode_with_the_mapping_and_bad_rows_are_refused_alone() {
        let mapping = JsonMapping {
            station: "stcd".into(),
            quantity: "q".into(),
            value: "z".into(),
            time: "tm".into(),
            time_format: crate::time::TimeFormat::Local,
            ..JsonMapping::default()
        };
        let csv = "stcd,tm,q,z\n63305000,2024-06-20 08:00:00,water_level,5.12\n63305000,2024-06-20 09:00:00,water_level,oops\n\"63305000\",\"2024-06-20 10:00:00\",water_level,5.3\n63305000,1\n";
        let out = decode_all(&mapping, csv);
        assert_eq!(out.len(), 4, "{out:?}");
        let first = out[0].as_ref().unwrap();
        assert_eq!(first.station, "63305000");
        assert_eq!(first.value, 5.12);
        // 08:00 in Shanghai is 00:00 UTC.
        assert_eq!(first.time, Some(1_718_841_600_000));
        assert!(out[1].as_ref().unwrap_err().contains("CSV record 2"), "{:?}", out[1]);
        assert_eq!(out[2].as_ref().unwrap().value, 5.3);
        assert!(out[3].as_ref().unwrap_err().contains("2 cells"), "{:?}", out[3]);
    }

    #[test]
    fn a_header_without_the_value_column_is_one_clear_error() {
        let out = decode_all(&JsonMapping::default(), "station,level\nA,1\n");
        assert_eq!(out.len(), 1);
        assert!(out[0].as_ref().unwrap_err().contains("no column \"value\""), "{out:?}");
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let decoder = JsonMapping::default().into_decoder().unwrap();
            decoder.decode_csv(&bytes, &mut |_| {});
        }

        #[test]
        fn quoted_cells_round_trip(cells in proptest::collection::vec("[a-z,\" ]{0,8}", 1..6)) {
            let line: Vec<String> = cells.iter().map(|c| format!("\"{}\"", c.replace('"', "\"\""))).collect();
            let split: Vec<String> = split(&line.join(",")).into_iter().map(|c| c.into_owned()).collect();
            prop_assert_eq!(split, cells);
        }
    }
}

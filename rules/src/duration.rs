//! Durations as rule files write them: `90s`, `10m`, `1h30m`, `2d`, `500ms`.

/// Milliseconds from a duration string, or a message saying what is wrong.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad =
        || format!("bad duration {text:?}: expected numbers with units ms, s, m, h or d, such as \"10m\" or \"1h30m\"");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(0);
    }
    let bytes = s.as_bytes();
    let mut total: i64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let number: i64 = s[start..i].parse().map_err(|_| bad())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit_ms = match &s[unit_start..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        total = number.checked_mul(unit_ms).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    Ok(total)
}

/// The shortest way to write `ms` back, e.g. `5400000` → `1h30m`.
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compound_durations() {
        assert_eq!(parse_duration("10m"), Ok(600_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("250ms"), Ok(250));
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        for bad in ["10", "10x", "m", "", "1h 30m", "-5m", "99999999999999999999d"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("expected numbers with units"), "{bad}: {err}");
        }
    }

    proptest! {
        #[test]
        fn format_and_parse_round_trip(ms in 0i64..10_000_000_000) {
            prop_assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
        }

        #[test]
        fn any_text_is_an_answer_not_a_panic(s in ".{0,20}") {
            let _ = parse_duration(&s);
        }
    }
}

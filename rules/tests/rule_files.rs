//! Rule files as analysts write them, and the errors they get back.

use tidewatch_ingest::Registry;
use tidewatch_rules::file::Direction;
use tidewatch_rules::{compile, RuleSource, Severity};

fn registry() -> Registry {
    Registry::from_toml_str(
        r#"
        [[station]]
        id = "LX"
        name = "Lanxi"
        domain = "water"
        location = [119.46, 29.21]
        region = "330781"
        basin = "qiantang"
        attributes = { warning_level = 28.0, guarantee_level = 30.5 }

        [[station]]
        id = "TL"
        name = "Tonglu"
        domain = "water"
        location = [119.68, 29.79]
        region = "330122"
        basin = "qiantang"
        attributes = { warning_level = 9.0, guarantee_level = 8.5 }

        [[station]]
        id = "RAIN1"
        name = "Rain gauge"
        domain = "water"
        location = [119.9, 29.9]
        region = "330122"
        "#,
    )
    .unwrap()
}

fn source(text: &str) -> Vec<RuleSource> {
    vec![RuleSource { name: "flood.toml".into(), text: text.into() }]
}

fn errors(text: &str) -> Vec<String> {
    match compile(&source(text), &registry()) {
        Ok(_) => Vec::new(),
        Err(diags) => diags.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn the_example_rule_compiles_with_per_station_thresholds() {
    let set = compile(
        &source(
            r#"
[[rule]]
id = "water.level.warning"
title = "{station.name} water level above warning"
select = { domain = "water", quantity = "water_level", region = "3307" }
kind = "threshold"
for = "10m"
clear_margin = 0.05
levels = [
  { severity = "yellow", above = "station.warning_level" },
  { severity = "orange", above = "station.guarantee_level" },
  { severity = "red",    above = "station.guarantee_level + 0.5" },
]
labels = { team = "flood" }
"#,
        ),
        &registry(),
    )
    .unwrap();
    let rule = &set.rules[0];
    assert_eq!(rule.spec.for_ms, 600_000);
    assert_eq!(rule.spec.direction, Direction::Above);
    assert_eq!(rule.severities, [Severity::Yellow, Severity::Orange, Severity::Red]);
    // Only Lanxi is in region 3307.
    assert_eq!(rule.station_count(), 1);
    let lx = rule.ladder(registry().key_of("LX").unwrap()).unwrap();
    assert_eq!((lx.threshold(0), lx.threshold(1), lx.threshold(2)), (28.0, 30.5, 31.0));
    assert_eq!(rule.spec.labels["team"], "flood");
}

#[test]
fn every_error_is_reported_with_its_line_and_column() {
    let text = r#"[[rule]]
id = "a"
kind = "threshold"
select = { quantity = "water_levle", domian = "water" }
for = "10 minutes"
clear_margin = -1
levels = [
  { severity = "orange", above = "station.warning_lvl" },
  { severity = "yellow", above = 3 },
  { severity = "purple", above = 4 },
]
titel = "x"

[[rule]]
id = "a"
kind = "treshold"
select = { quantity = "rainfall" }
levels = [{ severity = "red", above = "station.guarantee_level +" }]
"#;
    let got = errors(text);
    let expected = [
        "flood.toml:4:23: unknown quantity \"water_levle\" (did you mean \"water_level\"?)",
        "flood.toml:4:38: unknown field `domian` in `select` (did you mean `domain`?)",
        "flood.toml:5:7: `for`: bad duration \"10 minutes\": expected numbers with units ms, s, m, h or d, such as \"10m\" or \"1h30m\"",
        "flood.toml:6:16: `clear_margin` must not be negative, not -1",
        "flood.toml:9:16: ladder out of order: yellow after orange (list levels from least to most severe: blue, yellow, orange, red; each once)",
        "flood.toml:10:16: unknown severity \"purple\" (expected blue, yellow, orange or red)",
        "flood.toml:12:1: unknown field `titel` in a threshold rule (did you mean `title`?)",
        "flood.toml:16:8: unknown rule kind \"treshold\": did you mean \"threshold\"? supported kinds: threshold, rate, window, missing, anomaly, forecast, quality",
        "flood.toml:18:65: in threshold \"station.guarantee_level +\": expected a number or station.<attribute>",
    ];
    assert_eq!(got, expected);
}

#[test]
fn registry_errors_point_at_the_rule_text() {
    let text = r#"[[rule]]
id = "b"
kind = "threshold"
select = { quantity = "water_level", stations = ["LX", "LQ"] }
levels = [
  { severity = "yellow", above = "station.warning_lvl" },
]

[[rule]]
id = "c"
kind = "threshold"
select = { quantity = "water_level", basin = "qiantang" }
levels = [
  { severity = "yellow", above = "station.warning_level" },
  { severity = "orange", above = "station.guarantee_level" },
]
"#;
    let got = errors(text);
    assert_eq!(
        got,
        [
            "flood.toml:4:56: unknown station \"LQ\" in `select.stations` (did you mean \"LX\"?)",
            "flood.toml:6:34: unknown station attribute `station.warning_lvl`: did you mean station.warning_level?",
            "flood.toml:14:34: for station TL (Tonglu): ladder out of order: orange threshold 8.5 does not go beyond yellow threshold 9",
        ]
    );
}

#[test]
fn duplicate_ids_across_files_and_toml_syntax_errors() {
    let a = RuleSource {
        name: "a.toml".into(),
        text: "[[rule]]\nid = \"x\"\nkind = \"threshold\"\nselect = { quantity = \"rainfall\" }\nlevels = [{ severity = \"red\", above = 50 }]\n".into(),
    };
    let b = RuleSource { name: "b.toml".into(), text: a.text.clone() };
    let c = RuleSource { name: "c.toml".into(), text: "[[rule]\nid = 1\n".into() };
    let got: Vec<String> = compile(&[a, b, c], &registry()).unwrap_err().iter().map(|d| d.to_string()).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], "b.toml:2:6: duplicate rule id \"x\" (first defined at a.toml:2:6)");
    assert!(got[1].starts_with("c.toml:1:"), "{got:?}");
    assert!(got[1].contains("TOML syntax"), "{got:?}");
}

#[test]
fn planned_kinds_and_unknown_title_placeholders_are_explained() {
    let got = errors(
        r#"[[rule]]
id = "r"
title = "{station.nme} rain"
kind = "group"
select = { quantity = "rainfall" }
levels = [{ severity = "red", above = 100 }]
"#,
    );
    assert_eq!(
        got,
        [
            "flood.toml:3:10: unknown placeholder {station.nme} in title: did you mean {station.name}? known: station.name, station.id, station.region, station.basin, quantity, unit, value, threshold, severity, rule",
            "flood.toml:4:8: rule kind \"group\" is not supported yet (supported: threshold, rate, window, missing, anomaly, forecast, quality)",
        ]
    );
}

#[test]
fn rules_may_select_raw_quantities_by_protocol_name() {
    let set = compile(
        &source(
            "[[rule]]\nid = \"no\"\nkind = \"threshold\"\nselect = { quantity = \"hj212:a21003\" }\nlevels = [{ severity = \"yellow\", above = 100 }]\n",
        ),
        &registry(),
    )
    .unwrap();
    let q: tidewatch_ingest::Quantity = "hj212:a21003".parse().unwrap();
    assert_eq!(set.rules_for(q), [0]);
    assert_eq!(errors("[[rule]]\nid = \"x\"\nkind = \"threshold\"\nselect = { quantity = \"a21003\" }\nlevels = [{ severity = \"yellow\", above = 1 }]\n"),
        ["flood.toml:4:23: unknown quantity \"a21003\""]);
}

#[test]
fn below_ladders_must_decrease() {
    let got = errors(
        r#"[[rule]]
id = "do.low"
kind = "threshold"
select = { quantity = "dissolved_oxygen" }
levels = [{ severity = "yellow", below = 3 }, { severity = "red", below = 5 }]
"#,
    );
    assert_eq!(got, ["flood.toml:5:75: ladder out of order: red below 5 does not go beyond yellow below 3"]);
}

#[test]
fn the_shipped_example_rules_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let registry = Registry::load(&root.join("config/stations.toml")).unwrap();
    let sources = tidewatch_rules::read_sources(&[root.join("config/rules")]).unwrap();
    assert!(!sources.is_empty());
    let set = compile(&sources, &registry).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    assert!(set.rules.iter().all(|r| r.station_count() > 0));
}

mod robustness {
    use proptest::prelude::*;
    use tidewatch_rules::file::parse_file;

    const SAMPLE: &str = "[[rule]]\nid = \"a.b\"\nkind = \"threshold\"\nselect = { quantity = \"water_level\", domain = \"water\" }\nfor = \"10m\"\nclear_margin = 0.05\nlevels = [{ severity = \"yellow\", above = \"station.warning_level\" }, { severity = \"red\", above = 3 }]\n";

    proptest! {
        /// Any text gets an answer, never a panic, and every error points inside the file.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let (_, diags) = parse_file("x.toml", &text);
            let lines = text.split('\n').count();
            for d in diags {
                prop_assert!(d.line >= 1 && d.line <= lines, "{d}");
                prop_assert!(d.column >= 1);
            }
        }

        /// Mutating a valid file one character at a time never panics either.
        #[test]
        fn mutated_rule_files_never_panic(pos in 0usize..SAMPLE.len(), c in any::<char>()) {
            let mut text: Vec<char> = SAMPLE.chars().collect();
            let pos = pos.min(text.len() - 1);
            text[pos] = c;
            let text: String = text.into_iter().collect();
            let (rules, diags) = parse_file("x.toml", &text);
            prop_assert!(rules.len() + diags.len() >= 1);
        }
    }
}

#[test]
fn a_kinds_own_fields_are_checked_with_every_error_at_once() {
    let got = errors(
        r#"[[rule]]
id = "rain"
kind = "window"
select = { quantity = "rainfall" }
aggregate = "total"
step = "7m"
windw = "3h"
levels = [{ severity = "red", above = 100 }]

[[rule]]
id = "do"
kind = "anomaly"
select = { quantity = "dissolved_oxygen" }
method = "mad"
half_life = 12
side = "up"
levels = [{ severity = "yellow", above = 5 }]

[[rule]]
id = "silent"
kind = "missing"
select = { quantity = "water_level" }
expected = "5 minutes"
levels = [{ severity = "yellow", below = 3 }]
"#,
    );
    assert_eq!(
        got,
        [
            "flood.toml:3:8: a window rule needs `window` (e.g. window = \"3h\")",
            "flood.toml:5:13: unknown `aggregate` \"total\": expected one of: sum, mean, min, max, count",
            "flood.toml:7:1: unknown field `windw` in a window rule (did you mean `window`?)",
            "flood.toml:15:13: `half_life` is for method = \"ewma\"; mad uses `samples`",
            "flood.toml:16:8: unknown `side` \"up\": expected one of: both, high, low",
            "flood.toml:23:12: `expected`: bad duration \"5 minutes\": expected numbers with units ms, s, m, h or d, such as \"10m\" or \"1h30m\"",
        ]
    );
}

#[test]
fn a_missing_rule_counts_silence_upwards() {
    let got = errors(
        "[[rule]]\nid = \"s\"\nkind = \"missing\"\nselect = { quantity = \"water_level\" }\nexpected = \"5m\"\nlevels = [{ severity = \"yellow\", below = 3 }]\n",
    );
    assert_eq!(got, ["flood.toml:6:42: a missing rule's levels are silences: use `above` (e.g. above = 3 intervals)"]);
}

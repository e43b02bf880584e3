//! The command line as analysts and operators use it.

use std::process::Command;

fn tidewatch(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn rules_check_accepts_the_example_rules() {
    let (code, out) = tidewatch(&["rules", "check", "config/rules"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: 4 rules in 2 files"), "{out}");
    assert!(out.contains("water.level.warning (12 stations)"), "{out}");
}

#[test]
fn rules_check_prints_every_error_with_its_position_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[rule]]\nid = \"w\"\nkind = \"threshold\"\nselect = { quantity = \"water_level\" }\nfor = \"5 min\"\nlevels = [{ severity = \"amber\", above = \"station.warnig_level\" }]\n",
    )
    .unwrap();
    let path = bad.to_str().unwrap();
    let (code, out) = tidewatch(&["rules", "check", path, "--stations", "config/stations.toml"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{path}:5:7: error: `for`: bad duration \"5 min\"")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{path}:6:24: error: unknown severity \"amber\"")),
        "{out}"
    );
    assert!(out.contains("2 errors in 1 file"), "{out}");

    // With the severity fixed, the registry check finds the misspelt attribute.
    std::fs::write(
        &bad,
        "[[rule]]\nid = \"w\"\nkind = \"threshold\"\nselect = { quantity = \"water_level\" }\nlevels = [{ severity = \"yellow\", above = \"station.warnig_level\" }]\n",
    )
    .unwrap();
    let (code, out) = tidewatch(&["rules", "check", path, "--stations", "config/stations.toml"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{path}:5:42: error: unknown station attribute `station.warnig_level`: did you mean station.warning_level?")),
        "{out}"
    );
}

#[test]
fn run_refuses_a_config_with_a_typo_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    std::fs::write(
        &config,
        "stations = \"s.toml\"\nrules = [\"r\"]\n[engine]\nwrokers = 2\n",
    )
    .unwrap();
    let (code, out) = tidewatch(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown field `wrokers`"), "{out}");
    assert!(out.contains("line 4"), "{out}");
}

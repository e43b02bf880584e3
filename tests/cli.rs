//! The command line as analysts and operators use it.

use std::process::Command;

fn tidewatch(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn rules_check_accepts_the_example_rules() {
    let (code, out) = tidewatch(&["rules", "check", "config/rules"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: 10 rules in 3 files"), "{out}");
    assert!(out.contains("water.level.warning (12 stations, 12 send water_level)"), "{out}");
    // Stations declare what they measure: rain gauges are selected by the rate rule's
    // domain, but do not measure water levels.
    assert!(out.contains("water.level.rise (26 stations, 12 send water_level)"), "{out}");
    assert!(
        out.contains("note: rule \"water.level.rise\" selects 26 station(s), of which 14 declare they do not measure water_level"),
        "{out}"
    );
}

#[test]
fn the_example_rules_pass_their_unit_tests() {
    let tests: Vec<String> = std::fs::read_dir("config/rules")
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".test.toml"))
        .collect();
    assert!(!tests.is_empty());
    let args: Vec<&str> = ["rules", "test"].into_iter().chain(tests.iter().map(String::as_str)).collect();
    let (code, out) = tidewatch(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(!out.contains("\n0 passed"), "{out}");
}

#[test]
fn a_failing_rule_test_shows_a_diff_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::canonicalize("config/rules/flood.toml").unwrap();
    let stations = std::fs::canonicalize("config/stations.toml").unwrap();
    let test = dir.path().join("wrong.test.toml");
    std::fs::write(
        &test,
        format!(
            "rule_files = [{rules:?}]\nstations = {stations:?}\n\n[[test]]\nname = \"Lanxi\"\nstart = \"2025-06-20T08:00:00+08:00\"\ninterval = \"5m\"\nseries = {{ \"QT-LX/water_level\" = \"27 28.5x4\" }}\nexpect = [\"5m water.level.warning QT-LX/water_level fire yellow\"]\n"
        ),
    )
    .unwrap();
    let (code, out) = tidewatch(&["rules", "test", test.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    // `for = "10m"`: above 28 from 5m, so it fires at 15m, not 5m.
    assert!(out.contains("  - 5m water.level.warning QT-LX/water_level fire yellow"), "{out}");
    assert!(out.contains("  + 15m water.level.warning QT-LX/water_level fire yellow"), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
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
    assert!(out.contains(&format!("{path}:5:7: error: `for`: bad duration \"5 min\"")), "{out}");
    assert!(out.contains(&format!("{path}:6:24: error: unknown severity \"amber\"")), "{out}");
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
        out.contains(&format!(
            "{path}:5:42: error: unknown station attribute `station.warnig_level`: did you mean station.warning_level?"
        )),
        "{out}"
    );
}

#[test]
fn run_refuses_a_config_with_a_typo_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    std::fs::write(&config, "stations = \"s.toml\"\nrules = [\"r\"]\n[engine]\nwrokers = 2\n").unwrap();
    let (code, out) = tidewatch(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{}:4:1: unknown field `wrokers`", config.display())), "{out}");
}

/// Every problem of the configuration at once, each where it is, and then the duty
/// roster's: a user fixes them in one go.
#[test]
fn run_reports_every_config_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    std::fs::write(
        &config,
        "stations = \"s.toml\"\nrules = [\"r\"]\ncolour = \"blue\"\n[engine]\nwrokers = 2\nallowed_lateness = 5\n[http]\nlisten = \"127.0.0.1:0\"\nport = 80\n",
    )
    .unwrap();
    let (code, out) = tidewatch(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let path = config.display();
    assert!(out.contains("invalid configuration (4 problems)"), "{out}");
    for expected in [
        format!("{path}:3:1: unknown field `colour`"),
        format!("{path}:5:1: unknown field `wrokers`"),
        format!("{path}:6:20: invalid type: integer `5`, expected a string"),
        format!("{path}:9:1: unknown field `port`"),
    ] {
        assert!(out.contains(&expected), "{expected}\n{out}");
    }

    // Once the file reads: its semantic problems and the roster's, together.
    let duty = dir.path().join("duty.toml");
    std::fs::write(&duty, "[[member]]\nid = \"zhang\"\nname = \"张伟\"\nphone = 13800000001\nmail = \"x\"\n").unwrap();
    std::fs::write(
        &config,
        "stations = \"s.toml\"\nrules = [\"r\"]\n[engine]\nworkers = 0\n[alerting]\nduty = \"duty.toml\"\n",
    )
    .unwrap();
    let (code, out) = tidewatch(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("engine.workers must be 1 to 256, not 0"), "{out}");
    assert!(out.contains(&format!("{}:4:9: invalid type: integer `13800000001`", duty.display())), "{out}");
    assert!(out.contains(&format!("{}:5:1: unknown field `mail`", duty.display())), "{out}");
}

#[test]
fn decode_prints_readings_and_rejections_and_a_summary() {
    let packets: String =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ingest/tests/data/hj212_public_packets.tsv"))
            .unwrap()
            .lines()
            .map(|l| format!("{}\n", l.split('\t').nth(1).unwrap()))
            .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
        .args(["decode", "--format", "hj212", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), packets.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "rejections do not make it fail");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let readings: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("sensor").is_some()).collect();
    let rejected: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("rejected").is_some()).collect();
    // Packets 2, 3 and 11 carry 11 + 3 + 8 mapped values; 23 values in packets 3, 7, 8, 10
    // and 11 have codes outside the table and are kept as raw quantities; 4 packets fail
    // their CRC.
    assert_eq!((readings.len(), rejected.len()), (45, 4));
    assert!(readings.iter().any(|r| r["quantity"] == "hj212:a21003" && r["value"] == 101.94));
    assert_eq!(
        readings[4],
        &serde_json::json!({"sensor": "JLYP01_AIR01_0001/pm25", "station": "JLYP01_AIR01_0001", "quantity": "pm25",
            "value": 14.0, "unit": "ug/m3", "time": "2022-05-13T08:26:00.000Z", "quality": "good"})
    );
    assert!(rejected.iter().all(|r| r["rejected"] == "undecodable"));
    assert_eq!(rejected[0]["line"], 4);
    assert_eq!(String::from_utf8(out.stderr).unwrap().trim(), "11 inputs: 45 readings, 4 rejected");

    let (code, out) = tidewatch(&["decode", "--format", "sl651", "ingest/tests/data/sl651_frames.txt"]);
    assert_eq!(code, 0);
    assert!(out.contains("2 inputs: 22 readings, 0 rejected"), "{out}");
}

//! `tidewatch rules check`: what promtool is to Prometheus rule files.

use std::path::PathBuf;

use tidewatch_ingest::Registry;
use tidewatch_rules::compile::check_sources;
use tidewatch_rules::{compile, read_sources};

/// Checks rule files; prints every error as `file:line:column: message`. Returns whether
/// the files are valid.
pub fn rules_check(paths: &[PathBuf], stations: Option<PathBuf>) -> anyhow::Result<bool> {
    let sources = match read_sources(paths) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("{}: {}", d.file, d.message);
            return Ok(false);
        }
    };
    if sources.is_empty() {
        eprintln!(
            "no rule files found in {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        return Ok(false);
    }
    let stations = stations.or_else(|| Some(PathBuf::from("config/stations.toml")).filter(|p| p.exists()));
    let result = match &stations {
        Some(path) => {
            let registry = Registry::load(path)?;
            compile(&sources, &registry).map(|set| {
                for w in &set.warnings {
                    println!("{}: warning: {}", location(w), w.message);
                }
                for n in &set.notes {
                    println!("{}: note: {}", location(n), n.message);
                }
                set.rules
                    .iter()
                    .map(|r| {
                        let (sending, undeclared) = r.sending(&registry);
                        let watched = r.station_count();
                        let quantities: Vec<&str> = r.spec.select.quantities.iter().map(|q| q.name()).collect();
                        match (watched, undeclared) {
                            // Nobody says what they measure: only the selection is known.
                            (w, u) if u == w => format!("{} ({w} stations)", r.id),
                            (w, 0) => format!("{} ({w} stations, {sending} send {})", r.id, quantities.join("/")),
                            (w, u) => format!(
                                "{} ({w} stations, {sending} send {}, {u} do not say what they measure)",
                                r.id,
                                quantities.join("/")
                            ),
                        }
                    })
                    .collect::<Vec<_>>()
            })
        }
        None => {
            let (specs, diags) = check_sources(&sources);
            if diags.is_empty() {
                println!("note: no station registry (--stations FILE): station attributes and ladders per station not checked");
                Ok(specs.iter().map(|s| s.id.clone()).collect())
            } else {
                Err(diags)
            }
        }
    };
    match result {
        Ok(rules) => {
            println!("ok: {} rules in {} files: {}", rules.len(), sources.len(), rules.join(", "));
            Ok(true)
        }
        Err(diags) => {
            for d in &diags {
                println!("{}: error: {}", location(d), d.message);
            }
            let files: std::collections::BTreeSet<&str> = diags.iter().map(|d| d.file.as_str()).collect();
            println!("{} error{} in {} file{}", diags.len(), plural(diags.len()), files.len(), plural(files.len()));
            Ok(false)
        }
    }
}

/// Runs rule unit tests; prints each failure with its diff and a summary line. Returns
/// whether every test passed.
pub fn rules_test(files: &[PathBuf]) -> bool {
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in files {
        match tidewatch_rules::unit_test::run_file(file) {
            Ok(report) => {
                for name in &report.passed {
                    println!("ok: {}: {name}", file.display());
                }
                for (name, why) in &report.failed {
                    println!("FAILED: {}: {name}\n{why}", file.display());
                }
                passed += report.passed.len();
                failed += report.failed.len();
            }
            Err(e) => {
                println!("FAILED: {e}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    failed == 0
}

fn location(d: &tidewatch_rules::file::Diagnostic) -> String {
    format!("{}:{}:{}", d.file, d.line, d.column)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

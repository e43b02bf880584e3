//! Rules meet the station registry: per-station thresholds, resolved once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tidewatch_ingest::{Quantity, Registry, SensorKey, Station};

use crate::eval::ladder::{Ladder, LadderParams};
use crate::eval::KindSpec;
use crate::file::{did_you_mean, parse_file, Diagnostic, Direction, RuleSpec};
use crate::Severity;

/// A rule ready to evaluate.
#[derive(Clone, Debug)]
pub struct CompiledRule {
    pub id: Arc<str>,
    pub spec: RuleSpec,
    pub params: LadderParams,
    /// The ladder's colours, least severe first.
    pub severities: Vec<Severity>,
    /// Thresholds per station key; `None` where the rule does not apply.
    pub ladders: Vec<Option<Ladder>>,
}

impl CompiledRule {
    pub fn ladder(&self, station: tidewatch_ingest::StationKey) -> Option<&Ladder> {
        self.ladders.get(station.0 as usize)?.as_ref()
    }

    /// Whose alert a reading of `sensor` concerns: the sensor, or for a `missing` rule with
    /// `per = "station"` the station (under the rule's first quantity).
    #[inline]
    pub fn alert_key(&self, sensor: SensorKey) -> SensorKey {
        match &self.spec.kind {
            KindSpec::Missing(m) if m.per_station => SensorKey::new(sensor.station, self.spec.select.quantities[0]),
            _ => sensor,
        }
    }

    /// What a rule's per-key state means, as a short hash: its kind and parameters, its
    /// ladder (colours, thresholds, `for`, `clear_for`, hysteresis, direction) and its
    /// quantities — not its title, labels or place in the file. Rule state checkpointed under
    /// another fingerprint is discarded at start-up.
    pub fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let s = &self.spec;
        let levels: Vec<_> = s.levels.iter().map(|l| (l.severity, &l.threshold)).collect();
        let meaning = format!(
            "{:?}|{}|{}|{}|{:?}|{:?}|{:?}",
            s.kind, s.for_ms, s.clear_for_ms, s.clear_margin, s.direction, levels, s.select.quantities
        );
        // FxHasher has no random keys: the same rule hashes alike in every run.
        let mut hasher = rustc_hash::FxHasher::default();
        meaning.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// Of the stations the rule watches, how many declare (`quantities` in the registry)
    /// that they measure one of its quantities, and how many declare nothing.
    pub fn sending(&self, registry: &Registry) -> (usize, usize) {
        let (mut sending, mut undeclared) = (0, 0);
        for station in registry.stations().iter().filter(|s| self.ladder(s.key).is_some()) {
            if station.quantities.is_empty() {
                undeclared += 1;
            } else if station.quantities.iter().any(|q| self.spec.select.quantities.contains(q)) {
                sending += 1;
            }
        }
        (sending, undeclared)
    }

    /// How many stations the rule watches.
    pub fn station_count(&self) -> usize {
        self.ladders.iter().filter(|l| l.is_some()).count()
    }
}

/// Every rule of a deployment, indexed for the hot path.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<CompiledRule>,
    /// Rule indices by `Quantity::index` (raw quantities extend it as rules name them).
    by_quantity: Vec<Vec<u32>>,
    /// Per `Quantity::index`: 1 + the quantity's column among those some rule selects (0: none).
    columns: Vec<u16>,
    /// How many quantities some rule selects (columns of the sensor slots).
    column_count: usize,
    /// Stations in the registry the rules were compiled against.
    stations: usize,
    /// Likely mistakes that do not stop the rules from loading (a rule that selects nothing).
    pub warnings: Vec<Diagnostic>,
    /// Facts an analyst may want to see (stations a rule skips for lack of an attribute).
    pub notes: Vec<Diagnostic>,
}

impl RuleSet {
    #[inline]
    pub fn rules_for(&self, quantity: Quantity) -> &[u32] {
        self.by_quantity.get(quantity.index()).map_or(&[], Vec::as_slice)
    }

    /// A dense index for each (station, quantity) some rule watches: per-sensor bookkeeping
    /// lives in flat arrays, not hash maps (one cache line, not a probe, per reading).
    #[inline]
    pub fn sensor_slot(&self, key: SensorKey) -> Option<usize> {
        let column = *self.columns.get(key.quantity.index())?;
        let station = key.station.0 as usize;
        (column > 0 && station < self.stations).then(|| station * self.column_count + column as usize - 1)
    }

    /// How many sensor slots [`RuleSet::sensor_slot`] hands out.
    pub fn sensor_slots(&self) -> usize {
        self.stations * self.column_count
    }

    pub fn get(&self, id: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| &*r.id == id)
    }
}

/// A rule file's name (as shown in errors) and its text.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSource {
    pub name: String,
    pub text: String,
}

/// Reads rule files: a file, or every `*.toml` in a directory (sorted by name) except rule
/// unit tests (`*.test.toml`), which sit beside the rules they test.
pub fn read_sources(paths: &[PathBuf]) -> Result<Vec<RuleSource>, Diagnostic> {
    let mut sources = Vec::new();
    for path in paths {
        let io = |e: std::io::Error, p: &Path| Diagnostic {
            file: p.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| io(e, path))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .filter(|p| !p.to_string_lossy().ends_with(".test.toml"))
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).map_err(|e| io(e, &file))?;
                sources.push(RuleSource { name: file.display().to_string(), text });
            }
        } else {
            let text = std::fs::read_to_string(path).map_err(|e| io(e, path))?;
            sources.push(RuleSource { name: path.display().to_string(), text });
        }
    }
    Ok(sources)
}

/// Parses every file and checks what needs no registry (including duplicate ids).
pub fn check_sources(sources: &[RuleSource]) -> (Vec<RuleSpec>, Vec<Diagnostic>) {
    let mut specs: Vec<RuleSpec> = Vec::new();
    let mut diags = Vec::new();
    for source in sources {
        let (rules, errors) = parse_file(&source.name, &source.text);
        diags.extend(errors);
        for rule in rules {
            if let Some(first) = specs.iter().find(|r| r.id == rule.id) {
                diags.push(rule.at.error(format!("duplicate rule id {:?} (first defined at {})", rule.id, first.at)));
            } else {
                specs.push(rule);
            }
        }
    }
    (specs, diags)
}

/// Parses, checks and compiles rule files against a registry. Any error rejects the whole
/// set: a deployment never runs half a rule file.
pub fn compile(sources: &[RuleSource], registry: &Registry) -> Result<RuleSet, Vec<Diagnostic>> {
    let (specs, mut diags) = check_sources(sources);
    let mut set = RuleSet { by_quantity: vec![Vec::new(); Quantity::ALL.len()], ..RuleSet::default() };
    let known_attributes = registry.attribute_names();
    for spec in specs {
        let before = diags.len();
        for (id, at) in &spec.select.stations {
            if registry.key_of(id).is_none() {
                let hint = did_you_mean(id, registry.stations().iter().map(|s| s.id.as_str()))
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                diags.push(at.error(format!("unknown station {id:?} in `select.stations`{hint}")));
            }
        }
        for level in &spec.levels {
            for attr in level.threshold.attributes() {
                if !known_attributes.contains(attr) {
                    let hint = match did_you_mean(attr, known_attributes.iter().copied()) {
                        Some(s) => format!("did you mean station.{s}?"),
                        None if known_attributes.is_empty() => "no station has attributes".to_owned(),
                        None => format!(
                            "stations have: {}",
                            known_attributes.iter().copied().collect::<Vec<_>>().join(", ")
                        ),
                    };
                    diags.push(level.at.error(format!("unknown station attribute `station.{attr}`: {hint}")));
                }
            }
        }
        if matches!(spec.kind, KindSpec::Missing(_)) && spec.direction == Direction::Below {
            diags.push(
                spec.levels[0].at.error("a missing rule's levels are silences: use `above` (e.g. above = 3 intervals)"),
            );
        }
        if diags.len() > before {
            continue;
        }
        let sign = spec.direction.sign();
        let mut ladders = Vec::with_capacity(registry.len());
        let mut lacking = 0usize;
        for station in registry.stations() {
            if !selects(&spec, station) {
                ladders.push(None);
                continue;
            }
            match station_ladder(&spec, station, sign) {
                Ok(ladder) => ladders.push(Some(ladder)),
                Err(LadderProblem::MissingAttribute) => {
                    lacking += 1;
                    ladders.push(None);
                }
                Err(LadderProblem::OutOfOrder(message)) => {
                    diags.push(
                        spec.levels[0].at.error(format!("for station {} ({}): {message}", station.id, station.name)),
                    );
                    ladders.push(None);
                }
            }
        }
        let index = set.rules.len() as u32;
        let rule = CompiledRule {
            id: Arc::from(spec.id.as_str()),
            params: LadderParams {
                for_ms: spec.for_ms,
                clear_for_ms: spec.clear_for_ms,
                margin: spec.clear_margin,
                sign,
            },
            severities: spec.levels.iter().map(|l| l.severity).collect(),
            ladders,
            spec,
        };
        if rule.station_count() == 0 {
            set.warnings
                .push(rule.spec.at.error(format!("rule {:?} selects no station in the registry", rule.spec.id)));
        } else if lacking > 0 {
            set.notes.push(rule.spec.at.error(format!(
                "rule {:?} skips {lacking} selected station(s) that lack an attribute its thresholds use",
                rule.spec.id
            )));
        }
        let (sending, undeclared) = rule.sending(registry);
        let watched = rule.station_count();
        if watched > 0 && sending + undeclared < watched {
            let quantities: Vec<&str> = rule.spec.select.quantities.iter().map(|q| q.name()).collect();
            let message = format!(
                "rule {:?} selects {watched} station(s), of which {} declare they do not measure {}",
                rule.spec.id,
                watched - sending - undeclared,
                quantities.join(" or ")
            );
            if sending == 0 && undeclared == 0 {
                set.warnings.push(rule.spec.at.error(format!("{message}: no station can trigger it")));
            } else {
                set.notes.push(rule.spec.at.error(message));
            }
        }
        for &q in &rule.spec.select.quantities {
            if set.by_quantity.len() <= q.index() {
                set.by_quantity.resize(q.index() + 1, Vec::new());
            }
            set.by_quantity[q.index()].push(index);
        }
        set.rules.push(rule);
    }
    // Quality rules first: a sensor failing one drives no other rule with that reading.
    for indices in &mut set.by_quantity {
        indices.sort_by_key(|&i| !matches!(set.rules[i as usize].spec.kind, KindSpec::Quality(_)));
    }
    let mut next_column = 0u16;
    set.columns = set
        .by_quantity
        .iter()
        .map(|rules| {
            if rules.is_empty() {
                0
            } else {
                next_column += 1;
                next_column
            }
        })
        .collect();
    set.column_count = next_column as usize;
    set.stations = registry.len();
    if diags.is_empty() {
        Ok(set)
    } else {
        diags.sort();
        Err(diags)
    }
}

fn selects(spec: &RuleSpec, station: &Station) -> bool {
    let s = &spec.select;
    (s.domains.is_empty() || s.domains.contains(&station.domain))
        && (s.regions.is_empty() || s.regions.iter().any(|r| station.region.starts_with(r.as_str())))
        && (s.basins.is_empty() || station.basin.as_ref().is_some_and(|b| s.basins.contains(b)))
        && (s.stations.is_empty() || s.stations.iter().any(|(id, _)| *id == station.id))
}

enum LadderProblem {
    MissingAttribute,
    OutOfOrder(String),
}

fn station_ladder(spec: &RuleSpec, station: &Station, sign: f64) -> Result<Ladder, LadderProblem> {
    let mut values = Vec::with_capacity(spec.levels.len());
    for level in &spec.levels {
        let v = level.threshold.eval(station).map_err(|_| LadderProblem::MissingAttribute)?;
        if !v.is_finite() {
            return Err(LadderProblem::OutOfOrder(format!("{} threshold evaluates to {v}", level.severity)));
        }
        values.push(v);
    }
    for (i, pair) in values.windows(2).enumerate() {
        if (pair[1] - pair[0]) * sign <= 0.0 {
            return Err(LadderProblem::OutOfOrder(format!(
                "ladder out of order: {} threshold {} does not go beyond {} threshold {}",
                spec.levels[i + 1].severity,
                pair[1],
                spec.levels[i].severity,
                pair[0]
            )));
        }
    }
    Ok(Ladder::new(&values, sign))
}

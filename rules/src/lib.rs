//! Rule files and their evaluation in a timely dataflow.
//!
//! Analysts write rules in TOML (see `docs/rules.md`); [`compile`] checks them against the
//! station registry, reporting every problem with its file, line and column; [`Engine`] runs
//! them over readings in event time and emits [`AlertEvent`]s.
//!
//! ```
//! use tidewatch_rules::{compile, RuleSource};
//! use tidewatch_ingest::Registry;
//!
//! let registry = Registry::from_toml_str(r#"
//!     [[station]]
//!     id = "LX"
//!     name = "Lanxi"
//!     domain = "water"
//!     location = [119.46, 29.21]
//!     region = "330781"
//!     attributes = { warning_level = 28.0, guarantee_level = 30.5 }
//! "#).unwrap();
//! let rules = compile(&[RuleSource { name: "flood.toml".into(), text: r#"
//!     [[rule]]
//!     id = "water.level"
//!     select = { quantity = "water_level" }
//!     kind = "threshold"
//!     for = "10m"
//!     levels = [
//!       { severity = "yellow", above = "station.warning_level" },
//!       { severity = "orange", above = "station.guarantee_level" },
//!     ]
//! "#.into() }], &registry).unwrap();
//! assert_eq!(rules.rules[0].station_count(), 1);
//! ```

pub mod compile;
pub mod dataflow;
pub mod duration;
pub mod eval;
pub mod event;
pub mod expr;
pub mod file;
pub mod nab;
pub mod severity;
pub mod unit_test;
pub mod watermark;

pub use compile::{compile, read_sources, CompiledRule, RuleSet, RuleSource};
pub use dataflow::{Engine, EngineConfig, EngineInput, EngineOutput, EngineStartError, EngineStopped, Restore};
pub use event::{AlertEvent, Evidence, Fact, Transition};
pub use severity::Severity;
pub use watermark::{SourceId, Watermark};

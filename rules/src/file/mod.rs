//! Rule files: TOML with one `[[rule]]` table per rule.
//!
//! Parsing walks the span-carrying `toml::de::DeTable` by hand instead of deriving serde, so
//! that a file with ten mistakes reports ten errors, each at its own line and column, the way
//! an analyst fixing a file wants them. See `docs/rules.md` for the language.

mod diagnostic;
mod spec;

pub use diagnostic::{did_you_mean, Diagnostic, Position, Source};
pub use spec::{parse_file, Direction, Fields, KindSpec, LevelSpec, RuleSpec, Selector, KINDS, PLANNED_KINDS};

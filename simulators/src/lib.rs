//! Realistic device traffic for demos, tests and backtests: a Qiantang flood (river and rain
//! gauges, JSON) and an environmental episode (air and water-quality loggers, HJ 212).
//!
//! A scenario is a pure function of simulated time: asking for the readings at minute 90
//! always gives the same values, so a run can be replayed and its ground truth recomputed.

pub mod environment;
pub mod flood;

pub use environment::EnvironmentScenario;
pub use flood::{FloodScenario, SimPayload};

//! Realistic device traffic for demos, tests and backtests.
//!
//! A scenario is a pure function of simulated time: asking for the readings at minute 90
//! always gives the same values, so a run can be replayed and its ground truth recomputed.

pub mod flood;

pub use flood::{FloodScenario, SimPayload};

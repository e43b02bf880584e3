//! Alerts people handle.
//!
//! [`AlertBoard`] turns the rules engine's [`AlertEvent`]s into alerts: exactly one open alert
//! per (rule, sensor), with its history of colour changes, rendered for people by
//! [`render`]. The lifecycle beyond firing and resolving (acknowledgement, silences, routing
//! to the duty roster, escalation, notifiers and the durable store) builds on this.

pub mod board;
pub mod render;

pub use board::{Alert, AlertBoard, AlertState, HistoryEntry, Notice, Subject};
pub use tidewatch_rules::{AlertEvent, Severity, Transition};

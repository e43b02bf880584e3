//! Alerts people handle.
//!
//! The rules engine says *what changed* ([`AlertEvent`]); this crate makes it something a
//! duty officer can act on:
//!
//! - [`lifecycle`]: exactly one open alert per (rule, sensor), firing → acknowledged →
//!   resolved, every change a history entry (pure, no I/O);
//! - [`duty`]: the duty roster — teams by region and domain, shifts, escalation chains,
//!   channels, maintenance windows, inhibitions (`config/duty.toml`);
//! - [`policy`]: silences and inhibition;
//! - [`store`]: the durable store (SQLite or PostgreSQL) with the transactional outbox;
//! - [`manager`]: the task that owns the open alerts and writes every change, with the
//!   notifications it causes, in one transaction;
//! - [`dispatch`]: grouping, rate limits and retries between the outbox and the [`notify`]
//!   channels (webhook, DingTalk, WeCom, e-mail, SMS, MQTT);
//! - [`message`] and [`render`]: words for people, in Chinese or English.
//!
//! ```no_run
//! # async fn example(registry: std::sync::Arc<tidewatch_ingest::Registry>, rules: std::sync::Arc<tidewatch_rules::RuleSet>, observer: std::sync::Arc<dyn tidewatch_alerting::Observer>) -> Result<(), Box<dyn std::error::Error>> {
//! use tidewatch_alerting::{Alerting, AlertingSettings, Duty, Store};
//! let store = Store::open("sqlite://var/tidewatch.db").await?;
//! let duty = Duty::load("config/duty.toml".as_ref()).map_err(|p| p.join("\n"))?;
//! let alerting = Alerting::start(store, duty.into(), registry, rules, AlertingSettings::default(), observer).await?;
//! // alerting.events.send(event) for each engine event; alerting.handle.acknowledge(..) for people.
//! alerting.finish().await;
//! # Ok(()) }
//! ```

pub mod dispatch;
pub mod duty;
pub mod lifecycle;
pub mod manager;
pub mod message;
pub mod notify;
pub mod policy;
pub mod render;
pub mod secrets;
pub mod store;
pub mod users;

pub use duty::Duty;
pub use lifecycle::{Alert, AlertBoard, AlertState, Happening, HistoryEntry, Notice, Subject};
pub use manager::{Alerting, AlertingHandle, AlertingSettings, CommandError, EventSender, NewSilence, Observer};
pub use message::Language;
pub use policy::Silence;
pub use store::{AlertQuery, StateFilter, Store, StoreError};
pub use tidewatch_rules::{AlertEvent, Severity, Transition};

/// Why alerting could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Channel(String),
}

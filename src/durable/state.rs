//! Rule-state checkpoints in a local SQLite database (`state.db` in `state.dir`).
//!
//! One row per (rule, station, quantity) with the state of the rule's kind and ladder; a
//! checkpoint writes only the rows that changed since the last one, with the reading-log
//! position it covers and the alert store's event sequence number at that moment. Rules are
//! recorded with their [fingerprint](tidewatch_rules::CompiledRule::fingerprint): state of a
//! rule whose meaning changed between runs is discarded at start-up.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};
use tidewatch_ingest::{Quality, Quantity, Reading, Registry, SensorKey};
use tidewatch_rules::eval::StateRow;
use tidewatch_rules::{Restore, RuleSet};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        log_position INTEGER NOT NULL,
        event_seq INTEGER NOT NULL,
        written_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rules (rule TEXT PRIMARY KEY, fingerprint TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rule_state (
        rule TEXT NOT NULL, station TEXT NOT NULL, quantity TEXT NOT NULL,
        decided INTEGER NOT NULL, state BLOB NOT NULL,
        PRIMARY KEY (rule, station, quantity)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS held (
        station TEXT NOT NULL, quantity TEXT NOT NULL, quality TEXT NOT NULL,
        time INTEGER NOT NULL, value REAL NOT NULL)",
];

/// Rows per INSERT statement (5 parameters each, well under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 400;

#[derive(Clone)]
pub struct StateStore {
    pool: SqlitePool,
}

/// One state row with names, as stored.
#[derive(Clone, Debug)]
pub struct NamedRow {
    pub rule: std::sync::Arc<str>,
    pub station: String,
    pub quantity: &'static str,
    pub decided: i64,
    pub state: Option<Vec<u8>>,
}

/// What one checkpoint writes.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    pub position: u64,
    pub event_seq: i64,
    /// Every state (the table is replaced), not only the changed ones.
    pub full: bool,
    pub rows: Vec<NamedRow>,
    /// (station, quantity, reading) of the readings held for the watermark.
    pub held: Vec<(String, &'static str, Reading)>,
    /// (rule, fingerprint) of the rules the states were taken under, when they replace
    /// those recorded (a full checkpoint after the rules were reloaded).
    pub rules: Option<Vec<(Arc<str>, String)>>,
}

/// The last checkpoint, mapped onto this run's rules and registry.
#[derive(Debug, Default)]
pub struct Loaded {
    pub position: u64,
    pub event_seq: i64,
    pub written_at: i64,
    pub restore: Restore,
    /// Rules whose state was discarded: changed or gone since the checkpoint.
    pub discarded: Vec<String>,
    /// Rows of stations or quantities this run does not know.
    pub unknown: usize,
}

impl Checkpoint {
    /// Names the rows of the engine's parts.
    pub fn named(
        rules: &RuleSet,
        registry: &Registry,
        rows: &[StateRow],
        held: &[Reading],
    ) -> (Vec<NamedRow>, Vec<(String, &'static str, Reading)>) {
        let rows = rows
            .iter()
            .filter_map(|r| {
                Some(NamedRow {
                    rule: rules.rules.get(r.rule as usize)?.id.clone(),
                    station: registry.get(r.key.station)?.id.clone(),
                    quantity: r.key.quantity.name(),
                    decided: r.decided,
                    state: r.state.clone(),
                })
            })
            .collect();
        let held = held
            .iter()
            .filter_map(|r| Some((registry.get(r.sensor.station)?.id.clone(), r.sensor.quantity.name(), *r)))
            .collect();
        (rows, held)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("rule state {path}: {what}: {source}")]
pub struct StateError {
    path: String,
    what: &'static str,
    #[source]
    source: sqlx::Error,
}

impl StateStore {
    /// Opens (creating) `dir/state.db`; `full_sync` survives power loss, not only a crash.
    pub async fn open(dir: &Path, full_sync: bool) -> Result<StateStore, StateError> {
        let path = dir.join("state.db");
        let err = |what| {
            let path = path.display().to_string();
            move |source| StateError { path, what, source }
        };
        std::fs::create_dir_all(dir).map_err(|e| err("creating its directory")(sqlx::Error::Io(e)))?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if full_sync { SqliteSynchronous::Full } else { SqliteSynchronous::Normal });
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(err("opening"))?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await.map_err(err("creating the schema"))?;
        }
        Ok(StateStore { pool })
    }

    fn err(&self, what: &'static str) -> impl FnOnce(sqlx::Error) -> StateError {
        move |source| StateError { path: "state.db".into(), what, source }
    }

    /// Reads the last checkpoint for `rules`: rows of rules whose fingerprint changed (or
    /// that are gone) are deleted first, and the rules' fingerprints recorded.
    pub async fn load(&self, rules: &RuleSet, registry: &Registry) -> Result<Option<Loaded>, StateError> {
        let mut tx = self.pool.begin().await.map_err(self.err("beginning"))?;
        let stored = sqlx::query("SELECT rule, fingerprint FROM rules")
            .fetch_all(&mut *tx)
            .await
            .map_err(self.err("reading rules"))?;
        let mut discarded = Vec::new();
        for row in stored {
            let (rule, fingerprint): (String, String) = (row.get(0), row.get(1));
            if rules.get(&rule).is_none_or(|r| r.fingerprint() != fingerprint) {
                sqlx::query("DELETE FROM rule_state WHERE rule = ?")
                    .bind(&rule)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err("discarding a changed rule's state"))?;
                sqlx::query("DELETE FROM rules WHERE rule = ?")
                    .bind(&rule)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err("discarding a changed rule"))?;
                discarded.push(rule);
            }
        }
        for rule in &rules.rules {
            sqlx::query("INSERT INTO rules (rule, fingerprint) VALUES (?, ?) ON CONFLICT (rule) DO UPDATE SET fingerprint = excluded.fingerprint")
                .bind(&*rule.id)
                .bind(rule.fingerprint())
                .execute(&mut *tx)
                .await
                .map_err(self.err("recording rules"))?;
        }
        tx.commit().await.map_err(self.err("committing"))?;

        let Some(meta) = sqlx::query("SELECT log_position, event_seq, written_at FROM checkpoint WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("reading the checkpoint"))?
        else {
            return Ok(None);
        };
        let mut loaded = Loaded {
            position: meta.get::<i64, _>(0) as u64,
            event_seq: meta.get(1),
            written_at: meta.get(2),
            discarded,
            ..Loaded::default()
        };
        let index: std::collections::HashMap<&str, u32> =
            rules.rules.iter().enumerate().map(|(i, r)| (&*r.id, i as u32)).collect();
        let sensor = |station: &str, quantity: &str| {
            Some(SensorKey::new(registry.key_of(station)?, Quantity::from_str(quantity).ok()?))
        };
        let rows = sqlx::query("SELECT rule, station, quantity, decided, state FROM rule_state")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("reading rule state"))?;
        for row in rows {
            let (rule, station, quantity): (String, String, String) = (row.get(0), row.get(1), row.get(2));
            match (index.get(rule.as_str()), sensor(&station, &quantity)) {
                (Some(&rule), Some(key)) => {
                    loaded.restore.rows.push(StateRow { rule, key, decided: row.get(3), state: Some(row.get(4)) })
                }
                _ => loaded.unknown += 1,
            }
        }
        let held = sqlx::query("SELECT station, quantity, quality, time, value FROM held ORDER BY rowid")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("reading held readings"))?;
        for row in held {
            let (station, quantity, quality): (String, String, String) = (row.get(0), row.get(1), row.get(2));
            let quality = serde_json::from_value::<Quality>(serde_json::Value::String(quality)).ok();
            match (sensor(&station, &quantity), quality) {
                (Some(sensor), Some(quality)) => {
                    loaded.restore.held.push(Reading { sensor, quality, time: row.get(3), value: row.get(4) })
                }
                _ => loaded.unknown += 1,
            }
        }
        Ok(Some(loaded))
    }

    /// Writes a checkpoint in one transaction.
    pub async fn write(&self, checkpoint: &Checkpoint, written_at: i64) -> Result<(), StateError> {
        let mut tx = self.pool.begin().await.map_err(self.err("beginning"))?;
        if checkpoint.full {
            sqlx::query("DELETE FROM rule_state").execute(&mut *tx).await.map_err(self.err("replacing state"))?;
        }
        for row in checkpoint.rows.iter().filter(|r| r.state.is_none()) {
            sqlx::query("DELETE FROM rule_state WHERE rule = ? AND station = ? AND quantity = ?")
                .bind(&*row.rule)
                .bind(&row.station)
                .bind(row.quantity)
                .execute(&mut *tx)
                .await
                .map_err(self.err("deleting state"))?;
        }
        let upserts: Vec<&NamedRow> = checkpoint.rows.iter().filter(|r| r.state.is_some()).collect();
        for chunk in upserts.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::new("INSERT INTO rule_state (rule, station, quantity, decided, state) ");
            insert.push_values(chunk, |mut b, row| {
                b.push_bind(&*row.rule)
                    .push_bind(&row.station)
                    .push_bind(row.quantity)
                    .push_bind(row.decided)
                    .push_bind(row.state.as_deref().unwrap_or_default());
            });
            insert.push(
                " ON CONFLICT (rule, station, quantity) DO UPDATE SET decided = excluded.decided, state = excluded.state",
            );
            insert.build().execute(&mut *tx).await.map_err(self.err("writing state"))?;
        }
        if let Some(rules) = &checkpoint.rules {
            sqlx::query("DELETE FROM rules").execute(&mut *tx).await.map_err(self.err("replacing the rules"))?;
            for (rule, fingerprint) in rules {
                sqlx::query("INSERT INTO rules (rule, fingerprint) VALUES (?, ?)")
                    .bind(&**rule)
                    .bind(fingerprint)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err("recording the rules"))?;
            }
        }
        sqlx::query("DELETE FROM held").execute(&mut *tx).await.map_err(self.err("replacing held readings"))?;
        for (station, quantity, r) in &checkpoint.held {
            let quality =
                serde_json::to_value(r.quality).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            sqlx::query("INSERT INTO held (station, quantity, quality, time, value) VALUES (?, ?, ?, ?, ?)")
                .bind(station)
                .bind(*quantity)
                .bind(quality)
                .bind(r.time)
                .bind(r.value)
                .execute(&mut *tx)
                .await
                .map_err(self.err("writing held readings"))?;
        }
        sqlx::query(
            "INSERT INTO checkpoint (id, log_position, event_seq, written_at) VALUES (1, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET log_position = excluded.log_position, event_seq = excluded.event_seq, \
             written_at = excluded.written_at",
        )
        .bind(checkpoint.position as i64)
        .bind(checkpoint.event_seq)
        .bind(written_at)
        .execute(&mut *tx)
        .await
        .map_err(self.err("writing the checkpoint"))?;
        tx.commit().await.map_err(self.err("committing"))
    }

    /// Rows and bytes of rule state stored (for metrics and benchmarks).
    pub async fn size(&self) -> Result<(i64, i64), StateError> {
        let row = sqlx::query("SELECT COUNT(*), COALESCE(SUM(LENGTH(state) + LENGTH(rule) + LENGTH(station) + LENGTH(quantity) + 8), 0) FROM rule_state")
            .fetch_one(&self.pool)
            .await
            .map_err(self.err("measuring"))?;
        Ok((row.get(0), row.get(1)))
    }
}
